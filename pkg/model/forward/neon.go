package forward

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// Scalar models of ggml-cpu's aarch64 NEON code paths (profile
// KernelsARM64NEON): ec98e2002 compiled by GCC 12.2 with -O3
// -march=armv8.2-a+dotprod+fp16 (so __ARM_FEATURE_DOTPROD and
// __ARM_FEATURE_FP16_VECTOR_ARITHMETIC, no SVE, no i8mm), read from the
// sources and from the assembly GCC generates for them (docs/numerics.md,
// "arm64-neon"). A float32x4_t is [4]float32, a float16x8_t [8]uint16 of
// float16 bits whose arithmetic rounds to float16 after every operation.

// hsum4 is vaddvq_f32 (FADDP twice): (v0+v1) + (v2+v3).
func vaddvq(v *[4]float32) float32 { return (v[0] + v[1]) + (v[2] + v[3]) }

// f64ToF16 rounds x to float16 (nearest, ties to even); e, the exact error
// of x as a float64 sum (x+e is the value to round), breaks ties: x+e is
// never a tie when e != 0, so a tie in x goes the way e points.
func f64ToF16(x, e float64) uint16 {
	b := math.Float64bits(x)
	sign := uint16(b>>48) & 0x8000
	if b>>63 == 1 {
		e = -e // the error relative to |x|
	}
	ax := b &^ (1 << 63)
	switch {
	case ax > 0x7ff0000000000000:
		return 0x7e00
	case ax < 1<<52: // zero or a float64 subnormal: far below float16's
		return sign
	}
	exp := int(ax>>52) - 1023
	if exp >= 16 {
		return sign | 0x7c00
	}
	m := ax&(1<<52-1) | 1<<52 // |x| = m·2^(exp−52)
	shift := uint(42)         // to units of the float16 ulp at exp
	if exp < -14 {
		shift = uint(28 - exp) // subnormal: units of 2^-24
	}
	if shift > 60 {
		return sign
	}
	q := m >> shift
	rem, half := m&(1<<shift-1), uint64(1)<<(shift-1)
	if rem > half || rem == half && (e > 0 || e == 0 && q&1 == 1) {
		q++
	}
	if exp < -14 {
		return sign | uint16(q) // q = 1024 is the smallest normal: the same bits
	}
	h := uint32(exp+14)<<10 + uint32(q) // q in [1024, 2048]: a carry bumps the exponent
	if h >= 0x7c00 {
		return sign | 0x7c00
	}
	return sign | uint16(h)
}

// fmaF16 is one lane of vfmaq_f16(c, a, b): c + a·b rounded once to
// float16 (FMLA .8h). The product is exact in float64; the sum is split
// into its float64 rounding and the exact error (TwoSum) so that the
// float16 rounding is of the exact value.
func fmaF16(a, b, c uint16) uint16 {
	p := float64(float64(f16Table[a]) * float64(f16Table[b])) // no fused add
	cc := float64(f16Table[c])
	s := p + cc
	bp := s - p
	e := (p - (s - bp)) + (cc - bp)
	if math.IsInf(s, 0) || s != s {
		return f64ToF16(s, 0)
	}
	return f64ToF16(s, e)
}

// addF16 is one lane of vaddq_f16 (the sum of two float16 values is exact
// in float64).
func addF16(a, b uint16) uint16 {
	return f64ToF16(float64(f16Table[a])+float64(f16Table[b]), 0)
}

// roundF16v rounds an exact float64 s to float16 precision (nearest, ties
// to even) and returns the value: adding and subtracting 1.5·2^(e+42), e
// the exponent of s (−14 for the subnormal range), rounds at the float16
// ulp 2^(e−10); past 65504 it is +-Inf.
func roundF16v(s float64) float64 {
	if s == 0 || s != s {
		return s
	}
	exp := int(math.Float64bits(s)>>52&0x7ff) - 1023
	if exp < -14 {
		exp = -14
	}
	if exp > 15 {
		return math.Inf(int(math.Float64bits(s)>>63)*-2 + 1)
	}
	m := float64(1.5 * math.Float64frombits(uint64(exp+42+1023)<<52)) // exact
	r := (s + m) - m
	if r == 0 {
		return math.Copysign(0, s) // rounded to zero: keeps the sign of s
	}
	if r >= 65520 || r <= -65520 {
		return math.Inf(int(math.Float64bits(s)>>63)*-2 + 1)
	}
	return r
}

