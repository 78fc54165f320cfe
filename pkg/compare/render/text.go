package render

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/layerdiff/layerdiff/pkg/compare"
)

// ANSI SGR codes used in text output.
const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
)

// paint wraps s in an ANSI code when colour is on.
func (o Options) paint(code, s string) string {
	if !o.Color || code == "" || s == "" {
		return s
	}
	return code + s + ansiReset
}

func statusColor(s compare.Status) string {
	switch s {
	case compare.Pass:
		return ansiGreen
	case compare.Fail:
		return ansiRed
	case compare.Unmeasured, compare.Skipped:
		return ansiYellow
	}
	return ""
}

// cell is one table cell; colour is applied after padding so that escape
// codes do not disturb alignment.
type cell struct {
	text  string
	color string
}

// textTable lays out columns separated by two spaces. right[i] right-aligns
// column i.
type textTable struct {
	head  []string
	right []bool
	rows  [][]cell
}

func (t *textTable) add(cells ...cell) { t.rows = append(t.rows, cells) }

func (t *textTable) write(w *bufio.Writer, o Options, indent string) {
	width := make([]int, len(t.head))
	for i, h := range t.head {
		width[i] = utf8.RuneCountInString(h)
	}
	for _, r := range t.rows {
		for i, c := range r {
			if n := utf8.RuneCountInString(c.text); i < len(width) && n > width[i] {
				width[i] = n
			}
		}
	}
	line := func(cells []cell, bold bool) {
		var b strings.Builder
		b.WriteString(indent)
		for i, c := range cells {
			if i >= len(width) {
				break
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c.text))
			txt := o.paint(c.color, c.text)
			if bold {
				txt = o.paint(ansiBold, c.text)
			}
			if i > 0 {
				b.WriteString("  ")
			}
			if t.right[i] {
				b.WriteString(pad + txt)
			} else if i == len(cells)-1 {
				b.WriteString(txt)
			} else {
				b.WriteString(txt + pad)
			}
		}
		w.WriteString(strings.TrimRight(b.String(), " ") + "\n")
	}
	hc := make([]cell, len(t.head))
	for i, h := range t.head {
		hc[i] = cell{text: h}
	}
	line(hc, true)
	for _, r := range t.rows {
		line(r, false)
	}
}

