//go:build llamacpp

package pipeline

import (
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// The cross-kernel mode against the in-build llama.cpp, emulating a kernel
// profile other than its own (x86-avx2 for an AVX-512 build and the other
// way round): a reference whose kernels layerdiff does not reproduce, on
// any x86 machine. Clean fixtures pass, every planted bug of the
// acceptance tests is caught and blamed by isolation at its op.
//
// Run: cd /work/main && . scripts/env.sh && go test -tags llamacpp -run CrossKernel ./pkg/pipeline

// otherKernels returns an emulated profile that is not the in-build
// llama.cpp's own.
func otherKernels(t testing.TB) string {
	own := reference.KernelProfile(llamacpp.SystemInfo())
	if own == forward.KernelsAVX2 {
		return forward.KernelsAVX512
	}
	return forward.KernelsAVX2
}

func crossOptions(t testing.TB) RunOptions {
	return RunOptions{Threads: 2, CrossKernel: "on", Kernels: otherKernels(t)}
}

// TestCrossKernelNoFalseAlarm: clean fixtures of every architecture and
// main weight type, flash attention on and off, pass in the cross-kernel
// mode under the other profile.
func TestCrossKernelNoFalseAlarm(t *testing.T) {
	for _, arch := range fixture.Archs {
		for _, typ := range mainTypes {
			for _, fa := range []string{"on", "off"} {
				t.Run(arch+"_"+typ+"_fa_"+fa, func(t *testing.T) {
					m := fixtureModel(t, arch, typ)
					d := dumpOf(t, m, fa)
					r, err := Run(d, m, crossOptions(t))
					if err != nil {
						t.Fatal(err)
					}
					if r.Meta.Mode != ModeCrossKernel {
						t.Errorf("judged in mode %q", r.Meta.Mode)
					}
					wantPass(t, "cross-kernel, flash attention "+fa, r)
				})
			}
		}
	}
}

// TestCrossKernelPerturbed: every perturbed fixture of the acceptance tests
// is caught, and blamed by isolation, at the perturbed op.
func TestCrossKernelPerturbed(t *testing.T) {
	for _, c := range perturbCases {
		t.Run(strings.ReplaceAll(c.arch+" "+c.typ+" "+c.name, " ", "_"), func(t *testing.T) {
			clean := fixtureModel(t, c.arch, c.typ)
			cd := dumpOf(t, clean, c.fa)
			p := c.perturb(cd.Manifest.Tokens)
			perturbed := fixtureModel(t, c.arch, c.typ, p)
			r, err := Run(cd, perturbed, crossOptions(t))
			if err != nil {
				t.Fatal(err)
			}
			wantAt(t, "cross-kernel run "+p.String()+" vs dump", r, c.key, c.node, c.op, "isolation")
			logMargin(t, r)
		})
	}
}

// TestCrossKernelInject: every --inject of the acceptance tests is caught
// and blamed by isolation at the injected op.
func TestCrossKernelInject(t *testing.T) {
	for _, c := range injectCases {
		t.Run(c.arch+"_fa_"+c.fa+"_"+c.inject, func(t *testing.T) {
			r := runInjected(t, c, crossOptions(t))
			wantAt(t, "cross-kernel --inject "+c.inject, r, c.key, c.node, c.op, "isolation")
			logMargin(t, r)
		})
	}
}

// logMargin logs by how much the first divergence exceeds its bound.
func logMargin(t *testing.T, r *compare.Report) {
	if d := r.FirstDivergence; d != nil {
		row := r.Tensors[d.Row]
		if m, tol := row.Metrics, row.Tolerance; m != nil && tol != nil {
			t.Logf("%s: nmse %.3g (bound %.3g), %d of %d elements outside the elementwise bound", row.Key, float64(m.NMSE), float64(tol.NMSEMax), m.Mismatches, m.N)
		}
	}
}
