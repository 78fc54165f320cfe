package quant

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Activation quantizers: what ggml-cpu's MUL_MAT does to its float32 input
// (src1) before the dot products. For a weight of type t the activations are
// converted to VecDotType(t) with ggml_get_type_traits_cpu(VecDotType(t))
// ->from_float, and the dot product reads those blocks, so a forward pass
// that wants llama.cpp's bits must quantize its activations the same way.

// QuantVariant selects which implementation of a ggml quantizer to
// reproduce. They differ in the last bit of some values.
type QuantVariant int

const (
	// QuantCPU is what ggml-cpu runs in the llama.cpp layerdiff builds
	// against (x86-64 with AVX2, FMA and F16C, compiled with -march=native):
	//   - Q8_0, Q8_1: the AVX2 quantize_row_q8_0/q8_1 of
	//     ggml-cpu/arch/x86/quants.c: id = 127/amax (not 1/(amax/127)),
	//     rounding ties to even, NaNs resolved by MAXPS and CVTPS2DQ.
	//   - Q8_K: quantize_row_q8_K_ref as GCC compiles it with FMA: the
	//     multiply in nearest_int(iscale*x) is fused with the +12582912
	//     rounding trick (a single rounding).
	//   - F16: ggml_cpu_fp32_to_fp16: F16C (F32ToF16HW) on groups of 8
	//     and 4, the portable conversion on the last n%4 values.
	QuantCPU QuantVariant = iota
	// QuantRef is the portable reference code of ggml-quants.c evaluated
	// as written (quantize_row_q8_0_ref, _q8_1_ref, _q8_K_ref without FMA
	// contraction; ggml_compute_fp32_to_fp16): what ggml-cpu falls back to
	// without SIMD, and what llama-quantize uses to write Q8_0 models.
	QuantRef
)

// String names the variant ("cpu" or "ref").
func (v QuantVariant) String() string {
	switch v {
	case QuantCPU:
		return "cpu"
	case QuantRef:
		return "ref"
	}
	return fmt.Sprintf("QuantVariant(%d)", int(v))
}

// VecDotType is the type ggml-cpu's MUL_MAT converts float32 activations to
// for a weight of type t (type_traits_cpu[t].vec_dot_type in ggml-cpu.c):
// F32, F16 and BF16 keep their own type; Q4_0, Q5_0, Q8_0, MXFP4 and IQ4_NL
// use Q8_0; Q4_1, Q5_1 and Q8_1 use Q8_1; the K-quants, TQ1_0, TQ2_0, IQ4_XS
// and the IQ1/IQ2/IQ3 types use Q8_K. Types with no dot product (integer
// types, Q8_K itself) report F32, as ggml's zero-initialised table does.
func VecDotType(t Type) Type {
	switch t {
	case F16, BF16:
		return t
	case Q4_0, Q5_0, Q8_0, MXFP4, IQ4_NL:
		return Q8_0
	case Q4_1, Q5_1, Q8_1:
		return Q8_1
	case Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, TQ1_0, TQ2_0,
		IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M, IQ4_XS:
		return Q8_K
	}
	return F32
}

// QuantizeRow converts src to type t in ggml's layout, as ggml-cpu's
// from_float for t does (variant QuantCPU) or as the portable reference code
// does (QuantRef). t must be an activation type: F32, F16, BF16, Q8_0, Q8_1
// or Q8_K. len(src) must be a multiple of t.BlockSize() and dst must hold
// exactly the matching number of bytes.
func QuantizeRow(t Type, src []float32, dst []byte, v QuantVariant) error {
	if v != QuantCPU && v != QuantRef {
		return fmt.Errorf("quantize %s: unknown variant %d", t, int(v))
	}
	var enc func([]float32, []byte, QuantVariant)
	switch t {
	case F32:
		enc = quantF32
	case F16:
		enc = quantF16
	case BF16:
		enc = quantBF16
	case Q8_0:
		enc = quantQ8_0
	case Q8_1:
		enc = quantQ8_1
	case Q8_K:
		enc = quantQ8_K
	default:
		return fmt.Errorf("quantize: no activation quantizer for type %s (want f32, f16, bf16, q8_0, q8_1 or q8_K)", t)
	}
	bs, bb := t.BlockSize(), t.BlockBytes()
	if len(src)%bs != 0 {
		return fmt.Errorf("quantize %s: %d values are not a multiple of the block size %d", t, len(src), bs)
	}
	nb := len(src) / bs
	if len(dst) != nb*bb {
		return fmt.Errorf("quantize %s: %d values need %d bytes (%d blocks of %d values in %d bytes), got a buffer of %d",
			t, len(src), nb*bb, nb, bs, bb, len(dst))
	}
	enc(src, dst, v)
	return nil
}

