package forward

import (
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// BenchmarkRun runs a 1-layer model with 2048-wide rows on 8 tokens,
// under each emulated kernel profile.
func BenchmarkRun(b *testing.B) {
	for _, w := range []quant.Type{quant.F16, quant.Q8_0} {
		cfg := defaultTiny("llama")
		cfg.embd, cfg.ff, cfg.heads, cfg.kvHeads, cfg.layers, cfg.vocab = 2048, 5632, 32, 4, 1, 512
		cfg.weight = w
		m := tinyModel(b, cfg)
		toks := []int32{1, 2, 3, 4, 5, 6, 7, 8}
		for _, k := range KernelProfiles() {
			b.Run(w.String()+"/"+k, func(b *testing.B) {
				opts := DefaultOptions()
				opts.Threads = 2
				opts.Kernels = k
				for i := 0; i < b.N; i++ {
					if _, err := m.Run(toks, opts, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkDotQ8_0 times one 2048-wide Q8_0·Q8_0 row dot: the dispatching
// kernel (assembly when available) and the portable one.
func BenchmarkDotQ8_0(b *testing.B) {
	const n = 2048
	x := make([]byte, n/32*34)
	y := make([]byte, n/32*34)
	for i := range x {
		x[i] = byte(i * 7)
		y[i] = byte(i*13) & 0x7f
	}
	for k := 0; k < n/32; k++ {
		x[34*k], x[34*k+1] = 0x00, 0x3c
		y[34*k], y[34*k+1] = 0x00, 0x38
	}
	b.Run("dispatch", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			dotQ8_0(n, x, y)
		}
	})
	b.Run("portable", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			dotQ8_0Go(n, x, y)
		}
	})
}

// BenchmarkDotQ8_0x4 times one 2048-wide weight row against four
// activation columns (8192 multiply-adds per op) with everything in L1:
// the kernel's compute bound, to set against memory-bound matmul figures.
func BenchmarkDotQ8_0x4(b *testing.B) {
	const n = 2048
	x := make([]byte, n/32*34)
	var ys [4][]byte
	for c := range ys {
		ys[c] = make([]byte, n/32*34)
		for i := range ys[c] {
			ys[c][i] = byte(i*13+c) & 0x7f
		}
	}
	for i := range x {
		x[i] = byte(i * 7)
	}
	for k := 0; k < n/32; k++ {
		x[34*k], x[34*k+1] = 0x00, 0x3c
		for c := range ys {
			ys[c][34*k], ys[c][34*k+1] = 0x00, 0x38
		}
	}
	out := make([]float32, 4)
	b.SetBytes(4 * n) // "bytes" = multiply-adds
	for b.Loop() {
		if !dotQ8_0x4(n, x, &ys, out) {
			b.Skip("no AVX2 kernel")
		}
	}
}
