package nightly

// The summary of a nightly run: markdown and JUnit XML, built from the
// per-cell `baseline check --out` files.

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
)

// maxFindingsShown bounds the findings listed per cell in the markdown.
const maxFindingsShown = 20

// Note is one KEY=VALUE line of the summary's header.
type Note struct{ Key, Value string }

// CellCheckFromDir reads DIR/CELL/check.json. A cell without one did not
// get as far as the check: it becomes an error whose message is the last
// line of DIR/CELL/log.txt.
func CellCheckFromDir(dir, cell string) *CellCheck {
	p := filepath.Join(dir, cell, "check.json")
	ch, err := LoadCellCheck(p)
	if err == nil {
		if ch.Cell != cell {
			ch.Warnings = append(ch.Warnings, fmt.Sprintf("%s names cell %q", p, ch.Cell))
			ch.Cell = cell
		}
		return ch
	}
	msg := err.Error()
	if errors.Is(err, os.ErrNotExist) {
		msg = "no check result"
		if last := lastLogLine(filepath.Join(dir, cell, "log.txt")); last != "" {
			msg += ": " + last
		}
	}
	return &CellCheck{Cell: cell, Outcome: OutcomeError, Message: msg, Findings: []Finding{}, Warnings: []string{}}
}

// lastLogLine returns the last non-empty line of a log file (at most the
// final 64 KiB are read), "" if there is none.
func lastLogLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 64<<10 {
		if _, err := f.Seek(st.Size()-64<<10, io.SeekStart); err != nil {
			return ""
		}
	}
	last := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			last = s
		}
	}
	if len(last) > 300 {
		last = last[:300] + "…"
	}
	return last
}

// summaryCounts tallies cells by outcome.
type summaryCounts struct{ ok, regressed, changed, noBaseline, errors, knownFail int }

func countCells(checks []*CellCheck) summaryCounts {
	var n summaryCounts
	for _, ch := range checks {
		switch ch.Outcome {
		case OutcomeOK:
			n.ok++
			if ch.Verdict != compare.VerdictPass {
				n.knownFail++
			}
		case OutcomeRegressed:
			n.regressed++
		case OutcomeChanged:
			n.changed++
		case OutcomeNoBaseline:
			n.noBaseline++
		default:
			n.errors++
		}
	}
	return n
}

// plural returns "1 one" or "n many".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// mdEscape makes s safe inside a markdown table cell.
func mdEscape(s string) string {
	r := strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ", "<", "&lt;")
	return r.Replace(s)
}

