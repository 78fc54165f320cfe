package main

// `layerdiff baseline`: the nightly regression check (scripts/nightly.sh,
// docs/nightly.md). A baseline is a compact record of one matrix cell's
// comparison — per tensor its status, NMSE, max |a−b| and whether it was
// bit-exact, plus the verdict — committed under fixtures/baselines/. The
// check holds a fresh result (a `layerdiff run --save` report) against it
// with the growth rule of docs/nightly.md; the summary combines the checks
// of a whole matrix into markdown and JUnit.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// baselineSchema is the version of the baseline file format. It changes
// only when a field changes meaning or is removed.
const baselineSchema = 1

// maxBaselineBytes bounds what readBaseline and readCellCheck accept.
const maxBaselineBytes = 64 << 20

// Default growth rule (docs/nightly.md, "The rule").
const (
	defaultGrowthFactor = 4
	defaultNMSEFloor    = 1e-14
	defaultMaxAbsFloor  = 1e-6
)

// verdictError is the verdict of a cell that could not be run (the
// fixture, dump or run failed): a baseline may record it, with the message.
const verdictError compare.Verdict = "error"

// baseline is the committed record of one nightly cell (docs/nightly.md,
// "Baseline files").
type baseline struct {
	Schema int    `json:"schema"`
	Cell   string `json:"cell"`
	// Verdict is the verdict of the recorded result, or verdictError.
	Verdict compare.Verdict `json:"verdict"`
	// Error is the message of a cell that could not be run (verdict
	// "error"), with the cache directory removed from paths.
	Error string `json:"error,omitempty"`
	// Mode is the tolerance policy's mode the statuses were judged with.
	Mode string `json:"mode"`
	// FirstDivergence is "name (OP, layer L)" of the first failing tensor,
	// empty when none failed. Informational.
	FirstDivergence string `json:"first_divergence,omitempty"`
	// Prompt, NTokens, ModelSHA256 and SystemInfo describe what was run;
	// the check warns (and does not fail) when they differ.
	Prompt      string `json:"prompt,omitempty"`
	NTokens     int    `json:"n_tokens,omitempty"`
	ModelSHA256 string `json:"model_sha256,omitempty"`
	SystemInfo  string `json:"system_info,omitempty"`
	// Kernels is the kernel profile of that system_info
	// (reference.KernelProfile): the baseline holds for references of
	// this profile.
	Kernels string `json:"kernels,omitempty"`
	// Tensors has one entry per report row, in graph order.
	Tensors []baselineTensor `json:"tensors"`
}

// baselineTensor is one report row in a baseline. NMSE and MaxAbs are nil
// when the row had no metrics (unmeasured or skipped). A bit-exact row is
// written without them (both are 0) and read back with them.
type baselineTensor struct {
	// Name is the row's unique key (the node name, "name#N" for repeats).
	Name   string         `json:"name"`
	Status compare.Status `json:"status"`
	// Exact: every compared element was bit-identical. Omitted when false.
	Exact  bool           `json:"exact,omitempty"`
	NMSE   *compare.Float `json:"nmse,omitempty"`
	MaxAbs *compare.Float `json:"max_abs,omitempty"`
}

// growthRule is how far a tensor's error may grow before the check calls
// it a regression: metric ≤ max(Factor·baseline, Floor).
type growthRule struct {
	Factor      float64 `json:"factor"`
	NMSEFloor   float64 `json:"nmse_floor"`
	MaxAbsFloor float64 `json:"max_abs_floor"`
}

