package render

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
)

// mdEscape makes text safe inside a markdown table cell or paragraph: pipes
// and asterisks are escaped, "<" cannot open an HTML tag, backticks become
// quotes. Underscores are left alone (GFM ignores intraword emphasis).
func mdEscape(s string) string {
	r := strings.NewReplacer("|", `\|`, "*", `\*`, "`", "'", "<", "&lt;", "\n", " ")
	return r.Replace(s)
}

// mdCode formats a name as inline code (backticks inside become ').
func mdCode(s string) string {
	return "`" + strings.ReplaceAll(strings.ReplaceAll(s, "`", "'"), "|", `\|`) + "`"
}

func mdRow(w *bufio.Writer, cells ...string) {
	w.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

func mdHead(w *bufio.Writer, head []string, right []bool) {
	mdRow(w, head...)
	sep := make([]string, len(head))
	for i := range head {
		sep[i] = "---"
		if i < len(right) && right[i] {
			sep[i] = "--:"
		}
	}
	mdRow(w, sep...)
}

// mdWhere is where() with the name in code style.
func mdWhere(name, op string, layer, token int) string {
	w := where("\x00", op, layer, token)
	return strings.Replace(w, "\x00", mdCode(name), 1)
}

// Markdown writes the report for a pull request or issue: the verdict
// first, then the first divergence and blame, the sides, the per-layer
// table (agreeing layers collapsed), the worst elements, the failing
// tensors, dropped nodes and warnings.
func (o Options) Markdown(w io.Writer, r *compare.Report) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# layerdiff: **%s**%s\n\n", strings.ToUpper(string(r.Verdict)), mdEscape(qualifier(r)))
	if d := r.FirstDivergence; d != nil {
		fmt.Fprintf(bw, "**First divergence:** %s", mdWhere(d.Name, d.Op, d.Layer, d.Token))
		if len(d.Reasons) > 0 {
			fmt.Fprintf(bw, ": %s", mdEscape(strings.Join(d.Reasons, "; ")))
		}
		bw.WriteString("\n\n")
		if c := r.CoverageInfo(); c.BelowMin {
			fmt.Fprintf(bw, "**Coverage:** %s is below the required %s (--min-coverage).\n\n", c.Percent(), minPercent(c))
		}
	} else {
		fmt.Fprintf(bw, "%s.\n\n", mdEscape(strings.ToUpper(headline(r)[:1])+headline(r)[1:]))
	}
	if b := r.Blame; b != nil {
		fmt.Fprintf(bw, "**Blame:** %s, by %s\n\n", mdWhere(b.Name, b.Op, b.Layer, -1), mdEscape(b.By))
		for _, e := range b.Evidence {
			fmt.Fprintf(bw, "- %s\n", mdEscape(e))
		}
		if len(b.Evidence) > 0 {
			bw.WriteString("\n")
		}
		for _, h := range b.Hints {
			fmt.Fprintf(bw, "- **Hint (%s):** %s\n", mdEscape(h.Kind), mdEscape(h.Text))
		}
		if len(b.Hints) > 0 {
			bw.WriteString("\n")
		}
	}

	mdHead(bw, []string{"", "reference", "other"}, nil)
	mdRow(bw, "source", mdEscape(sourceLine(r.Meta.Reference)), mdEscape(otherLine(r)))
	bw.WriteString("\n")
	fmt.Fprintf(bw, "Mode %s, tokens %s. Tensors %s. Coverage: %s.", mdCode(r.Meta.Mode), mdEscape(tokensLine(r)), mdEscape(countsLine(r)), mdEscape(coverageLine(r)))
	if r.Meta.Tool != "" {
		fmt.Fprintf(bw, " Written by %s.", mdEscape(r.Meta.Tool))
	}
	if r.Meta.Created != "" {
		fmt.Fprintf(bw, " Created %s.", mdEscape(r.Meta.Created))
	}
	bw.WriteString("\n\n## Layers\n\n")
	mdHead(bw, []string{"layer", "tensors", "pass", "fail", "unmeasured", "skipped", "worst NMSE", "worst tensor"},
		[]bool{false, true, true, true, true, true, true, false})
	for _, s := range collapse(r, layerGroups(r)) {
		wn, wt := "-", ""
		if s.Worst >= 0 {
			wn, wt = fnum(s.WorstNMSE), mdCode(r.Tensors[s.Worst].Name)
		}
		fail := strconv.Itoa(s.Fail)
		if s.Fail > 0 {
			fail = "**" + fail + "**"
			wt = mdCode(r.Tensors[s.FirstFail].Name) + " (first fail)"
		}
		if e := emptySpan(s); e != "" {
			wt = e
		}
		mdRow(bw, s.Label, strconv.Itoa(len(s.Rows)), strconv.Itoa(s.Pass), fail, strconv.Itoa(s.Unmeasured), strconv.Itoa(s.Skipped), wn, wt)
	}

	if d := r.FirstDivergence; d != nil {
		row := &r.Tensors[d.Row]
		fmt.Fprintf(bw, "\n## First divergence: %s\n\n", mdCode(row.Name))
		other := "none"
		if row.Other != nil {
			other = fmt.Sprintf("%s %s %s (matched by %s)", mdCode(row.Other.Name), mdEscape(opName(row.Other.Op)), shape(row.Other.Ne), mdEscape(row.Other.Match))
		}
		fmt.Fprintf(bw, "Op %s, layer %s, shape %s; other side: %s.\n\n", mdEscape(opName(row.Op)), layerLabel(row.Layer), shape(row.Ne), other)
		if ml := metricsLine(row); ml != "" {
			fmt.Fprintf(bw, "%s.\n\n", mdEscape(ml))
		}
		for _, n := range row.Notes {
			fmt.Fprintf(bw, "- note: %s\n", mdEscape(n))
		}
		if len(row.Notes) > 0 {
			bw.WriteString("\n")
		}
		if tl := tokenLine(row, 64); tl != "" {
			fmt.Fprintf(bw, "Per-token NMSE (! = fails): %s\n\n", mdEscape(tl))
		}
		if len(r.Worst) > 0 {
			fmt.Fprintf(bw, "### Worst elements\n\n")
			head, rows := worstTable(r)
			for i := range head {
				head[i] = mdEscape(head[i])
			}
			mdHead(bw, head, []bool{true, false, true, true, true, true})
			for _, rr := range rows {
				mdRow(bw, rr...)
			}
		}
	}

	var failing []int
	for i := range r.Tensors {
		if r.Tensors[i].Status == compare.Fail {
			failing = append(failing, i)
		}
	}
	if len(failing) > 0 {
		bw.WriteString("\n## Failing tensors\n\n")
		mdHead(bw, []string{"#", "tensor", "op", "layer", "token", "NMSE", "reasons"}, []bool{true, false, false, true, true, true, false})
		for k, i := range failing {
			if k == o.maxList() {
				fmt.Fprintf(bw, "\n… and %d more failing tensors.\n", len(failing)-k)
				break
			}
			row := &r.Tensors[i]
			nm := "-"
			if row.Metrics != nil {
				nm = fnum(float64(row.Metrics.NMSE))
			}
			tok := "-"
			if row.FirstFailToken >= 0 {
				tok = strconv.Itoa(row.FirstFailToken)
			}
			mdRow(bw, strconv.Itoa(row.Index), mdCode(row.Name), mdEscape(opName(row.Op)), layerLabel(row.Layer), tok, nm, mdEscape(strings.Join(row.Reasons, "; ")))
		}
	}

	if dl := droppedLists(r); len(dl) > 0 {
		bw.WriteString("\n## Dropped\n\n")
		for _, d := range dl {
			fmt.Fprintf(bw, "- %s: %s\n", mdEscape(d.What), truncList(d.Names, o.maxList(), mdCode))
		}
	}
	if len(r.Warnings) > 0 {
		bw.WriteString("\n## Warnings\n\n")
		for _, wn := range r.Warnings {
			fmt.Fprintf(bw, "- %s\n", mdEscape(wn))
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("render: markdown: %w", err)
	}
	return nil
}
