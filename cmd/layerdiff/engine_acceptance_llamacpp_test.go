//go:build llamacpp

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/internal/testtools"
)

// The acceptance test of issue #15: an engine written without layerdiff's
// code (capture/python/examples/numpy_llama.py, a float32 numpy LLaMA that
// reads the GGUF itself) is compared with a real llama.cpp dump (flash
// attention on, llama.cpp's CPU default) by `compare REF ENGINE --model`:
// recorded under its own names through a names file, under llama.cpp's
// names without a manifest, and sparsely, the clean engine passes; each
// planted bug is blamed at its op by isolation, with the hint naming it.

// numpyPython finds a python3 with numpy (testtools.NumpyPython).
var numpyPython = testtools.NumpyPython

// engineReport is the part of the JSON report the acceptance checks.
type engineReport struct {
	Verdict string `json:"verdict"`
	Meta    struct {
		Mode string `json:"mode"`
	} `json:"meta"`
	Summary struct {
		Pass, Fail int
	} `json:"summary"`
	Blame *struct {
		Key, Name, Op, By string
		Hints             []struct{ Kind, Text string }
	} `json:"blame"`
}

func TestEngineAcceptance(t *testing.T) {
	py := numpyPython(t)
	engine, err := filepath.Abs("../../capture/python/examples/numpy_llama.py")
	if err != nil {
		t.Fatal(err)
	}
	names := strings.TrimSuffix(engine, ".py") + ".names"
	dir := t.TempDir()
	model, ref := filepath.Join(dir, "m.gguf"), filepath.Join(dir, "ref")
	for _, args := range [][]string{
		{"fixture", "--out", model},
		{"dump", "--model", model, "--prompt", "Hello world, this is a test", "--out", ref},
	} {
		if r := layerdiff(t, args...); r.code != 0 {
			t.Fatal(r)
		}
	}
	record := func(t *testing.T, out string, args ...string) {
		t.Helper()
		cmd := exec.Command(py, append([]string{engine, "--model", model, "--tokens-from", ref, "--out", out}, args...)...)
		cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("numpy_llama %v: %v\n%s", args, err, b)
		}
	}
	compareJSON := func(t *testing.T, eng string, extra ...string) (engineReport, cliResult) {
		t.Helper()
		r := layerdiff(t, append([]string{"compare", ref, eng, "--model", model, "--format", "json"}, extra...)...)
		var rep engineReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("%v\n%s", err, r)
		}
		return rep, r
	}

	t.Run("clean", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			record []string
			names  []string
			min    int // passing rows at least
		}{
			{"own-names", nil, []string{"--names", names}, 40},
			{"llamacpp-names-no-manifest", []string{"--names", "llamacpp", "--no-manifest"}, nil, 40},
			{"sparse", []string{"--names", "llamacpp", "--sparse"}, nil, 3},
			{"sparse-own-names", []string{"--sparse"}, []string{"--names", names}, 3},
		} {
			t.Run(tc.name, func(t *testing.T) {
				eng := filepath.Join(dir, "clean-"+tc.name)
				record(t, eng, tc.record...)
				rep, r := compareJSON(t, eng, tc.names...)
				if r.code != 0 || rep.Verdict != "pass" || rep.Meta.Mode != "isolation" || rep.Summary.Pass < tc.min {
					t.Errorf("clean engine: exit %d, verdict %s, mode %s, %d pass (want exit 0, pass, isolation, ≥ %d)\n%s", r.code, rep.Verdict, rep.Meta.Mode, rep.Summary.Pass, tc.min, r.stderr)
				}
			})
		}
	})

	type bugCase struct {
		bug, key, op, hint string
	}
	bugs := []bugCase{
		{"rope-halves", "Qcur-0#2", "ROPE", "rope-mode"},
		{"pos-offset", "Qcur-0#2", "ROPE", "rope-position"},
		{"rope-base", "Qcur-0#2", "ROPE", "rope-base"},
		{"softmax-scale", "kq_soft_max-0", "SOFT_MAX", "softmax-scale"},
		{"eps-x10", "norm-0", "RMS_NORM", "rms-eps"},
		{"eps-div10", "norm-0", "RMS_NORM", "rms-eps"},
		{"gqa-tile", "kq-0", "MUL_MAT", "gqa-mapping"},
		{"gelu", "ffn_swiglu-0", "SWIGLU", "activation"},
		{"transposed-weight", "attn_out-0", "MUL_MAT", "weight-transposed"},
		{"no-bos", "inp_embd", "GET_ROWS", "bos"},
	}
	for _, way := range []struct {
		name          string
		record, names []string
		bugs          []bugCase
	}{
		// the engine's own names and layouts, through its names file
		{"own-names", nil, []string{"--names", names}, bugs},
		// llama.cpp's names, no manifest (no token ids: the BOS is
		// told from the embedding's rows)
		{"llamacpp-names", []string{"--names", "llamacpp", "--no-manifest"}, nil, bugs},
		// sparse: the op is in the unrecorded chain, found by the
		// hypothesis that reproduces the engine
		{"sparse", []string{"--sparse"}, []string{"--names", names}, []bugCase{
			{"softmax-scale", "kq_soft_max-0", "SOFT_MAX", "softmax-scale"},
			{"eps-div10", "norm-0", "RMS_NORM", "rms-eps"},
			{"rope-halves", "Qcur-0#2", "ROPE", "rope-mode"},
		}},
	} {
		for _, tc := range way.bugs {
			t.Run(way.name+"/"+tc.bug, func(t *testing.T) {
				eng := filepath.Join(dir, "bug-"+way.name+"-"+tc.bug)
				record(t, eng, append(append([]string(nil), way.record...), "--bug", tc.bug)...)
				rep, r := compareJSON(t, eng, way.names...)
				b := rep.Blame
				if r.code != 1 || rep.Verdict != "fail" || b == nil {
					t.Fatalf("%s not caught (exit %d, verdict %s)\n%s", tc.bug, r.code, rep.Verdict, r)
				}
				if b.Key != tc.key || b.Op != tc.op || b.By != "isolation" {
					t.Errorf("%s: blamed %s (%s) by %s, want %s (%s) by isolation", tc.bug, b.Key, b.Op, b.By, tc.key, tc.op)
				}
				if len(b.Hints) == 0 || b.Hints[0].Kind != tc.hint {
					t.Errorf("%s: hints %+v, want %s first", tc.bug, b.Hints, tc.hint)
				}
			})
		}
	}
}
