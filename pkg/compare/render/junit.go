package render

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Properties *junitPropsList `xml:"properties,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitPropsList struct {
	Props []junitProp `xml:"property"`
}

type junitProp struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

// JUnit writes JUnit XML for CI dashboards: one testsuite per layer (plus
// "input" and "output"), one testcase per reference tensor named
// "name [OP]". Failing tensors carry a <failure> whose message is the
// first reason and whose body has every reason and the metrics; unmeasured
// and skipped tensors are <skipped> with the reason. No timestamps or
// durations are written. The first suite's properties carry the verdict
// line and the coverage; when a minimum coverage was required, a last
// suite "coverage" holds one testcase that fails when it is not met.
func (o Options) JUnit(w io.Writer, r *compare.Report) error {
	doc := junitSuites{Name: "layerdiff"}
	for i, g := range layerGroups(r) {
		s := junitSuite{Name: "layer " + g.Label, Tests: len(g.Rows), Failures: g.Fail, Skipped: g.Unmeasured + g.Skipped}
		if g.Layer < 0 {
			s.Name = g.Label
		}
		if i == 0 {
			s.Properties = &junitPropsList{Props: []junitProp{
				{Name: "verdict", Value: string(r.Verdict)},
				{Name: "summary", Value: verdictLine(r)},
				{Name: "coverage", Value: coverageLine(r)},
				{Name: "coverage_fraction", Value: compare.FormatFloat(float64(r.CoverageInfo().Fraction), 0)},
				{Name: "mode", Value: r.Meta.Mode},
				{Name: "reference", Value: sourceLine(r.Meta.Reference)},
				{Name: "other", Value: otherLine(r)},
			}}
			if d := r.FirstDivergence; d != nil {
				s.Properties.Props = append(s.Properties.Props, junitProp{Name: "first_divergence", Value: where(d.Name, d.Op, d.Layer, d.Token)})
			}
		}
		class := "layerdiff." + strings.ReplaceAll(s.Name, " ", "_")
		for _, k := range g.Rows {
			row := &r.Tensors[k]
			c := junitCase{Name: fmt.Sprintf("%s [%s]", row.Name, opName(row.Op)), Classname: class}
			if row.Key != row.Name {
				c.Name = fmt.Sprintf("%s [%s] (%s)", row.Name, opName(row.Op), row.Key)
			}
			ml := metricsLine(row)
			switch row.Status {
			case compare.Fail:
				msg := "outside tolerance"
				if len(row.Reasons) > 0 {
					msg = row.Reasons[0]
				}
				body := strings.Join(row.Reasons, "\n")
				if ml != "" {
					body += "\n" + ml
				}
				if row.FirstFailToken >= 0 {
					body += fmt.Sprintf("\nfirst failing token: %d", row.FirstFailToken)
				}
				c.Failure = &junitMessage{Message: msg, Type: "tolerance", Body: body}
			case compare.Unmeasured, compare.Skipped:
				msg := string(row.Status)
				if len(row.Reasons) > 0 {
					msg += ": " + row.Reasons[0]
				}
				c.Skipped = &junitMessage{Message: msg}
			default:
				c.SystemOut = ml
			}
			s.Cases = append(s.Cases, c)
		}
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Skipped += s.Skipped
		doc.Suites = append(doc.Suites, s)
	}
	if c := r.CoverageInfo(); c.Min > 0 {
		// The requirement is a test of its own, failing when not met.
		tc := junitCase{Name: "coverage >= " + minPercent(c), Classname: "layerdiff.coverage", SystemOut: coverageLine(r)}
		if c.BelowMin {
			tc.SystemOut = ""
			tc.Failure = &junitMessage{Message: "coverage " + c.Percent() + " is below the required " + minPercent(c), Type: "coverage", Body: coverageLine(r)}
		}
		s := junitSuite{Name: "coverage", Tests: 1, Cases: []junitCase{tc}}
		if c.BelowMin {
			s.Failures = 1
		}
		doc.Tests++
		doc.Failures += s.Failures
		doc.Suites = append(doc.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("render: junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("render: junit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("render: junit: %w", err)
	}
	return nil
}
