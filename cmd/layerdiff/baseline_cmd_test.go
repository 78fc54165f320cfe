package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/internal/nightlytest"
	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/nightly"
)

// junitCounts is what the tests read of the nightly summary's JUnit XML.
type junitCounts struct {
	Tests    int        `xml:"tests,attr"`
	Failures int        `xml:"failures,attr"`
	Errors   int        `xml:"errors,attr"`
	Suites   []struct{} `xml:"testsuite"`
}

// runCLI runs the layerdiff app and returns its stdout and the exit code
// run() would return.
func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	app := newApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	err := app.Run(permuteArgs(app, append([]string{"layerdiff"}, args...)))
	var div *divergenceError
	switch {
	case err == nil:
		return out.String(), exitAgree
	case errors.As(err, &div):
		return out.String(), exitDivergence
	}
	return out.String() + "error: " + err.Error(), exitBadInput
}

func TestBaselineCLI(t *testing.T) {
	dir := t.TempDir()
	writeRep := func(name string, r *compare.Report) string {
		return nightlytest.WriteFile(t, dir, name, func(f *os.File) error { return compare.WriteJSON(f, r) })
	}
	good := writeRep("good.json", nightlytest.Report())
	worse := nightlytest.Report()
	worse.Tensors[1].Metrics.NMSE = 1
	bad := writeRep("bad.json", worse)
	bl := filepath.Join(dir, "baselines", "llama-q8_0-f64-faon.json")

	out, code := runCLI(t, "baseline", "update", "--result", good, "--baseline", bl)
	if code != 0 || !strings.Contains(out, "UPDATED     llama-q8_0-f64-faon") {
		t.Fatalf("update: exit %d, %s", code, out)
	}
	b, err := nightly.LoadBaseline(bl)
	if err != nil || b.Cell != "llama-q8_0-f64-faon" || len(b.Tensors) != 5 {
		t.Fatalf("baseline written: %+v, %v", b, err)
	}

	chk := filepath.Join(dir, "cells", "llama-q8_0-f64-faon", "check.json")
	out, code = runCLI(t, "baseline", "check", "--result", good, "--baseline", bl, "--out", chk)
	if code != 0 || !strings.HasPrefix(out, "OK          llama-q8_0-f64-faon") {
		t.Errorf("check good: exit %d, %s", code, out)
	}
	if c, err := nightly.LoadCellCheck(chk); err != nil || c.Outcome != nightly.OutcomeOK || len(c.Rows) != 5 {
		t.Errorf("check.json: %+v, %v", c, err)
	}

	chk2 := filepath.Join(dir, "cells", "qwen2-q8_0-f64-faon", "check.json")
	out, code = runCLI(t, "--", "baseline", "--result", bad, "check", "--baseline", bl, "--cell", "qwen2-q8_0-f64-faon", "--out", chk2)
	if code != 1 || !strings.HasPrefix(out, "REGRESSED   qwen2-q8_0-f64-faon") || !strings.Contains(out, "ffn_out-0: nmse 1 > limit") {
		t.Errorf("check bad: exit %d, %s", code, out)
	}
	out, code = runCLI(t, "baseline", "check", "--result", bad, "--baseline", bl, "--factor", "1e7")
	if code != 0 {
		t.Errorf("check bad with --factor 1e7: exit %d, %s", code, out)
	}

	out, code = runCLI(t, "baseline", "check", "--result", good, "--baseline", filepath.Join(dir, "none.json"), "--cell", "new-cell", "--out", filepath.Join(dir, "cells", "new-cell", "check.json"))
	if code != 1 || !strings.Contains(out, "NO-BASELINE") || !strings.Contains(out, "--update-baselines") {
		t.Errorf("check without baseline: exit %d, %s", code, out)
	}

	eb := filepath.Join(dir, "baselines", "llama-iq4_xs-ggml-faon.json")
	if out, code := runCLI(t, "baseline", "update", "--error", "run failed: unsupported", "--baseline", eb); code != 0 || !strings.Contains(out, "UPDATED     llama-iq4_xs-ggml-faon     error") {
		t.Errorf("update --error: exit %d, %s", code, out)
	}
	if out, code := runCLI(t, "baseline", "check", "--error", "run failed: unsupported", "--baseline", eb); code != 0 || !strings.Contains(out, "known error") {
		t.Errorf("check --error as recorded: exit %d, %s", code, out)
	}
	if out, code := runCLI(t, "baseline", "check", "--error", "run failed: crash", "--baseline", bl); code != 1 || !strings.Contains(out, "ERROR") {
		t.Errorf("check --error against a passing baseline: exit %d, %s", code, out)
	}
	if out, code := runCLI(t, "baseline", "check", "--result", good, "--baseline", eb); code != 1 || !strings.Contains(out, "CHANGED") {
		t.Errorf("check a result against an error baseline: exit %d, %s", code, out)
	}

	for _, args := range [][]string{
		{"baseline", "check", "--result", good, "--error", "x", "--baseline", bl},
		{"baseline", "update", "--baseline", bl},
		{"baseline"},
		{"baseline", "frobnicate"},
		{"baseline", "check", "--result", good},
		{"baseline", "check", "--result", good, "--baseline", bl, "--factor", "0.5"},
		{"baseline", "check", "--result", filepath.Join(dir, "missing.json"), "--baseline", bl},
		{"baseline", "check", "--result", bl, "--baseline", bl},
		{"baseline", "check", "--result", good, "--baseline", good},
		{"baseline", "summary", "--dir", filepath.Join(dir, "cells")},
		{"baseline", "summary", "--dir", filepath.Join(dir, "cells"), "../x"},
		{"baseline", "summary", "--dir", filepath.Join(dir, "cells"), "--note", "nokey", "a"},
	} {
		if out, code := runCLI(t, args...); code != exitBadInput {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, out)
		}
	}

	// A cell that never got to the check: its log's last line explains.
	nightlytest.WriteFile(t, dir, "cells/qwen3-f16-ggml-faoff/log.txt", func(f *os.File) error {
		_, err := f.WriteString("loading\ndump failed: llama_model_load: tensor 'x' has wrong shape\n\n")
		return err
	})
	md, junit := filepath.Join(dir, "summary.md"), filepath.Join(dir, "junit.xml")
	out, code = runCLI(t, "baseline", "summary", "--dir", filepath.Join(dir, "cells"), "--md", md, "--junit", junit,
		"--note", "matrix=test", "llama-q8_0-f64-faon", "qwen2-q8_0-f64-faon", "new-cell", "qwen3-f16-ggml-faoff")
	if code != 1 || !strings.Contains(out, "4 cells, 1 ok, 3 failed") {
		t.Errorf("summary: exit %d, %s", code, out)
	}
	mdText, _ := os.ReadFile(md)
	for _, want := range []string{"**FAIL**: 3 of 4 cells failed (1 regressed, 0 changed, 1 without baseline, 1 could not be run)", "| matrix | test |",
		"tensor 'x' has wrong shape", "### qwen2-q8_0-f64-faon — regressed", "regression `ffn_out-0`: nmse 1 > limit"} {
		if !strings.Contains(string(mdText), want) {
			t.Errorf("summary.md lacks %q:\n%s", want, mdText)
		}
	}
	var doc junitCounts
	data, _ := os.ReadFile(junit)
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("junit.xml: %v", err)
	}
	if len(doc.Suites) != 4 || doc.Errors != 1 || doc.Failures != 2 || doc.Tests != 6+6+1+1 {
		t.Errorf("junit: %d suites, %d tests, %d failures, %d errors", len(doc.Suites), doc.Tests, doc.Failures, doc.Errors)
	}

	out, code = runCLI(t, "baseline", "summary", "--dir", filepath.Join(dir, "cells"), "llama-q8_0-f64-faon")
	if code != 0 || !strings.Contains(out, "1 cells, 1 ok, 0 failed") {
		t.Errorf("summary of a passing cell: exit %d, %s", code, out)
	}
}