func (g growthRule) validate() error {
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
func (g growthRule) String() string {
	return fmt.Sprintf("nmse ≤ max(%s·baseline, %s), max_abs ≤ max(%s·baseline, %s); bit-exact stays bit-exact; statuses and verdict unchanged",
		fmtG(g.Factor), fmtG(g.NMSEFloor), fmtG(g.Factor), fmtG(g.MaxAbsFloor))
}

// limit is the largest value a metric with baseline value base may take:
// max(Factor·base, floor). A NaN or +Inf baseline sets no limit (+Inf).
// A negative baseline (not written by update) is treated as 0.
func (g growthRule) limit(base, floor float64) float64 {
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
func (g growthRule) exceeds(cur, base, floor float64) bool {
	if math.IsNaN(cur) {
		return !math.IsNaN(base)
	}
	return cur > g.limit(base, floor)
}

// usage is cur as a fraction of its limit: 0 when cur is 0, +Inf when the
// limit is 0 and cur is not, 0 when the limit is +Inf and cur finite.
func (g growthRule) usage(cur, base, floor float64) float64 {
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

// Finding severities.
const (
	sevRegression  = "regression"
	sevImprovement = "improvement"
	sevChange      = "change"
)

// Finding kinds.
const (
	kindVerdict = "verdict"
	kindStatus  = "status"
	kindNMSE    = "nmse"
	kindMaxAbs  = "max_abs"
	kindExact   = "exact"
	kindMissing = "missing"
	kindNew     = "new"
)

// Cell outcomes.
const (
	outcomeOK         = "ok"
	outcomeRegressed  = "regressed"
	outcomeChanged    = "changed"
	outcomeNoBaseline = "no-baseline"
	outcomeError      = "error"
)

// finding is one difference between a result and its baseline. Every
// finding fails the cell; the severity only says which way it went.
type finding struct {
	Tensor   string `json:"tensor,omitempty"` // empty for the verdict
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// tensorCheck is one result row as checked (for the JUnit summary).
type tensorCheck struct {
	Name           string         `json:"name"`
	Status         compare.Status `json:"status,omitempty"`
	BaselineStatus compare.Status `json:"baseline_status,omitempty"`
	NMSE           *compare.Float `json:"nmse,omitempty"`
	MaxAbs         *compare.Float `json:"max_abs,omitempty"`
	Exact          bool           `json:"exact,omitempty"`
	// Usage is the larger of nmse/limit and max_abs/limit (0 without a
	// baseline to measure against); above 1 is a regression.
	Usage compare.Float `json:"usage"`
	// Growth is the larger of nmse/baseline and max_abs/baseline over the
	// metrics with a finite non-zero baseline (1: unchanged; 0 without one).
	Growth compare.Float `json:"growth"`
}

// cellCheck is the outcome of checking one cell, written by `baseline
// check --out` and read by `baseline summary`.
type cellCheck struct {
	Cell            string          `json:"cell"`
	Outcome         string          `json:"outcome"`
	Verdict         compare.Verdict `json:"verdict,omitempty"`
	BaselineVerdict compare.Verdict `json:"baseline_verdict,omitempty"`
	Mode            string          `json:"mode,omitempty"`
	Tensors         int             `json:"tensors"`
	Fail            int             `json:"fail"`
	FirstDivergence string          `json:"first_divergence,omitempty"`
	// WorstNMSE is the largest finite NMSE of the result (+Inf if any is
	// infinite), WorstNMSETensor where.
	WorstNMSE       compare.Float `json:"worst_nmse"`
	WorstNMSETensor string        `json:"worst_nmse_tensor,omitempty"`
	// Usage is the largest tensorCheck.Usage: how much of the allowed
	// growth the closest tensor uses (> 1 is a regression).
	Usage       compare.Float `json:"usage"`
	UsageTensor string        `json:"usage_tensor,omitempty"`
	// Growth is the largest tensorCheck.Growth.
	Growth       compare.Float `json:"growth"`
	GrowthTensor string        `json:"growth_tensor,omitempty"`
	// Tighter counts tensors whose error fell below baseline/Factor, or
	// that became bit-exact: the baseline could be tightened.
	Tighter  int           `json:"tighter"`
	Rule     growthRule    `json:"rule"`
	Baseline string        `json:"baseline,omitempty"`
	Findings []finding     `json:"findings"`
	Warnings []string      `json:"warnings"`
	Message  string        `json:"message,omitempty"` // outcome error / no-baseline
	Rows     []tensorCheck `json:"rows,omitempty"`
}

// failed reports whether the cell fails the nightly run.
func (c *cellCheck) failed() bool { return c.Outcome != outcomeOK }

// verdictText is "pass", or "pass → fail" when the verdict changed.
func (c *cellCheck) verdictText() string {
	v := string(c.Verdict)
	if v == "" {
		v = "?"
	}
	if c.BaselineVerdict != "" && c.BaselineVerdict != c.Verdict {
		return string(c.BaselineVerdict) + " → " + v
	}
	return v
}

// line is the one-line account of the cell the nightly script prints.
func (c *cellCheck) line() string {
	head := fmt.Sprintf("%-11s %-26s %-14s", strings.ToUpper(c.Outcome), c.Cell, c.verdictText())
	switch {
	case c.Outcome == outcomeError || c.Outcome == outcomeNoBaseline:
		return head + " " + c.Message
	case c.Verdict == verdictError:
		return head + " known error (as the baseline records): " + c.Message
	}
	s := fmt.Sprintf("%s %d tensors, %d fail, worst nmse %s, max growth %s, limit used %s", head, c.Tensors, c.Fail, fmtG(float64(c.WorstNMSE)), fmtGrowth(float64(c.Growth)), fmtPercent(float64(c.Usage)))
	if c.Verdict == compare.VerdictFail && c.FirstDivergence != "" && c.Outcome == outcomeOK {
		s += "; known failure, first divergence " + c.FirstDivergence
	}
	if len(c.Findings) > 0 {
		s += fmt.Sprintf("; %d finding(s): %s", len(c.Findings), findingText(c.Findings[0]))
		if len(c.Findings) > 1 {
			s += "; …"
		}
	}
	if c.Outcome == outcomeChanged {
		s += " (improved or changed: update the baseline)"
	}
	return s
}

func findingText(f finding) string {
	if f.Tensor == "" {
		return f.Message
	}
	return f.Tensor + ": " + f.Message
}

// newBaseline condenses a report into a baseline for cell. ref, when not
// nil, supplies the CPU description of the reference run.
func newBaseline(cell string, rep *compare.Report, ref *reference.Info) *baseline {
	b := &baseline{
		Schema: baselineSchema, Cell: cell, Verdict: rep.Verdict, Mode: rep.Meta.Mode,
		Prompt: rep.Meta.Prompt, NTokens: rep.Meta.NTokens,
		ModelSHA256: rep.Meta.Other.ModelSHA256,
		Tensors:     make([]baselineTensor, 0, len(rep.Tensors)),
	}
	if b.ModelSHA256 == "" {
		b.ModelSHA256 = rep.Meta.Reference.ModelSHA256
	}
	if ref != nil {
		b.SystemInfo = strings.TrimSpace(ref.SystemInfo)
		b.Kernels = reference.KernelProfile(ref.SystemInfo)
	}
	if d := rep.FirstDivergence; d != nil {
		b.FirstDivergence = divergenceText(d)
	}
	for i := range rep.Tensors {
		row := &rep.Tensors[i]
		t := baselineTensor{Name: row.Key, Status: row.Status}
		if m := row.Metrics; m != nil {
			t.Exact = rowExact(row)
			nmse, maxAbs := roundUp(float64(m.NMSE)), roundUp(float64(m.MaxAbs))
			t.NMSE, t.MaxAbs = &nmse, &maxAbs
		}
		b.Tensors = append(b.Tensors, t)
	}
	return b
}

// divergenceText is "name (OP, layer L)", or "name (OP)" outside layers.
func divergenceText(d *compare.Divergence) string {
	if d.Layer < 0 {
		return fmt.Sprintf("%s (%s)", d.Name, d.Op)
	}
	return fmt.Sprintf("%s (%s, layer %d)", d.Name, d.Op, d.Layer)
}

// rowExact reports whether every compared element of a full (not text-log)
// row was bit-identical.
func rowExact(row *compare.Row) bool {
	m := row.Metrics
	return m != nil && !row.Partial && m.N > 0 && m.BitIdentical == m.N
}

// roundUp rounds a metric up to 4 significant digits, so baselines stay
// short and never understate the recorded error: for v > 0 the result r
// satisfies v ≤ r ≤ v·(1+1.5e-3). Zero, NaN and ±Inf are kept.
func roundUp(v float64) compare.Float {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return compare.Float(v)
	}
	// Scaling by 1.001 before rounding to nearest (relative error ≤ 5e-4)
	// keeps the result ≥ v: (1+1e-3)(1−5e-4) > 1.
	s := strconv.FormatFloat(v*1.001, 'g', 4, 64)
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(r, 0) || math.Abs(r) < math.Abs(v) {
		return compare.Float(v)
	}
	return compare.Float(r)
}

// writeBaseline writes b in its compact form: the header fields one per
// line, then one line per tensor, so that baselines diff well.
func writeBaseline(w io.Writer, b *baseline) error {
	var buf bytes.Buffer
	buf.WriteString("{\n")
	field := func(k string, v any) {
		j, _ := json.Marshal(v) // strings, ints and verdicts cannot fail
		fmt.Fprintf(&buf, "  %q: %s,\n", k, j)
	}
	field("schema", b.Schema)
	field("cell", b.Cell)
	field("verdict", b.Verdict)
	if b.Error != "" {
		field("error", b.Error)
	}
	if b.Mode != "" {
		field("mode", b.Mode)
	}
	if b.FirstDivergence != "" {
		field("first_divergence", b.FirstDivergence)
	}
	if b.Prompt != "" {
		field("prompt", b.Prompt)
	}
	if b.NTokens > 0 {
		field("n_tokens", b.NTokens)
	}
	if b.ModelSHA256 != "" {
		field("model_sha256", b.ModelSHA256)
	}
	if b.SystemInfo != "" {
		field("system_info", b.SystemInfo)
	}
	if b.Kernels != "" {
		field("kernels", b.Kernels)
	}
	buf.WriteString("  \"tensors\": [")
	for i, t := range b.Tensors {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n    ")
		writeBaselineTensor(&buf, t)
	}
	if len(b.Tensors) > 0 {
		buf.WriteString("\n  ")
	}
	buf.WriteString("]\n}\n")
	_, err := w.Write(buf.Bytes())
	return err
}

// writeBaselineTensor writes t as one line of JSON, its metrics in the
// shortest form that round-trips (5.369e-05, not 0.00005369).
func writeBaselineTensor(buf *bytes.Buffer, t baselineTensor) {
	name, _ := json.Marshal(t.Name) // a string cannot fail
	status, _ := json.Marshal(t.Status)
	fmt.Fprintf(buf, `{"name":%s,"status":%s`, name, status)
	if t.Exact {
		buf.WriteString(`,"exact":true`)
		if t.NMSE != nil && *t.NMSE == 0 && t.MaxAbs != nil && *t.MaxAbs == 0 {
			buf.WriteByte('}')
			return
		}
	}
	for _, m := range []struct {
		k string
		v *compare.Float
	}{{"nmse", t.NMSE}, {"max_abs", t.MaxAbs}} {
		if m.v == nil {
			continue
		}
		fmt.Fprintf(buf, `,%q:`, m.k)
		v := float64(*m.v)
		switch {
		case math.IsNaN(v):
			buf.WriteString(`"NaN"`)
		case math.IsInf(v, 1):
			buf.WriteString(`"+Inf"`)
		case math.IsInf(v, -1):
			buf.WriteString(`"-Inf"`)
		default:
			buf.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	buf.WriteByte('}')
}

// readBaseline reads and validates a baseline file; name is used in error
// messages.
func readBaseline(rd io.Reader, name string) (*baseline, error) {
	data, err := io.ReadAll(io.LimitReader(rd, maxBaselineBytes+1))
	if err != nil {
		return nil, fmt.Errorf("baseline %s: %w", name, err)
	}
	if len(data) > maxBaselineBytes {
		return nil, fmt.Errorf("baseline %s: larger than %d bytes", name, maxBaselineBytes)
	}
	var b baseline
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, jsonError("baseline", name, err)
	}
	if b.Schema == 0 {
		return nil, fmt.Errorf("baseline %s: no \"schema\" field: not a layerdiff baseline", name)
	}
	if b.Schema > baselineSchema {
		return nil, fmt.Errorf("baseline %s: schema %d is newer than this layerdiff understands (%d)", name, b.Schema, baselineSchema)
	}
	if b.Cell == "" {
		return nil, fmt.Errorf("baseline %s: no \"cell\" field: not a layerdiff baseline", name)
	}
	if !validVerdict(b.Verdict) && b.Verdict != verdictError {
		return nil, fmt.Errorf("baseline %s: verdict %q is not pass, fail, unmeasured or error", name, b.Verdict)
	}
	if (b.Verdict == verdictError) != (b.Error != "") {
		return nil, fmt.Errorf("baseline %s: verdict %q with error %q: an error message goes with verdict \"error\" and only with it", name, b.Verdict, b.Error)
	}
	if b.NTokens < 0 {
		return nil, fmt.Errorf("baseline %s: n_tokens %d is negative", name, b.NTokens)
	}
	seen := make(map[string]int, len(b.Tensors))
	for i, t := range b.Tensors {
		if t.Name == "" {
			return nil, fmt.Errorf("baseline %s: tensors[%d]: empty name", name, i)
		}
		if j, dup := seen[t.Name]; dup {
			return nil, fmt.Errorf("baseline %s: tensors[%d]: name %q repeats tensors[%d]", name, i, t.Name, j)
		}
		seen[t.Name] = i
		if t.Exact && t.NMSE == nil && t.MaxAbs == nil {
			zero := compare.Float(0)
			b.Tensors[i].NMSE, b.Tensors[i].MaxAbs = &zero, &zero
		}
		if !validStatus(t.Status) {
			return nil, fmt.Errorf("baseline %s: tensors[%d] (%s): status %q is invalid", name, i, t.Name, t.Status)
		}
		for _, m := range []struct {
			k string
			v *compare.Float
		}{{"nmse", t.NMSE}, {"max_abs", t.MaxAbs}} {
			if m.v != nil && float64(*m.v) < 0 {
				return nil, fmt.Errorf("baseline %s: tensors[%d] (%s): %s %v is negative", name, i, t.Name, m.k, float64(*m.v))
			}
		}
	}
	return &b, nil
}

func validVerdict(v compare.Verdict) bool {
	switch v {
	case compare.VerdictPass, compare.VerdictFail, compare.VerdictUnmeasured:
		return true
	}
	return false
}

func validStatus(s compare.Status) bool {
	switch s {
	case compare.Pass, compare.Fail, compare.Unmeasured, compare.Skipped:
		return true
	}
	return false
}

// jsonError adds the file and, for syntax and type errors, the offset.
func jsonError(what, name string, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("%s %s: offset %d: %w", what, name, se.Offset, err)
	case errors.As(err, &te):
		return fmt.Errorf("%s %s: offset %d: field %s: %w", what, name, te.Offset, te.Field, err)
	}
	return fmt.Errorf("%s %s: %w", what, name, err)
}

// statusDirection classifies a status change: to pass is an improvement,
// from pass or to fail a regression, from fail (to unmeasured or skipped)
// an improvement, between unmeasured and skipped a change.
func statusDirection(from, to compare.Status) string {
	switch {
	case to == compare.Pass:
		return sevImprovement
	case from == compare.Pass:
		return sevRegression
	case to == compare.Fail:
		return sevRegression
	case from == compare.Fail:
		return sevImprovement
	}
	return sevChange
}

// checkBaseline holds rep against b with rule g. It never fails: every
// difference becomes a finding, every doubt about comparability a warning.
func checkBaseline(cell string, rep *compare.Report, b *baseline, ref *reference.Info, g growthRule) *cellCheck {
	c := &cellCheck{
		Cell: cell, Verdict: rep.Verdict, BaselineVerdict: b.Verdict, Mode: rep.Meta.Mode,
		Tensors: len(rep.Tensors), Fail: rep.Summary.Fail, Rule: g,
		Findings: []finding{}, Warnings: []string{},
	}
	if d := rep.FirstDivergence; d != nil {
		c.FirstDivergence = divergenceText(d)
	}
	add := func(tensor, kind, sev, format string, args ...any) {
		c.Findings = append(c.Findings, finding{Tensor: tensor, Kind: kind, Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
	if rep.Verdict != b.Verdict {
		sev := sevChange
		switch {
		case b.Verdict == verdictError:
			sev = sevImprovement
		case rep.Verdict == compare.VerdictPass:
			sev = sevImprovement
		case b.Verdict == compare.VerdictPass, rep.Verdict == compare.VerdictFail:
			sev = sevRegression
		}
		msg := fmt.Sprintf("verdict %s → %s", b.Verdict, rep.Verdict)
		if c.FirstDivergence != "" {
			msg += ", first divergence " + c.FirstDivergence
		}
		add("", kindVerdict, sev, "%s", msg)
	}
	// A baseline that recorded an error has no tensors to hold the result
	// against: the verdict finding (error → pass/fail) says it all.
	errBase := b.Verdict == verdictError
	if errBase {
		c.Findings[0].Message += " (the baseline recorded: " + b.Error + ")"
	} else {
		c.Warnings = append(c.Warnings, comparabilityWarnings(rep, b, ref)...)
	}

	base := make(map[string]*baselineTensor, len(b.Tensors))
	for i := range b.Tensors {
		base[b.Tensors[i].Name] = &b.Tensors[i]
	}
	seen := make(map[string]bool, len(rep.Tensors))
	worstNMSE, usage, growth := -1.0, -1.0, -1.0
	for i := range rep.Tensors {
		row := &rep.Tensors[i]
		seen[row.Key] = true
		tc := tensorCheck{Name: row.Key, Status: row.Status}
		if m := row.Metrics; m != nil {
			nmse, maxAbs := m.NMSE, m.MaxAbs
			tc.NMSE, tc.MaxAbs, tc.Exact = &nmse, &maxAbs, rowExact(row)
			if v := float64(nmse); !math.IsNaN(v) && v > worstNMSE {
				worstNMSE, c.WorstNMSETensor = v, row.Key
			}
		}
		bt, ok := base[row.Key]
		if !ok {
			if !errBase {
				add(row.Key, kindNew, sevChange, "not in the baseline (status %s): the graph changed", row.Status)
			}
			c.Rows = append(c.Rows, tc)
			continue
		}
		tc.BaselineStatus = bt.Status
		if row.Status != bt.Status {
			add(row.Key, kindStatus, statusDirection(bt.Status, row.Status), "status %s → %s%s", bt.Status, row.Status, rowDetail(row))
		}
		if m := row.Metrics; m != nil {
			u, gr := tensorGrowth(c, add, g, row.Key, tc, bt)
			tc.Usage, tc.Growth = compare.Float(u), compare.Float(gr)
			if u > usage {
				usage, c.UsageTensor = u, row.Key
			}
			if gr > growth {
				growth, c.GrowthTensor = gr, row.Key
			}
			if bt.Exact && !tc.Exact {
				add(row.Key, kindExact, sevRegression, "was bit-exact, now %d of %d elements differ (max_abs %s)", m.N-m.BitIdentical, m.N, fmtG(float64(m.MaxAbs)))
			}
		}
		c.Rows = append(c.Rows, tc)
	}
	for _, bt := range b.Tensors {
		if !seen[bt.Name] {
			add(bt.Name, kindMissing, sevChange, "in the baseline (status %s) but not in the result: the graph changed", bt.Status)
		}
	}
	if worstNMSE < 0 {
		worstNMSE = 0
	}
	usage, growth = math.Max(usage, 0), math.Max(growth, 0)
	c.WorstNMSE, c.Usage, c.Growth = compare.Float(worstNMSE), compare.Float(usage), compare.Float(growth)
	c.Outcome = outcomeOK
	for _, f := range c.Findings {
		if f.Severity == sevRegression {
			c.Outcome = outcomeRegressed
			break
		}
		c.Outcome = outcomeChanged
	}
	return c
}

// checkError holds a cell that could not be run (message msg) against its
// baseline b (nil when there is none): ok when the baseline records the
// same error, an error outcome otherwise.
func checkError(cell, msg string, b *baseline, bpath string) *cellCheck {
	c := &cellCheck{Cell: cell, Outcome: outcomeError, Verdict: verdictError, Message: msg, Baseline: bpath, Findings: []finding{}, Warnings: []string{}}
	switch {
	case b == nil:
		c.Message += " (no baseline)"
	case b.Verdict == verdictError && b.Error == msg:
		c.BaselineVerdict = verdictError
		c.Outcome = outcomeOK
	case b.Verdict == verdictError:
		c.BaselineVerdict = verdictError
		c.Findings = append(c.Findings, finding{Kind: kindVerdict, Severity: sevChange, Message: fmt.Sprintf("error changed: the baseline recorded %q", b.Error)})
	default:
		c.BaselineVerdict = b.Verdict
		c.Findings = append(c.Findings, finding{Kind: kindVerdict, Severity: sevRegression, Message: fmt.Sprintf("verdict %s → error: %s", b.Verdict, msg)})
	}
	return c
}

// tensorGrowth applies the growth rule to one measured row, adds its
// findings, counts it in c.Tighter when it improved beyond the factor, and
// returns its usage and growth (see tensorCheck).
func tensorGrowth(c *cellCheck, add func(tensor, kind, sev, format string, args ...any), g growthRule, name string, tc tensorCheck, bt *baselineTensor) (usage, growth float64) {
	tighter := false
	for _, m := range []struct {
		kind      string
		cur, base *compare.Float
		floor     float64
	}{{kindNMSE, tc.NMSE, bt.NMSE, g.NMSEFloor}, {kindMaxAbs, tc.MaxAbs, bt.MaxAbs, g.MaxAbsFloor}} {
		if m.cur == nil || m.base == nil {
			continue
		}
		cur, base := float64(*m.cur), float64(*m.base)
		if g.exceeds(cur, base, m.floor) {
			add(name, m.kind, sevRegression, "%s %s > limit %s = max(%s·%s, %s)", m.kind, fmtG(cur), fmtG(g.limit(base, m.floor)), fmtG(g.Factor), fmtG(base), fmtG(m.floor))
		}
		usage = math.Max(usage, g.usage(cur, base, m.floor))
		if base > 0 && !math.IsInf(base, 1) && !math.IsNaN(base) {
			if math.IsNaN(cur) {
				growth = math.Inf(1)
			} else {
				growth = math.Max(growth, cur/base)
			}
			if cur < base/g.Factor {
				tighter = true
			}
		}
	}
	if bt.NMSE != nil && tc.Exact && !bt.Exact {
		tighter = true
	}
	if tighter {
		c.Tighter++
	}
	return usage, growth
}

// rowDetail is ": reason" for a failing or unmeasured row, "" otherwise.
func rowDetail(row *compare.Row) string {
	if len(row.Reasons) == 0 {
		return ""
	}
	return " (" + row.Reasons[0] + ")"
}

// comparabilityWarnings says when rep was not made the way b was.
func comparabilityWarnings(rep *compare.Report, b *baseline, ref *reference.Info) []string {
	var w []string
	if b.Mode != "" && rep.Meta.Mode != b.Mode {
		w = append(w, fmt.Sprintf("tolerance mode %q differs from the baseline's %q", rep.Meta.Mode, b.Mode))
	}
	sha := rep.Meta.Other.ModelSHA256
	if sha == "" {
		sha = rep.Meta.Reference.ModelSHA256
	}
	if b.ModelSHA256 != "" && sha != "" && sha != b.ModelSHA256 {
		w = append(w, fmt.Sprintf("model sha256 %s differs from the baseline's %s: the fixture generator or llama.cpp's quantizer changed", short(sha), short(b.ModelSHA256)))
	}
	if b.Prompt != "" && rep.Meta.Prompt != "" && rep.Meta.Prompt != b.Prompt {
		w = append(w, fmt.Sprintf("prompt %q differs from the baseline's %q", rep.Meta.Prompt, b.Prompt))
	}
	if b.NTokens > 0 && rep.Meta.NTokens > 0 && rep.Meta.NTokens != b.NTokens {
		w = append(w, fmt.Sprintf("%d prompt tokens, the baseline had %d", rep.Meta.NTokens, b.NTokens))
	}
	if ref != nil && b.SystemInfo != "" {
		if si := strings.TrimSpace(ref.SystemInfo); si != "" && si != b.SystemInfo {
			msg := fmt.Sprintf("llama.cpp system info %q differs from the baseline's %q: its SIMD kernels, and so the reference activations, may differ", si, b.SystemInfo)
			if k := reference.KernelProfile(si); b.Kernels != "" && k != b.Kernels {
				msg += fmt.Sprintf(" (kernel profile %s, the baseline holds for %s)", k, b.Kernels)
			}
			w = append(w, msg)
		}
	}
	return w
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12] + "…"
	}
	return sha
}

// fmtG formats a metric compactly: 0, 1.234e-05, 0.5, +Inf.
func fmtG(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// fmtPercent formats a usage fraction: "0%", "<1%", "37%", "250%",
// ">999%", "∞".
func fmtPercent(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "∞"
	case v > 0 && v < 0.01:
		return "<1%"
	case v >= 9.995:
		return ">999%"
	}
	return strconv.FormatFloat(math.Round(v*100), 'f', 0, 64) + "%"
}

// fmtGrowth formats a growth ratio: "×1.00", "×12.5", "–" for 0 (no
// baseline to grow from).
func fmtGrowth(v float64) string {
	switch {
	case v == 0:
		return "–"
	case math.IsInf(v, 1) || math.IsNaN(v):
		return "×∞"
	case v < 10:
		return "×" + strconv.FormatFloat(v, 'f', 2, 64)
	}
	return "×" + strconv.FormatFloat(v, 'g', 3, 64)
}

// Reading and writing files.

// loadResult reads a saved report and checks that its rows have the
// unique keys baselines are indexed by.
func loadResult(path string) (*compare.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rep, err := compare.ReadJSON(f, path)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]int, len(rep.Tensors))
	for i, row := range rep.Tensors {
		if row.Key == "" {
			return nil, fmt.Errorf("result %s: tensors[%d] has no key: not a layerdiff run/compare report", path, i)
		}
		if j, dup := seen[row.Key]; dup {
			return nil, fmt.Errorf("result %s: tensors[%d]: key %q repeats tensors[%d]", path, i, row.Key, j)
		}
		seen[row.Key] = i
	}
	return rep, nil
}

func loadBaseline(path string) (*baseline, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readBaseline(f, path)
}

func loadCellCheck(path string) (*cellCheck, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readCellCheck(f, path)
}

// readCellCheck reads a `baseline check --out` file.
func readCellCheck(rd io.Reader, name string) (*cellCheck, error) {
	data, err := io.ReadAll(io.LimitReader(rd, maxBaselineBytes+1))
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", name, err)
	}
	if len(data) > maxBaselineBytes {
		return nil, fmt.Errorf("check %s: larger than %d bytes", name, maxBaselineBytes)
	}
	var c cellCheck
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, jsonError("check", name, err)
	}
	switch c.Outcome {
	case outcomeOK, outcomeRegressed, outcomeChanged, outcomeNoBaseline, outcomeError:
	default:
		return nil, fmt.Errorf("check %s: outcome %q is not one of ok, regressed, changed, no-baseline, error", name, c.Outcome)
	}
	if c.Cell == "" {
		return nil, fmt.Errorf("check %s: no cell name", name)
	}
	return &c, nil
}

// writeJSONFile writes v as indented JSON to path, creating its directory.
func writeJSONFile(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return writeFileAtomic(path, true, func(w io.Writer) error {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	})
}

// sortedFindings returns the findings regressions first, then by tensor
// order as given (stable).
func sortedFindings(fs []finding) []finding {
	out := append([]finding(nil), fs...)
	rank := map[string]int{sevRegression: 0, sevChange: 1, sevImprovement: 2}
	sort.SliceStable(out, func(i, j int) bool { return rank[out[i].Severity] < rank[out[j].Severity] })
	return out
}
