package forward

import (
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model"
)

// BenchmarkRun runs a 1-layer model with 2048-wide rows on 8 tokens.
func BenchmarkRun(b *testing.B) {
	for _, w := range []model.Type{model.F16, model.Q8_0} {
		cfg := defaultTiny("llama")
		cfg.embd, cfg.ff, cfg.heads, cfg.kvHeads, cfg.layers, cfg.vocab = 2048, 5632, 32, 4, 1, 512
		cfg.weight = w
		m := tinyModel(b, cfg)
		toks := []int32{1, 2, 3, 4, 5, 6, 7, 8}
		b.Run(w.String(), func(b *testing.B) {
			opts := DefaultOptions()
			opts.Threads = 2
			for i := 0; i < b.N; i++ {
				if _, err := m.Run(toks, opts, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
