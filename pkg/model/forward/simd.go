package forward

import (
	"math"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// Scalar models of the x86 AVX2/FMA/F16C instructions ggml-cpu is built
// with. A __m256 is modelled as [8]float32; every helper is one instruction
// or one of ggml's inline helpers built from them, so the Go kernels can
// repeat the exact sequence of roundings.
//
// Go itself never fuses a*b+c here: every product that ggml rounds is
// written float32(a*b) (an explicit conversion forbids fusion, see the Go
// spec on floating-point operators), and every fused one calls fma32.

// fma32 is a float32 fused multiply-add (vfmadd): a*b+c rounded once.
//
// The product of two float32 is exact in float64, so s = a*b + c in float64
// is the exact sum rounded once. Rounding s to float32 gives the correctly
// rounded result unless s landed exactly on a float32 midpoint (a tie that
// the exact sum may not be): only then is the exact error computed (TwoSum)
// and s moved one float64 ulp toward the exact value (round to odd, which
// makes the second rounding correct: Boldo and Melquiond, "When double
// rounding is odd"). Float32 subnormal and non-finite results take the same
// careful path.
func fma32(a, b, c float32) float32 {
	if r, ok := fma32Fast(a, b, c); ok {
		return r
	}
	return fma32Slow(a, b, c)
}

// fma32Fast is fma32's common case, small enough to inline into a hot
// loop: the product is exact in float64 and the sum rounded once; ok is
// false when that sum sits at a float32 tie or the result is not a normal
// float32 (then call fma32Slow).
func fma32Fast(a, b, c float32) (float32, bool) {
	s := float64(a)*float64(b) + float64(c)
	bits := math.Float64bits(s)
	// exponent in 1023-125..1023+127: (exp - 898) < 253 unsigned
	return float32(s), bits&(1<<29-1) != 1<<28 && (bits>>52&0x7ff)-(1023-125) < 253
}

// fma32Slow is fma32 where the float64 sum may sit at a float32 tie, or the
// result is subnormal or not finite.
func fma32Slow(a, b, c float32) float32 {
	p := float64(a) * float64(b)
	cd := float64(c)
	s := p + cd
	bits := math.Float64bits(s)
	if math.IsInf(s, 0) || math.IsNaN(s) {
		return float32(s)
	}
	// TwoSum: s + e == p + cd exactly.
	bb := s - p
	e := (p - (s - bb)) + (cd - bb)
	if e != 0 && bits&1 == 0 {
		if (e > 0) == (s > 0) {
			bits++
		} else {
			bits--
		}
		s = math.Float64frombits(bits)
	}
	return float32(s)
}

// hsum8 is the horizontal sum of llamafile's hsum(__m256) and ggml's
// hsum_float_8: the two 128-bit halves are added, then (0+2, 1+3), then the
// two results: ((v0+v4)+(v2+v6)) + ((v1+v5)+(v3+v7)).
func hsum8(v *[8]float32) float32 {
	a0 := v[0] + v[4]
	a1 := v[1] + v[5]
	a2 := v[2] + v[6]
	a3 := v[3] + v[7]
	return (a0 + a2) + (a1 + a3)
}

// hsum4 is the 128-bit horizontal sum of the same shape: (v0+v2) + (v1+v3).
func hsum4(v *[4]float32) float32 {
	return (v[0] + v[2]) + (v[1] + v[3])
}

// reduceF32x8 is GGML_F32x8_REDUCE (simd-mappings.h, AVX) on GGML_F32_ARR =
// 4 accumulators: x0+x2, x1+x3, then their sum; then the 128-bit halves and
// two _mm_hadd_ps: (t0+t1) + (t2+t3).
func reduceF32x8(x *[4][8]float32) float32 {
	var s [8]float32
	for i := 0; i < 8; i++ {
		a := x[0][i] + x[2][i]
		b := x[1][i] + x[3][i]
		s[i] = a + b
	}
	t0 := s[0] + s[4]
	t1 := s[1] + s[5]
	t2 := s[2] + s[6]
	t3 := s[3] + s[7]
	return (t0 + t1) + (t2 + t3)
}

// f16Table is ggml_table_f32_f16: every float16 bit pattern as float32.
var f16Table = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = quant.F16ToF32(uint16(i))
	}
	return &t
}()

// f16 is GGML_CPU_FP16_TO_FP32.
func f16(h uint16) float32 { return f16Table[h] }

// toF16 is GGML_CPU_FP32_TO_FP16 on x86 with F16C (_cvtss_sh(x, 0) and
// _mm256_cvtps_ph(x, 0)): round to nearest, ties to even.
func toF16(x float32) uint16 { return quant.F32ToF16HW(x) }

// madF16 is ggml_vec_mad_f16 (AVX2: every lane fused): y[i] =
// f16(fma(x[i], v, y[i])).
func madF16(y, x []uint16, v float32) {
	for i := madF16Prefix(y, x, v); i < len(y); i++ {
		y[i] = toF16(fma32(f16Table[x[i]], v, f16Table[y[i]]))
	}
}

// scaleF16 is ggml_vec_scale_f16: y[i] = f16(y[i]*v).
func scaleF16(y []uint16, v float32) {
	for i := scaleF16Prefix(y, v); i < len(y); i++ {
		y[i] = toF16(f16Table[y[i]] * v)
	}
}

// toF16Slice converts src to float16 into dst (GGML_CPU_FP32_TO_FP16 per
// element).
func toF16Slice(dst []uint16, src []float32) {
	for i := toF16Prefix(dst, src); i < len(dst) && i < len(src); i++ {
		dst[i] = toF16(src[i])
	}
}

// roundF16 rounds a float32 through float16 and back.
func roundF16(x float32) float32 { return f16Table[quant.F32ToF16HW(x)] }

// vExpf is one lane of ggml_v_expf (vec.h, AVX2+FMA): the polynomial
// exponential from Arm's optimized-routines used by ggml's softmax and SiLU.
// Every lane is computed independently (the special-case branch only changes
// which of two equal formulas runs for ordinary lanes).
func vExpf(x float32) float32 {
	const r = 0x1.8p23
	z := fma32(x, 0x1.715476p+0, r)
	n := z - r
	b := fma32(-n, 0x1.7f7d1cp-20, fma32(-n, 0x1.62e4p-1, x))
	e := math.Float32bits(z) << 23
	k := math.Float32frombits(e + math.Float32bits(1))
	absn := float32(math.Abs(float64(n)))
	c := absn > 126
	u := b * b
	j := fma32(fma32(fma32(0x1.0e4020p-7, b, 0x1.573e2ep-5), u, fma32(0x1.555e66p-3, b, 0x1.fffdb6p-2)), u, float32(0x1.ffffecp-1*b))
	if !c {
		return fma32(j, k, k)
	}
	var g uint32
	if n <= 0 {
		g = 0x82000000
	}
	s1 := math.Float32frombits(g + 0x7f000000)
	s2 := math.Float32frombits(e - g)
	if absn > 192 {
		return s1 * s1
	}
	return fma32(s2, j, s2) * s1
}

// vSilu is one lane of ggml_v_silu: x / (1 + ggml_v_expf(0 - x)).
func vSilu(x float32) float32 {
	return x / (1 + vExpf(0-x))
}

// siluF32 is ggml_silu_f32, the scalar tail: x/(1.0f + expf(-x)).
func siluF32(x float32) float32 {
	return x / (1 + Expf(-x))
}
