package reference

import (
	"regexp"
	"strings"
)

// Kernel profiles of a reference: which of ggml's CPU kernels produced it.
// One llama.cpp source compiles to different arithmetic on different CPUs
// and builds (vector width, horizontal sums, exp polynomial, bfloat16
// instruction, repacked weights), so a reference can only be reproduced
// bit for bit under its own profile.
const (
	ProfileX86AVX2          = "x86-avx2"          // AVX2+FMA+F16C, no AVX-512
	ProfileX86AVX512        = "x86-avx512"        // AVX-512 with AVX512_BF16
	ProfileX86AVX512NoBF16  = "x86-avx512-nobf16" // AVX-512 without AVX512_BF16
	ProfileX86AVX2Repack    = "x86-avx2-repack"   // x86-avx2 with the CPU repack buffers
	ProfileX86AVX512Repack  = "x86-avx512-repack" // x86-avx512 with the CPU repack buffers
	ProfileARM64NEON        = "arm64-neon"        // aarch64 NEON with DOTPROD and FP16_VA (armv8.2-a+dotprod+fp16), no SVE, no MATMUL_INT8
	ProfileARM64NEONRepack  = "arm64-neon-repack" // arm64-neon with the CPU repack buffers
	ProfileARM64Other       = "arm64-other"       // aarch64 without DOTPROD or FP16_VA, or with SVE, MATMUL_INT8 or SME
	ProfileARM64OtherRepack = "arm64-other-repack"
	ProfileUnknown          = "unknown" // no system_info, another backend, another CPU
	profileRepackSuffix     = "-repack"
	profileNoBF16Suffix     = "-nobf16"
)

// siFlag matches one "NAME = 1" feature of llama_print_system_info.
var siFlag = regexp.MustCompile(`\b([A-Z0-9_]+) = 1\b`)

// gpuBackends are the names llama_print_system_info prints for backends
// other than the CPU; a reference recorded with one of them may have run
// any node on it.
var gpuBackends = []string{"CUDA", "Metal", "METAL", "Vulkan", "VULKAN", "ROCm", "HIP", "SYCL", "OpenCL", "CANN", "MUSA", "BLAS"}

// KernelProfile derives the kernel profile from a llama.cpp system_info
// line ("CPU : SSE3 = 1 | ... | AVX512 = 1 | ... | REPACK = 1 |"): the
// instruction set ggml's CPU kernels were compiled for and whether the
// repack ("extra") buffer types were built in. It returns ProfileUnknown
// for an empty line (eval-callback logs without it, third-party dumps), a
// line naming another backend, or a CPU it does not know.
func KernelProfile(systemInfo string) string {
	si := strings.TrimSpace(systemInfo)
	if si == "" {
		return ProfileUnknown
	}
	for _, g := range gpuBackends {
		if strings.Contains(si, g+" :") || strings.Contains(si, g+" = 1") {
			return ProfileUnknown
		}
	}
	f := map[string]bool{}
	for _, m := range siFlag.FindAllStringSubmatch(si, -1) {
		f[m[1]] = true
	}
	var p string
	switch {
	case f["NEON"] && f["DOTPROD"] && f["FP16_VA"] && !f["SVE"] && !f["SVE2"] && !f["MATMUL_INT8"] && !f["SME"]:
		// tinyBLAS_Q0_ARM (vdotq_s32) for Q8_0/Q4_0 prompts and float16
		// lanes in ggml_vec_dot_f16 and tinyBLAS; SVE or i8mm select
		// other kernels (svdot, vmmlaq: two rows per vec_dot call).
		p = ProfileARM64NEON
	case f["NEON"]:
		p = ProfileARM64Other
	case f["AVX512"] && f["AVX512_BF16"]:
		p = ProfileX86AVX512
	case f["AVX512"]:
		p = ProfileX86AVX512NoBF16
	case f["AVX2"] && f["FMA"] && f["F16C"]:
		p = ProfileX86AVX2
	default:
		return ProfileUnknown
	}
	if f["REPACK"] {
		p = strings.TrimSuffix(p, profileNoBF16Suffix) + profileRepackSuffix
		if f["AVX512"] && !f["AVX512_BF16"] {
			p += profileNoBF16Suffix
		}
	}
	return p
}

// ProfileBase returns the profile without its repack variant
// ("x86-avx2-repack" → "x86-avx2"): the kernels of every weight type the
// repack buffers leave as they are, and of every op that is not a
// MUL_MAT.
func ProfileBase(profile string) string {
	if strings.HasSuffix(profile, profileRepackSuffix+profileNoBF16Suffix) {
		return strings.TrimSuffix(profile, profileRepackSuffix+profileNoBF16Suffix) + profileNoBF16Suffix
	}
	return strings.TrimSuffix(profile, profileRepackSuffix)
}
