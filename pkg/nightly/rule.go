package nightly

// The growth rule (docs/nightly.md, "The rule").

import (
	"fmt"
	"math"
)

// Default growth rule (docs/nightly.md, "The rule").
const (
	DefaultFactor      = 4
	DefaultNMSEFloor   = 1e-14
	DefaultMaxAbsFloor = 1e-6
)

// GrowthRule is how far a tensor's error may grow before the check calls
// it a regression: metric ≤ max(Factor·baseline, Floor).
type GrowthRule struct {
	Factor      float64 `json:"factor"`
	NMSEFloor   float64 `json:"nmse_floor"`
	MaxAbsFloor float64 `json:"max_abs_floor"`
}

// Validate checks the rule's numbers, in the words of the `baseline check`
// flags that set them: a finite factor ≥ 1, finite floors ≥ 0.
func (g GrowthRule) Validate() error {
	if math.IsNaN(g.Factor) || math.IsInf(g.Factor, 0) || g.Factor < 1 {
		return fmt.Errorf("usage: --factor %v: want a finite number ≥ 1", g.Factor)
	}
	if math.IsNaN(g.NMSEFloor) || math.IsInf(g.NMSEFloor, 0) || g.NMSEFloor < 0 {
		return fmt.Errorf("usage: --nmse-floor %v: want a finite number ≥ 0", g.NMSEFloor)
	}
	if math.IsNaN(g.MaxAbsFloor) || math.IsInf(g.MaxAbsFloor, 0) || g.MaxAbsFloor < 0 {
		return fmt.Errorf("usage: --max-abs-floor %v: want a finite number ≥ 0", g.MaxAbsFloor)
	}
	return nil
}

// String renders the rule as the formula docs/nightly.md states.
func (g GrowthRule) String() string {
	return fmt.Sprintf("nmse ≤ max(%s·baseline, %s), max_abs ≤ max(%s·baseline, %s); bit-exact stays bit-exact; statuses and verdict unchanged",
		fmtG(g.Factor), fmtG(g.NMSEFloor), fmtG(g.Factor), fmtG(g.MaxAbsFloor))
}

// limit is the largest value a metric with baseline value base may take:
// max(Factor·base, floor). A NaN or +Inf baseline sets no limit (+Inf).
// A negative baseline (not written by update) is treated as 0.
func (g GrowthRule) limit(base, floor float64) float64 {
	if math.IsNaN(base) || math.IsInf(base, 1) {
		return math.Inf(1)
	}
	if base < 0 {
		base = 0
	}
	return math.Max(g.Factor*base, floor)
}

// exceeds reports whether cur breaks the limit set by base: cur > limit, or
// cur is NaN while base is not.
func (g GrowthRule) exceeds(cur, base, floor float64) bool {
	if math.IsNaN(cur) {
		return !math.IsNaN(base)
	}
	return cur > g.limit(base, floor)
}

// usage is cur as a fraction of its limit: 0 when cur is 0, +Inf when the
// limit is 0 and cur is not, 0 when the limit is +Inf and cur finite.
func (g GrowthRule) usage(cur, base, floor float64) float64 {
	lim := g.limit(base, floor)
	switch {
	case math.IsNaN(cur):
		if math.IsNaN(base) {
			return 0
		}
		return math.Inf(1)
	case cur <= 0:
		return 0
	case math.IsInf(lim, 1):
		if math.IsInf(cur, 1) {
			return 1
		}
		return 0
	case lim == 0:
		return math.Inf(1)
	}
	return cur / lim
}