// QuantizeRowQ8_0 is QuantizeRow(Q8_0, ...): blocks of 32 values as fp16 d
// and 32 int8, value ≈ d*q.
func QuantizeRowQ8_0(src []float32, dst []byte, v QuantVariant) error {
	return QuantizeRow(Q8_0, src, dst, v)
}

// QuantizeRowQ8_1 is QuantizeRow(Q8_1, ...): as Q8_0 plus s = fp16(d*Σq).
func QuantizeRowQ8_1(src []float32, dst []byte, v QuantVariant) error {
	return QuantizeRow(Q8_1, src, dst, v)
}

// QuantizeRowQ8_K is QuantizeRow(Q8_K, ...): blocks of 256 values as f32 d,
// 256 int8 and 16 int16 sums of 16 quants. For an all-zero block ggml writes
// d = 0 and zero quants but leaves the sums as they were; here they are 0.
func QuantizeRowQ8_K(src []float32, dst []byte, v QuantVariant) error {
	return QuantizeRow(Q8_K, src, dst, v)
}

func quantF32(src []float32, dst []byte, _ QuantVariant) {
	for i, x := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(x))
	}
}

// quantF16 is ggml_cpu_fp32_to_fp16 (F16C on all but the last n%4 values,
// which go through GGML_CPU_FP32_TO_FP16, the portable conversion on x86) or
// ggml_fp32_to_fp16_row.
func quantF16(src []float32, dst []byte, v QuantVariant) {
	hw := 0
	if v == QuantCPU {
		hw = len(src) - len(src)%4
	}
	for i, x := range src {
		h := F32ToF16(x)
		if i < hw {
			h = F32ToF16HW(x)
		}
		binary.LittleEndian.PutUint16(dst[2*i:], h)
	}
}

// quantBF16 is ggml_cpu_fp32_to_bf16, which without AVX512-BF16 is the
// portable ggml_compute_fp32_to_bf16 in both variants.
func quantBF16(src []float32, dst []byte, _ QuantVariant) {
	for i, x := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], F32ToBF16(x))
	}
}

// x86Max is MAXPS/MAXSS on one lane: a > b ? a : b, so the second operand
// wins when either is NaN or both are zero.
func x86Max(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}

// x86Abs clears the sign bit, as _mm256_andnot_ps(-0.0f, v) does (NaNs
// included).
func x86Abs(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ 0x80000000) }

// x86AbsMax32 is the max |x| reduction of the AVX2 quantize_row_q8_0/q8_1,
// lane by lane and in the same operand order, so NaNs resolve as there.
func x86AbsMax32(x []float32) float32 {
	var m [8]float32
	for l := 0; l < 8; l++ {
		a := x86Abs(x[l])
		a = x86Max(a, x86Abs(x[8+l]))
		a = x86Max(a, x86Abs(x[16+l]))
		m[l] = x86Max(a, x86Abs(x[24+l]))
	}
	// max4 = max(high half, low half); max(max4, movehl); max_ss(., movehdup)
	var m4 [4]float32
	for l := 0; l < 4; l++ {
		m4[l] = x86Max(m[4+l], m[l])
	}
	a0, a1 := x86Max(m4[0], m4[2]), x86Max(m4[1], m4[3])
	return x86Max(a0, a1)
}

