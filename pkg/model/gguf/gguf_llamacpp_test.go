//go:build llamacpp

package gguf

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// TestWriterLoadsInLlamaCpp rewrites the shared Q8_0 llama with a
// non-default alignment (64) and its metadata in reverse order, and checks
// that llama.cpp loads the result and computes bit-identical logits.
func TestWriterLoadsInLlamaCpp(t *testing.T) {
	path := sharedFile(t, "llamacpp/S-Q8_0.gguf")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kvs := slices.Clone(f.KVs)
	slices.Reverse(kvs)
	out := filepath.Join(t.TempDir(), "aligned64.gguf")
	if err := WriteFile(out, kvs, writeTensorsOf(t, f), 64); err != nil {
		t.Fatal(err)
	}
	g, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if g.Alignment != 64 || g.DataOffset%64 != 0 {
		t.Errorf("rewritten file: alignment %d, data offset %d", g.Alignment, g.DataOffset)
	}
	g.Close()

	logits := func(p string) []float32 {
		m, err := llamacpp.LoadModel(p)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if a, ok := m.Meta(KeyAlignment); p == out && (!ok || a != "64") {
			t.Errorf("llama.cpp reads general.alignment = %q, %v", a, ok)
		}
		toks, err := m.Tokenize("Hello world, this is a test", true, false)
		if err != nil {
			t.Fatal(err)
		}
		ctx, err := llamacpp.NewContext(m, llamacpp.ContextOptions{NCtx: 64, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer ctx.Close()
		if err := ctx.Eval(toks, func(string) bool { return false }, nil); err != nil {
			t.Fatal(err)
		}
		return ctx.Logits(len(toks) - 1)
	}
	want, got := logits(path), logits(out)
	if len(got) != 32000 || len(want) != len(got) {
		t.Fatalf("%d and %d logits, want 32000", len(want), len(got))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("logit %d: %g from the rewritten file, %g from the original", i, got[i], want[i])
		}
	}
}

// TestRejectsLikeLlamaCpp damages the shared model in ways that ggml's
// gguf reader or llama.cpp's loader refuse cleanly (no abort), and checks
// that Parse refuses each too, and that llama.cpp does.
func TestRejectsLikeLlamaCpp(t *testing.T) {
	path := sharedFile(t, "llamacpp/S-Q8_0.gguf")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseBytes(orig)
	if err != nil {
		t.Fatal(err)
	}
	// Field offsets within tensor info i.
	info := func(i int) (name, nDims, ne0, typ, offset int) {
		ti := &f.Tensors[i]
		name = int(ti.infoOffset)
		nDims = name + 8 + len(ti.Name)
		ne0 = nDims + 4
		typ = ne0 + 8*len(ti.Ne)
		return name, nDims, ne0, typ, typ + 4
	}
	le := binary.LittleEndian
	tests := []struct {
		name  string
		patch func(b []byte) []byte
	}{
		{"version 1", func(b []byte) []byte { le.PutUint32(b[4:], 1); return b }},
		{"version 4", func(b []byte) []byte { le.PutUint32(b[4:], 4); return b }},
		{"n_dims 5", func(b []byte) []byte { _, nd, _, _, _ := info(3); le.PutUint32(b[nd:], 5); return b }},
		{"unknown type", func(b []byte) []byte { _, _, _, ty, _ := info(3); le.PutUint32(b[ty:], 4); return b }},
		{"type not a block multiple", func(b []byte) []byte { _, _, _, ty, _ := info(1); le.PutUint32(b[ty:], uint32(quant.Q4_K)); return b }},
		{"misaligned offset", func(b []byte) []byte {
			_, _, _, _, off := info(2)
			le.PutUint64(b[off:], f.Tensors[2].Offset+4)
			return b
		}},
		{"offset out of order", func(b []byte) []byte {
			_, _, _, _, off := info(2)
			le.PutUint64(b[off:], f.Tensors[2].Offset+32)
			return b
		}},
		{"duplicate tensor name", func(b []byte) []byte {
			// blk.0.attn_q.weight → blk.0.attn_k.weight (tensor 3).
			n, _, _, _, _ := info(6)
			copy(b[n+8:], "blk.0.attn_k.weight")
			return b
		}},
		{"truncated data", func(b []byte) []byte { return b[:len(b)-100] }},
		{"truncated metadata", func(b []byte) []byte { return b[:f.DataOffset/2] }},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.patch(slices.Clone(orig))
			if _, err := parseBytes(b); err == nil {
				t.Error("Parse accepted it")
			} else {
				t.Log(err)
			}
			p := filepath.Join(dir, "bad.gguf")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if m, err := llamacpp.LoadModel(p); err == nil {
				m.Close()
				t.Error("llama.cpp accepted it")
			}
		})
	}
}
