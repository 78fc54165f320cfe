package compare

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Coverage says how much of the reference a comparison measured. A PASS
// says nothing about the reference nodes it did not measure, so a report
// states its coverage next to its verdict.
//
// The nodes counted are the reference's nodes that hold data, are not
// views and were not skipped by the caller's filter: views (VIEW, RESHAPE,
// PERMUTE, TRANSPOSE; by name suffix when the op is unknown) show another
// node's data, and a node without data can be measured by no engine. Of
// those, Measured were compared (pass or fail).
type Coverage struct {
	// Nodes is how many reference nodes count.
	Nodes int `json:"nodes"`
	// Measured is how many of them were compared: status pass or fail.
	Measured int `json:"measured"`
	// Unmeasured is Nodes − Measured: counted nodes without a measurement
	// (no counterpart, unreadable, shapes without correspondence).
	Unmeasured int `json:"unmeasured"`
	// Fraction is Measured/Nodes, 0 when Nodes is 0.
	Fraction Float `json:"fraction"`
	// Views, NoData and Skipped count the reference rows left out of
	// Nodes, by reason (a skipped view counts as skipped).
	Views   int `json:"views"`
	NoData  int `json:"no_data"`
	Skipped int `json:"skipped"`
	// Min is the coverage the verdict was held to (RequireCoverage,
	// --min-coverage), 0 when none was required.
	Min Float `json:"min,omitempty"`
	// BelowMin is true when Fraction < Min: the verdict is then fail.
	BelowMin bool `json:"below_min,omitempty"`
}

// LowCoverage is the fraction below which a passing report says in its
// headline, and in a warning, on how little of the reference it stands.
const LowCoverage = 0.5

// reasonNoData is the reason of a reference row whose node holds no data.
const reasonNoData = "reference has no data"

// CoverageOf counts the coverage of a report's rows (see Coverage): views
// are told by op and name as alignment tells them, nodes without data by
// their reason "reference has no data".
func CoverageOf(rows []Row) Coverage {
	var c Coverage
	for i := range rows {
		row := &rows[i]
		switch {
		case row.Status == Skipped:
			c.Skipped++
		case isView(row.Name, row.Op):
			c.Views++
		case row.Status == Unmeasured && len(row.Reasons) > 0 && row.Reasons[0] == reasonNoData:
			c.NoData++
		default:
			c.Nodes++
			if row.Status == Pass || row.Status == Fail {
				c.Measured++
			}
		}
	}
	c.Unmeasured = c.Nodes - c.Measured
	if c.Nodes > 0 {
		c.Fraction = Float(float64(c.Measured) / float64(c.Nodes))
	}
	return c
}

// isView tells a node that shows another node's data, as alignment does:
// by its op, or by a name suffix (" (view)", " (reshaped)", …) when the
// op is unknown.
func isView(name, op string) bool {
	return describe([]Node{{Name: name, Op: op}}, nil)[0].view
}

// CoverageInfo returns the report's coverage: Coverage when set, else
// counted from the rows (reports saved before the field existed).
func (r *Report) CoverageInfo() Coverage {
	if r.Coverage != nil {
		return *r.Coverage
	}
	return CoverageOf(r.Tensors)
}

// Low tells whether the coverage is below LowCoverage; false when no node
// is counted (nothing to take a fraction of).
func (c Coverage) Low() bool { return c.Nodes > 0 && float64(c.Fraction) < LowCoverage }

// Percent formats Fraction as a percentage that never rounds a partial
// coverage to 0% or 100%: "6%", "<1%", "99%", "100%".
func (c Coverage) Percent() string {
	return Percent(float64(c.Fraction), c.Measured > 0, c.Measured < c.Nodes)
}

// Percent formats a fraction 0..1 as a whole percentage; some says that
// the fraction is not 0 (it then prints at least "<1%"), partial that it
// is not 1 (it then prints at most "99%").
func Percent(f float64, some, partial bool) string {
	p := 100 * f
	switch {
	case math.IsNaN(p):
		return "NaN%"
	case some && p < 1:
		return "<1%"
	}
	n := math.Floor(p + 0.5)
	if partial && n >= 100 {
		n = 99
	}
	return strconv.FormatFloat(n, 'f', 0, 64) + "%"
}

// Phrase describes the coverage in one clause: "3 of 52 reference nodes
// measured (6%)".
func (c Coverage) Phrase() string {
	if c.Nodes == 0 {
		return "no reference node counted (views, nodes without data and skipped nodes are not)"
	}
	return fmt.Sprintf("%d of %s measured (%s)", c.Measured, plural(c.Nodes, "reference node"), c.Percent())
}

// Uncounted lists what the count leaves out: "not counted: 17 views, 2
// nodes without data"; "" when nothing is left out.
func (c Coverage) Uncounted() string {
	var s []string
	if c.Views > 0 {
		s = append(s, plural(c.Views, "view"))
	}
	if c.NoData > 0 {
		s = append(s, plural(c.NoData, "node")+" without data")
	}
	if c.Skipped > 0 {
		s = append(s, plural(c.Skipped, "node")+" skipped by the filter")
	}
	if len(s) == 0 {
		return ""
	}
	return "not counted: " + strings.Join(s, ", ")
}

// RequireCoverage holds the report's verdict to a minimum coverage min
// (0..1; 0 requires nothing): below it a pass becomes a fail, with no
// first divergence, Coverage.BelowMin saying why. A fail that was one only
// for an earlier requirement is judged again, so a saved report can be
// re-rendered with another minimum. A fail found in the tensors stays a
// fail, and unmeasured stays unmeasured.
func (r *Report) RequireCoverage(min float64) {
	c := r.CoverageInfo()
	if c.BelowMin && r.Verdict == VerdictFail && r.Summary.Fail == 0 && r.FirstDivergence == nil {
		r.Verdict = VerdictPass
	}
	c.Min = Float(min)
	// Measured < min·Nodes, with room for the rounding of min·Nodes: 50%
	// of 52 nodes needs 26, 30% of 10 needs 3. With no node counted there
	// is no coverage to meet any minimum.
	c.BelowMin = min > 0 && (c.Nodes == 0 || float64(c.Measured) < min*float64(c.Nodes)-1e-9)
	r.Coverage = &c
	if c.BelowMin && r.Verdict == VerdictPass {
		r.Verdict = VerdictFail
	}
}

// ParseMinCoverage parses a minimum coverage: a fraction from 0 to 1
// ("0.5") or a percentage from 0% to 100% ("50%").
func ParseMinCoverage(s string) (float64, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	num := strings.TrimSpace(strings.TrimSuffix(t, "%"))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a number: want a fraction from 0 to 1 (0.5) or a percentage (50%%)", s)
	}
	if pct {
		if v < 0 || v > 100 {
			return 0, fmt.Errorf("%q is outside 0%% to 100%%", s)
		}
		return v / 100, nil
	}
	if v < 0 || v > 1 {
		if v > 1 && v <= 100 {
			return 0, fmt.Errorf("%q is outside 0 to 1: a percentage needs its %% sign (%s%%)", s, num)
		}
		return 0, errors.New(strconv.Quote(s) + " is outside 0 to 1")
	}
	return v, nil
}
