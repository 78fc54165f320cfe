package forward

import "math"

// Scalar models of ggml-cpu's AVX-512 code paths (profile KernelsAVX512),
// read from ec98e2002's sources and the code GCC 12.2 generates for them
// with -O3 -march=native on an AVX-512 CPU. A __m512 is [16]float32; no
// AVX-512 instruction is needed to repeat its roundings.

// reduce16 is GCC's _mm512_reduce_add_ps (avx512fintrin.h,
// __MM512_REDUCE_OP): the two 256-bit halves are added, then as hsum8:
// with t[i] = v[i] + v[i+8], ((t0+t4)+(t2+t6)) + ((t1+t5)+(t3+t7)).
func reduce16(v *[16]float32) float32 {
	var t [8]float32
	for i := 0; i < 8; i++ {
		t[i] = v[i+8] + v[i]
	}
	return hsum8(&t)
}

// reduceF32x16 is GGML_F32x16_REDUCE on GGML_F32_ARR = 4 accumulators:
// x0+x2, x1+x3, their sum, then reduce16.
func reduceF32x16(x *[4][16]float32) float32 {
	var s [16]float32
	for i := 0; i < 16; i++ {
		s[i] = (x[0][i] + x[2][i]) + (x[1][i] + x[3][i])
	}
	return reduce16(&s)
}

// vExpf512 is one lane of the AVX-512 ggml_v_expf (vec.h, __AVX512F__ &&
// __AVX512DQ__): the same reduction and polynomial as vExpf but with the
// constant term folded into the last FMA (fma(0x1.ffffecp-1, b, 1)) and
// the result scaled by vscalefps (j·2^n, rounded once); |n| > 192 gives
// +Inf or 0.
func vExpf512(x float32) float32 {
	const r = 0x1.8p23
	z := fma32(x, 0x1.715476p+0, r)
	n := z - r
	b := fma32(-n, 0x1.7f7d1cp-20, fma32(-n, 0x1.62e4p-1, x))
	u := b * b
	j := fma32(fma32(fma32(0x1.0e4020p-7, b, 0x1.573e2ep-5), u, fma32(0x1.555e66p-3, b, 0x1.fffdb6p-2)), u, fma32(0x1.ffffecp-1, b, 1))
	if n != n {
		return n
	}
	if n > 192 || n < -192 {
		if n <= 0 {
			return 0
		}
		return float32(math.Inf(1))
	}
	// j·2^n is exact in float64 (|n| <= 192); one rounding to float32,
	// subnormal results included, is vscalefps's.
	return float32(float64(j) * math.Float64frombits(uint64(int64(n)+1023)<<52))
}

// vSilu512 is one lane of the AVX-512 ggml_v_silu: x / (1 + exp(0 - x)).
func vSilu512(x float32) float32 {
	return x / (1 + vExpf512(0-x))
}

// vecDotF32x16 is ggml_vec_dot_f32 on AVX-512 as GCC compiles it: four
// 16-lane FMA accumulators over steps of 64, GGML_F32x16_REDUCE into a
// float, then the leftovers in order — those in whole blocks of 8
// (GCC's 16- and 8-wide in-order reductions) with rounded products, the
// last 0–7 fused.
func vecDotF32x16(a, b []float32) float32 {
	n := len(a)
	np := n &^ 63
	var sum [4][16]float32
	for i := 0; i < np; i += 64 {
		for j := 0; j < 4; j++ {
			for k := 0; k < 16; k++ {
				e := i + 16*j + k
				sum[j][k] = fma32(a[e], b[e], sum[j][k])
			}
		}
	}
	sumf := reduceF32x16(&sum)
	i := np
	for end := np + (n-np)&^7; i < end; i++ {
		sumf += float32(a[i] * b[i])
	}
	for ; i < n; i++ {
		sumf = fma32(a[i], b[i], sumf)
	}
	return sumf
}

// vecDotF16x16 is ggml_vec_dot_f16 on AVX-512: four 16-lane FMA
// accumulators over steps of 64 (F16 loads converted exactly), reduced
// into a double, leftovers added in double (their products are exact in
// float), rounded to float at the end.
func vecDotF16x16(a, b []uint16) float32 {
	n := len(a)
	np := n &^ 63
	var sum [4][16]float32
	if !dotF16Acc16(np, a, b, &sum) {
		for i := 0; i < np; i += 64 {
			for j := 0; j < 4; j++ {
				for k := 0; k < 16; k++ {
					e := i + 16*j + k
					sum[j][k] = fma32(f16Table[a[e]], f16Table[b[e]], sum[j][k])
				}
			}
		}
	}
	sumf := float64(reduceF32x16(&sum))
	for i := np; i < n; i++ {
		sumf += float64(float32(f16Table[a[i]] * f16Table[b[i]]))
	}
	return float32(sumf)
}

