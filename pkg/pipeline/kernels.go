package pipeline

import (
	"fmt"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// KernelChoice is the kernel profile a run emulates and why.
type KernelChoice struct {
	// Reference is the reference's profile (reference.KernelProfile of its
	// system_info; reference.ProfileUnknown when it records none).
	Reference string
	// Emulated is the profile the ggml numerics reproduce.
	Emulated string
	// Exact is true when Emulated is the reference's own profile, so that
	// bit-identical results are expected.
	Exact bool
	// Note says, in one line, why the profiles differ; "" when Exact.
	Note string
}

// ChooseKernels picks the profile to emulate: want when given (it must be
// one forward emulates), else the reference's own when emulated (the x86
// repack builds, x86-avx2-repack and x86-avx512-repack, are), else, for a
// repack build forward does not emulate (x86-avx512-repack-nobf16,
// arm64-neon-repack), its base profile when emulated (every op but the
// repacked weights' products has the base's kernels), else
// forward.KernelsAVX2.
func ChooseKernels(want, refProfile string) (KernelChoice, error) {
	if refProfile == "" {
		refProfile = reference.ProfileUnknown
	}
	c := KernelChoice{Reference: refProfile}
	switch {
	case want != "":
		if !forward.Emulates(want) {
			return c, fmt.Errorf("--kernels %q is not an emulated kernel profile (emulated: %s)", want, strings.Join(forward.KernelProfiles(), ", "))
		}
		c.Emulated = want
	case forward.Emulates(refProfile):
		c.Emulated = refProfile
	case forward.Emulates(reference.ProfileBase(refProfile)):
		c.Emulated = reference.ProfileBase(refProfile)
	default:
		c.Emulated = forward.KernelsAVX2
	}
	c.Exact = c.Emulated == refProfile
	if !c.Exact {
		if refProfile == reference.ProfileUnknown {
			c.Note = fmt.Sprintf("reference kernels unknown (no llama.cpp CPU system_info): emulating %s; last-bit differences from other kernels are expected", c.Emulated)
		} else {
			c.Note = fmt.Sprintf("reference kernels %s, emulated kernels %s: not the same arithmetic, last-bit differences are expected", refProfile, c.Emulated)
		}
	}
	return c, nil
}
