package reference

import "testing"

func TestKernelProfileARM64(t *testing.T) {
	for si, want := range map[string]string{
		// the qemu-user arm64 build of fixtures/arm64 (-march=armv8.2-a+dotprod+fp16)
		"CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | LLAMAFILE = 1 | ":              ProfileARM64NEON,
		"CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | LLAMAFILE = 1 | REPACK = 1 | ": ProfileARM64NEONRepack,
		// armv8.0: no dotprod, no fp16 arithmetic
		"CPU : NEON = 1 | ARM_FMA = 1 | LLAMAFILE = 1 | ":               ProfileARM64Other,
		"CPU : NEON = 1 | ARM_FMA = 1 | DOTPROD = 1 | LLAMAFILE = 1 | ": ProfileARM64Other,
		// Apple M2 and later, Graviton 3: i8mm, SVE
		"CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | MATMUL_INT8 = 1 | DOTPROD = 1 | LLAMAFILE = 1 | ":                     ProfileARM64Other,
		"CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | SVE = 1 | SVE_CNT = 32 | LLAMAFILE = 1 | REPACK = 1 | ": ProfileARM64OtherRepack,
	} {
		if got := KernelProfile(si); got != want {
			t.Errorf("KernelProfile(%q) = %q, want %q", si, got, want)
		}
	}
	if got := ProfileBase(ProfileARM64NEONRepack); got != ProfileARM64NEON {
		t.Errorf("ProfileBase(%q) = %q", ProfileARM64NEONRepack, got)
	}
}
