//go:build llamacpp

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// TestFixtureTensorTypes: `layerdiff fixture --type iq3_xxs|mxfp4` gives
// every matrix that type (quantized by llama.cpp's ggml_quantize_chunk),
// and the same bytes whatever the number of quantization threads.
func TestFixtureTensorTypes(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		want quant.Type
	}{{"iq3_xxs", quant.IQ3_XXS}, {"mxfp4", quant.MXFP4}} {
		var files [][]byte
		for _, threads := range []string{"1", "3"} {
			out := filepath.Join(dir, c.name+"-"+threads+".gguf")
			if msg, code := runCLI(t, "fixture", "--type", c.name, "--threads", threads, "--out", out); code != exitAgree {
				t.Fatalf("fixture --type %s: exit %d: %s", c.name, code, msg)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, ti := range f.Tensors {
				want := c.want
				if len(ti.Ne) == 1 {
					want = quant.F32
				}
				if ti.Type != want {
					t.Errorf("%s: %s has type %s, want %s", c.name, ti.Name, ti.Type, want)
				}
			}
			f.Close()
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, b)
		}
		if !bytes.Equal(files[0], files[1]) {
			t.Errorf("%s: 1 and 3 quantization threads wrote different files", c.name)
		}
	}
}