// fmaF16v is fmaF16 on float16 values held as float32 (the float16 lanes
// of the hot loops): the float64 sum rounded by roundF16v when it is exact,
// else by fmaF16's tie-aware rounding (TestFmaF16vMatches).
func fmaF16v(a, b, c float32) float32 {
	p := float64(float64(a) * float64(b)) // no fused add
	cc := float64(c)
	s := p + cc
	bp := s - p
	if e := (p - (s - bp)) + (cc - bp); e != 0 {
		return f16Table[f64ToF16(s, e)]
	}
	return float32(roundF16v(s))
}

// addF16v is addF16 on values (the sum of two float16 values is exact).
func addF16v(a, b float32) float32 { return float32(roundF16v(float64(a) + float64(b))) }

// mulF16 is one lane of vmulq_f16 (the product is exact in float32).
func mulF16(a, b uint16) uint16 { return toF16(f16Table[a] * f16Table[b]) }

// vecDotF32NEON is ggml_vec_dot_f32 on NEON: four 4-lane FMA accumulators
// over steps of 16, GGML_F32x4_REDUCE ((x0+x2)+(x1+x3), then vaddvq_f32),
// then the leftovers as GCC compiled them: when at least 4 remain, blocks
// of 4 with rounded products added in order, then the last 0–3 fused.
func vecDotF32NEON(a, b []float32) float32 {
	n := len(a)
	np := n &^ 15
	var sum [4][4]float32
	for i := 0; i < np; i += 16 {
		for j := 0; j < 4; j++ {
			for k := 0; k < 4; k++ {
				e := i + 4*j + k
				sum[j][k] = fma32(a[e], b[e], sum[j][k])
			}
		}
	}
	var s [4]float32
	for k := 0; k < 4; k++ {
		s[k] = (sum[0][k] + sum[2][k]) + (sum[1][k] + sum[3][k])
	}
	sumf := vaddvq(&s)
	i := np
	if n-np >= 4 {
		for end := np + (n-np)&^3; i < end; i++ {
			sumf += float32(a[i] * b[i])
		}
	}
	for ; i < n; i++ {
		sumf = fma32(a[i], b[i], sumf)
	}
	return sumf
}

// dotF32TinyNEON is tinyBLAS<4, float32x4_t> (F32 prompts): lane i
// accumulates fma(a[l+i], b[l+i]) over steps of 4, then vaddvq_f32.
func dotF32TinyNEON(a, b []float32) float32 {
	var acc [4]float32
	for l := 0; l+4 <= len(a); l += 4 {
		for i := 0; i < 4; i++ {
			acc[i] = fma32(a[l+i], b[l+i], acc[i])
		}
	}
	return vaddvq(&acc)
}

// hsumF16x8 is llamafile's hsum(float16x8_t) and the end of
// GGML_F16x8_REDUCE: the two halves converted to float32 and added lane by
// lane, then vaddvq_f32.
func hsumF16x8(v *[8]float32) float32 {
	var t [4]float32
	for i := 0; i < 4; i++ {
		t[i] = v[i] + v[i+4]
	}
	return vaddvq(&t)
}

// vecDotF16NEON is ggml_vec_dot_f16 with FP16 vector arithmetic: four
// float16x8 accumulators over steps of 32, each lane c + x·y rounded to
// float16; GGML_F16x8_REDUCE in float16 ((x0+x2)+(x1+x3)), hsumF16x8 into
// a double; the leftovers' products rounded to float and added in double;
// rounded to float at the end.
func vecDotF16NEON(a, b []uint16) float32 {
	n := len(a)
	np := n &^ 31
	var sum [4][8]float32
	for i := 0; i < np; i += 32 {
		for j := 0; j < 4; j++ {
			for k := 0; k < 8; k++ {
				e := i + 8*j + k
				sum[j][k] = fmaF16v(f16Table[a[e]], f16Table[b[e]], sum[j][k])
			}
		}
	}
	var t [8]float32
	for k := 0; k < 8; k++ {
		t[k] = addF16v(addF16v(sum[0][k], sum[2][k]), addF16v(sum[1][k], sum[3][k]))
	}
	sumf := float64(hsumF16x8(&t))
	for i := np; i < n; i++ {
		sumf += float64(f16Table[a[i]] * f16Table[b[i]])
	}
	return float32(sumf)
}

