package quant

import "math"

// Half-precision conversions, bit-exact with ggml.
//
// ggml has two float32 -> float16 conversions that agree on every non-NaN
// input (both round to nearest, ties to even, with subnormals, and overflow
// to ±Inf) and differ only in the float16 NaN they produce:
//
//   - F32ToF16 is ggml_compute_fp32_to_fp16 (ggml-impl.h), the portable one.
//     It is what GGML_FP32_TO_FP16 and, on x86, GGML_CPU_FP32_TO_FP16 expand
//     to, so ggml-base (llama-quantize, ggml_quantize_chunk, the _ref
//     quantizers) and the scalar code of ggml-cpu (e.g. the block scales of
//     the AVX2 quantize_row_q8_0) use it. Every NaN becomes 0x7E00 with the
//     input's sign.
//   - F32ToF16HW is the x86 F16C instruction VCVTPS2PH with rounding mode 0,
//     which ggml_cpu_fp32_to_fp16 (the F16 from_float of ggml-cpu, used for
//     activations of F16 matmuls and for the F16 KV cache) applies to all
//     but the last n%4 values of a row. A NaN keeps its sign and the top ten
//     bits of its payload, with the quiet bit set.
//
// The float16 -> float32 direction is exact and agrees between the two (the
// portable ggml_compute_fp16_to_fp32 and F16C's VCVTPH2PS both return the
// quiet float32 NaN with the same payload), so there is one F16ToF32.

// F16ToF32 converts IEEE binary16 bits to a float32 exactly as ggml's
// ggml_compute_fp16_to_fp32 does (ggml-impl.h, after Maratyszcza/FP16):
// subnormals are exact, ±Inf stays ±Inf, and a NaN keeps its sign and payload
// (shifted up by 13 bits) and is returned quiet.
func F16ToF32(h uint16) float32 {
	// Port of ggml_compute_fp16_to_fp32: the same integer and float32
	// operations, so NaN quieting happens in the same multiply.
	const (
		expOffset          = uint32(0xE0) << 23
		expScale           = float32(0x1.0p-112)
		magicMask          = uint32(126) << 23
		magicBias          = float32(0.5)
		denormalizedCutoff = uint32(1) << 27
	)
	w := uint32(h) << 16
	sign := w & 0x80000000
	twoW := w + w
	var bits uint32
	if twoW < denormalizedCutoff {
		// (m * 2^-24 + 0.5) - 0.5 in float32: exact for every 10-bit m.
		bits = math.Float32bits(math.Float32frombits((twoW>>17)|magicMask) - magicBias)
	} else {
		// Rebias the exponent by 2^112 (Inf/NaN land on exponent 0xFF).
		bits = math.Float32bits(math.Float32frombits((twoW>>4)+expOffset) * expScale)
	}
	return math.Float32frombits(sign | bits)
}

// F32ToF16 converts a float32 to IEEE binary16 bits exactly as ggml's portable
// ggml_compute_fp32_to_fp16 (ggml-impl.h) does: round to nearest, ties to
// even, subnormal results where float16 has them, ±Inf for values that round
// past 65504, and 0x7E00 (with the input's sign) for every NaN.
func F32ToF16(f float32) uint16 {
	// Port of ggml_compute_fp32_to_fp16: the rounding is done by a float32
	// addition of a power of two that aligns the float16 mantissa with the
	// float32 one, so it inherits the FPU's round-to-nearest-even.
	const (
		scaleToInf  = float32(0x1.0p+112)
		scaleToZero = float32(0x1.0p-110)
	)
	base := (float32(math.Abs(float64(f))) * scaleToInf) * scaleToZero
	w := math.Float32bits(f)
	shl1W := w + w
	sign := w & 0x80000000
	bias := shl1W & 0xFF000000
	if bias < 0x71000000 {
		bias = 0x71000000
	}
	base = math.Float32frombits((bias>>1)+0x07800000) + base
	bits := math.Float32bits(base)
	expBits := (bits >> 13) & 0x00007C00
	mantissaBits := bits & 0x00000FFF
	nonsign := expBits + mantissaBits
	if shl1W > 0xFF000000 {
		nonsign = 0x7E00
	}
	return uint16(sign>>16) | uint16(nonsign)
}

// F32ToF16HW converts a float32 to IEEE binary16 bits as the x86 F16C
// instruction VCVTPS2PH with rounding mode 0 does (_mm256_cvtps_ph in
// ggml_cpu_fp32_to_fp16): identical to F32ToF16 except for NaN, which keeps
// its sign and the top ten payload bits and is made quiet.
func F32ToF16HW(f float32) uint16 {
	w := math.Float32bits(f)
	if w&0x7FFFFFFF > 0x7F800000 {
		return uint16(w>>16)&0x8000 | 0x7E00 | uint16(w>>13)&0x03FF
	}
	return F32ToF16(f)
}

// BF16ToF32 converts bfloat16 bits to float32 (ggml_compute_bf16_to_fp32):
// the bits become the high half of the float32, so every value, NaN payloads
// included, is preserved.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 converts a float32 to bfloat16 bits as ggml_compute_fp32_to_bf16
// (ggml-impl.h) does: round to nearest, ties to even, no flushing of
// subnormals, overflow to ±Inf; a NaN keeps its sign and top payload bits and
// is forced quiet (bit 6 of the result set).
func F32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7FFFFFFF > 0x7F800000 {
		return uint16(u>>16) | 64
	}
	return uint16((u + (0x7FFF + ((u >> 16) & 1))) >> 16)
}
