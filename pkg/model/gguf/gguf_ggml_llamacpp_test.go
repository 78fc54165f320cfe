//go:build llamacpp

package gguf_test

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/layerdiff/layerdiff/internal/testshared"
	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
)

// TestReaderMatchesGGML reads every fixture architecture (F32 and quantized
// by llama.cpp) and the shared vocab and model files with layerdiff's reader
// and with ggml's gguf_init_from_file, the reader llama.cpp loads models
// with, and requires the same version, alignment, data offset, keys (in
// order, with types), and tensors (names, types, shapes, offsets, sizes).
func TestReaderMatchesGGML(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for _, arch := range fixture.Archs {
		f32 := filepath.Join(dir, arch+"-f32.gguf")
		if err := fixture.Generate(fixture.Default(arch), f32); err != nil {
			t.Fatal(err)
		}
		q := filepath.Join(dir, arch+"-q4_k_m.gguf")
		if err := llamacpp.QuantizeModel(f32, q, 15, 2); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, f32, q)
	}
	for _, pat := range []string{"vocab/*.gguf", "llamacpp/*.gguf"} {
		if testshared.Find() == "" {
			break
		}
		if m, _ := filepath.Glob(filepath.Join(testshared.Find(), pat)); len(m) > 0 {
			paths = append(paths, m...)
		}
	}
	type tensorRow struct {
		Name         string
		Type         int
		Ne           [4]int64
		Offset, Size uint64
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			want, err := llamacpp.ReadGGUF(p)
			if err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Version != want.Version || f.Alignment != want.Alignment || uint64(f.DataOffset) != want.DataOffset {
				t.Errorf("version/alignment/data offset %d/%d/%d, ggml %d/%d/%d", f.Version, f.Alignment, f.DataOffset, want.Version, want.Alignment, want.DataOffset)
			}
			var keys []string
			var types []int
			for _, kv := range f.KVs {
				keys = append(keys, kv.Key)
				types = append(types, int(kv.Type))
			}
			if d := cmp.Diff(want.Keys, keys); d != "" {
				t.Errorf("keys (-ggml +layerdiff):\n%s", d)
			}
			if d := cmp.Diff(want.KeyTypes, types); d != "" {
				t.Errorf("key types (-ggml +layerdiff):\n%s", d)
			}
			var got, exp []tensorRow
			for _, ti := range f.Tensors {
				r := tensorRow{Name: ti.Name, Type: int(ti.Type), Offset: ti.Offset, Size: uint64(ti.Size), Ne: [4]int64{1, 1, 1, 1}}
				copy(r.Ne[:], ti.Ne)
				got = append(got, r)
			}
			for _, ti := range want.Tensors {
				exp = append(exp, tensorRow{Name: ti.Name, Type: ti.Type, Ne: ti.Ne, Offset: ti.Offset, Size: ti.Size})
			}
			if d := cmp.Diff(exp, got); d != "" {
				t.Errorf("tensors (-ggml +layerdiff):\n%s", d)
			}
		})
	}
}