// dotF16TinyNEON is tinyBLAS<8, float16x8_t> (F16 prompts of at least 8
// columns, k % 8 == 0): lane i accumulates a·b in float16 over steps of 8,
// then hsumF16x8.
func dotF16TinyNEON(a, b []uint16) float32 {
	var acc [8]float32
	for l := 0; l+8 <= len(a); l += 8 {
		for i := 0; i < 8; i++ {
			acc[i] = fmaF16v(f16Table[a[l+i]], f16Table[b[l+i]], acc[i])
		}
	}
	return hsumF16x8(&acc)
}

// madF16NEON is ggml_vec_mad_f16 with FP16 vector arithmetic: v is
// converted to float16 and y = y + x·v rounded to float16 on the first
// n &^ 31 values; the rest in float32, fused, then rounded to float16.
func madF16NEON(y, x []uint16, v float32) {
	np := len(y) &^ 31
	vh := f16Table[toF16(v)]
	for i := 0; i < np; i++ {
		y[i] = toF16(fmaF16v(f16Table[x[i]], vh, f16Table[y[i]]))
	}
	for i := np; i < len(y); i++ {
		y[i] = toF16(fma32(f16Table[x[i]], v, f16Table[y[i]]))
	}
}

// scaleF16NEON is ggml_vec_scale_f16 with FP16 vector arithmetic: y =
// y·f16(v) in float16 on the first n &^ 31 values, y·v in float32 (then
// rounded to float16) on the rest.
func scaleF16NEON(y []uint16, v float32) {
	np := len(y) &^ 31
	vh := toF16(v)
	for i := 0; i < np; i++ {
		y[i] = mulF16(y[i], vh)
	}
	for i := np; i < len(y); i++ {
		y[i] = toF16(f16Table[y[i]] * v)
	}
}

// chooseKernelNEON is ggml_compute_forward_mul_mat's choice on this build
// (GGML_USE_LLAMAFILE, no repack): llamafile_sgemm takes F32 weights with
// the float32 src1 when it is contiguous and n >= 4, k%4 == 0, m%4 == 0
// (tinyBLAS<4>); F16 weights with the converted src1 when n >= 8, k%8 ==
// 0, m%4 == 0 (tinyBLAS<8, float16x8_t>); Q8_0 and Q4_0 for any n >= 2
// (tinyBLAS_Q0_ARM). Everything else is ggml_vec_dot_*, column by column.
func chooseKernelNEON(t quant.Type, m, n, k int64, src1Contiguous bool) matKernel {
	switch {
	case n < 2:
		return kernVecDot
	case t == quant.F32 && src1Contiguous && n >= 4 && k%4 == 0 && m%4 == 0:
		return kernTinyBLAS
	case t == quant.F16 && n >= 8 && k%8 == 0 && m%4 == 0:
		return kernTinyBLAS
	case t == quant.Q8_0 || t == quant.Q4_0:
		return kernTinyBLAS
	}
	return kernVecDot
}

