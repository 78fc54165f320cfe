package forward

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// TestSwigluFusedMatchesSplit checks, in every kernel profile and the f64
// numerics, that ggml_swiglu of a row of 2·nc values (phi3's fused
// gate-up) is bit for bit ggml_swiglu_split of its two halves (llama's
// gate and up, which TestFixturesMatchLlamaCpp checks against llama.cpp),
// and that the swapped form takes the gate from the second half; nc covers
// the 8- and 16-lane chunks and their tails.
func TestSwigluFusedMatchesSplit(t *testing.T) {
	profiles := append(KernelProfiles(), "f64")
	for _, p := range profiles {
		for _, nc := range []int64{512, 37, 24, 8, 1} {
			for _, swapped := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/nc=%d/swapped=%v", p, nc, swapped), func(t *testing.T) {
					e := &executor{threads: 1, exact: p == "f64"}
					if !e.exact {
						k, err := kernelsOf(p)
						if err != nil {
							t.Fatal(err)
						}
						e.k = k
					}
					g := &graph{}
					const rows = 3
					a := g.leaf(quant.F32, 2*nc, rows)
					a.alloc()
					rng := rand.New(rand.NewPCG(uint64(nc), 7))
					for i := range a.buf.f32 {
						a.buf.f32[i] = float32(4 * rng.NormFloat64())
					}
					fused := g.swiglu(a)
					gate := g.view2d(a, nc, rows, a.nb[1], 0)
					up := g.view2d(a, nc, rows, a.nb[1], 4*nc)
					split := g.swigluSplit(gate, up)
					if swapped {
						fused.ip[1] = 1
						split = g.swigluSplit(up, gate)
					}
					if fused.ne != split.ne {
						t.Fatalf("fused shape %v, split %v", fused.ne, split.ne)
					}
					for _, n := range []*node{fused, split} {
						e.alloc(n)
						if err := e.compute(n); err != nil {
							t.Fatal(err)
						}
					}
					for i, v := range fused.buf.f32 {
						if w := split.buf.f32[i]; math.Float32bits(v) != math.Float32bits(w) {
							t.Fatalf("element %d: fused %g, split %g", i, v, w)
						}
					}
				})
			}
		}
	}
}
