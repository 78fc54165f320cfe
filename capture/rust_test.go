package capture_test

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/reference"
)

// TestRustKit runs the crate's cargo tests, then its synthetic example, and
// reads the dump it writes with layerdiff's reader: keys, shapes (ggml order
// = the numpy shape reversed) and values (element i of tensor k is
// sin(0.01 i + k)).
func TestRustKit(t *testing.T) {
	cg := cargo(t)
	out := run(t, "rust", false, cg, "test", "--offline", "--quiet")
	if !strings.Contains(out, "test result: ok") {
		t.Fatalf("cargo test did not report ok:\n%s", out)
	}
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "dump")
	model := filepath.Join(tmp, "m.gguf")
	modelBytes := []byte("GGUF not really a model, but bytes to hash\n")
	if err := os.WriteFile(model, modelBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "rust", false, cg, "run", "--offline", "--quiet", "--example", "synthetic", "--", dir, "--model", model)
	src, err := reference.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	info := src.Describe()
	if info.Kind != reference.KindDump || len(info.Tokens) != 3 || info.Tokens[2] != 9 {
		t.Errorf("describe: kind %s tokens %v", info.Kind, info.Tokens)
	}
	if sum := sha256.Sum256(modelBytes); info.ModelPath != model || info.ModelSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("model %s sha256 %s, want %s %x", info.ModelPath, info.ModelSHA256, model, sum)
	}
	want := []struct {
		key, op string
		ne      []int64
	}{
		{"inp_embd", "GET_ROWS", []int64{8, 3}},
		{"attn_norm-0", "MUL", []int64{8, 3}},
		{"Qcur-0", "MUL_MAT", []int64{8, 3}},
		{"Qcur-0#2", "ROPE", []int64{4, 2, 3}},
		{"kq-0", "MUL_MAT", []int64{3, 3, 2}},
		{"ffn_out-0", "MUL_MAT", []int64{8, 3}},
		{"result_output", "MUL_MAT", []int64{16, 3}},
	}
	nodes := src.Nodes()
	if len(nodes) != len(want) {
		t.Fatalf("%d nodes, want %d", len(nodes), len(want))
	}
	for k, w := range want {
		n := nodes[k]
		if n.Key != w.key || n.Op != w.op || !equalNe(n.Ne, w.ne) {
			t.Errorf("node %d: %s %s %v, want %s %s %v", k, n.Key, n.Op, n.Ne, w.key, w.op, w.ne)
			continue
		}
		tt, err := src.Load(n.Key)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range tt.Data {
			if exp := float32(math.Sin(0.01*float64(i) + float64(k))); v != exp {
				t.Fatalf("%s[%d] = %g, want %g", n.Key, i, v, exp)
			}
		}
	}
	// the example refuses to overwrite its dump
	if out := run(t, "rust", true, cg, "run", "--offline", "--quiet", "--example", "synthetic", "--", dir); !strings.Contains(out, "not empty") {
		t.Errorf("second run: %s", out)
	}
}
