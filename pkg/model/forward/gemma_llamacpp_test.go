//go:build llamacpp

package forward

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// TestGemma3VariantsMatchLlamaCpp covers the gemma3 graphs the default
// fixture does not build: without a sliding window (llm_build_gemma3<false>:
// one cache and mask, the plain build_attn's Q, V, K order) and with the
// optional final soft-capping (SCALE, TANH, SCALE after the output), in F32
// and Q8_0, flash attention on and off.
func TestGemma3VariantsMatchLlamaCpp(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(kvs []gguf.KV) ([]gguf.KV, error)
		swa  bool
	}{
		{"noswa", func(kvs []gguf.KV) ([]gguf.KV, error) {
			p := fixture.Perturbation{Kind: fixture.SetMeta, Name: "attention.sliding_window", Value: 0}
			return kvs, p.Apply(kvs, nil)
		}, false},
		{"softcap", func(kvs []gguf.KV) ([]gguf.KV, error) {
			return append(kvs, gguf.NewKV("gemma3.final_logit_softcapping", float32(30))), nil
		}, true},
	} {
		cfg := fixture.Default("gemma3")
		kvs, ts, err := fixture.Build(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if kvs, err = c.edit(kvs); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Dir(fixturePath(t, "gemma3", "f32", 0))
		path := filepath.Join(dir, "gemma3-"+c.name+"-f32.gguf")
		if err := gguf.WriteFile(path, kvs, ts, 0); err != nil {
			t.Fatal(err)
		}
		q8 := filepath.Join(dir, "gemma3-"+c.name+"-q8_0.gguf")
		if err := llamacpp.QuantizeModel(path, q8, 7, 2); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Hparams.NSWA > 0; got != c.swa {
			t.Errorf("%s: sliding window %d", c.name, m.Hparams.NSWA)
		}
		f.Close()
		toks := []int32{1, 300, 301, 302, 303, 304, 305, 306, 307, 308}
		for _, p := range []string{path, q8} {
			for _, fa := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/fa=%v", filepath.Base(p), fa), func(t *testing.T) {
					opts := llamaOptions(t)
					opts.FlashAttn = fa
					opts.Threads = 2
					r := compareRun(t, p, toks, opts)
					if r.same != r.nodes {
						t.Errorf("%d of %d nodes bit-identical; first difference %s", r.same, r.nodes, r.diffs[0])
					}
					t.Logf("%d of %d nodes bit-identical", r.same, r.nodes)
				})
			}
		}
	}
}

// TestGemmaF32CacheMatchesLlamaCpp runs gemma2 and gemma3 with an F32 KV
// cache: flash attention then reads ggml_cast F16 copies of both caches'
// views, and without it kq and kqv multiply F32 caches.
func TestGemmaF32CacheMatchesLlamaCpp(t *testing.T) {
	toks := []int32{1, 300, 301, 302, 303, 304, 305, 306, 307}
	for _, arch := range []string{"gemma2", "gemma3"} {
		path := fixturePath(t, arch, "q8_0", 7)
		for _, fa := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/fa=%v", arch, fa), func(t *testing.T) {
				opts := llamaOptions(t)
				opts.FlashAttn = fa
				opts.KVType = quant.F32
				opts.Threads = 2
				r := compareRun(t, path, toks, opts)
				if r.same != r.nodes {
					t.Errorf("%d of %d nodes bit-identical; first difference %s", r.same, r.nodes, r.diffs[0])
				}
				t.Logf("%d of %d nodes bit-identical", r.same, r.nodes)
			})
		}
	}
}
