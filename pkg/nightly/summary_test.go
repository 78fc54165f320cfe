package nightly

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// summaryChecks is a fixed set of cell checks covering every outcome, for
// the golden files.
func summaryChecks() []*CellCheck {
	base := NewBaseline("x", nightlyReport(), nil)
	ok := CheckBaseline("llama-q8_0-f64-faon", nightlyReport(), base, nil, defaultRule)

	regressed := nightlyReport()
	regressed.Tensors[1].Metrics.NMSE = 2e-5
	regressed.Tensors[3].Status = compare.Fail
	regressed.Tensors[3].Reasons = []string{"argmax differs at token 3"}
	regressed.Tensors[0].Metrics.BitIdentical = 60
	resummarize(regressed)
	reg := CheckBaseline("qwen2-q4_k_m-f64-faoff", regressed, base, nil, defaultRule)

	failing := nightlyReport()
	failing.Tensors[3] = nightlyRow("result_output", compare.Fail, 1e-2, 3, false)
	resummarize(failing)
	known := CheckBaseline("qwen3-f16-ggml-faon", failing, NewBaseline("x", failing, nil), nil, defaultRule)

	improved := CheckBaseline("qwen3-f16-ggml-faoff", nightlyReport(), NewBaseline("x", failing, nil), nil, defaultRule)
	improved.Warnings = append(improved.Warnings, "model sha256 bbbb differs from the baseline's aaaa: the fixture generator or llama.cpp's quantizer changed")

	errBase := &Baseline{Schema: Schema, Cell: "x", Verdict: VerdictError, Error: "run failed (exit 2): unsupported type iq4_xs"}
	knownErr := CheckError("llama-iq4_xs-ggml-faon", "run failed (exit 2): unsupported type iq4_xs", errBase, "b.json")
	newErr := CheckError("llama-iq4_xs-f64-faon", "run failed (exit 2): panic", NewBaseline("x", nightlyReport(), nil), "b.json")
	fixed := CheckBaseline("llama-iq4_xs-ggml-faoff", nightlyReport(), errBase, nil, defaultRule)

	return []*CellCheck{
		ok, reg, known, improved, knownErr, newErr, fixed,
		{Cell: "llama-f16-ggml-faon", Outcome: OutcomeNoBaseline, Verdict: compare.VerdictPass, Tensors: 5, Rule: defaultRule,
			Message: "no baseline fixtures/baselines/llama-f16-ggml-faon.json: record it with scripts/nightly.sh --update-baselines"},
		{Cell: "llama-f16-f64-faon", Outcome: OutcomeError, Message: "no check result: dump failed: out of memory | really"},
	}
}

func TestSummaryGolden(t *testing.T) {
	checks := summaryChecks()
	notes := []Note{{"matrix", "default (6 cells)"}, {"commit", "abc1234"}}
	for _, g := range []struct {
		file  string
		write func(*bytes.Buffer) error
	}{
		{"summary.md", func(b *bytes.Buffer) error { return WriteSummaryMarkdown(b, checks, notes) }},
		{"junit.xml", func(b *bytes.Buffer) error { return WriteSummaryJUnit(b, checks, notes) }},
		{"lines.txt", func(b *bytes.Buffer) error {
			for _, c := range checks {
				b.WriteString(c.Line() + "\n")
			}
			return nil
		}},
	} {
		var buf bytes.Buffer
		if err := g.write(&buf); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", g.file)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestSummaryGolden -update)", err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s differs from the golden file:\n%s", path, buf.String())
		}
	}
	var doc nightlySuites
	var buf bytes.Buffer
	if err := WriteSummaryJUnit(&buf, checks, notes); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	// Each checked cell has 6 cases, its unmeasured row skipped. ok: the
	// rest pass; regressed: verdict + 3 tensors fail; known failure:
	// verdict and result_output skipped; improved: verdict and
	// result_output fail; known error: the verdict case, skipped; new
	// error: 1 error; fixed (error → pass): the verdict fails, its rows
	// pass (unmeasured skipped); no baseline: 1 failure; error: 1 error.
	if doc.Tests != 6*4+1+1+6+1+1 || doc.Failures != 4+2+1+1 || doc.Errors != 2 || doc.Skipped != 1+1+3+1+1+1 {
		t.Errorf("junit counts: tests %d failures %d errors %d skipped %d", doc.Tests, doc.Failures, doc.Errors, doc.Skipped)
	}
}

func TestLastLogLine(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("x", 100<<10) + "\nthe end\n\n"
	p := writeTestFile(t, dir, "log.txt", func(f *os.File) error { _, err := f.WriteString(big); return err })
	if got := lastLogLine(p); got != "the end" {
		t.Errorf("lastLogLine = %q", got)
	}
	if got := lastLogLine(filepath.Join(dir, "none")); got != "" {
		t.Errorf("missing log: %q", got)
	}
}

func FuzzReadCellCheck(f *testing.F) {
	for _, c := range summaryChecks() {
		data, err := json.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"cell":"a","outcome":"ok","usage":"+Inf","rows":[{"name":"x","nmse":"NaN"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ReadCellCheck(bytes.NewReader(data), "fuzz.json")
		if err != nil {
			return
		}
		// Whatever reads must render.
		var b bytes.Buffer
		if err := WriteSummaryMarkdown(&b, []*CellCheck{c}, nil); err != nil {
			t.Fatal(err)
		}
		b.Reset()
		if err := WriteSummaryJUnit(&b, []*CellCheck{c}, nil); err != nil {
			t.Fatal(err)
		}
		_ = c.Line()
	})
}
