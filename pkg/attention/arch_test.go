package attention

import (
	"math"
	"strings"
	"testing"
)

func TestKQScale(t *testing.T) {
	for _, tc := range []struct {
		arch string
		hp   map[string]float64
		want float64
		how  string
	}{
		{"llama", nil, 1 / math.Sqrt(64), "1/√64"},
		{"qwen2", map[string]float64{"attention.scale": 0.1}, 0.1, "attention.scale"},
		// phi3 attends with scale 1 whatever the metadata says: its Q is
		// scaled before
		{"phi3", nil, 1, "phi3"},
		{"phi3", map[string]float64{"attention.scale": 0.1}, 1, "phi3"},
		{"", nil, 1 / math.Sqrt(64), "1/√64"},
	} {
		got, how := kqScale(64, tc.hp, tc.arch)
		if got != tc.want || !strings.Contains(how, tc.how) {
			t.Errorf("%s %v: %g (%s), want %g (%s)", tc.arch, tc.hp, got, how, tc.want, tc.how)
		}
	}
}
