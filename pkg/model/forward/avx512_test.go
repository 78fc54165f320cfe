package forward

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// TestL16KernelsMatchGo checks the x86-avx512 assembly kernels against
// their portable models, bit for bit, on random rows of several lengths.
func TestL16KernelsMatchGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 kernels on this machine/build")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{16, 48, 64, 80, 128, 200, 2048} {
		a := make([]float32, n)
		h := make([]uint16, n)
		bh := make([]uint16, n)
		var cols [4][]float32
		var cols16, colsBF [4][]float32
		var colsH [4][]uint16
		for i := range a {
			a[i] = float32(r.NormFloat64())
			h[i] = toF16(a[i])
			bh[i] = quant.F32ToBF16(a[i])
		}
		for c := range cols {
			cols[c] = make([]float32, n)
			cols16[c] = make([]float32, n)
			colsBF[c] = make([]float32, n)
			colsH[c] = make([]uint16, n)
			for i := range cols[c] {
				cols[c][i] = float32(r.NormFloat64())
				colsH[c][i] = toF16(cols[c][i])
				cols16[c][i] = f16Table[colsH[c][i]]
				colsBF[c][i] = bf16(quant.F32ToBF16(cols[c][i]))
			}
		}
		var out [4]float32
		if !tinyX4L16(tinyF32, n, unsafe.Pointer(&a[0]), &cols, out[:]) {
			t.Fatal("tinyX4L16 refused")
		}
		for c := range out {
			if want := dotF32Tiny16(a[:n&^15], cols[c][:n&^15]); math.Float32bits(out[c]) != math.Float32bits(want) {
				t.Errorf("F32 n=%d col %d: %v, portable %v", n, c, out[c], want)
			}
		}
		tinyX4L16(tinyF16, n, unsafe.Pointer(&h[0]), &cols16, out[:])
		for c := range out {
			if want := dotF16Tiny16(h[:n&^15], colsH[c][:n&^15], false); math.Float32bits(out[c]) != math.Float32bits(want) {
				t.Errorf("F16 n=%d col %d: %v, portable %v", n, c, out[c], want)
			}
		}
		tinyX4L16(tinyBF16, n, unsafe.Pointer(&bh[0]), &colsBF, out[:])
		for c := range out {
			bc := make([]uint16, n)
			for i := range bc {
				bc[i] = quant.F32ToBF16(cols[c][i])
			}
			if want := dotF16Tiny16(bh[:n&^15], bc[:n&^15], true); math.Float32bits(out[c]) != math.Float32bits(want) {
				t.Errorf("BF16 n=%d col %d: %v, portable %v", n, c, out[c], want)
			}
		}
		// vec_dot_f16: the assembly main loop against the portable one
		np := n &^ 63
		if np > 0 {
			var got, want [4][16]float32
			dotF16Acc16(np, h, colsH[0], &got)
			for i := 0; i < np; i += 64 {
				for j := 0; j < 4; j++ {
					for k := 0; k < 16; k++ {
						e := i + 16*j + k
						want[j][k] = fma32(f16Table[h[e]], f16Table[colsH[0][e]], want[j][k])
					}
				}
			}
			if got != want {
				t.Errorf("dotF16Acc16 n=%d differs from the portable loop", n)
			}
		}
	}
}

// TestVExpf512 checks the AVX-512 ggml_v_expf model: within 2 ulp of exp
// where the result is normal, the documented limits, and one rounding in
// the subnormal range.
func TestVExpf512(t *testing.T) {
	ulps := func(a, b float32) float64 {
		return math.Abs(float64(int32(math.Float32bits(a)) - int32(math.Float32bits(b))))
	}
	for x := float32(-87); x < 88; x += 0.01371 {
		got := vExpf512(x)
		want := float32(math.Exp(float64(x)))
		if ulps(got, want) > 2 {
			t.Fatalf("vExpf512(%v) = %v, exp %v", x, got, want)
		}
	}
	for _, c := range []struct{ x, want float32 }{
		{0, 1}, {float32(math.Inf(1)), float32(math.Inf(1))}, {float32(math.Inf(-1)), 0}, {200, float32(math.Inf(1))}, {-200, 0},
	} {
		if got := vExpf512(c.x); got != c.want {
			t.Errorf("vExpf512(%v) = %v, want %v", c.x, got, c.want)
		}
	}
	if v := vExpf512(float32(math.NaN())); v == v {
		t.Errorf("vExpf512(NaN) = %v", v)
	}
	// -100 is subnormal: one rounding of j·2^n, close to exp
	if got, want := vExpf512(-100), float32(math.Exp(-100)); math.Abs(float64(got-want)) > float64(math.Float32frombits(2)) {
		t.Errorf("vExpf512(-100) = %g, exp %g", got, want)
	}
}

