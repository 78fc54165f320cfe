// Package render prints a compare.Report. Every format is a small function
// func(io.Writer, *compare.Report) error over the one report model, in the
// manner of pprof's report package:
//
//	text      terminal summary, per-layer table (agreeing layers collapsed),
//	          first divergence and its worst elements; ANSI colour on request
//	markdown  the same for pull requests and issues, verdict first
//	json      the stable contract (docs/report-json.md); compare.ReadJSON
//	          reads it back and every format re-renders identically
//	html      one self-contained page: an inline SVG of log10 NMSE by layer
//	          and op, the tables, the worst elements
//	junit     JUnit XML for CI: one testsuite per layer, one testcase per
//	          tensor
//
// Output is deterministic: no clocks, fixed float formatting, maps sorted.
package render

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Func renders a report.
type Func func(io.Writer, *compare.Report) error

// Options adjust the renderers. The zero value is the plain default.
type Options struct {
	// Color enables ANSI colours in text output. The CLI sets it when
	// stdout is a terminal and NO_COLOR is unset.
	Color bool
	// All lists every tensor in text output, not only the layer table.
	All bool
	// MaxList caps the names listed for dropped nodes and the failing
	// tensors listed in markdown (0 means 20).
	MaxList int
}

// Formats lists the format names Lookup accepts.
func Formats() []string { return []string{"text", "markdown", "json", "html", "junit"} }

// Lookup returns the renderer for a format name ("md" is accepted for
// markdown, "xml" for junit).
func (o Options) Lookup(format string) (Func, error) {
	switch strings.ToLower(format) {
	case "text", "txt":
		return o.Text, nil
	case "markdown", "md":
		return o.Markdown, nil
	case "json":
		return JSON, nil
	case "html":
		return o.HTML, nil
	case "junit", "xml":
		return o.JUnit, nil
	}
	return nil, fmt.Errorf("render: unknown format %q (want one of %s)", format, strings.Join(Formats(), ", "))
}

// Text renders with default options (no colour).
func Text(w io.Writer, r *compare.Report) error { return Options{}.Text(w, r) }

// Markdown renders with default options.
func Markdown(w io.Writer, r *compare.Report) error { return Options{}.Markdown(w, r) }

// HTML renders with default options.
func HTML(w io.Writer, r *compare.Report) error { return Options{}.HTML(w, r) }

// JUnit renders with default options.
func JUnit(w io.Writer, r *compare.Report) error { return Options{}.JUnit(w, r) }

// JSON writes the report's JSON contract (compare.WriteJSON).
func JSON(w io.Writer, r *compare.Report) error { return compare.WriteJSON(w, r) }

func (o Options) maxList() int {
	if o.MaxList > 0 {
		return o.MaxList
	}
	return 20
}

// group is the rows of one layer (or of the input/output part of the
// graph), in order of first appearance.
type group struct {
	Label                           string
	Layer                           int // −1 for input/output
	Rows                            []int
	Pass, Fail, Unmeasured, Skipped int
	Worst                           int // row with the largest NMSE, −1 if none measured
	WorstNMSE                       float64
	FirstFail                       int // first failing row, −1 if none
}

func (g *group) add(r *compare.Report, i int) {
	row := &r.Tensors[i]
	g.Rows = append(g.Rows, i)
	switch row.Status {
	case compare.Pass:
		g.Pass++
	case compare.Fail:
		g.Fail++
		if g.FirstFail < 0 {
			g.FirstFail = i
		}
	case compare.Unmeasured:
		g.Unmeasured++
	case compare.Skipped:
		g.Skipped++
	}
	if row.Metrics != nil && (row.Status == compare.Pass || row.Status == compare.Fail) {
		v := nmseOf(row)
		if g.Worst < 0 || v > g.WorstNMSE || (math.IsNaN(v) && !math.IsNaN(g.WorstNMSE)) {
			g.Worst, g.WorstNMSE = i, v
		}
	}
}

