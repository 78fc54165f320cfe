package compare

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// randomTensor draws n values mixing normal numbers with the special ones a
// measurement must classify: NaN (two payloads), ±Inf, ±0, subnormals.
func randomTensor(r *rand.Rand, n int) []float32 {
	a := make([]float32, n)
	for i := range a {
		switch r.IntN(40) {
		case 0:
			a[i] = float32(math.NaN())
		case 1:
			a[i] = math.Float32frombits(0x7fc00001)
		case 2:
			a[i] = float32(math.Inf(1))
		case 3:
			a[i] = float32(math.Inf(-1))
		case 4:
			a[i] = float32(math.Copysign(0, -1))
		case 5:
			a[i] = math.Float32frombits(uint32(r.IntN(1 << 23)))
		default:
			a[i] = float32(r.NormFloat64() * math.Exp(4*r.NormFloat64()))
		}
	}
	return a
}

// TestMeasureIdenticalMatchesGeneral is the differential test of
// measureFull's fast path: on bit-identical pairs it must return exactly
// what the general three-pass measurement returns, for every layout and
// tolerance, non-finite values included.
func TestMeasureIdenticalMatchesGeneral(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tols := []Tolerance{
		{},
		{ATol: 1e-6, RTol: 1e-3, ATolRMS: 1e-4},
		{ATolRMS: 0.5},
		{ATol: -1},             // negative bound: the fast path declines
		{RTol: -0.5, ATol: 10}, // negative rtol: declines too
	}
	for c := 0; c < 400; c++ {
		n := r.IntN(3000)
		if c%50 == 0 {
			n = 0
		}
		a := randomTensor(r, n)
		if c%7 == 0 {
			for i := range a { // all non-finite
				a[i] = float32(math.NaN())
			}
		}
		lay := Layout{Ne: []int64{int64(max(n, 1))}}
		if c%3 != 0 && n > 0 {
			lay.TokenStride = int64(1 + r.IntN(60))
			lay.TokenCount = 1 + r.IntN(9)
			lay.TokenBase = r.IntN(4)
		}
		tol := tols[c%len(tols)]
		got := measureFull(a, slices.Clone(a), lay, tol, 10)
		want := measureGeneral(a, slices.Clone(a), lay, tol, 10)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d (n %d, layout %+v, tol %+v):\nfast    %+v\ngeneral %+v", c, n, lay, tol, got, want)
		}
	}
}

// TestTokenAccNext checks the division-free token walk against index.
func TestTokenAccNext(t *testing.T) {
	for _, lay := range []Layout{{}, {TokenStride: 1, TokenCount: 1}, {TokenStride: 3, TokenCount: 4}, {TokenStride: 7, TokenCount: 2}} {
		acc := newTokenAcc(lay)
		for i := int64(0); i < 100; i++ {
			if got, want := acc.next(), acc.index(i); got != want {
				t.Fatalf("layout %+v element %d: next %d, index %d", lay, i, got, want)
			}
		}
	}
}

func BenchmarkMeasureFull(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	a := make([]float32, 2048*32)
	for i := range a {
		a[i] = float32(r.NormFloat64())
	}
	lay := Layout{Ne: []int64{2048, 32}, TokenStride: 2048, TokenCount: 32}
	tol := Tolerance{ATolRMS: 1e-3, RTol: 1e-3}
	other := slices.Clone(a)
	near := slices.Clone(a)
	for i := range near {
		near[i] = math.Nextafter32(near[i], 10)
	}
	for _, c := range []struct {
		name string
		b    []float32
	}{{"identical", other}, {"one-ulp", near}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(a)))
			for b.Loop() {
				measureFull(a, c.b, lay, tol, 10)
			}
		})
		b.Run(c.name+"/general", func(b *testing.B) {
			b.SetBytes(int64(4 * len(a)))
			for b.Loop() {
				measureGeneral(a, c.b, lay, tol, 10)
			}
		})
	}
}
