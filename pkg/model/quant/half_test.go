package quant

import (
	"math"
	"testing"
)

// refF16ToF64 decodes binary16 from its definition, for comparison.
func refF16ToF64(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(mant, -24)
	case 0x1f:
		if mant == 0 {
			return sign * math.Inf(1)
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1024+mant, exp-25)
}

// TestF16ToF32Exhaustive checks all 65536 float16 patterns against the
// definition; NaNs must keep sign and payload and come back quiet.
func TestF16ToF32Exhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		got := F16ToF32(uint16(h))
		want := refF16ToF64(uint16(h))
		if math.IsNaN(want) {
			wantBits := uint32(h&0x8000)<<16 | 0x7fc00000 | uint32(h&0x3ff)<<13
			if math.Float32bits(got) != wantBits {
				t.Fatalf("F16ToF32(%#04x) = %#08x, want %#08x", h, math.Float32bits(got), wantBits)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("F16ToF32(%#04x) = %g, want %g", h, got, want)
		}
	}
}

// TestF32ToF16Exhaustive converts every float16 value back (exact), and the
// midpoint between every pair of neighbours and the floats either side of it
// (ties to even, otherwise nearest), in both signs.
func TestF32ToF16Exhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		x := F16ToF32(uint16(h))
		want := uint16(h)
		if x != x {
			want = uint16(h)&0x8000 | 0x7e00
		}
		if got := F32ToF16(x); got != want {
			t.Fatalf("F32ToF16(F16ToF32(%#04x)) = %#04x, want %#04x", h, got, want)
		}
	}
	for h := uint16(0); h < 0x7bff; h++ { // 65504 -> Inf is in TestF32ToF16Special
		lo, hi := F16ToF32(h), F16ToF32(h+1)
		mid := float32((float64(lo) + float64(hi)) / 2) // exact: 12 bits
		even := h
		if h&1 == 1 {
			even = h + 1
		}
		for _, s := range []uint16{0, 0x8000} {
			neg := func(x float32) float32 {
				if s != 0 {
					return -x
				}
				return x
			}
			cases := []struct {
				x    float32
				want uint16
			}{
				{neg(mid), even | s},
				{neg(math.Nextafter32(mid, 0)), h | s},
				{neg(math.Nextafter32(mid, float32(math.Inf(1)))), (h + 1) | s},
			}
			for _, c := range cases {
				if got := F32ToF16(c.x); got != c.want {
					t.Fatalf("F32ToF16(%g) = %#04x, want %#04x", c.x, got, c.want)
				}
				if got := F32ToF16HW(c.x); got != c.want {
					t.Fatalf("F32ToF16HW(%g) = %#04x, want %#04x", c.x, got, c.want)
				}
			}
		}
	}
}

// TestF32ToF16Special covers overflow, underflow and NaN in both variants.
func TestF32ToF16Special(t *testing.T) {
	inf := float32(math.Inf(1))
	cases := []struct {
		x      float32
		want   uint16 // F32ToF16
		wantHW uint16 // F32ToF16HW
	}{
		{0, 0, 0},
		{float32(math.Copysign(0, -1)), 0x8000, 0x8000},
		{65504, 0x7bff, 0x7bff},
		{65519.996, 0x7bff, 0x7bff},
		{65520, 0x7c00, 0x7c00},
		{1e10, 0x7c00, 0x7c00},
		{inf, 0x7c00, 0x7c00},
		{-inf, 0xfc00, 0xfc00},
		{0x1p-24, 0x0001, 0x0001},
		{0x1p-25, 0x0000, 0x0000},           // tie to even (zero)
		{0x1.000002p-25, 0x0001, 0x0001},    // just above the tie
		{0x1.8p-24, 0x0002, 0x0002},         // tie to even (2)
		{0x1p-14, 0x0400, 0x0400},           // smallest normal
		{0x1.ffcp-15, 0x0400, 0x0400},       // rounds up into the normals
		{math.SmallestNonzeroFloat32, 0, 0}, // float32 subnormal
		{float32(math.NaN()), 0x7e00, 0x7e00},
		{math.Float32frombits(0xffc12345), 0xfe00, 0xfe09},
		{math.Float32frombits(0x7f800001), 0x7e00, 0x7e00}, // signalling, payload below the kept bits
		{math.Float32frombits(0x7fbfe000), 0x7e00, 0x7fff}, // signalling, all kept bits set
	}
	for _, c := range cases {
		if got := F32ToF16(c.x); got != c.want {
			t.Errorf("F32ToF16(%g = %#08x) = %#04x, want %#04x", c.x, math.Float32bits(c.x), got, c.want)
		}
		if got := F32ToF16HW(c.x); got != c.wantHW {
			t.Errorf("F32ToF16HW(%g = %#08x) = %#04x, want %#04x", c.x, math.Float32bits(c.x), got, c.wantHW)
		}
	}
}

// TestBF16Exhaustive checks all 65536 bfloat16 patterns: exact widening,
// exact narrowing back (NaNs forced quiet), and ties to even at every
// midpoint.
func TestBF16Exhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		x := BF16ToF32(uint16(h))
		if math.Float32bits(x) != uint32(h)<<16 {
			t.Fatalf("BF16ToF32(%#04x) = %#08x", h, math.Float32bits(x))
		}
		want := uint16(h)
		if x != x {
			want |= 64
		}
		if got := F32ToBF16(x); got != want {
			t.Fatalf("F32ToBF16(%#08x) = %#04x, want %#04x", math.Float32bits(x), got, want)
		}
		if h&0x7f80 == 0x7f80 { // Inf/NaN: no midpoint above
			continue
		}
		mid := uint32(h)<<16 | 0x8000
		even := uint16(h)
		if h&1 == 1 {
			even++
		}
		for _, c := range []struct {
			bits uint32
			want uint16
		}{{mid, even}, {mid - 1, uint16(h)}, {mid + 1, uint16(h) + 1}} {
			if got := F32ToBF16(math.Float32frombits(c.bits)); got != c.want {
				t.Fatalf("F32ToBF16(%#08x) = %#04x, want %#04x", c.bits, got, c.want)
			}
		}
	}
}
