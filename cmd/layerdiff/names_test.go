package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// namesRefDump is a hand-made llama.cpp-like dump of one layer, and an
// engine directory holding the same values under names of its own.
func namesRefDump(t *testing.T, dir string, engine []string) (ref, eng string) {
	t.Helper()
	vals := func(n int, s float32) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = s * float32(i%7-3)
		}
		return v
	}
	names := []string{"inp_embd", "attn_norm-0", "ffn_out-0", "l_out-0", "result_norm"}
	var nodes []dumpNode
	var ts []npyTensor
	for i, n := range names {
		v := vals(8*2, float32(i+1))
		nodes = append(nodes, dumpNode{name: n, ne: []int64{8, 2}, vals: v})
		ts = append(ts, npyTensor{name: engine[i], ne0: 8, ne1: 2, vals: v})
	}
	ref = writeDump(t, filepath.Join(dir, "ref"), "m.gguf", strings.Repeat("0", 64), []int32{1, 2}, nodes...)
	return ref, writeNPYDir(t, filepath.Join(dir, "engine"), ts...)
}

func TestNamesCLI(t *testing.T) {
	dir := t.TempDir()
	ref, eng := namesRefDump(t, dir, []string{"embed", "blk.0.pre_norm", "blk.0.mlp_down", "blk.0.out", "final_ln"})
	good := filepath.Join(dir, "good.names")
	writeFile(t, good, []byte("embed = inp_embd\nblk.{L}.pre_norm = attn_norm-{L}  # norm\nblk.{L}.mlp_down = ffn_out-{L}\nblk.{L}.out = l_out-{L}\nfinal_ln = result_norm\n"))
	bad := filepath.Join(dir, "bad.names")
	writeFile(t, bad, []byte("# ok so far\nembed = inp_embd\n\nblk.{L}.out = l_out\n"))
	for _, tc := range []struct {
		what string
		args []string
		code int
		out  []string // substrings of stdout
		err  []string // substrings of stderr
	}{
		{what: "map file", args: []string{"compare", ref, eng, "--names", good}, code: 0,
			out: []string{"PASS: all 5 compared tensors within tolerance", "(names: " + good + ")"}},
		{what: "bad line", args: []string{"compare", ref, eng, "--names", bad}, code: 2,
			err: []string{bad + ":4: {L} must appear on both sides"}},
		{what: "missing file", args: []string{"compare", ref, eng, "--names", filepath.Join(dir, "nosuch")}, code: 2, err: []string{"nosuch"}},
		{what: "hf without architecture", args: []string{"compare", eng, eng, "--names", "hf"}, code: 2, err: []string{"--names hf: the architecture is unknown"}},
		{what: "unknown names", args: []string{"compare", ref, eng}, code: 2,
			out: []string{"names: only 0 of the 5 tensors of " + eng, "blk.0.mlp_down → ffn_out-0", "blk.0.out → l_out-0", "--names FILE", "docs/names.md"},
			err: []string{"the tensor names do not match llama.cpp's (see the warning and docs/names.md)"}},
		{what: "unknown names, json", args: []string{"compare", ref, eng, "--format", "json"}, code: 2,
			out: []string{`"names: only 0 of the 5 tensors`}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			r := layerdiff(t, tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", r.code, tc.code, r)
			}
			for _, s := range tc.out {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q\n%s", s, r)
				}
			}
			for _, s := range tc.err {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q\n%s", s, r)
				}
			}
		})
	}
}
