package nightly

import (
	"math"
	"testing"
)

var defaultRule = GrowthRule{Factor: DefaultFactor, NMSEFloor: DefaultNMSEFloor, MaxAbsFloor: DefaultMaxAbsFloor}

func TestGrowthRule(t *testing.T) {
	g := GrowthRule{Factor: 4, NMSEFloor: 1e-14, MaxAbsFloor: 1e-6}
	inf, nan := math.Inf(1), math.NaN()
	for _, tc := range []struct {
		name            string
		cur, base, flor float64
		limit           float64
		exceeds         bool
		usage           float64
	}{
		{"unchanged", 1e-6, 1e-6, 1e-14, 4e-6, false, 0.25},
		{"at the limit", 4e-6, 1e-6, 1e-14, 4e-6, false, 1},
		{"one ulp past the limit", math.Nextafter(4e-6, 1), 1e-6, 1e-14, 4e-6, true, math.Nextafter(4e-6, 1) / 4e-6},
		{"shrunk", 1e-9, 1e-6, 1e-14, 4e-6, false, 1e-9 / 4e-6},
		{"zero baseline, zero now", 0, 0, 1e-14, 1e-14, false, 0},
		{"zero baseline, within the floor", 1e-14, 0, 1e-14, 1e-14, false, 1},
		{"zero baseline, past the floor", 2e-14, 0, 1e-14, 1e-14, true, 2},
		{"tiny baseline: the floor wins", 1e-14, 1e-16, 1e-14, 1e-14, false, 1},
		{"zero floor, zero baseline", 1e-30, 0, 0, 0, true, inf},
		{"zero floor, zero baseline, zero now", 0, 0, 0, 0, false, 0},
		{"+Inf baseline sets no limit", 1e30, inf, 1e-14, inf, false, 0},
		{"+Inf baseline, +Inf now", inf, inf, 1e-14, inf, false, 1},
		{"+Inf now", inf, 1e-6, 1e-14, 4e-6, true, inf},
		{"NaN now", nan, 1e-6, 1e-14, 4e-6, true, inf},
		{"NaN baseline, NaN now", nan, nan, 1e-14, inf, false, 0},
		{"NaN baseline, number now", 5, nan, 1e-14, inf, false, 0},
		{"negative baseline counts as zero", 1e-15, -1, 1e-14, 1e-14, false, 0.1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := g.limit(tc.base, tc.flor); got != tc.limit {
				t.Errorf("limit(%g, %g) = %g, want %g", tc.base, tc.flor, got, tc.limit)
			}
			if got := g.exceeds(tc.cur, tc.base, tc.flor); got != tc.exceeds {
				t.Errorf("exceeds(%g, %g, %g) = %v, want %v", tc.cur, tc.base, tc.flor, got, tc.exceeds)
			}
			if got := g.usage(tc.cur, tc.base, tc.flor); math.Abs(got-tc.usage) > 1e-12*math.Max(1, tc.usage) && got != tc.usage {
				t.Errorf("usage(%g, %g, %g) = %g, want %g", tc.cur, tc.base, tc.flor, got, tc.usage)
			}
		})
	}
}

func TestGrowthRuleValidate(t *testing.T) {
	for _, tc := range []struct {
		g  GrowthRule
		ok bool
	}{
		{defaultRule, true},
		{GrowthRule{Factor: 1}, true},
		{GrowthRule{Factor: math.Nextafter(1, 0)}, false},
		{GrowthRule{Factor: math.NaN()}, false},
		{GrowthRule{Factor: math.Inf(1)}, false},
		{GrowthRule{Factor: 2, NMSEFloor: -1e-30}, false},
		{GrowthRule{Factor: 2, MaxAbsFloor: math.Inf(1)}, false},
	} {
		if err := tc.g.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: validate() = %v, want ok %v", tc.g, err, tc.ok)
		}
	}
}
