package pipeline

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/layerdiff/layerdiff/internal/testshared"
	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// TestCrossBounds checks the cross-kernel bounds against their formulas
// (docs/tolerance.md, "Cross-kernel bounds").
func TestCrossBounds(t *testing.T) {
	const u, u16 = 0x1p-24, 0x1p-11
	shapes := map[string]struct {
		ne []int64
		t  quant.Type
	}{
		"w.q8":    {[]int64{4096, 4096}, quant.Q8_0},
		"w.f16":   {[]int64{256, 512}, quant.F16},
		"k":       {[]int64{128, 256, 8}, quant.F16},
		"unknown": {nil, 0},
	}
	lookup := func(name string) ([]int64, quant.Type, bool) {
		s, ok := shapes[name]
		return s.ne, s.t, ok && s.ne != nil
	}
	fa := func(d, ua float64) (float64, float64) { s := 8 * math.Sqrt(d) * ua; return 4*u + s, 11 * u16 * s }
	faE, faF := fa(128, u)
	faEArm, faFArm := fa(128, u16)
	cases := []struct {
		op, src, profile string
		ne               []int64
		n, uacc, e, f    float64
	}{
		{"MUL_MAT", "w.q8", "x86-avx512", nil, 4096, u, 0, 0},
		// another family's Q8 rounding: 1 + 4096·11/4096 = 12 flips
		{"MUL_MAT", "w.q8", "arm64-neon", nil, 4096, u, 0, 12 * 4 * (4.0 / 127) * (4.0 / 127) / (4096 * 11)},
		{"MUL_MAT", "w.f16", "x86-avx2-repack", nil, 256, u, 0, 0},
		{"MUL_MAT", "w.f16", "arm64-neon", nil, 256, u16, 0, 0},
		{"MUL_MAT", "w.f16", "unknown", nil, 256, u16, 0, 0},
		{"MUL_MAT", "unknown", "arm64-neon", nil, 4096, u, 0, 0},
		{"FLASH_ATTN_EXT", "k", "x86-avx2", nil, 11, u, faE, faF},
		{"FLASH_ATTN_EXT", "k", "arm64-neon", nil, 11, u, faEArm, faFArm},
		{"SOFT_MAX", "", "x86-avx2", nil, 11, u, 4 * u, 0},
		{"RMS_NORM", "", "x86-avx2", []int64{896, 11}, 896, u, 2 * u, 0},
		{"GLU(SWIGLU)", "", "x86-avx2", nil, 1, u, 4 * u, 0},
		{"ROPE", "", "x86-avx2", nil, 1, u, 16 * u, 0},
		{"ADD", "", "x86-avx2", nil, 1, u, u, 0},
	}
	for _, c := range cases {
		n := reference.NodeInfo{Key: "x", Name: "x", Op: c.op, Ne: c.ne}
		if c.src != "" {
			n.Src = []string{"q", c.src}
			if c.op == "MUL_MAT" {
				n.Src = []string{c.src, "q"}
			}
		}
		b := crossBoundOf(n, lookup, 11, c.profile, "x86-avx2")
		if b.n != c.n || b.uacc != c.uacc || math.Abs(b.extra-c.e) > 1e-3*c.e || math.Abs(b.flips-c.f) > 1e-3*c.f {
			t.Errorf("%s %s %s: bound n %g uacc %g e %g f %g, want n %g uacc %g e %g f %g", c.op, c.src, c.profile, b.n, b.uacc, b.extra, b.flips, c.n, c.uacc, c.e, c.f)
		}
		o := b.tolerance()
		wantNMSE := 16 * (c.n*c.uacc*c.uacc + c.e*c.e + c.f)
		if got := float64(*o.NMSEMax); math.Abs(got-wantNMSE) > 1e-9*wantNMSE {
			t.Errorf("%s: nmse_max %g, want %g", c.op, got, wantNMSE)
		}
		wantMis := 0.0
		if c.n > 1 {
			wantMis = 1e-3
		}
		if c.op == "MUL_MAT" && c.f > 0 {
			wantMis = 1 // 12 flips over 11 tokens: every column may be one
		}
		if float64(*o.MismatchFracMax) != wantMis || *o.BitExact {
			t.Errorf("%s: mismatch_frac_max %g bit_exact %v", c.op, *o.MismatchFracMax, *o.BitExact)
		}
	}
}

// TestCrossPolicyKeys: the cross-kernel policy resolves per node key, so
// the MUL_MAT and the ROPE of one name (Qcur-0) get their own bounds, and
// --atol/--rtol still win.
func TestCrossPolicyKeys(t *testing.T) {
	nodes := []reference.NodeInfo{
		{Key: "Qcur-0", Name: "Qcur-0", Op: "MUL_MAT", Src: []string{"blk.0.attn_q.weight", "attn_norm-0"}, Ne: []int64{256, 8}},
		{Key: "Qcur-0#2", Name: "Qcur-0", Op: "ROPE", Src: []string{"Qcur-0"}, Ne: []int64{64, 4, 8}},
	}
	var force compare.Override
	r := compare.Float(0.5)
	force.RTol = &r
	pol := CrossKernelPolicy(nodes, nil, 8, "arm64-neon", "x86-avx2", force)
	if pol.Mode != ModeCrossKernel {
		t.Errorf("mode %q", pol.Mode)
	}
	mm := pol.ResolveNode("Qcur-0", "Qcur-0", "MUL_MAT")
	rope := pol.ResolveNode("Qcur-0#2", "Qcur-0", "ROPE")
	if !(mm.NMSEMax > rope.NMSEMax) || mm.RTol != 0.5 || rope.RTol != 0.5 {
		t.Errorf("MUL_MAT %+v, ROPE %+v", mm, rope)
	}
	if got := pol.ResolveNode("other", "other", "ADD"); got.NMSEMax != 1e-10 {
		t.Errorf("a node without a key gets %+v, want the ggml default", got)
	}
}

// TestKernelDifferenceHint: judged in the ggml mode under the wrong
// profile, a reference of shared/refpack/avx512 fails with last-bit
// differences, and the blame says that they look like kernels.
func TestKernelDifferenceHint(t *testing.T) {
	pack := filepath.Join(testshared.Dir(t), "refpack", "avx512")
	d, err := reference.OpenDump(filepath.Join(pack, "dumps", "llama-f16-faon-T8"))
	if err != nil {
		t.Skipf("no AVX-512 reference pack: %v", err)
	}
	r, err := Run(d, filepath.Join(pack, d.Describe().ModelPath), RunOptions{Threads: 2, Kernels: "x86-avx2", CrossKernel: "off"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Verdict != compare.VerdictFail || r.Blame == nil {
		t.Fatalf("verdict %s, blame %+v: want a (kernel) failure", r.Verdict, r.Blame)
	}
	if !slices.ContainsFunc(r.Blame.Hints, func(h compare.Hint) bool { return h.Kind == "kernel-difference" }) {
		t.Errorf("no kernel-difference hint: %+v", r.Blame.Hints)
	}
	// The same in the cross-kernel mode passes.
	r, err = Run(d, filepath.Join(pack, d.Describe().ModelPath), RunOptions{Threads: 2, Kernels: "x86-avx2"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Verdict != compare.VerdictPass || r.Meta.Mode != ModeCrossKernel {
		t.Errorf("cross-kernel: verdict %s in mode %s", r.Verdict, r.Meta.Mode)
	}
}