// neonDot returns the dot product of one weight row (bytes) with one
// converted column under chooseKernelNEON's kernel.
func neonDot(t quant.Type, kern matKernel) (func(n int, x []byte, xf []float32, xh []uint16, col int64, act *actRows) float32, error) {
	tiny := kern == kernTinyBLAS
	switch t {
	case quant.F32:
		if tiny {
			return func(_ int, _ []byte, xf []float32, _ []uint16, c int64, a *actRows) float32 {
				return dotF32TinyNEON(xf, a.f32[c])
			}, nil
		}
		return func(_ int, _ []byte, xf []float32, _ []uint16, c int64, a *actRows) float32 {
			return vecDotF32NEON(xf, a.f32[c])
		}, nil
	case quant.F16:
		if tiny {
			return func(_ int, _ []byte, _ []float32, xh []uint16, c int64, a *actRows) float32 {
				return dotF16TinyNEON(xh, a.u16[c])
			}, nil
		}
		return func(_ int, _ []byte, _ []float32, xh []uint16, c int64, a *actRows) float32 {
			return vecDotF16NEON(xh, a.u16[c])
		}, nil
	case quant.Q8_0, quant.Q4_0, quant.Q5_0, quant.Q4_1, quant.Q5_1:
		if tiny {
			return func(n int, x []byte, _ []float32, _ []uint16, c int64, a *actRows) float32 {
				return dotQ0TinyNEON(t, n, x, a.b[c])
			}, nil
		}
		return func(n int, x []byte, _ []float32, _ []uint16, c int64, a *actRows) float32 {
			return dotQ0NEON(t, n, x, a.b[c])
		}, nil
	case quant.BF16:
		return func(_ int, _ []byte, _ []float32, xh []uint16, c int64, a *actRows) float32 {
			return vecDotBF16NEON(xh, a.u16[c])
		}, nil
	case quant.IQ4_NL:
		return func(n int, x []byte, _ []float32, _ []uint16, c int64, a *actRows) float32 {
			return dotIQ4NLNEON(n, x, a.b[c])
		}, nil
	case quant.IQ4_XS:
		return func(n int, x []byte, _ []float32, _ []uint16, c int64, a *actRows) float32 {
			return dotIQ4XSNEON(n, x, a.b[c])
		}, nil
	case quant.Q2_K:
		return func(n int, x []byte, _ []float32, _ []uint16, c int64, a *actRows) float32 {
			return dotQ2KNEON(n, x, a.b[c])
		}, nil
	case quant.Q3_K:
		return func(n int, x []byte, _ []float32, _ []uint16, c int64, a *actRows) float32 {
			return dotQ3KNEON(n, x, a.b[c])
		}, nil
	case quant.Q4_K:
		return func(n int, x []byte, _ []float32, _ []uint16, c int64, a *actRows) float32 {
			return dotQ4KNEON(n, x, a.b[c])
		}, nil
	case quant.Q5_K:
		return func(n int, x []byte, _ []float32, _ []uint16, c int64, a *actRows) float32 {
			return dotQ5KNEON(n, x, a.b[c])
		}, nil
	case quant.Q6_K:
		return func(n int, x []byte, _ []float32, _ []uint16, c int64, a *actRows) float32 {
			return dotQ6KNEON(n, x, a.b[c])
		}, nil
	}
	return nil, fmt.Errorf("the %s kernel profile has no %s dot product (emulated: f32, f16, bf16, q8_0, q4_0, q5_0, q4_1, q5_1, iq4_nl, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_xs)", KernelsARM64NEON, t)
}

// mulMatNEON is mulMatGGML under KernelsARM64NEON: the activations
// converted as ggml-cpu's NEON from_float does, then one portable dot per
// output.
func (e *executor) mulMatNEON(dst *node) error {
	a, b := dst.src[0], dst.src[1]
	if b.typ != quant.F32 {
		return fmt.Errorf("%s: src1 %s has type %s, want f32", dst.name, b.name, b.typ)
	}
	ne00, ne01 := a.ne[0], a.ne[1]
	ne11, ne12, ne13 := b.ne[1], b.ne[2], b.ne[3]
	if b.ne[0] != ne00 {
		return fmt.Errorf("%s: inner dimensions differ: %s has %d, %s has %d", dst.name, a.name, ne00, b.name, b.ne[0])
	}
	r2, r3 := ne12/a.ne[2], ne13/a.ne[3]
	vdt := quant.VecDotType(a.typ)
	kern := chooseKernelNEON(a.typ, ne01, ne11, ne00, b.isContiguous())
	dot, err := neonDot(a.typ, kern)
	if err != nil {
		return fmt.Errorf("%s: %w", dst.name, err)
	}
	act, err := e.activations(dst, vdt, e.threads)
	if err != nil {
		return err
	}
	out, off := dst.base()
	nmat := a.ne[2] * a.ne[3]
	q0 := q0BlockBytes(a.typ) != 0
	parallelFor(int(ne01*nmat), e.threads, func(lo, hi int) {
		rowF32 := make([]float32, ne00)
		rowU16 := make([]uint16, ne00)
		var blocks []q0Block // Q8_0, Q4_0, Q5_0, Q4_1, Q5_1: the row decoded once
		for r := lo; r < hi; r++ {
			i01 := int64(r) % ne01
			i02 := (int64(r) / ne01) % a.ne[2]
			i03 := int64(r) / ne01 / a.ne[2]
			var xb []byte
			var xf []float32
			var xh []uint16
			switch {
			case a.weight != nil && a.typ == quant.F32:
				wr := a.weightRow(i01, i02, i03)
				for i := range rowF32 {
					rowF32[i] = math.Float32frombits(binary.LittleEndian.Uint32(wr[4*i:]))
				}
				xf = rowF32
			case a.weight != nil && (a.typ == quant.F16 || a.typ == quant.BF16):
				wr := a.weightRow(i01, i02, i03)
				for i := range rowU16 {
					rowU16[i] = binary.LittleEndian.Uint16(wr[2*i:])
				}
				xh = rowU16
			case a.weight != nil:
				xb = a.weightRow(i01, i02, i03)
				if q0 {
					blocks = unpackQ0RowNEON(a.typ, int(ne00), xb, blocks)
				}
			case a.typ == quant.F32:
				xf = a.rowF32(i01, i02, i03, rowF32)
			case a.typ == quant.F16:
				xh = a.rowF16(i01, i02, i03)
			}
			for i13 := i03 * r3; i13 < (i03+1)*r3; i13++ {
				for i12 := i02 * r2; i12 < (i02+1)*r2; i12++ {
					for i11 := int64(0); i11 < ne11; i11++ {
						col := i11 + ne11*(i12+ne12*i13)
						var v float32
						switch {
						case q0 && kern == kernTinyBLAS:
							v = dotQ0TinyBlocksNEON(blocks, act.b[col])
						case q0:
							v = dotQ0BlocksNEON(a.typ, blocks, act.b[col])
						default:
							v = dot(int(ne00), xb, xf, xh, col, &act)
						}
						out.f32[off+dst.elemOffset(i01, i11, i12, i13)] = v
					}
				}
			}
		}
	})
	return nil
}