// TestDPBF16Order: vdpbf16ps adds the odd product first (Intel's
// pseudocode; measured on an AMD Zen 4: 0 of 3.2 million random lanes
// differ, 247 198 with the even one first).
func TestDPBF16Order(t *testing.T) {
	// 1 + 2^-8·(1+2^-7) rounds differently depending on the order with a
	// product of 2^-24 (exact), ties at 2^-24 relative.
	a0, b0 := quant.F32ToBF16(0x1p-12), quant.F32ToBF16(0x1p-12)   // 2^-24
	a1, b1 := quant.F32ToBF16(0x1.02p-4), quant.F32ToBF16(0x1p-20) // ~2^-24
	got := dpbf16(1, a0, a1, b0, b1)
	want := (float32(1) + bf16(a1)*bf16(b1)) + bf16(a0)*bf16(b0)
	if got != want {
		t.Errorf("dpbf16 = %v, odd-first %v", got, want)
	}
	if ftz(math.Float32frombits(1)) != 0 || ftz(-math.Float32frombits(5)) != 0 || !math.Signbit(float64(ftz(-math.Float32frombits(5)))) {
		t.Error("ftz does not flush subnormals to a signed zero")
	}
}

// TestDPBF16KernelsMatchGo checks the assembly vdpbf16ps loops (tinyBLAS<32>
// and ggml_vec_dot_bf16) against dpbf16 in portable Go, bit for bit, on
// values that reach every case of its DAZ/FTZ: bfloat16 subnormals, zeros
// of both signs, products and sums that underflow, and ordinary values.
func TestDPBF16KernelsMatchGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 kernels on this machine/build")
	}
	r := rand.New(rand.NewPCG(3, 4))
	tinyOnly := false
	gen := func() uint16 {
		k := r.IntN(8)
		if tinyOnly {
			// sums that stay near the bottom of the range, where
			// flushing shows
			k %= 3
			if k == 1 {
				return quant.F32ToBF16(float32(r.NormFloat64() * 1e-19))
			}
		}
		switch k {
		case 0: // subnormal
			return uint16(r.IntN(0x7f)+1) | uint16(r.IntN(2))<<15
		case 1: // zero
			return uint16(r.IntN(2)) << 15
		case 2: // tiny: products underflow
			return quant.F32ToBF16(float32(r.NormFloat64() * 1e-20))
		}
		return quant.F32ToBF16(float32(r.NormFloat64()))
	}
	for _, n := range []int{32, 64, 96, 128, 200, 4096} {
		for rep := 0; rep < 20; rep++ {
			tinyOnly = rep%2 == 1
			a, b := make([]uint16, n), make([]uint16, n)
			for i := range a {
				a[i], b[i] = gen(), gen()
				if rep%4 == 2 && i%2 == 0 {
					// a bfloat16 subnormal times a huge value: visible
					// unless the subnormal reads as zero
					a[i] = uint16(r.IntN(0x7f) + 1)
					b[i] = quant.F32ToBF16(float32(r.NormFloat64() * 1e36))
				}
			}
			if got, want := dotBF16Tiny32(a, b), dotBF16Tiny32Go(a, b); math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("tinyBLAS<32> n=%d: %v (%#x), portable %v (%#x)", n, got, math.Float32bits(got), want, math.Float32bits(want))
			}
			if got, want := vecDotBF16x16(a, b, true), vecDotBF16x16Asm(a, b, true, false); math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("vec_dot_bf16 n=%d: %v, portable %v", n, got, want)
			}
			rev := func(x []uint16) []uint16 { y := slices.Clone(x); slices.Reverse(y); return y }
			cols := [4][]uint16{b, a, rev(b), rev(a)}
			var quad [4]float32
			if !dpbf16X4(a, &cols, quad[:]) {
				t.Fatal("dpbf16X4 refused")
			}
			for c := range cols {
				if want := dotBF16Tiny32Go(a, cols[c]); math.Float32bits(quad[c]) != math.Float32bits(want) {
					t.Fatalf("tinyBLAS<32> four columns n=%d col %d: %v, portable %v", n, c, quad[c], want)
				}
			}
		}
	}
}