// x86Cvt is CVTPS2DQ on an already integral value: the int32, or
// 0x80000000 (the "integer indefinite") for NaN and out-of-range values.
func x86Cvt(r float32) int32 {
	if r != r || r >= 2147483648 || r < -2147483648 {
		return math.MinInt32
	}
	return int32(r)
}

// sat8 is the combined signed saturation of PACKSSDW then PACKSSWB.
func sat8(v int32) int8 {
	if v > 127 {
		return 127
	}
	if v < -128 {
		return -128
	}
	return int8(v)
}

// cTrunc8 is C's conversion of an integral float to int8_t as GCC compiles
// it on x86 (CVTTSS2SI, then the low byte): exact for -128..127.
func cTrunc8(r float32) int8 { return int8(x86Cvt(r)) }

// refAbsMax is the amax loop of quantize_row_q8_0_ref/q8_1_ref:
// amax = MAX(amax, fabsf(v)) with MAX(a, b) = a > b ? a : b.
func refAbsMax(x []float32) float32 {
	amax := float32(0)
	for _, v := range x {
		a := float32(math.Abs(float64(v)))
		if !(amax > a) {
			amax = a
		}
	}
	return amax
}

// quantQ8_0 is quantize_row_q8_0 (ggml-cpu/arch/x86/quants.c, AVX2 branch)
// or quantize_row_q8_0_ref (ggml-quants.c).
func quantQ8_0(src []float32, dst []byte, v QuantVariant) {
	for i := 0; i < len(src)/32; i++ {
		x := src[32*i : 32*i+32]
		y := dst[34*i : 34*i+34]
		qs := y[2:34]
		if v == QuantCPU {
			maxScalar := x86AbsMax32(x)
			d := maxScalar / 127
			binary.LittleEndian.PutUint16(y, F32ToF16(d))
			id := float32(0)
			if maxScalar != 0 {
				id = 127 / maxScalar
			}
			for j := range qs {
				qs[j] = byte(sat8(x86Cvt(roundEven32(x[j] * id))))
			}
			continue
		}
		amax := refAbsMax(x)
		d := amax / 127
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(y, F32ToF16(d))
		for j := range qs {
			qs[j] = byte(cTrunc8(roundAway32(x[j] * id)))
		}
	}
}

// quantQ8_1 is quantize_row_q8_1 (x86 AVX2) or quantize_row_q8_1_ref. Block
// (36 bytes): d f16, s f16 (d times the sum of the quants), int8 qs[32].
func quantQ8_1(src []float32, dst []byte, v QuantVariant) {
	for i := 0; i < len(src)/32; i++ {
		x := src[32*i : 32*i+32]
		y := dst[36*i : 36*i+36]
		qs := y[4:36]
		if v == QuantCPU {
			maxScalar := x86AbsMax32(x)
			d := maxScalar / 127
			binary.LittleEndian.PutUint16(y, F32ToF16(d))
			id := float32(0)
			if maxScalar != 0 {
				id = 127 / maxScalar
			}
			// The sum is taken over the int32 values before saturation
			// (hsum_i32_8 of the CVTPS2DQ results), wrapping like PADDD.
			var sum int32
			for j := range qs {
				q := x86Cvt(roundEven32(x[j] * id))
				sum += q
				qs[j] = byte(sat8(q))
			}
			binary.LittleEndian.PutUint16(y[2:], F32ToF16(d*float32(sum)))
			continue
		}
		amax := refAbsMax(x)
		d := amax / 127
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(y, F32ToF16(d))
		var sum int32
		for j := 0; j < 16; j++ {
			q0 := cTrunc8(roundAway32(x[j] * id))
			q1 := cTrunc8(roundAway32(x[16+j] * id))
			qs[j], qs[16+j] = byte(q0), byte(q1)
			sum += int32(q0) + int32(q1)
		}
		binary.LittleEndian.PutUint16(y[2:], F32ToF16(float32(sum)*d))
	}
}