// dotF32Tiny16 is tinyBLAS<16, __m512> for float32 (prompts, k % 16 ==
// 0): lane i accumulates fma(a[l+i], b[l+i]) over steps of 16, then
// reduce16.
func dotF32Tiny16(a, b []float32) float32 {
	var acc [16]float32
	for l := 0; l+16 <= len(a); l += 16 {
		for i := 0; i < 16; i++ {
			acc[i] = fma32(a[l+i], b[l+i], acc[i])
		}
	}
	return reduce16(&acc)
}

// dotF16Tiny16 is tinyBLAS<16, __m512> for float16 (F16 loads converted
// exactly, FMA lanes); with bf true, the same for bfloat16 on AVX-512
// without AVX512_BF16.
func dotF16Tiny16(a, b []uint16, bf bool) float32 {
	var acc [16]float32
	for l := 0; l+16 <= len(a); l += 16 {
		for i := 0; i < 16; i++ {
			if bf {
				acc[i] = fma32(bf16(a[l+i]), bf16(b[l+i]), acc[i])
			} else {
				acc[i] = fma32(f16Table[a[l+i]], f16Table[b[l+i]], acc[i])
			}
		}
	}
	return reduce16(&acc)
}

// ftz flushes a float32 subnormal to a zero of the same sign (vdpbf16ps
// reads its inputs and writes its results with DAZ and FTZ).
func ftz(x float32) float32 {
	if b := math.Float32bits(x); b&0x7f800000 == 0 {
		return math.Float32frombits(b & 0x80000000)
	}
	return x
}

// dpbf16 is one lane of vdpbf16ps: acc + a1·b1, rounded, then + a0·b0,
// rounded (Intel's order: the odd element first), with bfloat16 products
// exact in float32 and subnormals flushed.
func dpbf16(acc float32, a0, a1, b0, b1 uint16) float32 {
	acc = ftz(ftz(acc) + ftz(ftz(bf16(a1))*ftz(bf16(b1))))
	return ftz(acc + ftz(ftz(bf16(a0))*ftz(bf16(b0))))
}

// dotBF16Tiny32 is tinyBLAS<32, __m512, __m512bh> (AVX512_BF16, k % 32 ==
// 0): lane j takes elements 2j and 2j+1 of every 32-value step through
// vdpbf16ps, then reduce16.
func dotBF16Tiny32(a, b []uint16) float32 {
	var acc [16]float32
	if dpbf16Acc32(a, b, &acc) {
		return reduce16(&acc)
	}
	return dotBF16Tiny32Go(a, b)
}

// dotBF16Tiny32Go is dotBF16Tiny32 in portable Go.
func dotBF16Tiny32Go(a, b []uint16) float32 {
	var acc [16]float32
	for l := 0; l+32 <= len(a); l += 32 {
		for j := 0; j < 16; j++ {
			acc[j] = dpbf16(acc[j], a[l+2*j], a[l+2*j+1], b[l+2*j], b[l+2*j+1])
		}
	}
	return reduce16(&acc)
}

// vecDotBF16x16 is ggml_vec_dot_bf16 on AVX-512: with dp (AVX512_BF16)
// two vdpbf16ps accumulators over steps of 64 (values i..i+31 and
// i+32..i+63); without, two 16-lane FMA accumulators over steps of 32.
// Each accumulator's reduce16 is added to a double, then the leftovers'
// (exact) products, rounded to float at the end.
func vecDotBF16x16(a, b []uint16, dp bool) float32 {
	return vecDotBF16x16Asm(a, b, dp, true)
}

// vecDotBF16x16Asm is vecDotBF16x16, with the vdpbf16ps loop in assembly
// when asm and the kernel is there.
func vecDotBF16x16Asm(a, b []uint16, dp, asm bool) float32 {
	n := len(a)
	var c1, c2 [16]float32
	i := 0
	if dp && asm && dpbf16Acc64(n&^63, a, b, &c1, &c2) {
		i = n &^ 63
	}
	if dp {
		for ; i+64 <= n; i += 64 {
			for j := 0; j < 16; j++ {
				c1[j] = dpbf16(c1[j], a[i+2*j], a[i+2*j+1], b[i+2*j], b[i+2*j+1])
				c2[j] = dpbf16(c2[j], a[i+32+2*j], a[i+32+2*j+1], b[i+32+2*j], b[i+32+2*j+1])
			}
		}
	} else {
		for ; i+32 <= n; i += 32 {
			for j := 0; j < 16; j++ {
				c1[j] = fma32(bf16(a[i+j]), bf16(b[i+j]), c1[j])
				c2[j] = fma32(bf16(a[i+16+j]), bf16(b[i+16+j]), c2[j])
			}
		}
	}
	sumf := float64(0)
	sumf += float64(reduce16(&c1))
	sumf += float64(reduce16(&c2))
	for ; i < n; i++ {
		sumf += float64(float32(bf16(a[i]) * bf16(b[i])))
	}
	return float32(sumf)
}
