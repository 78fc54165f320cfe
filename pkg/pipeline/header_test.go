package pipeline

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/compare/render"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// headerDump writes a two-node dump (a-0 with data, w-0 without) whose
// manifest names its writer by version, commit and producer.
func headerDump(t *testing.T, dir, version, commit, producer string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := reference.NodeFileName(0, "a-0")
	if err := reference.WriteNPYFloat32(filepath.Join(dir, file), []int64{2, 4}, []float32{1, 2, 3, 4, 5, 6, 7, 8}); err != nil {
		t.Fatal(err)
	}
	m := &reference.Manifest{
		LayerdiffVersion: version, LlamaCppCommit: commit, Producer: producer,
		SystemInfo: "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | ",
		Model:      reference.ModelInfo{Path: "m.gguf"}, Tokens: []int32{1, 2}, OutputAll: true,
		Nodes: []reference.ManifestNode{
			{Index: 0, Key: "a-0", Name: "a-0", Op: "ADD", Type: "f32", Ne: []int64{4, 2, 1, 1}, File: file},
			{Index: 1, Key: "w-0", Name: "w-0", Op: "MUL_MAT", Type: "q8_0", Ne: []int64{4, 2, 1, 1}},
		},
	}
	if err := m.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// header renders the text report of rep and returns its reference and
// other lines.
func header(t *testing.T, rep *compare.Report) (ref, other string) {
	t.Helper()
	var b bytes.Buffer
	if err := render.Text(&b, rep); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(l, "  reference  "); ok {
			ref = v
		}
		if v, ok := strings.CutPrefix(l, "  other      "); ok {
			other = v
		}
	}
	return ref, other
}

// TestHeaderSources: every kind of source is named in the report header
// with its engine, its format and the program that wrote it, each once.
func TestHeaderSources(t *testing.T) {
	dir := t.TempDir()
	open := func(p string) reference.Source {
		t.Helper()
		s, err := reference.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	builtin := headerDump(t, filepath.Join(dir, "builtin"), "0.1.0-dev", "ec98e2002", "")
	cdump := headerDump(t, filepath.Join(dir, "cdump"), "layerdiff-dump.c 3", "b6123", "")
	third := headerDump(t, filepath.Join(dir, "third"), "", "", "my-engine 0.3 (layerdiff capture/python 1)")
	npy := filepath.Join(dir, "npy")
	if err := os.MkdirAll(npy, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := reference.WriteNPYFloat32(filepath.Join(npy, "a-0.npy"), []int64{2, 4}, []float32{1, 2, 3, 4, 5, 6, 7, 8}); err != nil {
		t.Fatal(err)
	}
	var lb bytes.Buffer
	if err := reference.WriteLog(&lb, open(builtin), reference.LogOptions{Format: reference.LogFormatNew}); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "evalcb.log")
	if err := os.WriteFile(logPath, lb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		a, b      string
		ref, othr string
	}{
		{"built-in dumper vs C dumper", builtin, cdump,
			"llama.cpp ec98e2002; format layerdiff-dump v1; written by layerdiff 0.1.0-dev (built-in dumper); path " + builtin + "; model m.gguf; kernels x86-avx2",
			"llama.cpp b6123; format layerdiff-dump v1; written by layerdiff-dump.c 3 (standalone C dumper); path " + cdump + "; model m.gguf; kernels x86-avx2"},
		{"third-party dump", builtin, third,
			"llama.cpp ec98e2002; format layerdiff-dump v1; written by layerdiff 0.1.0-dev (built-in dumper); path " + builtin + "; model m.gguf; kernels x86-avx2",
			"my-engine 0.3 (layerdiff capture/python 1); format layerdiff-dump v1; path " + third + "; model m.gguf; kernels x86-avx2"},
		{"npy directory", builtin, npy,
			"llama.cpp ec98e2002; format layerdiff-dump v1; written by layerdiff 0.1.0-dev (built-in dumper); path " + builtin + "; model m.gguf; kernels x86-avx2",
			"other; format directory of .npy files; path " + npy},
		{"log", logPath, npy,
			"llama.cpp; format llama.cpp eval-callback log (common_debug_cb_eval:, 4-space); path " + logPath + "; kernels x86-avx2",
			"other; format directory of .npy files; path " + npy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Compare(open(tc.a), open(tc.b), CompareOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ref, other := header(t, rep)
			if ref != tc.ref {
				t.Errorf("reference\n got %q\nwant %q", ref, tc.ref)
			}
			if other != tc.othr {
				t.Errorf("other\n got %q\nwant %q", other, tc.othr)
			}
			// w-0 has no data: left out of the coverage count.
			if c := rep.CoverageInfo(); c.NoData != 1 || c.Nodes != 1 || c.Measured != 1 {
				t.Errorf("coverage %+v, want a-0 measured and w-0 without data", c)
			}
		})
	}
}

func TestForwardLabel(t *testing.T) {
	for _, tc := range []struct {
		numerics, kernels string
		cross, inject     bool
		want              string
	}{
		{"ggml", "x86-avx2", false, false, "layerdiff forward pass (ggml numerics, kernels x86-avx2)"},
		{"f64", "", false, false, "layerdiff forward pass (f64 numerics)"},
		{"ggml", "x86-avx512", true, false, "layerdiff forward pass (ggml numerics, kernels x86-avx512, each op from the reference's inputs)"},
		{"ggml", "arm64-neon", false, true, "layerdiff forward pass (ggml numerics, kernels arm64-neon) with --inject"},
	} {
		if got := forwardLabel(tc.numerics, tc.kernels, tc.cross, tc.inject); got != tc.want {
			t.Errorf("forwardLabel(%q, %q, %v, %v) = %q, want %q", tc.numerics, tc.kernels, tc.cross, tc.inject, got, tc.want)
		}
	}
}

// TestRunHeader: the forward pass is named once in a run's header, its
// numerics and kernels in its label, not repeated as "(forward)".
func TestRunHeader(t *testing.T) {
	path, _, _ := checkFixture(t)
	toks := []int32{1, 5, 9}
	list := ownForward(t, path, toks)
	rep, err := Run(&memRef{info: reference.Info{Kind: reference.KindDump, Path: "mem", Tokens: toks, FlashAttn: "on"}, list: list}, path, RunOptions{Threads: 1, Kernels: "x86-avx2", CrossKernel: "off"})
	if err != nil {
		t.Fatal(err)
	}
	_, other := header(t, rep)
	if !strings.HasPrefix(other, "layerdiff forward pass (ggml numerics, kernels x86-avx2); model "+path) || strings.Count(other, "forward") != 1 || strings.Count(other, "kernels") != 1 {
		t.Errorf("other %q", other)
	}
}