// WriteSummaryMarkdown writes the nightly summary (docs/nightly.md,
// "Outputs").
func WriteSummaryMarkdown(w io.Writer, checks []*CellCheck, notes []Note) error {
	var b bytes.Buffer
	n := countCells(checks)
	failed := len(checks) - n.ok
	b.WriteString("# layerdiff nightly\n\n")
	if failed == 0 {
		fmt.Fprintf(&b, "**PASS**: all %d cells match their baselines", len(checks))
	} else {
		fmt.Fprintf(&b, "**FAIL**: %d of %d cells failed (%d regressed, %d changed, %d without baseline, %d could not be run)",
			failed, len(checks), n.regressed, n.changed, n.noBaseline, n.errors)
	}
	if n.knownFail > 0 {
		fmt.Fprintf(&b, "; %s against llama.cpp as recorded (known failures, below)", plural(n.knownFail, "cell fails", "cells fail"))
	}
	b.WriteString(".\n\n")
	if len(notes) > 0 {
		b.WriteString("| | |\n| --- | --- |\n")
		for _, nt := range notes {
			fmt.Fprintf(&b, "| %s | %s |\n", mdEscape(nt.Key), mdEscape(nt.Value))
		}
		b.WriteString("\n")
	}
	if rule, ok := commonRule(checks); ok {
		fmt.Fprintf(&b, "Rule (docs/nightly.md): per tensor %s.\n\n", rule)
	}
	b.WriteString("| cell | outcome | verdict | tensors | fail | worst nmse | max growth | limit used | note |\n")
	b.WriteString("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, ch := range checks {
		outcome := ch.Outcome
		if ch.Failed() {
			outcome = "**" + strings.ToUpper(outcome) + "**"
		}
		note := ""
		switch {
		case ch.Outcome == OutcomeError || ch.Outcome == OutcomeNoBaseline:
			note = ch.Message
		case len(ch.Findings) > 0:
			note = fmt.Sprintf("%d finding(s): %s", len(ch.Findings), findingText(sortedFindings(ch.Findings)[0]))
		case ch.Verdict == compare.VerdictFail:
			note = "known failure: " + ch.FirstDivergence
		case ch.Verdict == VerdictError:
			note = "known error: " + ch.Message
		case ch.Tighter > 0:
			note = fmt.Sprintf("%d tensors improved past the factor", ch.Tighter)
		}
		if ch.Verdict == VerdictError || ch.Outcome == OutcomeError {
			fmt.Fprintf(&b, "| %s | %s | %s | | | | | | %s |\n", mdEscape(ch.Cell), outcome, mdEscape(ch.verdictText()), mdEscape(note))
			continue
		}
		worst := "`" + fmtG(float64(ch.WorstNMSE)) + "`"
		if ch.WorstNMSETensor != "" && ch.WorstNMSE != 0 {
			worst += " " + mdEscape(ch.WorstNMSETensor)
		}
		growth, used := "", ""
		if ch.Outcome != OutcomeNoBaseline {
			growth, used = fmtGrowth(float64(ch.Growth)), fmtPercent(float64(ch.Usage))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %s | %s | %s | %s |\n",
			mdEscape(ch.Cell), outcome, mdEscape(ch.verdictText()), ch.Tensors, ch.Fail, worst, growth, used, mdEscape(note))
	}
	b.WriteString("\n")

	var detail []*CellCheck
	for _, ch := range checks {
		if len(ch.Findings) > 0 {
			detail = append(detail, ch)
		}
	}
	if len(detail) > 0 {
		b.WriteString("## Findings\n\n")
		for _, ch := range detail {
			fmt.Fprintf(&b, "### %s — %s\n\n", mdEscape(ch.Cell), ch.Outcome)
			fs := sortedFindings(ch.Findings)
			for i, f := range fs {
				if i == maxFindingsShown {
					fmt.Fprintf(&b, "- … and %d more (see the cell's check.json)\n", len(fs)-i)
					break
				}
				name := "verdict"
				if f.Tensor != "" {
					name = "`" + strings.ReplaceAll(f.Tensor, "`", "'") + "`"
				}
				fmt.Fprintf(&b, "- %s %s: %s\n", f.Severity, name, mdEscape(f.Message))
			}
			if ch.Outcome == OutcomeChanged {
				b.WriteString("\nNo regression: the baseline is stale. Review, then run `scripts/nightly.sh --update-baselines`.\n")
			}
			b.WriteString("\n")
		}
	}
	var known []*CellCheck
	for _, ch := range checks {
		if ch.Outcome == OutcomeOK && ch.Verdict != compare.VerdictPass {
			known = append(known, ch)
		}
	}
	if len(known) > 0 {
		b.WriteString("## Known failures\n\nCells that fail against llama.cpp, or cannot be run, as their baselines record:\n\n")
		for _, ch := range known {
			switch ch.Verdict {
			case VerdictError:
				fmt.Fprintf(&b, "- %s: could not be run: %s\n", mdEscape(ch.Cell), mdEscape(ch.Message))
			case compare.VerdictFail:
				fmt.Fprintf(&b, "- %s: fail, %d of %d tensors fail, first divergence %s\n", mdEscape(ch.Cell), ch.Fail, ch.Tensors, mdEscape(ch.FirstDivergence))
			default:
				fmt.Fprintf(&b, "- %s: %s\n", mdEscape(ch.Cell), ch.Verdict)
			}
		}
		b.WriteString("\n")
	}
	var warned bool
	for _, ch := range checks {
		for _, wn := range ch.Warnings {
			if !warned {
				b.WriteString("## Warnings\n\n")
				warned = true
			}
			fmt.Fprintf(&b, "- %s: %s\n", mdEscape(ch.Cell), mdEscape(wn))
		}
	}
	if warned {
		b.WriteString("\n")
	}
	_, err := w.Write(b.Bytes())
	return err
}

// commonRule returns the rule's formula when every checked cell used the
// same rule.
func commonRule(checks []*CellCheck) (string, bool) {
	var rule *GrowthRule
	for _, ch := range checks {
		if ch.Outcome == OutcomeError || ch.Outcome == OutcomeNoBaseline || ch.Verdict == VerdictError {
			continue
		}
		if rule == nil {
			r := ch.Rule
			rule = &r
		} else if *rule != ch.Rule {
			return "", false
		}
	}
	if rule == nil {
		return "", false
	}
	return rule.String(), true
}

// JUnit document (the subset CI dashboards read).
type nightlySuites struct {
	XMLName  xml.Name       `xml:"testsuites"`
	Name     string         `xml:"name,attr"`
	Tests    int            `xml:"tests,attr"`
	Failures int            `xml:"failures,attr"`
	Errors   int            `xml:"errors,attr"`
	Skipped  int            `xml:"skipped,attr"`
	Suites   []nightlySuite `xml:"testsuite"`
}

type nightlySuite struct {
	Name       string        `xml:"name,attr"`
	Tests      int           `xml:"tests,attr"`
	Failures   int           `xml:"failures,attr"`
	Errors     int           `xml:"errors,attr"`
	Skipped    int           `xml:"skipped,attr"`
	Properties []nightlyProp `xml:"properties>property,omitempty"`
	Cases      []nightlyCase `xml:"testcase"`
}

type nightlyProp struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type nightlyCase struct {
	Name      string       `xml:"name,attr"`
	Classname string       `xml:"classname,attr"`
	Failure   *nightlyText `xml:"failure,omitempty"`
	Error     *nightlyText `xml:"error,omitempty"`
	Skipped   *nightlyText `xml:"skipped,omitempty"`
}

