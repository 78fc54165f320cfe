package nightly

// The check: a result held against its baseline with the growth rule,
// and the per-cell outcome that `layerdiff baseline check --out` writes.

import (
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

	"github.com/layerdiff/layerdiff/internal/atomicfile"
	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

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

// Cell outcomes (CellCheck.Outcome); every one but OutcomeOK fails the cell.
const (
	OutcomeOK         = "ok"
	OutcomeRegressed  = "regressed"
	OutcomeChanged    = "changed"
	OutcomeNoBaseline = "no-baseline"
	OutcomeError      = "error"
)

// Finding is one difference between a result and its baseline. Every
// finding fails the cell; the severity only says which way it went.
type Finding struct {
	Tensor   string `json:"tensor,omitempty"` // empty for the verdict
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// TensorCheck is one result row as checked (for the JUnit summary).
type TensorCheck struct {
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

// CellCheck is the outcome of checking one cell, written by `baseline
// check --out` and read by `baseline summary`.
type CellCheck struct {
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
	// Usage is the largest TensorCheck.Usage: how much of the allowed
	// growth the closest tensor uses (> 1 is a regression).
	Usage       compare.Float `json:"usage"`
	UsageTensor string        `json:"usage_tensor,omitempty"`
	// Growth is the largest TensorCheck.Growth.
	Growth       compare.Float `json:"growth"`
	GrowthTensor string        `json:"growth_tensor,omitempty"`
	// Tighter counts tensors whose error fell below baseline/Factor, or
	// that became bit-exact: the baseline could be tightened.
	Tighter  int           `json:"tighter"`
	Rule     GrowthRule    `json:"rule"`
	Baseline string        `json:"baseline,omitempty"`
	Findings []Finding     `json:"findings"`
	Warnings []string      `json:"warnings"`
	Message  string        `json:"message,omitempty"` // outcome error / no-baseline
	Rows     []TensorCheck `json:"rows,omitempty"`
}

// Failed reports whether the cell fails the nightly run.
func (c *CellCheck) Failed() bool { return c.Outcome != OutcomeOK }

// verdictText is "pass", or "pass → fail" when the verdict changed.
func (c *CellCheck) verdictText() string {
	v := string(c.Verdict)
	if v == "" {
		v = "?"
	}
	if c.BaselineVerdict != "" && c.BaselineVerdict != c.Verdict {
		return string(c.BaselineVerdict) + " → " + v
	}
	return v
}

// Line is the one-line account of the cell the nightly script prints.
func (c *CellCheck) Line() string {
	head := fmt.Sprintf("%-11s %-26s %-14s", strings.ToUpper(c.Outcome), c.Cell, c.verdictText())
	switch {
	case c.Outcome == OutcomeError || c.Outcome == OutcomeNoBaseline:
		return head + " " + c.Message
	case c.Verdict == VerdictError:
		return head + " known error (as the baseline records): " + c.Message
	}
	s := fmt.Sprintf("%s %d tensors, %d fail, worst nmse %s, max growth %s, limit used %s", head, c.Tensors, c.Fail, fmtG(float64(c.WorstNMSE)), fmtGrowth(float64(c.Growth)), fmtPercent(float64(c.Usage)))
	if c.Verdict == compare.VerdictFail && c.FirstDivergence != "" && c.Outcome == OutcomeOK {
		s += "; known failure, first divergence " + c.FirstDivergence
	}
	if len(c.Findings) > 0 {
		s += fmt.Sprintf("; %d finding(s): %s", len(c.Findings), findingText(c.Findings[0]))
		if len(c.Findings) > 1 {
			s += "; …"
		}
	}
	if c.Outcome == OutcomeChanged {
		s += " (improved or changed: update the baseline)"
	}
	return s
}

func findingText(f Finding) string {
	if f.Tensor == "" {
		return f.Message
	}
	return f.Tensor + ": " + f.Message
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

// CheckBaseline holds rep against b with rule g. It never fails: every
// difference becomes a finding, every doubt about comparability a warning.
func CheckBaseline(cell string, rep *compare.Report, b *Baseline, ref *reference.Info, g GrowthRule) *CellCheck {
	c := &CellCheck{
		Cell: cell, Verdict: rep.Verdict, BaselineVerdict: b.Verdict, Mode: rep.Meta.Mode,
		Tensors: len(rep.Tensors), Fail: rep.Summary.Fail, Rule: g,
		Findings: []Finding{}, Warnings: []string{},
	}
	if d := rep.FirstDivergence; d != nil {
		c.FirstDivergence = divergenceText(d)
	}
	add := func(tensor, kind, sev, format string, args ...any) {
		c.Findings = append(c.Findings, Finding{Tensor: tensor, Kind: kind, Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
	if rep.Verdict != b.Verdict {
		sev := sevChange
		switch {
		case b.Verdict == VerdictError:
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
	errBase := b.Verdict == VerdictError
	if errBase {
		c.Findings[0].Message += " (the baseline recorded: " + b.Error + ")"
	} else {
		c.Warnings = append(c.Warnings, comparabilityWarnings(rep, b, ref)...)
	}

	base := make(map[string]*BaselineTensor, len(b.Tensors))
	for i := range b.Tensors {
		base[b.Tensors[i].Name] = &b.Tensors[i]
	}
	seen := make(map[string]bool, len(rep.Tensors))
	worstNMSE, usage, growth := -1.0, -1.0, -1.0
	for i := range rep.Tensors {
		row := &rep.Tensors[i]
		seen[row.Key] = true
		tc := TensorCheck{Name: row.Key, Status: row.Status}
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
	c.Outcome = OutcomeOK
	for _, f := range c.Findings {
		if f.Severity == sevRegression {
			c.Outcome = OutcomeRegressed
			break
		}
		c.Outcome = OutcomeChanged
	}
	return c
}

// CheckError holds a cell that could not be run (message msg) against its
// baseline b (nil when there is none): ok when the baseline records the
// same error, an error outcome otherwise.
func CheckError(cell, msg string, b *Baseline, bpath string) *CellCheck {
	c := &CellCheck{Cell: cell, Outcome: OutcomeError, Verdict: VerdictError, Message: msg, Baseline: bpath, Findings: []Finding{}, Warnings: []string{}}
	switch {
	case b == nil:
		c.Message += " (no baseline)"
	case b.Verdict == VerdictError && b.Error == msg:
		c.BaselineVerdict = VerdictError
		c.Outcome = OutcomeOK
	case b.Verdict == VerdictError:
		c.BaselineVerdict = VerdictError
		c.Findings = append(c.Findings, Finding{Kind: kindVerdict, Severity: sevChange, Message: fmt.Sprintf("error changed: the baseline recorded %q", b.Error)})
	default:
		c.BaselineVerdict = b.Verdict
		c.Findings = append(c.Findings, Finding{Kind: kindVerdict, Severity: sevRegression, Message: fmt.Sprintf("verdict %s → error: %s", b.Verdict, msg)})
	}
	return c
}

// tensorGrowth applies the growth rule to one measured row, adds its
// findings, counts it in c.Tighter when it improved beyond the factor, and
// returns its usage and growth (see TensorCheck).
func tensorGrowth(c *CellCheck, add func(tensor, kind, sev, format string, args ...any), g GrowthRule, name string, tc TensorCheck, bt *BaselineTensor) (usage, growth float64) {
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
func comparabilityWarnings(rep *compare.Report, b *Baseline, ref *reference.Info) []string {
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

// LoadCellCheck reads the `baseline check --out` file at path
// (ReadCellCheck).
func LoadCellCheck(path string) (*CellCheck, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadCellCheck(f, path)
}

// ReadCellCheck reads a `baseline check --out` file.
func ReadCellCheck(rd io.Reader, name string) (*CellCheck, error) {
	data, err := io.ReadAll(io.LimitReader(rd, maxBaselineBytes+1))
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", name, err)
	}
	if len(data) > maxBaselineBytes {
		return nil, fmt.Errorf("check %s: larger than %d bytes", name, maxBaselineBytes)
	}
	var c CellCheck
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, jsonError("check", name, err)
	}
	switch c.Outcome {
	case OutcomeOK, OutcomeRegressed, OutcomeChanged, OutcomeNoBaseline, OutcomeError:
	default:
		return nil, fmt.Errorf("check %s: outcome %q is not one of ok, regressed, changed, no-baseline, error", name, c.Outcome)
	}
	if c.Cell == "" {
		return nil, fmt.Errorf("check %s: no cell name", name)
	}
	return &c, nil
}

// WriteFile writes the check as indented JSON to path (atomically),
// creating its directory: the file `baseline check --out` writes and
// ReadCellCheck reads.
func (c *CellCheck) WriteFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		b, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	})
}

// Input is what Check and Update hold against a baseline file: a cell's
// result, or the message of a cell that could not be run.
type Input struct {
	// Cell is the cell's name, Baseline the path of its baseline file.
	Cell, Baseline string
	// Result is the cell's saved result (LoadResult); nil when the cell
	// could not be run, as Error says.
	Result *compare.Report
	Error  string
	// Ref describes the reference the result was compared with
	// (DescribeReference): its llama.cpp system info. May be nil.
	Ref *reference.Info
}

// DescribeReference opens the reference at path (a dump directory, as
// reference.Open takes) for its description: the llama.cpp system info a
// baseline records.
func DescribeReference(path string) (*reference.Info, error) {
	src, err := reference.Open(path)
	if err != nil {
		return nil, err
	}
	info := src.Describe()
	if cl, ok := src.(io.Closer); ok {
		cl.Close()
	}
	return &info, nil
}

// Check holds in against the baseline file in.Baseline with rule g: a
// missing file gives the outcome no-baseline, a cell that could not be run
// CheckError, a result CheckBaseline. Only a baseline that cannot be read
// is an error.
func Check(in *Input, g GrowthRule) (*CellCheck, error) {
	b, err := LoadBaseline(in.Baseline)
	missing := errors.Is(err, os.ErrNotExist)
	if err != nil && !missing {
		return nil, err
	}
	var chk *CellCheck
	switch {
	case in.Result == nil:
		chk = CheckError(in.Cell, in.Error, b, in.Baseline)
	case missing:
		chk = &CellCheck{
			Cell: in.Cell, Outcome: OutcomeNoBaseline, Verdict: in.Result.Verdict, Mode: in.Result.Meta.Mode,
			Tensors: len(in.Result.Tensors), Fail: in.Result.Summary.Fail, Rule: g, Baseline: in.Baseline,
			Findings: []Finding{}, Warnings: []string{},
			Message: fmt.Sprintf("no baseline %s: record it with scripts/nightly.sh --update-baselines", in.Baseline),
		}
	default:
		chk = CheckBaseline(in.Cell, in.Result, b, in.Ref, g)
		chk.Baseline = in.Baseline
	}
	return chk, nil
}

// sortedFindings returns the findings regressions first, then by tensor
// order as given (stable).
func sortedFindings(fs []Finding) []Finding {
	out := append([]Finding(nil), fs...)
	rank := map[string]int{sevRegression: 0, sevChange: 1, sevImprovement: 2}
	sort.SliceStable(out, func(i, j int) bool { return rank[out[i].Severity] < rank[out[j].Severity] })
	return out
}