// Text writes the terminal report: a summary that fits one screen, the
// per-layer table with runs of agreeing layers collapsed, the first
// divergence with its worst elements, dropped nodes and warnings; with All,
// every tensor.
func (o Options) Text(w io.Writer, r *compare.Report) error {
	bw := bufio.NewWriter(w)
	verdict := strings.ToUpper(string(r.Verdict))
	vcol := ansiGreen
	switch r.Verdict {
	case compare.VerdictFail:
		vcol = ansiRed
	case compare.VerdictUnmeasured:
		vcol = ansiYellow
	}
	fmt.Fprintf(bw, "layerdiff %s%s: %s\n\n", o.paint(ansiBold+vcol, verdict), qualifier(r), headline(r))
	kv := func(k, v string) { fmt.Fprintf(bw, "  %-10s %s\n", k, v) }
	kv("reference", sourceLine(r.Meta.Reference))
	kv("other", otherLine(r))
	kv("mode", r.Meta.Mode)
	kv("tokens", tokensLine(r))
	if r.Meta.Tool != "" {
		kv("tool", r.Meta.Tool)
	}
	if r.Meta.Created != "" {
		kv("created", r.Meta.Created)
	}
	kv("tensors", countsLine(r))
	kv("coverage", coverageLine(r))
	if d := r.FirstDivergence; d != nil {
		for i, reason := range d.Reasons {
			k := ""
			if i == 0 {
				k = "why"
			}
			kv(k, reason)
		}
	}
	if b := r.Blame; b != nil {
		kv("blame", fmt.Sprintf("%s [%s]", where(b.Name, b.Op, b.Layer, -1), b.By))
		for _, e := range b.Evidence {
			kv("", "  "+e)
		}
		for _, h := range b.Hints {
			kv("hint", h.Text)
		}
	}
	bw.WriteString("\n")

	gs := layerGroups(r)
	t := &textTable{head: []string{"layer", "tensors", "pass", "fail", "unmeas", "skip", "worst nmse", "worst tensor"},
		right: []bool{false, true, true, true, true, true, true, false}}
	for _, s := range collapse(r, gs) {
		wn, wt := "-", ""
		if s.Worst >= 0 {
			wn, wt = fnum(s.WorstNMSE), r.Tensors[s.Worst].Name
		}
		if s.FirstFail >= 0 {
			wt = r.Tensors[s.FirstFail].Name + " (first fail)"
		}
		if d := r.FirstDivergence; d != nil && s.FirstFail == d.Row {
			wt = r.Tensors[s.FirstFail].Name + " ← first divergence"
		}
		if e := emptySpan(s); e != "" {
			wt = e
		}
		failCol := ""
		if s.Fail > 0 {
			failCol = ansiRed
		}
		t.add(cell{text: s.Label}, cell{text: strconv.Itoa(len(s.Rows))}, cell{text: strconv.Itoa(s.Pass)},
			cell{text: strconv.Itoa(s.Fail), color: failCol}, cell{text: strconv.Itoa(s.Unmeasured)}, cell{text: strconv.Itoa(s.Skipped)},
			cell{text: wn}, cell{text: wt, color: failCol})
	}
	t.write(bw, o, "")

	if d := r.FirstDivergence; d != nil {
		row := &r.Tensors[d.Row]
		bw.WriteString("\n")
		other := ""
		if row.Other != nil {
			other = fmt.Sprintf("  (other: %s %s %s)", row.Other.Name, opName(row.Other.Op), shape(row.Other.Ne))
		}
		fmt.Fprintf(bw, "%s %s  %s  layer %s  %s%s\n", o.paint(ansiBold, "first divergence:"), row.Name, opName(row.Op), layerLabel(row.Layer), shape(row.Ne), other)
		if ml := metricsLine(row); ml != "" {
			fmt.Fprintf(bw, "  %s\n", ml)
		}
		for _, n := range row.Notes {
			fmt.Fprintf(bw, "  note: %s\n", n)
		}
		if tl := tokenLine(row, 32); tl != "" {
			fmt.Fprintf(bw, "  per-token nmse (! = fails): %s\n", tl)
		}
		if len(r.Worst) > 0 {
			bw.WriteString("  worst elements:\n")
			head, rows := worstTable(r)
			wt := &textTable{head: head, right: []bool{true, false, true, true, true, true}}
			for _, rr := range rows {
				cs := make([]cell, len(rr))
				for i, c := range rr {
					cs[i] = cell{text: c}
				}
				wt.add(cs...)
			}
			wt.write(bw, o, "    ")
		}
	}

	if o.All {
		bw.WriteString("\n")
		at := &textTable{head: []string{"#", "tensor", "op", "layer", "status", "nmse", "max|Δ|", "mismatch", "note"},
			right: []bool{true, false, false, true, false, true, true, true, false}}
		for i := range r.Tensors {
			row := &r.Tensors[i]
			nm, ma, mm := "-", "-", "-"
			if m := row.Metrics; m != nil {
				nm, ma, mm = fnum(float64(m.NMSE)), fnum(float64(m.MaxAbs)), fmt.Sprintf("%d/%d", m.Mismatches, m.N)
			}
			note := ""
			if len(row.Reasons) > 0 {
				note = row.Reasons[0]
			} else if len(row.Notes) > 0 {
				note = row.Notes[0]
			}
			at.add(cell{text: strconv.Itoa(row.Index)}, cell{text: row.Name}, cell{text: opName(row.Op)}, cell{text: layerLabel(row.Layer)},
				cell{text: row.Status.Label(), color: statusColor(row.Status)}, cell{text: nm}, cell{text: ma}, cell{text: mm}, cell{text: note})
		}
		at.write(bw, o, "")
	}

	if dl := droppedLists(r); len(dl) > 0 {
		bw.WriteString("\ndropped:\n")
		for _, d := range dl {
			fmt.Fprintf(bw, "  %s: %s\n", d.What, truncList(d.Names, o.maxList(), func(s string) string { return s }))
		}
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintf(bw, "\n%s\n", o.paint(ansiYellow, "warnings:"))
		for _, wn := range r.Warnings {
			fmt.Fprintf(bw, "  - %s\n", wn)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("render: text: %w", err)
	}
	return nil
}
