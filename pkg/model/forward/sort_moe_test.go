package forward

import (
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// TestSortArgs checks the port of libstdc++'s std::sort: a descending
// permutation for every length (through the insertion sort, the introsort
// partitions and, with many ties, deep recursion), the unique order when
// the keys are distinct, and the stable order of the insertion sort that
// std::sort is for up to 16 elements (ARGSORT's tie order for up to 16
// experts).
func TestSortArgs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name     string
		distinct bool
		levels   int // keys drawn from this many values (ties) when not distinct
	}{{"distinct", true, 0}, {"ties", false, 3}, {"many ties", false, 2}} {
		for n := 0; n <= 300; n++ {
			x := make([]float32, n)
			for i := range x {
				if tc.distinct {
					x[i] = rng.Float32()
				} else {
					x[i] = float32(rng.IntN(tc.levels))
				}
			}
			idx := make([]int32, n)
			for i := range idx {
				idx[i] = int32(i)
			}
			sortArgs(idx, func(a, b int32) bool { return x[a] > x[b] })
			seen := make([]bool, n)
			for i, v := range idx {
				if v < 0 || int(v) >= n || seen[v] {
					t.Fatalf("%s n=%d: not a permutation: %v", tc.name, n, idx)
				}
				seen[v] = true
				if i > 0 && x[idx[i-1]] < x[v] {
					t.Fatalf("%s n=%d: not descending at %d", tc.name, n, i)
				}
			}
			if tc.distinct || n <= sortThreshold {
				want := make([]int32, n)
				for i := range want {
					want[i] = int32(i)
				}
				sort.SliceStable(want, func(a, b int) bool { return x[want[a]] > x[want[b]] })
				if !slices.Equal(idx, want) {
					t.Fatalf("%s n=%d: %v, want %v", tc.name, n, idx, want)
				}
			}
		}
	}
}
