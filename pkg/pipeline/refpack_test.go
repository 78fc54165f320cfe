package pipeline

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/layerdiff/layerdiff/internal/testshared"
	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// TestRefpackBitIdentical runs layerdiff against every dump of the
// reference packs in shared/refpack (llama.cpp dumps recorded on CPUs this
// machine may not have): each must pass in the default mode with the
// kernel profile chosen from the dump's own system_info, every compared
// tensor bit-identical (what --mode bitexact requires).
func TestRefpackBitIdentical(t *testing.T) {
	root := filepath.Join(testshared.Dir(t), "refpack")
	packs, _ := filepath.Glob(filepath.Join(root, "*", "dumps"))
	if len(packs) == 0 {
		t.Skipf("no reference packs in %s", root)
	}
	for _, dumps := range packs {
		pack := filepath.Dir(dumps)
		cells, err := os.ReadDir(dumps)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range cells {
			if c.IsDir() {
				names = append(names, c.Name())
			}
		}
		sort.Strings(names)
		same := 0
		for _, name := range names {
			t.Run(filepath.Base(pack)+"/"+name, func(t *testing.T) {
				d, err := reference.OpenDump(filepath.Join(dumps, name))
				if err != nil {
					t.Fatal(err)
				}
				info := d.Describe()
				kc, err := ChooseKernels("", reference.KernelProfile(info.SystemInfo))
				if err != nil {
					t.Fatal(err)
				}
				if !kc.Exact {
					t.Skipf("%s: %s", name, kc.Note)
				}
				// manifest model paths are relative to the pack
				r, err := Run(d, filepath.Join(pack, info.ModelPath), RunOptions{Threads: 2})
				if err != nil {
					t.Fatal(err)
				}
				if r.Verdict != compare.VerdictPass {
					t.Errorf("%s: verdict %s (first divergence %+v)", name, r.Verdict, r.FirstDivergence)
				}
				if got := r.Meta.Other.Kernels; got != kc.Reference {
					t.Errorf("%s: emulated kernels %q, want the reference's %q", name, got, kc.Reference)
				}
				ident := true
				for _, row := range r.Tensors {
					if row.Status != compare.Pass && row.Status != compare.Unmeasured {
						continue
					}
					if m := row.Metrics; m != nil && m.BitIdentical != m.N {
						ident = false
						t.Errorf("%s: %s: %d of %d elements bit-identical", name, row.Key, m.BitIdentical, m.N)
					}
				}
				if ident {
					same++
				}
			})
		}
		t.Logf("%s: %d of %d dumps bit-identical (kernels from each dump's system_info)", filepath.Base(pack), same, len(names))
	}
}

// TestRefpackCrossKernel runs every dump of the reference packs under a
// kernel profile other than the dump's own, so that the ggml numerics do
// not reproduce the reference: the cross-kernel mode must pass every cell
// (no false alarm from kernel differences), judged by the bounds of
// docs/tolerance.md.
func TestRefpackCrossKernel(t *testing.T) {
	root := filepath.Join(testshared.Dir(t), "refpack")
	cells, _ := filepath.Glob(filepath.Join(root, "*", "dumps", "*"))
	if len(cells) == 0 {
		t.Skipf("no reference packs in %s", root)
	}
	pass := 0
	for _, cell := range cells {
		pack := filepath.Dir(filepath.Dir(cell))
		t.Run(filepath.Base(pack)+"/"+filepath.Base(cell), func(t *testing.T) {
			d, err := reference.OpenDump(cell)
			if err != nil {
				t.Fatal(err)
			}
			info := d.Describe()
			other := forward.KernelsAVX2
			if reference.ProfileBase(reference.KernelProfile(info.SystemInfo)) == forward.KernelsAVX2 {
				other = forward.KernelsAVX512
			}
			r, err := Run(d, filepath.Join(pack, info.ModelPath), RunOptions{Threads: 2, Kernels: other})
			if err != nil {
				t.Fatal(err)
			}
			if r.Meta.Mode != ModeCrossKernel {
				t.Fatalf("judged in mode %q, want %s (reference %s, emulated %s)", r.Meta.Mode, ModeCrossKernel, r.Meta.Reference.Kernels, other)
			}
			if r.Verdict != compare.VerdictPass {
				t.Errorf("verdict %s: %+v", r.Verdict, r.FirstDivergence)
				return
			}
			pass++
		})
	}
	t.Logf("%d of %d cells pass in the cross-kernel mode", pass, len(cells))
}
