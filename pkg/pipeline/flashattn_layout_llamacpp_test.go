//go:build llamacpp

package pipeline

import (
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
)

// TestCompareFlashAttnOnOff compares real llama.cpp dumps made with flash
// attention on and off, both ways round: the V cache, which llama.cpp
// stores transposed without flash attention, must be mapped (swap-axes),
// and in layer 0 (before any attention) be bit-identical on every element;
// everything must pass the f64 mode's tolerance.
func TestCompareFlashAttnOnOff(t *testing.T) {
	pol := compare.MustPolicy(compare.ModeF64)
	for _, arch := range []string{"llama", "qwen2", "qwen3"} {
		m := fixtureModel(t, arch, "q8_0")
		on, off := dumpOf(t, m, "on"), dumpOf(t, m, "off")
		for _, pair := range [][2]string{{"on", "off"}, {"off", "on"}} {
			a, b := on, off
			if pair[0] == "off" {
				a, b = off, on
			}
			r, err := Compare(a, b, CompareOptions{Policy: pol})
			if err != nil {
				t.Fatal(err)
			}
			what := arch + " flash attention " + pair[0] + " vs " + pair[1]
			wantPass(t, what, r)
			swapped := 0
			for _, row := range r.Tensors {
				base, _, _ := strings.Cut(row.Name, " ")
				if !strings.HasPrefix(base, "cache_v_l") || row.Status != compare.Pass {
					continue
				}
				if row.Transform != compare.SwapAxes {
					t.Errorf("%s: %s (%v vs %v) compared %q, want %q", what, row.Key, row.Ne, row.Other.Ne, row.Transform, compare.SwapAxes)
					continue
				}
				swapped++
				// Layer 0's V is computed before any attention: the
				// same bits both ways. Later layers inherit attention's
				// rounding differences.
				if m := row.Metrics; row.Layer == 0 && m.BitIdentical != m.N {
					t.Errorf("%s: %s: %d of %d elements bit-identical", what, row.Key, m.BitIdentical, m.N)
				}
			}
			// Per layer: the SET_ROWS destination, the view attention
			// reads, and its permutation.
			if swapped != 3*2 {
				t.Errorf("%s: %d V-cache rows compared transposed, want 6 (3 per layer)", what, swapped)
			}
		}
	}
}
