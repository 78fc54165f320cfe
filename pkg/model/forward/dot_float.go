package forward

import (
	"math"
)

// Kinds of tinyX4 and tinyX2x4, the tinyBLAS assembly kernels.
const (
	tinyF32 = iota
	tinyF16
	tinyBF16
)

// dotF32Tiny is llamafile's tinyBLAS<8, __m256> for float32 (prompts):
// lane i accumulates fma(a[l+i], b[l+i]) over steps of 8; then hsum.
func dotF32Tiny(a, b []float32) float32 {
	var acc [8]float32
	for l := 0; l+8 <= len(a); l += 8 {
		for i := 0; i < 8; i++ {
			acc[i] = fma32(a[l+i], b[l+i], acc[i])
		}
	}
	return hsum8(&acc)
}

// vecDotF32 is ggml_vec_dot_f32 (AVX2) as GCC compiles it: four 8-lane
// FMA accumulators over steps of 32, GGML_F32x8_REDUCE into a float; the
// leftovers are added in order, in blocks of 8 and then 4 with rounded
// products (GCC's vectorised in-order reduction), the last 0-3 fused.
func vecDotF32(a, b []float32) float32 {
	n := len(a)
	np := n &^ 31
	var sum [4][8]float32
	for i := 0; i < np; i += 32 {
		for j := 0; j < 4; j++ {
			for k := 0; k < 8; k++ {
				e := i + 8*j + k
				sum[j][k] = fma32(a[e], b[e], sum[j][k])
			}
		}
	}
	sumf := reduceF32x8(&sum)
	i := np
	r := n - np
	for ; r >= 8; r -= 8 {
		for k := 0; k < 8; k++ {
			sumf += float32(a[i+k] * b[i+k])
		}
		i += 8
	}
	if r >= 4 {
		for k := 0; k < 4; k++ {
			sumf += float32(a[i+k] * b[i+k])
		}
		i += 4
	}
	for ; i < n; i++ {
		sumf = fma32(a[i], b[i], sumf)
	}
	return sumf
}

// dotF16Tiny is tinyBLAS<8> for float16 (F16C loads, FMA lanes).
func dotF16Tiny(a, b []uint16) float32 {
	var acc [8]float32
	for l := 0; l+8 <= len(a); l += 8 {
		for i := 0; i < 8; i++ {
			acc[i] = fma32(f16Table[a[l+i]], f16Table[b[l+i]], acc[i])
		}
	}
	return hsum8(&acc)
}

// vecDotF16 is ggml_vec_dot_f16 (AVX2+F16C): four 8-lane FMA accumulators
// over steps of 32, reduced into a double; leftovers add their (exact)
// float products in double; the result is rounded to float.
func vecDotF16(a, b []uint16) float32 {
	n := len(a)
	np := n &^ 31
	var sum [4][8]float32
	if !dotF16Acc(np, a, b, &sum) {
		vecDotF16Acc(np, a, b, &sum)
	}
	sumf := float64(reduceF32x8(&sum))
	for i := np; i < n; i++ {
		sumf += float64(float32(f16Table[a[i]] * f16Table[b[i]]))
	}
	return float32(sumf)
}

// vecDotF16Acc is the portable main loop of vecDotF16 (dotF16AccAVX2).
func vecDotF16Acc(np int, a, b []uint16, sum *[4][8]float32) {
	for i := 0; i < np; i += 32 {
		for j := 0; j < 4; j++ {
			for k := 0; k < 8; k++ {
				e := i + 8*j + k
				sum[j][k] = fma32(f16Table[a[e]], f16Table[b[e]], sum[j][k])
			}
		}
	}
}

func bf16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// dotBF16Tiny is tinyBLAS<8> for bfloat16 on AVX2.
func dotBF16Tiny(a, b []uint16) float32 {
	var acc [8]float32
	for l := 0; l+8 <= len(a); l += 8 {
		for i := 0; i < 8; i++ {
			acc[i] = fma32(bf16(a[l+i]), bf16(b[l+i]), acc[i])
		}
	}
	return hsum8(&acc)
}

// vecDotBF16 is ggml_vec_dot_bf16 (AVX2, GCC fuses the mul+add): four
// 8-lane accumulators over steps of 32, (c1+c3)+(c2+c4), hsum into a
// double, leftovers in double.
func vecDotBF16(a, b []uint16) float32 {
	n := len(a)
	var c [4][8]float32
	i := 0
	for ; i+32 <= n; i += 32 {
		for j := 0; j < 4; j++ {
			for k := 0; k < 8; k++ {
				e := i + 8*j + k
				c[j][k] = fma32(bf16(a[e]), bf16(b[e]), c[j][k])
			}
		}
	}
	var s [8]float32
	for k := 0; k < 8; k++ {
		s[k] = (c[0][k] + c[2][k]) + (c[1][k] + c[3][k])
	}
	sumf := float64(hsum8(&s))
	for ; i < n; i++ {
		sumf += float64(float32(bf16(a[i]) * bf16(b[i])))
	}
	return float32(sumf)
}
