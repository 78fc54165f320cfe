package forward

import (
	"fmt"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// Kernel profiles: the CPU builds of llama.cpp's ggml whose arithmetic the
// ggml numerics reproduce bit for bit (Options.Kernels). The same C source
// compiles to different kernels on different CPUs — vector width, which
// horizontal sums, which exp polynomial, which bfloat16 instruction — so a
// reference is emulated exactly only under its own profile.
const (
	// KernelsAVX2 is x86-64 with AVX2, FMA and F16C and without AVX-512:
	// eight-lane float vectors, tinyBLAS<8>.
	KernelsAVX2 = "x86-avx2"
	// KernelsAVX512 is x86-64 with AVX-512 F/DQ/VL/BW and AVX512_BF16
	// (AMD Zen 4 and later, Intel Sapphire Rapids and later): sixteen-lane
	// float vectors (GGML_F32_STEP 64), tinyBLAS<16> for F32 and F16,
	// the AVX-512 ggml_v_expf (vscalefps), and vdpbf16ps for BF16
	// (tinyBLAS<32>, ggml_vec_dot_bf16).
	KernelsAVX512 = "x86-avx512"
	// KernelsAVX512NoBF16 is AVX-512 without AVX512_BF16 (Intel Skylake-X,
	// Ice Lake, Tiger Lake): KernelsAVX512 with BF16 products as 16-lane
	// FMAs.
	KernelsAVX512NoBF16 = "x86-avx512-nobf16"

	// KernelsAVX2Repack is KernelsAVX2 with the CPU repack buffers
	// (GGML_USE_CPU_REPACK, "REPACK = 1"): Q4_0, Q4_K and IQ4_NL weights
	// with ne[1] % 8 == 0 through the interleaved GEMV/GEMM kernels
	// (repack.go).
	KernelsAVX2Repack = "x86-avx2-repack"
	// KernelsAVX512Repack is KernelsAVX512 with the CPU repack buffers:
	// those of KernelsAVX2Repack and Q2_K.
	KernelsAVX512Repack = "x86-avx512-repack"
	// KernelsARM64NEON is aarch64 with NEON, DOTPROD and FP16 vector
	// arithmetic (-march=armv8.2-a+dotprod+fp16), no SVE, no i8mm:
	// four-lane float vectors, float16 lanes in ggml_vec_dot_f16,
	// tinyBLAS<8, float16x8_t> and the flash-attention V accumulator,
	// tinyBLAS_Q0_ARM for Q8_0/Q4_0 prompts (neon.go).
	KernelsARM64NEON = "arm64-neon"
)

// KernelProfiles lists the profiles the ggml numerics emulate, the default
// first.
func KernelProfiles() []string {
	return []string{KernelsAVX2, KernelsAVX512, KernelsAVX512NoBF16, KernelsAVX2Repack, KernelsAVX512Repack, KernelsARM64NEON}
}

// Emulates reports whether profile is one the ggml numerics reproduce.
func Emulates(profile string) bool {
	for _, p := range KernelProfiles() {
		if p == profile {
			return true
		}
	}
	return false
}

// kernels are the arithmetic choices that differ between the profiles;
// the zero value is KernelsAVX2.
type kernels struct {
	// lanes16: __AVX512F__ — GGML_F32_EPR/GGML_F16_EPR 16 with four
	// accumulators (GGML_F32_STEP 64) and _mm512_reduce_add_ps; tinyBLAS
	// over __m512 (KN 16: needs k % 16 == 0); the vectorised loops of
	// softmax and SwiGLU on chunks of 16 with the AVX-512 ggml_v_expf.
	lanes16 bool
	// bf16dp: __AVX512BF16__ — ggml_vec_dot_bf16 and tinyBLAS<32> with
	// vdpbf16ps (two products per lane, the odd one first, each add
	// rounded; bfloat16 subnormals read as zero, results flushed).
	bf16dp bool
	// repack: GGML_USE_CPU_REPACK — the repacked weights' MUL_MATs
	// (kernels.repackOf, mulMatRepack in repack.go).
	repack bool
	// neon: KernelsARM64NEON (neon.go); the other fields are false.
	neon bool
}

// kernelsOf returns the kernels of a profile name ("" is KernelsAVX2).
func kernelsOf(profile string) (kernels, error) {
	switch profile {
	case "", KernelsAVX2:
		return kernels{}, nil
	case KernelsAVX512:
		return kernels{lanes16: true, bf16dp: true}, nil
	case KernelsAVX512NoBF16:
		return kernels{lanes16: true}, nil
	case KernelsAVX2Repack:
		return kernels{repack: true}, nil
	case KernelsAVX512Repack:
		return kernels{lanes16: true, bf16dp: true, repack: true}, nil
	case KernelsARM64NEON:
		return kernels{neon: true}, nil
	}
	return kernels{}, fmt.Errorf("forward: kernel profile %q is not emulated (emulated: %s)", profile, strings.Join(KernelProfiles(), ", "))
}

// vecDotF16 is ggml_vec_dot_f16 under these kernels.
func (ks kernels) vecDotF16(a, b []uint16) float32 {
	if ks.neon {
		return vecDotF16NEON(a, b)
	}
	if ks.lanes16 {
		return vecDotF16x16(a, b)
	}
	return vecDotF16(a, b)
}

// floatDot is one output of a MUL_MAT with F32, F16 or BF16 weights under
// the AVX-512 kernels: xf or xh is the weight row, act's column col the
// converted activations.
func (ks kernels) floatDot(t quant.Type, kern matKernel, xf []float32, xh []uint16, act actRows, col int64) float32 {
	switch {
	case t == quant.F32 && kern == kernTinyBLAS:
		return dotF32Tiny16(xf, act.f32[col])
	case t == quant.F32:
		return vecDotF32x16(xf, act.f32[col])
	case t == quant.F16 && kern == kernTinyBLAS:
		return dotF16Tiny16(xh, act.u16[col], false)
	case t == quant.F16:
		return vecDotF16x16(xh, act.u16[col])
	case kern == kernTinyBLAS && ks.bf16dp:
		return dotBF16Tiny32(xh, act.u16[col])
	case kern == kernTinyBLAS:
		return dotF16Tiny16(xh, act.u16[col], true)
	}
	return vecDotBF16x16(xh, act.u16[col], ks.bf16dp)
}
