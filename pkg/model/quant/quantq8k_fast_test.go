package quant

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestQ8KFastRoundingExact checks quantQ8_K's rounding shortcut against
// ggml's fma32 formulation (q8KBitTrick) with the scales quantQ8_K derives
// (iscale = -127/maxv of each 256-value block) on random rows, rows full of
// exact ties (x chosen so that iscale·x is k + 1/2), and rows with NaN and
// ±Inf.
func TestQ8KFastRoundingExact(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	fast := 0
	for trial := 0; trial < 3000; trial++ {
		x := make([]float32, 512)
		switch trial % 4 {
		case 0:
			for i := range x {
				x[i] = float32(r.NormFloat64() * math.Exp(3*r.NormFloat64()))
			}
		case 1: // ties: maxv = -127 makes iscale = 1, so x = k + 0.5 is a tie
			for i := range x {
				x[i] = float32(r.IntN(253)-126) + 0.5
			}
			x[r.IntN(256)], x[256+r.IntN(256)] = -127, -127
		case 2: // ties at other scales: maxv = -127·2^e
			e := float32(math.Ldexp(1, r.IntN(40)-20))
			for i := range x {
				x[i] = (float32(r.IntN(253)-126) + 0.5) * e
			}
			x[r.IntN(256)], x[256+r.IntN(256)] = -127*e, -127*e
		case 3:
			for i := range x {
				x[i] = float32(r.NormFloat64())
				switch r.IntN(50) {
				case 0:
					x[i] = float32(math.NaN())
				case 1:
					x[i] = float32(math.Inf(1 - 2*r.IntN(2)))
				case 2:
					x[i] = math.Float32frombits(r.Uint32())
				}
			}
		}
		for b := 0; b < len(x); b += 256 {
			var maxv, amax float32
			for _, xv := range x[b : b+256] {
				if ax := float32(math.Abs(float64(xv))); ax > amax {
					amax, maxv = ax, xv
				}
			}
			if amax == 0 {
				continue
			}
			iscale := -127 / maxv
			for _, xv := range x[b : b+256] {
				q, ok := roundQ8KFast(iscale, xv, QuantCPU)
				if !ok {
					continue
				}
				fast++
				if want := q8KBitTrick(iscale, xv, QuantCPU); q != want {
					t.Fatalf("trial %d (kind %d): iscale %v x %v: fast %d, fma32 %d", trial, trial%4, iscale, xv, q, want)
				}
			}
		}
	}
	if fast < 1000000 {
		t.Errorf("the fast path took only %d values", fast)
	}
	if _, ok := roundQ8KFast(1, 1<<23, QuantCPU); ok {
		t.Error("the fast path took a product of 2^23")
	}
	if _, ok := roundQ8KFast(1, 0.5, QuantRef); ok {
		t.Error("the fast path took the reference variant")
	}
}
