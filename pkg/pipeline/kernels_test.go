package pipeline

import (
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// TestKernelProfileNames: forward names its emulated profiles with the
// same strings reference.KernelProfile derives (the two packages do not
// import each other), so a reference of an emulated profile is emulated.
func TestKernelProfileNames(t *testing.T) {
	for si, want := range map[string]string{
		"CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | LLAMAFILE = 1 | ":                            forward.KernelsAVX2,
		"CPU : AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 |": forward.KernelsAVX512,
		"CPU : AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | AVX512_VNNI = 1 | LLAMAFILE = 1 |":                   forward.KernelsAVX512NoBF16,
		"CPU : AVX2 = 1 | F16C = 1 | FMA = 1 | LLAMAFILE = 1 | REPACK = 1 |":                                     forward.KernelsAVX2Repack,
		"CPU : AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 | REPACK = 1 |":      forward.KernelsAVX512Repack,
		"CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | LLAMAFILE = 1 | ":                            forward.KernelsARM64NEON,
	} {
		got := reference.KernelProfile(si)
		if got != want {
			t.Errorf("KernelProfile(%q) = %q, want %q", si, got, want)
		}
		if c, err := ChooseKernels("", got); err != nil || !c.Exact || c.Emulated != want {
			t.Errorf("ChooseKernels(%q) = %+v, %v", got, c, err)
		}
	}
	for _, si := range []string{"", "CPU : NEON = 1 | ARM_FMA = 1 | DOTPROD = 1 |", "CUDA : ARCHS = 890 | CPU : AVX2 = 1 |"} {
		c, err := ChooseKernels("", reference.KernelProfile(si))
		if err != nil || c.Exact || c.Note == "" || !forward.Emulates(c.Emulated) {
			t.Errorf("ChooseKernels for %q = %+v, %v: want an emulated stand-in with a note", si, c, err)
		}
	}
	// A repack build of a profile forward does not emulate: its base.
	si := "CPU : AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | AVX512_VNNI = 1 | REPACK = 1 |"
	if c, err := ChooseKernels("", reference.KernelProfile(si)); err != nil || c.Exact || c.Note == "" || c.Emulated != forward.KernelsAVX512NoBF16 {
		t.Errorf("ChooseKernels for %q = %+v, %v: want %s with a note", si, c, err, forward.KernelsAVX512NoBF16)
	}
	if _, err := ChooseKernels("arm64-other", reference.ProfileX86AVX2); err == nil {
		t.Error("--kernels arm64-other accepted")
	}
	if c, err := ChooseKernels("", reference.KernelProfile("CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | LLAMAFILE = 1 | REPACK = 1 |")); err != nil || c.Exact || c.Emulated != forward.KernelsARM64NEON {
		t.Errorf("ChooseKernels for arm64-neon-repack = %+v, %v: want arm64-neon, not exact", c, err)
	}
}