type nightlyText struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

// WriteSummaryJUnit writes one testsuite per cell: a "verdict" testcase,
// then one testcase per tensor (and per baseline tensor the result lacks).
// A testcase fails when it has a finding; a tensor that fails against
// llama.cpp exactly as its baseline records is skipped ("known failure");
// a cell that could not be run is one testcase with an <error>, a cell
// without a baseline one failing "baseline" testcase. No timestamps.
func WriteSummaryJUnit(w io.Writer, checks []*CellCheck, notes []Note) error {
	doc := nightlySuites{Name: "layerdiff nightly"}
	for _, ch := range checks {
		s := nightlySuite{Name: ch.Cell}
		class := "nightly." + ch.Cell
		s.Properties = []nightlyProp{{"outcome", ch.Outcome}, {"verdict", string(ch.Verdict)}}
		if ch.BaselineVerdict != "" {
			s.Properties = append(s.Properties, nightlyProp{"baseline_verdict", string(ch.BaselineVerdict)})
		}
		if ch.FirstDivergence != "" {
			s.Properties = append(s.Properties, nightlyProp{"first_divergence", ch.FirstDivergence})
		}
		if ch.Rule.Factor != 0 {
			s.Properties = append(s.Properties, nightlyProp{"rule", ch.Rule.String()})
		}
		for _, nt := range notes {
			s.Properties = append(s.Properties, nightlyProp{nt.Key, nt.Value})
		}
		switch ch.Outcome {
		case OutcomeError:
			tc := nightlyCase{Name: "run", Classname: class, Error: &nightlyText{Message: ch.Message, Type: "error"}}
			for _, f := range ch.Findings {
				tc.Error.Body += f.Message + "\n"
			}
			s.Cases = []nightlyCase{tc}
		case OutcomeNoBaseline:
			s.Cases = []nightlyCase{{Name: "baseline", Classname: class, Failure: &nightlyText{Message: ch.Message, Type: OutcomeNoBaseline}}}
		default:
			s.Cases = cellCases(ch, class)
		}
		for _, tc := range s.Cases {
			s.Tests++
			switch {
			case tc.Error != nil:
				s.Errors++
			case tc.Failure != nil:
				s.Failures++
			case tc.Skipped != nil:
				s.Skipped++
			}
		}
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Errors += s.Errors
		doc.Skipped += s.Skipped
		doc.Suites = append(doc.Suites, s)
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	b.WriteString("\n")
	_, err := w.Write(b.Bytes())
	return err
}

// cellCases builds a checked cell's testcases.
func cellCases(ch *CellCheck, class string) []nightlyCase {
	byTensor := map[string][]Finding{}
	var verdict []Finding
	for _, f := range ch.Findings {
		if f.Tensor == "" {
			verdict = append(verdict, f)
		} else {
			byTensor[f.Tensor] = append(byTensor[f.Tensor], f)
		}
	}
	failure := func(fs []Finding) *nightlyText {
		fs = sortedFindings(fs)
		var body strings.Builder
		for _, f := range fs {
			fmt.Fprintf(&body, "%s %s: %s\n", f.Severity, f.Kind, f.Message)
		}
		return &nightlyText{Message: fs[0].Message, Type: fs[0].Severity, Body: body.String()}
	}
	vc := nightlyCase{Name: "verdict", Classname: class}
	if len(verdict) > 0 {
		vc.Failure = failure(verdict)
	} else if ch.Verdict == compare.VerdictFail {
		vc.Skipped = &nightlyText{Message: "known failure (as the baseline records): first divergence " + ch.FirstDivergence}
	} else if ch.Verdict == VerdictError {
		vc.Skipped = &nightlyText{Message: "known error (as the baseline records): " + ch.Message}
	}
	cases := []nightlyCase{vc}
	seen := map[string]bool{}
	for _, r := range ch.Rows {
		seen[r.Name] = true
		tc := nightlyCase{Name: r.Name, Classname: class}
		if fs := byTensor[r.Name]; len(fs) > 0 {
			tc.Failure = failure(fs)
		} else if r.Status != compare.Pass {
			msg := string(r.Status)
			if r.BaselineStatus == r.Status {
				msg = fmt.Sprintf("known %s (as the baseline records)", r.Status)
			}
			if r.NMSE != nil {
				msg += ": nmse " + fmtG(float64(*r.NMSE))
			}
			if r.MaxAbs != nil {
				msg += ", max_abs " + fmtG(float64(*r.MaxAbs))
			}
			tc.Skipped = &nightlyText{Message: msg}
		}
		cases = append(cases, tc)
	}
	// Baseline tensors the result lacks (findings of kind missing).
	for _, f := range ch.Findings {
		if f.Tensor != "" && !seen[f.Tensor] {
			seen[f.Tensor] = true
			cases = append(cases, nightlyCase{Name: f.Tensor, Classname: class, Failure: failure(byTensor[f.Tensor])})
		}
	}
	return cases
}
