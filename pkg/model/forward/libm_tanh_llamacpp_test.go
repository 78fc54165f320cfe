//go:build llamacpp

package forward

import (
	"math"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/forward/internal/ggmlref"
)

func TestTanhfMatchesLibm(t *testing.T) {
	// Every float32 of each sign up to |x| = 23 (beyond 22 tanhf is ±1),
	// covering every branch of tanhf and of the expm1f it calls; without
	// LAYERDIFF_EXHAUSTIVE, a 2^23-wide slice of each range's top (the
	// largest arguments, where every reduction k of expm1f occurs) plus
	// the same slice near 1 and near 0.5 ln 2.
	for _, sign := range []float32{1, -1} {
		type span struct{ lo, hi float32 }
		spans := []span{{0, 23}}
		if !exhaustive() {
			spans = []span{{0.3, 0.4}, {0.99, 1.01}, {1, 23}}
		}
		for _, s := range spans {
			lo, hi := math.Float32bits(sign*s.lo), math.Float32bits(sign*s.hi)
			if sign < 0 && s.lo == 0 {
				lo = math.Float32bits(float32(math.Copysign(0, -1)))
			}
			if !exhaustive() && hi-lo > 1<<23 {
				lo = hi - 1<<23
			}
			checkBitsRange(t, "tanhf", lo, hi, ggmlref.TanhfBits, Tanhf)
		}
	}
}

func TestGELUTableMatchesGGML(t *testing.T) {
	// Every entry of ggml-cpu's GELU table, as this build of llama.cpp
	// computed it (ggml_cpu_init), against geluTable (Tanhf, the FMA
	// contraction of ggml_gelu_f32, fp16 rounding). NaN inputs give NaN
	// with another payload, which no comparison distinguishes.
	want := llamacpp.GELUTableF16()
	bad := 0
	for i, w := range want {
		g := geluTable[i]
		if g != w && !(isNaN16(g) && isNaN16(w)) { // NaN payloads may differ
			if bad < 10 {
				t.Errorf("gelu table[%04x] (x = %g) = %04x, ggml %04x", i, f16Table[i], g, w)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d GELU table entries differ", bad, len(want))
	}
}

func isNaN16(h uint16) bool { return h&0x7c00 == 0x7c00 && h&0x3ff != 0 }