// swigluNEON is ggml_vec_swiglu_f32 on NEON: ggml_v_silu (the same lanes
// as vSilu) times g on chunks of 4, ggml_silu_f32 on the tail.
func swigluNEON(y, x, g []float32) {
	i := 0
	for ; i+3 < len(x); i += 4 {
		for k := i; k < i+4; k++ {
			y[k] = vSilu(x[k]) * g[k]
		}
	}
	for ; i < len(x); i++ {
		y[i] = siluF32(x[i]) * g[i]
	}
}

// madF16 is ggml_vec_mad_f16 under these kernels.
func (ks kernels) madF16(y, x []uint16, v float32) {
	if ks.neon {
		madF16NEON(y, x, v)
		return
	}
	madF16(y, x, v)
}

// scaleF16 is ggml_vec_scale_f16 under these kernels.
func (ks kernels) scaleF16(y []uint16, v float32) {
	if ks.neon {
		scaleF16NEON(y, v)
		return
	}
	scaleF16(y, v)
}

// ropeRotateNormNEON is rotate_pairs(n_dims, 1, cache, src, dst, 1) as GCC
// vectorises it for aarch64: pairs in blocks of 4 (LD2/ST2) with x0·cos
// and x1·cos rounded and the sine products fused (FMLS, FMLA):
// fma(−x1, sin, x0·cos) and fma(x0, sin, x1·cos); the last 0–3 pairs in
// scalar code with the first product of each fused, as on x86.
func ropeRotateNormNEON(nDims int64, cache, src, dst []float32) {
	np := nDims / 2
	i := int64(0)
	for ; i < np&^3; i++ {
		c, s := cache[2*i], cache[2*i+1]
		x0, x1 := src[2*i], src[2*i+1]
		dst[2*i] = fma32(-x1, s, x0*c)
		dst[2*i+1] = fma32(x0, s, x1*c)
	}
	for ; i < np; i++ {
		c, s := cache[2*i], cache[2*i+1]
		x0, x1 := src[2*i], src[2*i+1]
		dst[2*i] = fma32(x0, c, -(x1 * s))
		dst[2*i+1] = fma32(x0, s, x1*c)
	}
}

// dotQ2KNEON is ggml_vec_dot_q2_K_q8_K on NEON: per super-block sum =
// fma(Σ min·bsum, −(y.d·x.dmin), sum), then fma(Σ scale·Σ q·q8, y.d·x.d,
// sum), both integer sums exact.
func dotQ2KNEON(n int, x, y []byte) float32 {
	var sum float32
	for i := 0; i < n/256; i++ {
		xb := x[i*84 : i*84+84]
		yd, yq, bs := q8K(y[i*292:])
		sc, qs := xb[0:16], xb[16:80]
		d := yd * ldF16(xb[80:])
		dmin := -(yd * ldF16(xb[82:]))
		var mins, isum int32
		for k := 0; k < 16; k++ {
			mins += int32(sc[k]>>4) * int32(int16(binary.LittleEndian.Uint16(bs[2*k:])))
		}
		for h := 0; h < 2; h++ {
			for s := 0; s < 4; s++ {
				for l := 0; l < 32; l++ {
					e := 128*h + 32*s + l
					isum += int32((qs[32*h+l]>>(2*s))&3) * int32(int8(yq[e])) * int32(sc[e/16]&0xF)
				}
			}
		}
		sum = fma32(float32(mins), dmin, sum)
		sum = fma32(float32(isum), d, sum)
	}
	return sum
}

