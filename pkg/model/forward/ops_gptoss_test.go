package forward

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// gptossExecutor is an executor of kernel profile p ("f64": the exact
// numerics).
func gptossExecutor(t *testing.T, p string) *executor {
	t.Helper()
	e := &executor{threads: 1, exact: p == "f64"}
	if !e.exact {
		k, err := kernelsOf(p)
		if err != nil {
			t.Fatal(err)
		}
		e.k = k
	}
	return e
}

// randLeaf is an F32 leaf of shape ne with N(0, std²) values.
func randLeaf(g *graph, rng *rand.Rand, std float64, ne ...int64) *node {
	n := g.leaf(quant.F32, ne...)
	n.alloc()
	for i := range n.buf.f32 {
		n.buf.f32[i] = float32(std * rng.NormFloat64())
	}
	return n
}

// TestSwigluOAIClampsAndAgrees checks SWIGLU_OAI in every kernel profile
// against its float64 formula (x clamped above at the limit, the up value
// clamped to ±limit; alpha 1.702, limit 7 as build_moe_ffn): within a
// few float32 ulps of the f64 result (plus the rounding of alpha·x that
// expf amplifies), values far beyond the limit included.
func TestSwigluOAIClampsAndAgrees(t *testing.T) {
	for _, p := range append(KernelProfiles(), "f64") {
		t.Run(p, func(t *testing.T) {
			e := gptossExecutor(t, p)
			g := &graph{}
			rng := rand.New(rand.NewPCG(3, 9))
			a := randLeaf(g, rng, 6, 37, 3) // beyond ±7 often
			b := randLeaf(g, rng, 6, 37, 3)
			a.buf.f32[0], b.buf.f32[0] = 100, -100
			n := g.swigluOAI(a, b, gptossAlpha, gptossLimit)
			e.alloc(n)
			if err := e.compute(n); err != nil {
				t.Fatal(err)
			}
			for i, v := range n.buf.f32 {
				x := math.Min(float64(a.buf.f32[i]), gptossLimit)
				y := math.Max(math.Min(float64(b.buf.f32[i]), gptossLimit), -gptossLimit)
				want := x / (1 + math.Exp(-float64(float32(gptossAlpha))*x)) * (y + 1)
				// float32 rounds alpha·x before expf: a relative error of
				// |alpha·x|·2⁻²⁴ in the exponential, on top of a few ulps
				ulps := 4 + math.Abs(gptossAlpha*x)
				if d := math.Abs(float64(v) - want); d > ulps*math.Abs(want)*0x1p-24+1e-30 {
					t.Fatalf("element %d (x %g, y %g): %g, want %g", i, a.buf.f32[i], b.buf.f32[i], v, want)
				}
			}
		})
	}
}

// TestAddID checks ADD_ID (every row plus the bias row its id picks) and
// its refusals: ids outside the biases, non-I32 ids.
func TestAddID(t *testing.T) {
	g := &graph{}
	rng := rand.New(rand.NewPCG(5, 1))
	a := randLeaf(g, rng, 1, 8, 2, 3) // {n_ff, n_expert_used, n_tokens}
	b := randLeaf(g, rng, 1, 8, 4)    // {n_ff, n_expert}
	ids := g.leaf(quant.I32, 2, 3)
	ids.alloc()
	copy(ids.buf.i32, []int32{3, 0, 1, 2, 2, 3})
	e := gptossExecutor(t, KernelsAVX512)
	n := g.addID(a, b, ids)
	e.alloc(n)
	if err := e.compute(n); err != nil {
		t.Fatal(err)
	}
	for tok := int64(0); tok < 3; tok++ {
		for s := int64(0); s < 2; s++ {
			id := int64(ids.buf.i32[s+2*tok])
			for i := int64(0); i < 8; i++ {
				want := a.at(i, s, tok, 0) + b.at(i, id, 0, 0)
				if got := n.at(i, s, tok, 0); got != want {
					t.Fatalf("(%d, %d, %d): %g, want %g", i, s, tok, got, want)
				}
			}
		}
	}
	for _, tc := range []struct {
		name string
		id   int32
		typ  quant.Type
		want string
	}{
		{"id past the biases", 4, quant.I32, "outside the 4 bias rows"},
		{"negative id", -1, quant.I32, "outside the 4 bias rows"},
		{"F32 ids", 0, quant.F32, "want I32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := g.leaf(tc.typ, 2, 3)
			bad.alloc()
			if tc.typ == quant.I32 {
				bad.buf.i32[3] = tc.id
			}
			n := g.addID(a, b, bad)
			e.alloc(n)
			err := e.compute(n)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestSoftMaxSinks checks SOFT_MAX with sinks in every kernel profile and
// the f64 numerics: each row's probabilities sum to 1 minus the sink's
// share exp(s - max)/Σ, which the f64 computation gives, and without sinks
// the row sums to 1.
func TestSoftMaxSinks(t *testing.T) {
	for _, p := range append(KernelProfiles(), "f64") {
		for _, withSinks := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/sinks=%v", p, withSinks), func(t *testing.T) {
				e := gptossExecutor(t, p)
				g := &graph{}
				rng := rand.New(rand.NewPCG(11, 2))
				const nkv, T, H = 21, 3, 4
				kq := randLeaf(g, rng, 2, nkv, T, H)
				sinks := randLeaf(g, rng, 2, H)
				sinks.buf.f32[2] = 30 // a sink far above every score
				n := g.softMaxExt(kq, nil, 0.5, 0)
				if withSinks {
					addSinks(n, sinks)
				}
				e.alloc(n)
				if err := e.compute(n); err != nil {
					t.Fatal(err)
				}
				for h := int64(0); h < H; h++ {
					for r := int64(0); r < T; r++ {
						x := kq.rowF32(r, h, 0, nil)
						max := math.Inf(-1)
						for _, v := range x {
							max = math.Max(max, 0.5*float64(v))
						}
						sink := 0.0
						if withSinks {
							max = math.Max(max, float64(sinks.buf.f32[h]))
							sink = math.Exp(float64(sinks.buf.f32[h]) - max)
						}
						var z float64
						for _, v := range x {
							z += math.Exp(0.5*float64(v) - max)
						}
						var got float64
						for _, v := range n.rowF32(r, h, 0, nil) {
							got += float64(v)
						}
						if want := z / (z + sink); math.Abs(got-want) > 1e-5*want+1e-30 {
							t.Fatalf("head %d row %d: sum %g, want %g", h, r, got, want)
						}
					}
				}
			})
		}
	}
}

// TestGptOssUnderNEONIsRefused checks that the arm64-neon profile, which
// does not emulate MUL_MAT_ID, stops a gpt-oss run with an error naming
// the op instead of computing something else.
func TestGptOssUnderNEONIsRefused(t *testing.T) {
	m := fixtureModel(t, fixture.Default("gpt-oss"))
	o := DefaultOptions()
	o.Kernels = KernelsARM64NEON
	_, err := m.Run([]int32{1, 300, 301}, o, nil)
	if err == nil || !strings.Contains(err.Error(), "MUL_MAT_ID") {
		t.Fatalf("error %v, want one naming MUL_MAT_ID", err)
	}
}
