package gguf

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/layerdiff/layerdiff/internal/testshared"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// fuzzSeeds returns small GGUF files: the test sample and variants of it,
// files from the Writer, and the first bytes of the shared vocab files.
func fuzzSeeds(tb testing.TB) [][]byte {
	seeds := [][]byte{
		sampleSpec().bytes(),
		with(func(s *spec) { s.version = 2 }),
		with(func(s *spec) { s.tensors = nil }),
		with(func(s *spec) { s.kvs = nil; s.dataAlign = 32 }),
		with(func(s *spec) { s.kvs[1].val = u32Val(8); s.dataAlign = 8 }),
		[]byte("GGUF"),
	}
	for _, align := range []uint64{0, 64} {
		var buf bytes.Buffer
		if err := Write(&buf, allTypesKVs(), randomTensors(align)[:3], align); err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, buf.Bytes())
	}
	var buf bytes.Buffer
	if err := Write(&buf, []KV{NewKV(KeyArchitecture, "llama"), NewKV("a", []Array{{ValueArray, []Array{{ValueUint8, []uint8{1}}}}})},
		[]WriteTensor{{Name: "t", Ne: []int64{32, 1, 1, 1}, Type: quant.Q4_0, Data: make([]byte, 18)}}, 0); err != nil {
		tb.Fatal(err)
	}
	seeds = append(seeds, buf.Bytes())
	if dir, ok := findShared(); ok {
		for _, name := range []string{"vocab/ggml-vocab-llama-spm.gguf", "llamacpp/S-Q8_0.gguf"} {
			if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
				seeds = append(seeds, b[:min(len(b), 2048)])
			}
		}
	}
	return seeds
}

// findShared is sharedDir without a testing.TB, for seeding.
func findShared() (string, bool) {
	d := testshared.Find()
	return d, d != ""
}

// FuzzParse feeds arbitrary bytes to Parse. Bad input must give a
// *FormatError with an offset inside the input; good input must survive
// every accessor, Inspect with both renderers, and write → parse → write
// with identical bytes.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(bytes.NewReader(b), int64(len(b)), "fuzz.gguf")
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v (%T) is not a *FormatError", err, err)
			}
			if fe.Offset < 0 || fe.Offset > int64(len(b)) {
				t.Fatalf("error offset %d outside the %d-byte input: %v", fe.Offset, len(b), err)
			}
			return
		}
		exercise(t, file)

		kvs, tensors := file.KVs, writeTensorsOf(t, file)
		var w1, w2 bytes.Buffer
		if err := Write(&w1, kvs, tensors, 0); err != nil {
			t.Fatalf("Write of a parsed file: %v", err)
		}
		again, err := Parse(bytes.NewReader(w1.Bytes()), int64(w1.Len()), "w1.gguf")
		if err != nil {
			t.Fatalf("Parse of a written file: %v", err)
		}
		if len(again.KVs) != len(kvs) || len(again.Tensors) != len(tensors) || again.Alignment != file.Alignment {
			t.Fatalf("written file has %d KVs, %d tensors, alignment %d; want %d, %d, %d",
				len(again.KVs), len(again.Tensors), again.Alignment, len(kvs), len(tensors), file.Alignment)
		}
		if err := Write(&w2, again.KVs, writeTensorsOf(t, again), 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w1.Bytes(), w2.Bytes()) {
			t.Fatal("write → parse → write changed the bytes")
		}
	})
}

// exercise calls every accessor of a parsed file.
func exercise(t *testing.T, f *File) {
	for _, kv := range f.KVs {
		if !f.Has(kv.Key) {
			t.Fatalf("Has(%q) false", kv.Key)
		}
		f.String(kv.Key)
		f.Uint(kv.Key)
		f.Int(kv.Key)
		f.Float(kv.Key)
		f.Bool(kv.Key)
		f.Strings(kv.Key)
		f.Float32s(kv.Key)
		f.Int32s(kv.Key)
		if a, ok := kv.Value.(Array); ok && a.Len() < 0 {
			t.Fatalf("kv %q: Array.Values is %T", kv.Key, a.Values)
		}
	}
	f.Arch()
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if got, ok := f.Tensor(ti.Name); !ok || got != ti {
			t.Fatalf("Tensor(%q) did not find tensor %d", ti.Name, i)
		}
		data, err := f.TensorData(ti)
		if err != nil {
			t.Fatalf("TensorData(%q): %v", ti.Name, err)
		}
		if int64(len(data)) != ti.Size {
			t.Fatalf("TensorData(%q): %d bytes, want %d", ti.Name, len(data), ti.Size)
		}
	}
	r := Inspect(f)
	if err := r.WriteText(io.Discard); err != nil {
		t.Fatal(err)
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(js.Bytes()) {
		t.Fatalf("invalid JSON: %s", js.Bytes())
	}
}