// dotQ3KNEON is ggml_vec_dot_q3_K_q8_K on NEON: the exact integer
// Σ scale·Σ (q − (hbit ? 0 : 4))·q8 per super-block, sum = fma(isum,
// y.d·x.d, sum).
func dotQ3KNEON(n int, x, y []byte) float32 {
	var sum float32
	for i := 0; i < n/256; i++ {
		xb := x[i*110 : i*110+110]
		yd, yq, _ := q8K(y[i*292:])
		hm, qs := xb[0:32], xb[32:96]
		scales := q3KScales(xb[96:108])
		d := ldF16(xb[108:]) * yd
		var isum int32
		for h := 0; h < 2; h++ {
			for k := 0; k < 4; k++ {
				bit := uint(4*h + k)
				for l := 0; l < 32; l++ {
					e := 128*h + 32*k + l
					v := int32((qs[32*h+l] >> (2 * k)) & 3)
					if hm[l]&(1<<bit) == 0 {
						v -= 4
					}
					isum += v * int32(int8(yq[e])) * scales[e/16]
				}
			}
		}
		sum = fma32(float32(isum), d, sum)
	}
	return sum
}

// dotIQ4NLNEON is ggml_vec_dot_iq4_nl_q8_0 on NEON (every column: no
// tinyBLAS for IQ4_NL on ARM): blocks in pairs, sumf += (d0·sumi0) +
// (d1·sumi1) with the second product rounded and the first fused into the
// add (GCC's choice); an odd
// last block sumf = fma(d, sumi, sumf); d = x.d·y.d.
func dotIQ4NLNEON(n int, x, y []byte) float32 {
	var q [32]int8
	blk := func(ib int) (float32, int32) {
		xb, yb := x[ib*18:], y[ib*34:]
		unpackIQ4NL(xb, &q)
		var s int32
		for j := 0; j < 32; j++ {
			s += int32(q[j]) * int32(int8(yb[2+j]))
		}
		return ldF16(xb) * ldF16(yb), s
	}
	nb := n / 32
	var sumf float32
	ib := 0
	for ; ib+1 < nb; ib += 2 {
		d0, s0 := blk(ib)
		d1, s1 := blk(ib + 1)
		sumf += fma32(d0, float32(s0), float32(float32(s1)*d1))
	}
	for ; ib < nb; ib++ {
		d, s := blk(ib)
		sumf = fma32(float32(s), d, sumf)
	}
	return sumf
}

// dotIQ4XSNEON is ggml_vec_dot_iq4_xs_q8_K on NEON: the exact integer
// Σ ls·Σ q·q8 per super-block, sumf = fma(x.d·y.d, isum, sumf).
func dotIQ4XSNEON(n int, x, y []byte) float32 {
	var sumf float32
	for i := 0; i < n/256; i++ {
		xb := x[i*136 : i*136+136]
		yd, yq, _ := q8K(y[i*292:])
		sh := binary.LittleEndian.Uint16(xb[2:])
		var isum int32
		for ib := 0; ib < 8; ib++ {
			ls := int32((xb[4+ib/2]>>(4*(ib%2)))&0xF|uint8((sh>>(2*ib))&3)<<4) - 32
			qs := xb[8+16*ib : 8+16*ib+16]
			var s int32
			for j := 0; j < 16; j++ {
				s += int32(kvaluesIQ4NL[qs[j]&0xF])*int32(int8(yq[32*ib+j])) + int32(kvaluesIQ4NL[qs[j]>>4])*int32(int8(yq[32*ib+16+j]))
			}
			isum += ls * s
		}
		sumf = fma32(ldF16(xb)*yd, float32(isum), sumf)
	}
	return sumf
}

// vecDotBF16NEON is ggml_vec_dot_bf16 without AVX-512/AVX2 (no
// __ARM_FEATURE_BF16 in this build, and no tinyBLAS for BF16 on ARM): the
// products (exact in float) summed in double in order, rounded to float.
func vecDotBF16NEON(a, b []uint16) float32 {
	var sumf float64
	for i := range a {
		sumf += float64(float32(bf16(a[i]) * bf16(b[i])))
	}
	return float32(sumf)
}