// quantQ8_K is quantize_row_q8_K_ref (which the x86 quantize_row_q8_K
// calls), with its nearest_int fused into one FMA for QuantCPU (as GCC
// compiles it here) or rounded twice for QuantRef (as written).
func quantQ8_K(src []float32, dst []byte, v QuantVariant) {
	for i := 0; i < len(src)/256; i++ {
		x := src[256*i : 256*i+256]
		y := dst[292*i : 292*i+292]
		qs := y[4:260]
		// The first value of largest magnitude, with its sign.
		var maxv, amax float32
		for _, xv := range x {
			if ax := float32(math.Abs(float64(xv))); ax > amax {
				amax, maxv = ax, xv
			}
		}
		if amax == 0 {
			clear(y)
			continue
		}
		iscale := -127 / maxv
		for j, xv := range x {
			q, ok := roundQ8KFast(iscale, xv, v)
			if !ok {
				q = q8KBitTrick(iscale, xv, v)
			}
			if q > 127 {
				q = 127
			}
			qs[j] = byte(int8(q))
		}
		for j := 0; j < 16; j++ {
			var sum int16
			for _, q := range qs[16*j : 16*j+16] {
				sum += int16(int8(q))
			}
			binary.LittleEndian.PutUint16(y[260+2*j:], uint16(sum))
		}
		binary.LittleEndian.PutUint32(y, math.Float32bits(1/iscale))
	}
}

// roundQ8KFast is quantize_row_q8_K's rounding of iscale·x to an integer
// on the CPU, where ggml computes fma(iscale, x, 1.5·2^23) and reads the
// integer from the low mantissa bits (q8KBitTrick). While the exact product
// p stays below 2^22 in magnitude that is round-to-even of p itself (1.5·2^23
// is even and the ulp there is 1), taken directly: exact and far cheaper
// than fma32 (TestQ8KFastRoundingExact). ok is false outside that range or
// for the reference variant: use q8KBitTrick.
func roundQ8KFast(iscale, x float32, v QuantVariant) (q int32, ok bool) {
	if p := float64(iscale) * float64(x); v == QuantCPU && p > -1<<22 && p < 1<<22 {
		return int32(math.RoundToEven(p)), true
	}
	return 0, false
}

// q8KBitTrick is quantize_row_q8_K's rounding the way ggml writes it: add
// 1.5·2^23 to iscale·x (fused on the CPU) and read the integer from the low
// mantissa bits.
func q8KBitTrick(iscale, x float32, v QuantVariant) int32 {
	var val float32
	if v == QuantCPU {
		val = fma32(iscale, x, 12582912)
	} else {
		val = float32(iscale*x) + 12582912
	}
	return int32(math.Float32bits(val)&0x007fffff) - 0x00400000
}

// roundEven32 is ROUNDPS with _MM_ROUND_NEAREST: to the nearest integer,
// ties to even.
func roundEven32(x float32) float32 { return float32(math.RoundToEven(float64(x))) }

// roundAway32 is C's roundf: to the nearest integer, ties away from zero.
func roundAway32(x float32) float32 { return float32(math.Round(float64(x))) }

// fma32 returns a*b+c rounded once to float32, as VFMADD...PS does.
//
// The product of two float32 is exact in float64; the sum with c is then
// computed in float64 and its rounding error recovered exactly (TwoSum).
// Rounding that sum to float64 and then to float32 could round twice, so the
// float64 sum is first moved to round-to-odd (if it is inexact and its last
// bit is even, step it one ulp toward the exact value), after which the
// conversion to float32 (24 bits, far fewer than 53-2) is correctly rounded.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b)
	cc := float64(c)
	s := p + cc
	if math.IsInf(s, 0) || s != s {
		return float32(s)
	}
	bv := s - p
	e := (p - (s - bv)) + (cc - bv)
	if e != 0 {
		bits := math.Float64bits(s)
		if bits&1 == 0 {
			if (e > 0) == (s > 0) {
				bits++ // away from zero, toward the exact value
			} else {
				bits--
			}
			s = math.Float64frombits(bits)
		}
	}
	return float32(s)
}
