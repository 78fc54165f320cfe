//go:build llamacpp

package main

// End-to-end tests of --names: engine-like dumps made from a real
// llama.cpp dump by renaming (and, for HF llama, permuting) its tensors.

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// namesFixture is a fixture model of one architecture and its llama.cpp
// dump (flash attention off, 2 layers, head size 16).
type namesFixture struct {
	model string
	dump  *reference.Dump
}

func namesFixtureOf(t *testing.T, arch string) *namesFixture {
	t.Helper()
	dir := t.TempDir()
	c := fixture.Config{Arch: arch, Seed: 3, Embd: 64, Layers: 2, Heads: 4, KVHeads: 2, FF: 128, VocabSize: 320, Ctx: 64, RopeBase: 10000, RMSEps: 1e-5}
	model := filepath.Join(dir, "m.gguf")
	if err := fixture.Generate(c, model); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "dump")
	if _, err := reference.DumpLlamaCpp(reference.DumpOptions{Model: model, Prompt: "hello world again", Out: out, FlashAttn: "off", Threads: 2}); err != nil {
		t.Fatal(err)
	}
	d, err := reference.OpenDump(out)
	if err != nil {
		t.Fatal(err)
	}
	return &namesFixture{model: model, dump: d}
}

// engineDir writes an .npy directory holding the dump's tensors under
// other names: names maps a dump key to the engine's file name ("{L}" is
// replaced by each layer); edit, when set, changes the values of a file.
func engineDir(t *testing.T, d *reference.Dump, names map[string]string, edit func(name string, ne []int64, v []float32) []float32) string {
	t.Helper()
	dir := t.TempDir()
	n := 0
	for _, node := range d.Nodes() {
		for key, engine := range names {
			l := layerOf(node.Name)
			k := strings.ReplaceAll(key, "{L}", fmt.Sprint(l))
			if node.Key != k || (strings.Contains(key, "{L}") != (l >= 0)) {
				continue
			}
			tt, err := d.Load(node.Key)
			if err != nil {
				t.Fatal(err)
			}
			name := strings.ReplaceAll(engine, "{L}", fmt.Sprint(l))
			v := tt.Data
			if edit != nil {
				v = edit(name, tt.Ne, slices.Clone(v))
			}
			if err := reference.WriteNPYFloat32(filepath.Join(dir, name+".npy"), reference.NPYShape(tt.Ne), v); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("engineDir wrote nothing")
	}
	return dir
}

// hfOrder puts GGUF-order projection rows in HF's rotate-half order (the
// inverse of convert_hf_to_gguf.py's permute): GGUF element h·hd + 2i + j
// is HF element h·hd + j·hd/2 + i.
func hfOrder(v []float32, hd int) []float32 {
	out := make([]float32, len(v))
	for b := 0; b < len(v); b += hd {
		for i := 0; i < hd/2; i++ {
			for j := 0; j < 2; j++ {
				out[b+j*hd/2+i] = v[b+2*i+j]
			}
		}
	}
	return out
}

var metaNames = map[string]string{
	"inp_embd": "tok_embeddings", "attn_norm-{L}": "layers.{L}.attention_norm",
	"Qcur-{L}": "layers.{L}.attention.wq", "Kcur-{L}": "layers.{L}.attention.wk", "Vcur-{L}": "layers.{L}.attention.wv",
	"attn_out-{L}": "layers.{L}.attention.wo", "ffn_norm-{L}": "layers.{L}.ffn_norm",
	"ffn_gate-{L}": "layers.{L}.feed_forward.w1", "ffn_up-{L}": "layers.{L}.feed_forward.w3", "ffn_out-{L}": "layers.{L}.feed_forward.w2",
	"l_out-{L}": "layers.{L}", "result_norm": "norm", "result_output": "output",
}

// hfNames maps a dump's keys to HF module names for arch.
func hfNames(d *reference.Dump, arch string) map[string]string {
	m := map[string]string{
		"inp_embd": "model.embed_tokens", "attn_norm-{L}": "model.layers.{L}.input_layernorm",
		"ffn_norm-{L}": "model.layers.{L}.post_attention_layernorm",
		"ffn_gate-{L}": "model.layers.{L}.mlp.gate_proj", "ffn_up-{L}": "model.layers.{L}.mlp.up_proj", "ffn_out-{L}": "model.layers.{L}.mlp.down_proj",
		"l_out-{L}": "model.layers.{L}", "result_norm": "model.norm", "result_output": "lm_head",
	}
	proj := ""
	switch arch {
	case "qwen2":
		proj = "#2" // the bias ADD
	case "qwen3":
		m["Qcur_normed-{L}"] = "model.layers.{L}.self_attn.q_norm"
		m["Kcur_normed-{L}"] = "model.layers.{L}.self_attn.k_norm"
	}
	for _, x := range []string{"Q", "K", "V"} {
		m[x+"cur-{L}"+proj] = "model.layers.{L}.self_attn." + strings.ToLower(x) + "_proj"
	}
	if arch == "llama" {
		m["attn_out-{L}"] = "model.layers.{L}.self_attn.o_proj"
	} else {
		// qwen2/qwen3 leave the output projection unnamed: node_N, the
		// MUL_MAT after kqv_out-L.
		nodes := d.Nodes()
		for i, n := range nodes {
			if strings.HasPrefix(n.Name, "kqv_out-") && i+1 < len(nodes) && nodes[i+1].Op == "MUL_MAT" {
				m[nodes[i+1].Key] = "model.layers." + strings.TrimPrefix(n.Name, "kqv_out-") + ".self_attn.o_proj"
			}
		}
	}
	return m
}

// namesReport runs compare REF ENGINE --format json with args and decodes
// the report.
func namesReport(t *testing.T, ref, engine string, args ...string) (cliResult, *compare.Report) {
	t.Helper()
	r := layerdiff(t, append([]string{"compare", ref, engine, "--format", "json"}, args...)...)
	var rep compare.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	return r, &rep
}

func wantAllMatchedPass(t *testing.T, r cliResult, rep *compare.Report, engineTensors int) {
	t.Helper()
	if r.code != 0 || rep.Verdict != compare.VerdictPass {
		t.Fatalf("exit %d, verdict %s, want 0 pass\n%s", r.code, rep.Verdict, r)
	}
	if rep.Summary.UnmatchedOther != 0 {
		t.Errorf("%d engine tensors unmatched: %+v", rep.Summary.UnmatchedOther, rep.Unmatched)
	}
	if rep.Summary.Pass < engineTensors {
		t.Errorf("%d tensors pass, want at least the engine's %d", rep.Summary.Pass, engineTensors)
	}
	for _, w := range rep.Warnings {
		if strings.HasPrefix(w, "names") {
			t.Errorf("names warning: %s", w)
		}
	}
}

func countNPY(t *testing.T, dir string) int {
	m, err := filepath.Glob(filepath.Join(dir, "*.npy"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func TestNamesMeta(t *testing.T) {
	f := namesFixtureOf(t, "llama")
	dir := engineDir(t, f.dump, metaNames, nil)
	// Without the map: Meta's "norm" (the weighted final norm) must not be
	// judged against llama.cpp's unweighted norm, and the advice names the
	// map.
	r, rep := namesReport(t, f.dump.Dir, dir)
	if !slices.ContainsFunc(rep.Warnings, func(w string) bool {
		return strings.Contains(w, "--names meta") && strings.Contains(w, "docs/names.md") && strings.Contains(w, "layers.0.attention_norm → attn_norm-0") && strings.Contains(w, "norm is llama.cpp's result_norm")
	}) {
		t.Errorf("no advice for Meta names: %q\n%s", rep.Warnings, r)
	}
	if r.code != 1 || !strings.Contains(r.stderr, "docs/names.md") {
		t.Errorf("Meta names without --names: exit %d, want 1 with a pointer to docs/names.md\n%s", r.code, r)
	}
	r, rep = namesReport(t, f.dump.Dir, dir, "--names", "meta")
	wantAllMatchedPass(t, r, rep, countNPY(t, dir))
}

func TestNamesHF(t *testing.T) {
	for _, arch := range []string{"llama", "qwen2", "qwen3"} {
		t.Run(arch, func(t *testing.T) {
			f := namesFixtureOf(t, arch)
			hd, _, _ := reference.HeadsFromNodes(f.dump.Nodes())
			if hd != 16 {
				t.Fatalf("head size %d from the dump, want 16", hd)
			}
			permute := func(name string, ne []int64, v []float32) []float32 {
				if arch == "llama" && (strings.HasSuffix(name, ".q_proj") || strings.HasSuffix(name, ".k_proj")) {
					return hfOrder(v, hd)
				}
				return v
			}
			dir := engineDir(t, f.dump, hfNames(f.dump, arch), permute)
			r, rep := namesReport(t, f.dump.Dir, dir, "--names", "hf")
			wantAllMatchedPass(t, r, rep, countNPY(t, dir))
			if arch != "llama" {
				return
			}
			// The permutation matters: unpermuted HF data fails at Qcur-0.
			plain := engineDir(t, f.dump, hfNames(f.dump, arch), nil)
			r, rep = namesReport(t, f.dump.Dir, plain, "--names", "hf")
			if r.code != 1 || rep.FirstDivergence == nil || rep.FirstDivergence.Name != "Qcur-0" {
				t.Errorf("GGUF-order data under --names hf: exit %d, want a FAIL at Qcur-0\n%s", r.code, r)
			}
			// run --ref ENGINE --names hf: the geometry comes from --model.
			tokens := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(f.dump.Manifest.Tokens)), ","), "[]")
			r = layerdiff(t, "run", "--ref", dir, "--names", "hf", "--model", f.model, "--tokens", tokens, "--flash-attn", "off")
			if r.code != 0 {
				t.Errorf("run --names hf: exit %d\n%s", r.code, r)
			}
			r = layerdiff(t, "run", "--ref", dir, "--model", f.model, "--tokens", tokens, "--flash-attn", "off")
			if r.code != 2 || !strings.Contains(r.stderr, "docs/names.md") || !strings.Contains(r.stdout, "--names hf") {
				t.Errorf("run without --names: exit %d, want 2 with a pointer to --names hf and docs/names.md\n%s", r.code, r)
			}
		})
	}
}

func TestNamesHFUnmeasured(t *testing.T) {
	f := namesFixtureOf(t, "llama")
	dir := engineDir(t, f.dump, hfNames(f.dump, "llama"), nil)
	r := layerdiff(t, "compare", f.dump.Dir, dir)
	if r.code != 2 || !strings.Contains(r.stderr, "docs/names.md") || !strings.Contains(r.stdout, "--names hf") {
		t.Errorf("HF names without --names: exit %d, want 2 with a pointer to --names hf and docs/names.md\n%s", r.code, r)
	}
}

func TestNamesFile(t *testing.T) {
	f := namesFixtureOf(t, "llama")
	dir := engineDir(t, f.dump, map[string]string{
		"inp_embd": "embed", "attn_norm-{L}": "blk{L}_attn_norm", "Qcur-{L}#2": "blk{L}_q_rope", "Kcur-{L}#2": "blk{L}_k_rope",
		"ffn_out-{L}": "blk{L}_mlp", "l_out-{L}": "blk{L}_out", "result_output": "logits",
	}, nil)
	mapFile := filepath.Join(t.TempDir(), "engine.names")
	writeFile(t, mapFile, []byte("# my engine\nembed = inp_embd\nblk{L}_attn_norm = attn_norm-{L}\nblk{L}_q_rope = Qcur-{L}#2   # the ROPE\nblk{L}_k_rope = Kcur-{L}#2\n\nblk{L}_mlp = ffn_out-{L}\nblk{L}_out = l_out-{L}\nlogits = result_output\n"))
	r, rep := namesReport(t, f.dump.Dir, dir, "--names", mapFile)
	wantAllMatchedPass(t, r, rep, countNPY(t, dir))
	for _, row := range rep.Tensors {
		if row.Key == "Qcur-0#2" && (row.Other == nil || row.Other.Name != "Qcur-0#2" || row.Status != compare.Pass) {
			t.Errorf("Qcur-0#2 (ROPE): %+v", row)
		}
	}
}

// TestNamesOccurrenceNPY: a plain .npy directory's Qcur-0#2.npy, without
// any map, is llama.cpp's second Qcur-0, the ROPE.
func TestNamesOccurrenceNPY(t *testing.T) {
	f := namesFixtureOf(t, "llama")
	dir := engineDir(t, f.dump, map[string]string{"Qcur-{L}#2": "Qcur-{L}#2", "Kcur-{L}#2": "Kcur-{L}#2", "l_out-{L}": "l_out-{L}"}, nil)
	r, rep := namesReport(t, f.dump.Dir, dir)
	if r.code != 0 || rep.Summary.UnmatchedOther != 0 {
		t.Fatalf("exit %d, %d unmatched: want 0, 0\n%s", r.code, rep.Summary.UnmatchedOther, r)
	}
	ropes := 0
	for _, row := range rep.Tensors {
		if row.Op == "ROPE" {
			ropes++
			if row.Other == nil || row.Other.Name != row.Key || row.Other.Match != "name#N" || row.Status != compare.Pass {
				t.Errorf("ROPE %s: counterpart %+v, status %s; want %s.npy by name#N, pass", row.Key, row.Other, row.Status, row.Key)
			}
		}
	}
	if ropes != 4 {
		t.Errorf("%d ROPE rows, want 4", ropes)
	}
}