// nmseOf is a row's NMSE; partial rows (NMSE of printed values only) count
// as their NMSE too, for ranking.
func nmseOf(row *compare.Row) float64 {
	if row.Metrics == nil {
		return math.NaN()
	}
	return float64(row.Metrics.NMSE)
}

// layerGroups groups rows by layer. Rows outside layers after the last
// layer's rows form "output"; the others (graph inputs such as the embedding
// and the attention mask, which llama.cpp builds where layer 0 first uses
// it) form "input".
func layerGroups(r *compare.Report) []*group {
	var out []*group
	idx := map[string]*group{}
	lastLayerRow := -1
	for i := range r.Tensors {
		if r.Tensors[i].Layer >= 0 {
			lastLayerRow = i
		}
	}
	for i := range r.Tensors {
		l := r.Tensors[i].Layer
		label := strconv.Itoa(l)
		switch {
		case l >= 0:
		case lastLayerRow >= 0 && i > lastLayerRow:
			label = "output"
		default:
			label = "input"
		}
		g, ok := idx[label]
		if !ok {
			g = &group{Label: label, Layer: l, Worst: -1, FirstFail: -1}
			if l < 0 {
				g.Layer = -1
			}
			idx[label] = g
			out = append(out, g)
		}
		g.add(r, i)
	}
	return out
}

// span is a run of groups shown as one table line: agreeing numbered
// layers are merged.
type span struct {
	Label string
	group
	Groups int
}

// collapse merges runs of at least two consecutive numbered layers into one
// span: layers with measured tensors and no failures, layers after the
// first divergence's layer that all fail (the divergence's downstream
// consequences), layers with nothing measured, and layers the filter
// skipped whole. A layer with nothing measured is never folded into a run
// of passing layers, and the layer holding the first divergence always
// stands alone.
func collapse(r *compare.Report, gs []*group) []span {
	first := -1
	if r.FirstDivergence != nil {
		first = r.FirstDivergence.Row
	}
	kind := func(g *group) int {
		switch {
		case g.Layer < 0 || slices.Contains(g.Rows, first):
			return 0 // never merged
		case g.Pass+g.Fail == 0 && g.Unmeasured == 0:
			return 4 // all skipped by the filter
		case g.Pass+g.Fail == 0:
			return 3 // nothing measured: never among passing layers
		case g.Fail == 0:
			return 1
		default:
			return 2
		}
	}
	var out []span
	for i := 0; i < len(gs); {
		k := kind(gs[i])
		j := i + 1
		if k != 0 {
			for j < len(gs) && kind(gs[j]) == k {
				j++
			}
		}
		if j-i >= 2 {
			s := span{Label: gs[i].Label + "–" + gs[j-1].Label, Groups: j - i}
			s.Worst, s.FirstFail = -1, -1
			for _, h := range gs[i:j] {
				for _, x := range h.Rows {
					s.add(r, x)
				}
			}
			out = append(out, s)
		} else {
			out = append(out, span{Label: gs[i].Label, group: *gs[i], Groups: 1})
			j = i + 1
		}
		i = j
	}
	return out
}

// fnum formats a metric with 3 significant digits ("0" for zero).
func fnum(x float64) string { return compare.FormatFloat(x, 3) }

// shape formats a trimmed ggml shape.
func shape(ne []int64) string { return tensor.ShapeString(tensor.Trim(ne)) }

