package forward

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// f16Exact rounds the exact value v to float16 (nearest, ties to even) by
// trying the neighbours in float64 (every float16 and every midpoint
// between two is a float64).
func f16Exact(v *big.Float) uint16 {
	f, _ := v.Float64()
	if av := new(big.Float).Abs(v); av.Cmp(big.NewFloat(65520)) >= 0 { // past the max's half step
		if f < 0 {
			return 0xfc00
		}
		return 0x7c00
	}
	h := f64ToF16(f, 0) // a candidate within one float16 step
	best, bestD := h, (*big.Float)(nil)
	for _, c := range []uint16{h - 1, h, h + 1} {
		if c&0x7c00 == 0x7c00 && c&0x3ff != 0 {
			continue
		}
		cv := float64(f16Table[c])
		if math.IsInf(cv, 0) {
			continue
		}
		d := new(big.Float).SetPrec(200).Sub(v, big.NewFloat(cv))
		d.Abs(d)
		if bestD == nil || d.Cmp(bestD) < 0 || (d.Cmp(bestD) == 0 && c&1 == 0) {
			best, bestD = c, d
		}
	}
	return best
}

// TestFmaF16Exact checks fmaF16 (vfmaq_f16: c + a·b rounded once to
// float16) against exact arithmetic on random and tie-prone operands.
func TestFmaF16Exact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	bad := 0
	for i := 0; i < 300000; i++ {
		a, b, c := uint16(r.UintN(1<<16)), uint16(r.UintN(1<<16)), uint16(r.UintN(1<<16))
		if i%2 == 0 { // moderate magnitudes, where ties and cancellations happen
			a, b, c = a&0xbfff|0x3000, b&0xbfff|0x3000, c&0xbfff|0x2000
		}
		fa, fb, fc := float64(f16Table[a]), float64(f16Table[b]), float64(f16Table[c])
		if math.IsNaN(fa) || math.IsNaN(fb) || math.IsNaN(fc) || math.IsInf(fa, 0) || math.IsInf(fb, 0) || math.IsInf(fc, 0) {
			continue
		}
		v := new(big.Float).SetPrec(200).Mul(big.NewFloat(fa), big.NewFloat(fb))
		v.Add(v, big.NewFloat(fc))
		want := f16Exact(v)
		if got := fmaF16(a, b, c); got != want && !(got&0x7fff == 0 && want&0x7fff == 0) {
			if bad++; bad < 10 {
				t.Errorf("fmaF16(%#04x, %#04x, %#04x) = %#04x, want %#04x", a, b, c, got, want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d mismatches", bad)
	}
}

// TestF64ToF16MatchesF32 checks f64ToF16 on float32 inputs against the
// float32 conversion (F16C's, round to nearest even).
func TestF64ToF16MatchesF32(t *testing.T) {
	for i := uint32(0); i < 1<<32-1<<12; i += 1 << 12 {
		for _, b := range []uint32{i, i | 0xfff, i | 0x1000 - 0x800} {
			x := math.Float32frombits(b)
			if x != x {
				continue
			}
			if got, want := f64ToF16(float64(x), 0), toF16(x); got != want {
				t.Fatalf("f64ToF16(%g) = %#04x, toF16 = %#04x", x, got, want)
			}
		}
	}
}

// TestNEONReductions pins the NEON horizontal sums and the leftover
// handling of vec_dot_f32 on values where the order shows.
func TestNEONReductions(t *testing.T) {
	// (v0+v1)+(v2+v3) = 1e8 + -1e8 = 0; (v0+v2)+(v1+v3) would be 2
	v := [4]float32{1, 1e8, 1, -1e8}
	if got := vaddvq(&v); got != 0 {
		t.Errorf("vaddvq = %g, want 0", got)
	}
	// 16 zeros then 5 leftovers: one block of 4 with rounded products, the
	// last one fused.
	a := make([]float32, 21)
	b := make([]float32, 21)
	for i := 16; i < 21; i++ {
		a[i], b[i] = 1+0x1p-12, 1+0x1p-12
	}
	var want float32
	for i := 16; i < 20; i++ {
		want += float32(a[i] * b[i])
	}
	want = fma32(a[20], b[20], want)
	if got := vecDotF32NEON(a, b); got != want {
		t.Errorf("vecDotF32NEON leftovers = %g, want %g", got, want)
	}
}

// TestFmaF16vMatches checks the value-domain fmaF16v and addF16v against
// fmaF16 and addF16 on random operands, ties and cancellations included.
func TestFmaF16vMatches(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000000; i++ {
		a, b, c := uint16(r.UintN(1<<16)), uint16(r.UintN(1<<16)), uint16(r.UintN(1<<16))
		if i%2 == 0 {
			a, b, c = a&0xbfff|0x3000, b&0xbfff|0x3000, c&0xbfff|0x2000
		}
		if a&0x7c00 == 0x7c00 || b&0x7c00 == 0x7c00 || c&0x7c00 == 0x7c00 {
			continue
		}
		fa, fb, fc := f16Table[a], f16Table[b], f16Table[c]
		if got, want := fmaF16v(fa, fb, fc), f16Table[fmaF16(a, b, c)]; math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("fmaF16v(%#04x, %#04x, %#04x) = %g, fmaF16 %g", a, b, c, got, want)
		}
		if got, want := addF16v(fa, fc), f16Table[addF16(a, c)]; math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("addF16v(%#04x, %#04x) = %g, addF16 %g", a, c, got, want)
		}
	}
}
