package compare

import (
	"strings"
	"testing"
)

// TestMeasureSelection: rows {4 experts, T tokens} of indices, k = 2.
func TestMeasureSelection(t *testing.T) {
	probs := []float32{0.1, 0.5, 0.3, 0.1, 0.2, 0.2, 0.35, 0.25}
	other := []float32{0.1, 0.5, 0.3, 0.1, 0.2, 0.22, 0.33, 0.25}
	for _, tc := range []struct {
		name       string
		ref, oth   []float32
		differ     int
		sameSet    bool
		experts    []int
		gap        float64
		reasonPart string
	}{
		{"same selection, the rest in another order", []float32{1, 2, 0, 3, 2, 3, 0, 1}, []float32{1, 2, 3, 0, 2, 3, 1, 0}, 0, false, nil, 0, ""},
		{"same experts, other order", []float32{1, 2, 0, 3, 2, 3, 0, 1}, []float32{2, 1, 0, 3, 2, 3, 0, 1}, 1, true, []int{1, 2}, 0.2, "another order"},
		{"another expert", []float32{1, 2, 0, 3, 2, 3, 0, 1}, []float32{1, 2, 0, 3, 2, 1, 3, 0}, 1, false, []int{3, 1}, 0.05, "selects [2 3] here, [2 1] there"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := measureSelection(tc.ref, tc.oth, 4, 2, 0, probs, other, "ffn_moe_probs-0")
			if s.Differ != tc.differ {
				t.Fatalf("differ %d, want %d: %+v", s.Differ, tc.differ, s)
			}
			j := Judge(&Metrics{N: 8, Selection: s}, Tolerance{Selection: true})
			if tc.differ == 0 {
				if j.Status != Pass {
					t.Errorf("status %s: %v", j.Status, j.Reasons)
				}
				return
			}
			ts := s.Tokens[0]
			if ts.SameSet != tc.sameSet || len(ts.Experts) != len(tc.experts) {
				t.Fatalf("%+v", ts)
			}
			for i := range tc.experts {
				if ts.Experts[i] != tc.experts[i] {
					t.Fatalf("experts %v, want %v", ts.Experts, tc.experts)
				}
			}
			if d := ts.Gap - tc.gap; d > 1e-6 || d < -1e-6 {
				t.Errorf("gap %v, want %v", ts.Gap, tc.gap)
			}
			if j.Status != Fail || len(j.Reasons) != 1 || !strings.Contains(j.Reasons[0], tc.reasonPart) || !strings.Contains(j.Reasons[0], "router probabilities") {
				t.Errorf("status %s: %v", j.Status, j.Reasons)
			}
		})
	}
}

// TestSelectionPolicy: ARGSORT is judged as a selection in the ggml and
// f64 modes, bit for bit in the bitexact mode.
func TestSelectionPolicy(t *testing.T) {
	for _, mode := range Modes() {
		tol := MustPolicy(mode).Resolve("ffn_moe_argsort-0", "ARGSORT")
		if tol.Selection != (mode != ModeBitExact) {
			t.Errorf("%s: selection %v", mode, tol.Selection)
		}
	}
}