func coord(c []int64) string {
	s := make([]string, len(c))
	for i, v := range c {
		s[i] = strconv.FormatInt(v, 10)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// where describes a row as "name (OP, layer L, token T)".
func where(name, op string, layer, token int) string {
	parts := []string{}
	if op != "" {
		parts = append(parts, op)
	}
	if layer >= 0 {
		parts = append(parts, "layer "+strconv.Itoa(layer))
	}
	if token >= 0 {
		parts = append(parts, "token "+strconv.Itoa(token))
	}
	if len(parts) == 0 {
		return name
	}
	return name + " (" + strings.Join(parts, ", ") + ")"
}

// otherLine is the other side's sourceLine, saying so when it was made
// from another model file than the reference.
func otherLine(r *compare.Report) string {
	s := sourceLine(r.Meta.Other)
	if how, _, _ := r.Meta.ModelsDiffer(); how != "" {
		s += " — NOT the reference's model file (" + how + " differs)"
	}
	return s
}

// sourceLine describes one side, each fact once: the engine, the file
// format and the program that wrote it (when not the engine), the path,
// the model and the kernels: "llama.cpp ec98e2002; format layerdiff-dump
// v1; written by layerdiff 0.1.0 (built-in dumper); path d; model m.gguf
// sha256 f99723c71cd5…; kernels x86-avx2". layerdiff's forward pass
// ("forward") is named by its label alone, which says its numerics and
// kernels.
func sourceLine(s compare.Source) string {
	parts := []string{}
	if s.Label != "" {
		parts = append(parts, s.Label)
	}
	if s.Format != "" && s.Format != "forward" {
		parts = append(parts, "format "+s.Format)
	}
	if s.Producer != "" && s.Producer != s.Label {
		parts = append(parts, "written by "+s.Producer)
	}
	if s.Path != "" {
		parts = append(parts, "path "+s.Path)
	}
	model := ""
	if s.Model != "" {
		model = "model " + s.Model
	}
	if s.ModelSHA256 != "" {
		h := s.ModelSHA256
		if len(h) > 12 {
			h = h[:12] + "…"
		}
		model = strings.TrimSpace(model + " sha256 " + h)
	}
	if model != "" {
		parts = append(parts, model)
	}
	if s.Kernels != "" && !strings.Contains(s.Label, "kernels "+s.Kernels) {
		parts = append(parts, "kernels "+s.Kernels)
	}
	if len(parts) == 0 {
		return "(not described)"
	}
	return strings.Join(parts, "; ")
}

func tokensLine(r *compare.Report) string {
	if len(r.Meta.Tokens) == 0 {
		if r.Meta.NTokens > 0 {
			return strconv.Itoa(r.Meta.NTokens)
		}
		return "unknown"
	}
	s := make([]string, len(r.Meta.Tokens))
	for i, t := range r.Meta.Tokens {
		s[i] = strconv.Itoa(int(t))
	}
	const max = 16
	more := ""
	if len(s) > max {
		more = fmt.Sprintf(" … (%d more)", len(s)-max)
		s = s[:max]
	}
	return fmt.Sprintf("%d: %s%s", len(r.Meta.Tokens), strings.Join(s, " "), more)
}

func countsLine(r *compare.Report) string {
	s := r.Summary
	line := fmt.Sprintf("%d: %d pass, %d fail, %d unmeasured, %d skipped", s.Tensors, s.Pass, s.Fail, s.Unmeasured, s.Skipped)
	if s.UnmatchedOther > 0 {
		line += fmt.Sprintf("; %s unmatched", plural(s.UnmatchedOther, "other-side node"))
	}
	return line
}

// qualifier is what follows the verdict word: " on 6% of the reference's
// nodes" for a pass on low coverage (compare.LowCoverage), else "".
func qualifier(r *compare.Report) string {
	if c := r.CoverageInfo(); r.Verdict == compare.VerdictPass && c.Low() {
		return " on " + c.Percent() + " of the reference's nodes"
	}
	return ""
}

// verdictLine is the verdict, its qualifier and the headline: "PASS on 6%
// of the reference's nodes: 49 unmeasured; all 3 compared tensors within
// tolerance".
func verdictLine(r *compare.Report) string {
	return strings.ToUpper(string(r.Verdict)) + qualifier(r) + ": " + headline(r)
}

// minPercent formats the required coverage.
func minPercent(c compare.Coverage) string {
	m := float64(c.Min)
	return compare.Percent(m, m > 0, m < 1)
}

// headline says what the verdict rests on: the first divergence, the
// coverage that fell short of --min-coverage, or how many tensors passed
// and how much of the reference they cover.
func headline(r *compare.Report) string {
	c := r.CoverageInfo()
	switch {
	case r.FirstDivergence != nil:
		d := r.FirstDivergence
		s := "first divergence at " + where(d.Name, d.Op, d.Layer, d.Token)
		if c.BelowMin {
			s += "; coverage " + c.Percent() + " is below the required " + minPercent(c)
		}
		return s
	case r.Verdict == compare.VerdictUnmeasured:
		return "nothing was compared"
	case c.BelowMin:
		detail := fmt.Sprintf("%d of %s unmeasured", c.Unmeasured, plural(c.Nodes, "reference node"))
		if c.Nodes == 0 {
			detail = c.Phrase()
		}
		return fmt.Sprintf("coverage %s is below the required %s (--min-coverage): %s; %s",
			c.Percent(), minPercent(c), detail, withinTolerance(r.Summary.Pass))
	case r.Verdict == compare.VerdictPass && c.Low():
		return fmt.Sprintf("%d unmeasured; %s", c.Unmeasured, withinTolerance(r.Summary.Pass))
	case r.Verdict == compare.VerdictPass:
		return fmt.Sprintf("%s; %s", withinTolerance(r.Summary.Pass), c.Phrase())
	default:
		return "no first divergence recorded"
	}
}

// withinTolerance says that n compared tensors passed: "all 3 compared
// tensors within tolerance", "the 1 compared tensor within tolerance".
func withinTolerance(n int) string {
	if n == 1 {
		return "the 1 compared tensor within tolerance"
	}
	return fmt.Sprintf("all %d compared tensors within tolerance", n)
}

// coverageLine is the coverage for the report's header: "3 of 52
// reference nodes measured (6%), 49 unmeasured; not counted: 17 views;
// required 50% (--min-coverage): not met".
func coverageLine(r *compare.Report) string {
	c := r.CoverageInfo()
	s := c.Phrase()
	if c.Unmeasured > 0 {
		s += fmt.Sprintf(", %d unmeasured", c.Unmeasured)
	}
	if u := c.Uncounted(); u != "" {
		s += "; " + u
	}
	if c.Min > 0 {
		s += "; required " + minPercent(c) + " (--min-coverage): "
		if c.BelowMin {
			s += "not met"
		} else {
			s += "met"
		}
	}
	return s
}

// emptySpan says why a table line has no worst tensor: "nothing measured",
// "skipped by the filter"; "" when something was measured.
func emptySpan(s span) string {
	switch {
	case s.Pass+s.Fail > 0:
		return ""
	case s.Unmeasured == 0 && s.Skipped > 0:
		return "skipped by the filter"
	}
	return "nothing measured"
}

// dropped groups the report's dropped nodes for listing.
type droppedList struct {
	What  string
	Names []string
}

func droppedLists(r *compare.Report) []droppedList {
	var ref, oth []string
	for _, d := range r.Unmatched {
		if d.Side == "other" {
			oth = append(oth, d.Name)
		} else {
			ref = append(ref, d.Name)
		}
	}
	var sk []string
	for _, d := range r.Skipped {
		sk = append(sk, d.Name)
	}
	var out []droppedList
	if len(ref) > 0 {
		out = append(out, droppedList{plural(len(ref), "reference node") + " without counterpart", ref})
	}
	if len(oth) > 0 {
		out = append(out, droppedList{plural(len(oth), "other-side node") + " without counterpart", oth})
	}
	if len(sk) > 0 {
		out = append(out, droppedList{plural(len(sk), "reference node") + " skipped by the filter", sk})
	}
	return out
}

// truncList joins names, listing at most max and counting the rest.
func truncList(names []string, max int, quote func(string) string) string {
	s := make([]string, 0, min(max, len(names))+1)
	for i, n := range names {
		if i == max {
			s = append(s, fmt.Sprintf("… and %d more", len(names)-max))
			break
		}
		s = append(s, quote(n))
	}
	return strings.Join(s, ", ")
}

// opsOf lists the distinct ops of measured rows, sorted.
func opsOf(r *compare.Report) []string {
	seen := map[string]bool{}
	for _, row := range r.Tensors {
		if row.Metrics != nil {
			seen[opName(row.Op)] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func opName(op string) string {
	if op == "" {
		return "?"
	}
	return op
}

// worstTable returns the header and cells of the worst-elements table.
func worstTable(r *compare.Report) (head []string, rows [][]string) {
	head = []string{"index", "coord", "reference", "other", "|Δ|", "ulp"}
	for _, e := range r.Worst {
		a, b := compare.FormatPair(float64(e.Ref), float64(e.Other), 4)
		u := "-"
		if e.ULP >= 0 {
			u = strconv.FormatInt(e.ULP, 10)
		}
		rows = append(rows, []string{strconv.FormatInt(e.Index, 10), coord(e.Coord), a, b, fnum(float64(e.Diff)), u})
	}
	return head, rows
}

// metricsLine summarizes a row's metrics in one line.
func metricsLine(row *compare.Row) string {
	m := row.Metrics
	if m == nil {
		return ""
	}
	parts := []string{"nmse " + fnum(float64(m.NMSE))}
	if m.MaxAbsAt != nil {
		a, b := compare.FormatPair(float64(m.MaxAbsAt.Ref), float64(m.MaxAbsAt.Other), 4)
		parts = append(parts, fmt.Sprintf("max|Δ| %s at %s (%s vs %s)", fnum(float64(m.MaxAbs)), coord(m.MaxAbsAt.Coord), a, b))
	}
	cos, _ := compare.FormatPair(float64(m.Cosine), 1, 6)
	parts = append(parts, "max rel "+fnum(float64(m.MaxRel)), "cosine "+cos,
		fmt.Sprintf("mismatches %d/%d", m.Mismatches, m.N))
	if m.ULP != nil {
		parts = append(parts, fmt.Sprintf("ulp p50/p99/max %d/%d/%d", m.ULP.P50, m.ULP.P99, m.ULP.Max),
			fmt.Sprintf("bit-identical %d/%d", m.BitIdentical, m.N))
	} else {
		parts = append(parts, fmt.Sprintf("within printed precision %d/%d", m.WithinQuantum, m.N))
	}
	if m.Sum != nil {
		a, b := compare.FormatPair(float64(m.Sum.Ref), float64(m.Sum.Other), 6)
		parts = append(parts, fmt.Sprintf("sum %s vs %s (limit %s)", a, b, fnum(float64(m.Sum.Limit))))
	}
	if lg := m.Logits; lg != nil {
		parts = append(parts, fmt.Sprintf("argmax %d/%d agree", lg.ArgmaxAgree, len(lg.Tokens)),
			"top-5 "+compare.FormatFloat(float64(lg.MeanTop5), 3), "KL mean/max "+fnum(float64(lg.MeanKL))+"/"+fnum(float64(lg.MaxKL)))
	}
	if n := m.RefNaN + m.OtherNaN + m.RefInf + m.OtherInf; n > 0 {
		parts = append(parts, fmt.Sprintf("NaN %d/%d Inf %d/%d", m.RefNaN, m.OtherNaN, m.RefInf, m.OtherInf))
	}
	return strings.Join(parts, ", ")
}

// tokenLine lists per-token NMSE of a failing row, marking failing tokens.
func tokenLine(row *compare.Row, max int) string {
	if len(row.PerToken) == 0 {
		return ""
	}
	var s []string
	for i, t := range row.PerToken {
		if i == max {
			s = append(s, fmt.Sprintf("… (%d more)", len(row.PerToken)-max))
			break
		}
		mark := ""
		if t.Fail {
			mark = "!"
		}
		s = append(s, fmt.Sprintf("%d:%s%s", t.Token, fnum(float64(t.NMSE)), mark))
	}
	return strings.Join(s, " ")
}

func layerLabel(l int) string {
	if l < 0 {
		return "-"
	}
	return strconv.Itoa(l)
}

// plural formats a count with a noun, adding "s" unless the count is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
