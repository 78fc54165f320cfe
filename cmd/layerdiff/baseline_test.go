package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

var updateNightly = flag.Bool("update-nightly", false, "rewrite the golden files in testdata/nightly/")

// nightlyRow is a report row with metrics: nmse, max |a−b| and whether the
// tensor is bit-exact (n elements).
func nightlyRow(key string, status compare.Status, nmse, maxAbs float64, exact bool) compare.Row {
	const n = 64
	m := &compare.Metrics{N: n, Finite: n, NMSE: compare.Float(nmse), MaxAbs: compare.Float(maxAbs)}
	if exact {
		m.BitIdentical = n
	} else {
		m.BitIdentical = n - 3
	}
	r := compare.Row{Key: key, Name: strings.SplitN(key, "#", 2)[0], Op: "MUL_MAT", Layer: 0, Ne: []int64{8, 8}, Status: status, Metrics: m, FirstFailToken: -1}
	if status == compare.Fail {
		r.Reasons = []string{"nmse " + fmtG(nmse) + " > 1e-10"}
	}
	return r
}

// nightlyReport is a small report: inp_embd (exact), ffn_out-0 (error
// 1e-6), result_output (error 1e-4), and an unmeasured row.
func nightlyReport() *compare.Report {
	r := &compare.Report{
		Schema: compare.SchemaVersion, Verdict: compare.VerdictPass,
		Meta: compare.Meta{
			Reference: compare.Source{Label: "llama.cpp", ModelSHA256: "aaaa"},
			Other:     compare.Source{Label: "layerdiff forward (f64)", ModelSHA256: "aaaa"},
			Prompt:    "The quick brown fox", NTokens: 11, Mode: "f64",
		},
		Tensors: []compare.Row{
			nightlyRow("inp_embd", compare.Pass, 0, 0, true),
			nightlyRow("ffn_out-0", compare.Pass, 1e-6, 1e-3, false),
			nightlyRow("ffn_out-0#2", compare.Pass, 1e-6, 1e-3, false),
			nightlyRow("result_output", compare.Pass, 1e-4, 0.02, false),
			{Key: "cache_k_l0", Name: "cache_k_l0", Op: "CPY", Status: compare.Unmeasured, Reasons: []string{"no data"}, FirstFailToken: -1},
		},
	}
	resummarize(r)
	return r
}

// resummarize recomputes the summary, verdict and first divergence after a
// test changed rows.
func resummarize(r *compare.Report) {
	r.Summary = compare.Summary{Tensors: len(r.Tensors)}
	r.FirstDivergence = nil
	for i, row := range r.Tensors {
		switch row.Status {
		case compare.Pass:
			r.Summary.Pass++
		case compare.Fail:
			r.Summary.Fail++
			if r.FirstDivergence == nil {
				r.FirstDivergence = &compare.Divergence{Row: i, Key: row.Key, Name: row.Name, Op: row.Op, Layer: row.Layer, Token: -1, Reasons: row.Reasons}
			}
		case compare.Unmeasured:
			r.Summary.Unmeasured++
		}
	}
	switch {
	case r.Summary.Fail > 0:
		r.Verdict = compare.VerdictFail
	case r.Summary.Pass > 0:
		r.Verdict = compare.VerdictPass
	default:
		r.Verdict = compare.VerdictUnmeasured
	}
}

var defaultRule = growthRule{Factor: defaultGrowthFactor, NMSEFloor: defaultNMSEFloor, MaxAbsFloor: defaultMaxAbsFloor}

func TestGrowthRule(t *testing.T) {
	g := growthRule{Factor: 4, NMSEFloor: 1e-14, MaxAbsFloor: 1e-6}
	inf, nan := math.Inf(1), math.NaN()
	for _, tc := range []struct {
		name            string
		cur, base, flor float64
		limit           float64
		exceeds         bool
		usage           float64
	}{
		{"unchanged", 1e-6, 1e-6, 1e-14, 4e-6, false, 0.25},
		{"at the limit", 4e-6, 1e-6, 1e-14, 4e-6, false, 1},
		{"one ulp past the limit", math.Nextafter(4e-6, 1), 1e-6, 1e-14, 4e-6, true, math.Nextafter(4e-6, 1) / 4e-6},
		{"shrunk", 1e-9, 1e-6, 1e-14, 4e-6, false, 1e-9 / 4e-6},
		{"zero baseline, zero now", 0, 0, 1e-14, 1e-14, false, 0},
		{"zero baseline, within the floor", 1e-14, 0, 1e-14, 1e-14, false, 1},
		{"zero baseline, past the floor", 2e-14, 0, 1e-14, 1e-14, true, 2},
		{"tiny baseline: the floor wins", 1e-14, 1e-16, 1e-14, 1e-14, false, 1},
		{"zero floor, zero baseline", 1e-30, 0, 0, 0, true, inf},
		{"zero floor, zero baseline, zero now", 0, 0, 0, 0, false, 0},
		{"+Inf baseline sets no limit", 1e30, inf, 1e-14, inf, false, 0},
		{"+Inf baseline, +Inf now", inf, inf, 1e-14, inf, false, 1},
		{"+Inf now", inf, 1e-6, 1e-14, 4e-6, true, inf},
		{"NaN now", nan, 1e-6, 1e-14, 4e-6, true, inf},
		{"NaN baseline, NaN now", nan, nan, 1e-14, inf, false, 0},
		{"NaN baseline, number now", 5, nan, 1e-14, inf, false, 0},
		{"negative baseline counts as zero", 1e-15, -1, 1e-14, 1e-14, false, 0.1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := g.limit(tc.base, tc.flor); got != tc.limit {
				t.Errorf("limit(%g, %g) = %g, want %g", tc.base, tc.flor, got, tc.limit)
			}
			if got := g.exceeds(tc.cur, tc.base, tc.flor); got != tc.exceeds {
				t.Errorf("exceeds(%g, %g, %g) = %v, want %v", tc.cur, tc.base, tc.flor, got, tc.exceeds)
			}
			if got := g.usage(tc.cur, tc.base, tc.flor); math.Abs(got-tc.usage) > 1e-12*math.Max(1, tc.usage) && got != tc.usage {
				t.Errorf("usage(%g, %g, %g) = %g, want %g", tc.cur, tc.base, tc.flor, got, tc.usage)
			}
		})
	}
}

func TestGrowthRuleValidate(t *testing.T) {
	for _, tc := range []struct {
		g  growthRule
		ok bool
	}{
		{defaultRule, true},
		{growthRule{Factor: 1}, true},
		{growthRule{Factor: math.Nextafter(1, 0)}, false},
		{growthRule{Factor: math.NaN()}, false},
		{growthRule{Factor: math.Inf(1)}, false},
		{growthRule{Factor: 2, NMSEFloor: -1e-30}, false},
		{growthRule{Factor: 2, MaxAbsFloor: math.Inf(1)}, false},
	} {
		if err := tc.g.validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: validate() = %v, want ok %v", tc.g, err, tc.ok)
		}
	}
}

func TestRoundUp(t *testing.T) {
	for _, v := range []float64{1, 2.5e-15, 5.364003868274655e-05, 0.03435581922531128, 9.99999e-7, 123456789, 1e300, math.SmallestNonzeroFloat64, 0.1, 0.9995, 0.99951} {
		r := float64(roundUp(v))
		if r < v || r > v*1.0015 {
			t.Errorf("roundUp(%g) = %g, want within [v, 1.0015v]", v, r)
		}
		if s := strconvG(r); len(s) > 10 {
			t.Errorf("roundUp(%g) = %s: longer than 4 significant digits", v, s)
		}
	}
	for _, v := range []float64{0, math.Inf(1), math.Inf(-1)} {
		if got := float64(roundUp(v)); got != v {
			t.Errorf("roundUp(%g) = %g", v, got)
		}
	}
	if !math.IsNaN(float64(roundUp(math.NaN()))) {
		t.Error("roundUp(NaN) is not NaN")
	}
}

func strconvG(v float64) string {
	var b bytes.Buffer
	writeBaselineTensor(&b, baselineTensor{Name: "x", Status: compare.Pass, NMSE: ptrF(v)})
	s := b.String()
	s = strings.TrimPrefix(s, `{"name":"x","status":"pass","nmse":`)
	return strings.TrimSuffix(s, "}")
}

func ptrF(v float64) *compare.Float { f := compare.Float(v); return &f }

func TestBaselineRoundTrip(t *testing.T) {
	rep := nightlyReport()
	rep.Tensors = append(rep.Tensors, nightlyRow("weird \"name\" (view)", compare.Pass, math.Inf(1), 0, false))
	b := newBaseline("llama-q8_0-f64-faon", rep, &reference.Info{SystemInfo: "CPU : AVX2 = 1 | "})
	var buf bytes.Buffer
	if err := writeBaseline(&buf, b); err != nil {
		t.Fatal(err)
	}
	first := buf.String()
	if !strings.Contains(first, `{"name":"inp_embd","status":"pass","exact":true}`) ||
		!strings.Contains(first, `{"name":"ffn_out-0","status":"pass","nmse":1.001e-06,"max_abs":0.001001}`) ||
		!strings.Contains(first, `{"name":"cache_k_l0","status":"unmeasured"}`) ||
		!strings.Contains(first, `"nmse":"+Inf"`) ||
		!strings.Contains(first, `"system_info": "CPU : AVX2 = 1 |"`) {
		t.Errorf("unexpected baseline:\n%s", first)
	}
	got, err := readBaseline(strings.NewReader(first), "b.json")
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := writeBaseline(&buf, got); err != nil {
		t.Fatal(err)
	}
	if buf.String() != first {
		t.Errorf("write → read → write differs:\n%s\nvs\n%s", first, buf.String())
	}
	if !json.Valid([]byte(first)) {
		t.Error("baseline is not valid JSON")
	}
	// A result checked against its own baseline is ok.
	if c := checkBaseline(b.Cell, rep, got, nil, defaultRule); c.Outcome != outcomeOK || len(c.Findings) != 0 {
		t.Errorf("self check: outcome %s, findings %+v", c.Outcome, c.Findings)
	}
}

func TestReadBaselineErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"schema": 1, "cell": "c", "verdict": "pass", "tensors": [}`, "b.json: offset"},
		{`{"schema": "one"}`, "field schema"},
		{`{"verdict": "pass"}`, "not a layerdiff baseline"},
		{`{"schema": 1, "verdict": "pass", "tensors": []}`, `no "cell" field`},
		{`{"schema": 2, "cell": "c", "verdict": "pass"}`, "schema 2 is newer"},
		{`{"schema": 1, "cell": "c", "verdict": "maybe"}`, `verdict "maybe"`},
		{`{"schema": 1, "cell": "c", "verdict": "error"}`, `an error message goes with verdict "error"`},
		{`{"schema": 1, "cell": "c", "verdict": "pass", "error": "boom"}`, `an error message goes with verdict "error"`},
		{`{"schema": 1, "cell": "c", "verdict": "pass", "n_tokens": -1}`, "n_tokens -1"},
		{`{"schema": 1, "cell": "c", "verdict": "pass", "tensors": [{"status": "pass"}]}`, "tensors[0]: empty name"},
		{`{"schema": 1, "cell": "c", "verdict": "pass", "tensors": [{"name": "a", "status": "ok"}]}`, `tensors[0] (a): status "ok"`},
		{`{"schema": 1, "cell": "c", "verdict": "pass", "tensors": [{"name": "a", "status": "pass"}, {"name": "a", "status": "pass"}]}`, `tensors[1]: name "a" repeats tensors[0]`},
		{`{"schema": 1, "cell": "c", "verdict": "pass", "tensors": [{"name": "a", "status": "pass", "nmse": -1}]}`, "nmse -1 is negative"},
		{`{"schema": 1, "cell": "c", "verdict": "pass", "tensors": [{"name": "a", "status": "pass", "max_abs": "much"}]}`, "neither a number"},
	} {
		_, err := readBaseline(strings.NewReader(tc.in), "b.json")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
	if _, err := readBaseline(bytes.NewReader(make([]byte, maxBaselineBytes+1)), "big.json"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized baseline: %v", err)
	}
}

func TestCheckBaseline(t *testing.T) {
	base := newBaseline("cell", nightlyReport(), nil)
	type want struct {
		outcome  string
		kinds    []string // finding kinds in order
		severity []string
		tighter  int
		warnings int
	}
	for _, tc := range []struct {
		name   string
		change func(r *compare.Report)
		want   want
	}{
		{"identical", func(*compare.Report) {}, want{outcome: outcomeOK}},
		{"grew within the factor", func(r *compare.Report) {
			r.Tensors[1].Metrics.NMSE = 3.9e-6
			r.Tensors[1].Metrics.MaxAbs = 3.9e-3
		}, want{outcome: outcomeOK}},
		{"nmse grew past the factor", func(r *compare.Report) { r.Tensors[1].Metrics.NMSE = 4.1e-6 },
			want{outcome: outcomeRegressed, kinds: []string{kindNMSE}, severity: []string{sevRegression}}},
		{"max_abs grew past the factor", func(r *compare.Report) { r.Tensors[3].Metrics.MaxAbs = 0.1 },
			want{outcome: outcomeRegressed, kinds: []string{kindMaxAbs}, severity: []string{sevRegression}}},
		{"NaN appeared", func(r *compare.Report) { r.Tensors[3].Metrics.NMSE = compare.Float(math.NaN()) },
			want{outcome: outcomeRegressed, kinds: []string{kindNMSE}, severity: []string{sevRegression}}},
		{"bit-exact lost within the floors", func(r *compare.Report) {
			m := r.Tensors[0].Metrics
			m.BitIdentical, m.NMSE, m.MaxAbs = m.N-1, 1e-15, 1e-7
		}, want{outcome: outcomeRegressed, kinds: []string{kindExact}, severity: []string{sevRegression}}},
		{"shrunk past the factor: tighter", func(r *compare.Report) {
			r.Tensors[3].Metrics.NMSE = 1e-9
		}, want{outcome: outcomeOK, tighter: 1}},
		{"became bit-exact: tighter", func(r *compare.Report) {
			m := r.Tensors[1].Metrics
			m.BitIdentical, m.NMSE, m.MaxAbs = m.N, 0, 0
		}, want{outcome: outcomeOK, tighter: 1}},
		{"status and verdict pass → fail", func(r *compare.Report) {
			r.Tensors[3].Status = compare.Fail
			r.Tensors[3].Reasons = []string{"argmax differs"}
			resummarize(r)
		}, want{outcome: outcomeRegressed, kinds: []string{kindVerdict, kindStatus}, severity: []string{sevRegression, sevRegression}}},
		{"unmeasured → pass is an improvement, still a failure", func(r *compare.Report) {
			r.Tensors[4] = nightlyRow("cache_k_l0", compare.Pass, 0, 0, true)
		}, want{outcome: outcomeChanged, kinds: []string{kindStatus}, severity: []string{sevImprovement}}},
		{"tensor missing and new: the graph changed", func(r *compare.Report) {
			r.Tensors[2].Key = "ffn_out-0 (view)"
		}, want{outcome: outcomeChanged, kinds: []string{kindNew, kindMissing}, severity: []string{sevChange, sevChange}}},
		{"different model and prompt: warnings only", func(r *compare.Report) {
			r.Meta.Other.ModelSHA256 = "bbbb"
			r.Meta.Prompt = "Hello"
		}, want{outcome: outcomeOK, warnings: 2}},
		{"different mode: warning", func(r *compare.Report) { r.Meta.Mode = "ggml" }, want{outcome: outcomeOK, warnings: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := nightlyReport()
			tc.change(rep)
			c := checkBaseline("cell", rep, base, nil, defaultRule)
			if c.Outcome != tc.want.outcome {
				t.Errorf("outcome %s, want %s (findings %+v)", c.Outcome, tc.want.outcome, c.Findings)
			}
			var kinds, sev []string
			for _, f := range c.Findings {
				kinds, sev = append(kinds, f.Kind), append(sev, f.Severity)
			}
			if strings.Join(kinds, ",") != strings.Join(tc.want.kinds, ",") || strings.Join(sev, ",") != strings.Join(tc.want.severity, ",") {
				t.Errorf("findings %+v, want kinds %v severities %v", c.Findings, tc.want.kinds, tc.want.severity)
			}
			if c.Tighter != tc.want.tighter {
				t.Errorf("tighter %d, want %d", c.Tighter, tc.want.tighter)
			}
			if len(c.Warnings) != tc.want.warnings {
				t.Errorf("warnings %q, want %d", c.Warnings, tc.want.warnings)
			}
			if c.failed() != (tc.want.outcome != outcomeOK) {
				t.Errorf("failed() = %v for outcome %s", c.failed(), c.Outcome)
			}
		})
	}
}

func TestCheckFailingBaseline(t *testing.T) {
	// A known failure stays ok while it fails the same way, and regresses
	// when its error grows.
	rep := nightlyReport()
	rep.Tensors[3] = nightlyRow("result_output", compare.Fail, 1e-2, 3, false)
	resummarize(rep)
	b := newBaseline("cell", rep, nil)
	c := checkBaseline("cell", rep, b, nil, defaultRule)
	if c.Outcome != outcomeOK || c.Verdict != compare.VerdictFail || c.FirstDivergence != "result_output (MUL_MAT, layer 0)" {
		t.Errorf("known failure: %+v", c)
	}
	if !strings.Contains(c.line(), "known failure, first divergence result_output") {
		t.Errorf("line %q does not mention the known failure", c.line())
	}
	rep.Tensors[3].Metrics.NMSE = 5e-2
	c = checkBaseline("cell", rep, b, nil, defaultRule)
	if c.Outcome != outcomeRegressed || len(c.Findings) != 1 || c.Findings[0].Kind != kindNMSE {
		t.Errorf("grown known failure: %s %+v", c.Outcome, c.Findings)
	}
	if got := float64(c.Growth); math.Abs(got-5e-2/float64(roundUp(1e-2))) > 1e-9 {
		t.Errorf("growth %g", got)
	}
}

func TestCheckError(t *testing.T) {
	errBase := &baseline{Schema: baselineSchema, Cell: "c", Verdict: verdictError, Error: "run failed: unsupported"}
	passBase := newBaseline("c", nightlyReport(), nil)
	for _, tc := range []struct {
		name    string
		msg     string
		b       *baseline
		outcome string
		finding string
	}{
		{"same error as recorded", "run failed: unsupported", errBase, outcomeOK, ""},
		{"another error", "run failed: panic", errBase, outcomeError, kindVerdict},
		{"error where the baseline passed", "run failed: panic", passBase, outcomeError, kindVerdict},
		{"error without baseline", "run failed: panic", nil, outcomeError, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := checkError("c", tc.msg, tc.b, "c.json")
			if c.Outcome != tc.outcome {
				t.Errorf("outcome %s, want %s", c.Outcome, tc.outcome)
			}
			if (tc.finding == "") != (len(c.Findings) == 0) || (tc.finding != "" && c.Findings[0].Kind != tc.finding) {
				t.Errorf("findings %+v, want kind %q", c.Findings, tc.finding)
			}
		})
	}
	// A result where the baseline recorded an error: one improvement.
	c := checkBaseline("c", nightlyReport(), errBase, nil, defaultRule)
	if c.Outcome != outcomeChanged || len(c.Findings) != 1 || c.Findings[0].Severity != sevImprovement || !strings.Contains(c.Findings[0].Message, "run failed: unsupported") {
		t.Errorf("error → pass: %s %+v", c.Outcome, c.Findings)
	}
}

func TestCheckSystemInfoWarning(t *testing.T) {
	rep := nightlyReport()
	b := newBaseline("cell", rep, &reference.Info{SystemInfo: "CPU : AVX2 = 1 | "})
	c := checkBaseline("cell", rep, b, &reference.Info{SystemInfo: "CPU : AVX512 = 1 | "}, defaultRule)
	if c.Outcome != outcomeOK || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "SIMD") {
		t.Errorf("system info: %s %q", c.Outcome, c.Warnings)
	}
}

// writeTestFile writes data to dir/name and returns the path.
func writeTestFile(t *testing.T, dir, name string, write func(f *os.File) error) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
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
		return writeTestFile(t, dir, name, func(f *os.File) error { return compare.WriteJSON(f, r) })
	}
	good := writeRep("good.json", nightlyReport())
	worse := nightlyReport()
	worse.Tensors[1].Metrics.NMSE = 1
	bad := writeRep("bad.json", worse)
	bl := filepath.Join(dir, "baselines", "llama-q8_0-f64-faon.json")

	out, code := runCLI(t, "baseline", "update", "--result", good, "--baseline", bl)
	if code != 0 || !strings.Contains(out, "UPDATED     llama-q8_0-f64-faon") {
		t.Fatalf("update: exit %d, %s", code, out)
	}
	b, err := loadBaseline(bl)
	if err != nil || b.Cell != "llama-q8_0-f64-faon" || len(b.Tensors) != 5 {
		t.Fatalf("baseline written: %+v, %v", b, err)
	}

	chk := filepath.Join(dir, "cells", "llama-q8_0-f64-faon", "check.json")
	out, code = runCLI(t, "baseline", "check", "--result", good, "--baseline", bl, "--out", chk)
	if code != 0 || !strings.HasPrefix(out, "OK          llama-q8_0-f64-faon") {
		t.Errorf("check good: exit %d, %s", code, out)
	}
	if c, err := loadCellCheck(chk); err != nil || c.Outcome != outcomeOK || len(c.Rows) != 5 {
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
	writeTestFile(t, dir, "cells/qwen3-f16-ggml-faoff/log.txt", func(f *os.File) error {
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
	var doc nightlySuites
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

// summaryChecks is a fixed set of cell checks covering every outcome, for
// the golden files.
func summaryChecks() []*cellCheck {
	base := newBaseline("x", nightlyReport(), nil)
	ok := checkBaseline("llama-q8_0-f64-faon", nightlyReport(), base, nil, defaultRule)

	regressed := nightlyReport()
	regressed.Tensors[1].Metrics.NMSE = 2e-5
	regressed.Tensors[3].Status = compare.Fail
	regressed.Tensors[3].Reasons = []string{"argmax differs at token 3"}
	regressed.Tensors[0].Metrics.BitIdentical = 60
	resummarize(regressed)
	reg := checkBaseline("qwen2-q4_k_m-f64-faoff", regressed, base, nil, defaultRule)

	failing := nightlyReport()
	failing.Tensors[3] = nightlyRow("result_output", compare.Fail, 1e-2, 3, false)
	resummarize(failing)
	known := checkBaseline("qwen3-f16-ggml-faon", failing, newBaseline("x", failing, nil), nil, defaultRule)

	improved := checkBaseline("qwen3-f16-ggml-faoff", nightlyReport(), newBaseline("x", failing, nil), nil, defaultRule)
	improved.Warnings = append(improved.Warnings, "model sha256 bbbb differs from the baseline's aaaa: the fixture generator or llama.cpp's quantizer changed")

	errBase := &baseline{Schema: baselineSchema, Cell: "x", Verdict: verdictError, Error: "run failed (exit 2): unsupported type iq4_xs"}
	knownErr := checkError("llama-iq4_xs-ggml-faon", "run failed (exit 2): unsupported type iq4_xs", errBase, "b.json")
	newErr := checkError("llama-iq4_xs-f64-faon", "run failed (exit 2): panic", newBaseline("x", nightlyReport(), nil), "b.json")
	fixed := checkBaseline("llama-iq4_xs-ggml-faoff", nightlyReport(), errBase, nil, defaultRule)

	return []*cellCheck{
		ok, reg, known, improved, knownErr, newErr, fixed,
		{Cell: "llama-f16-ggml-faon", Outcome: outcomeNoBaseline, Verdict: compare.VerdictPass, Tensors: 5, Rule: defaultRule,
			Message: "no baseline fixtures/baselines/llama-f16-ggml-faon.json: record it with scripts/nightly.sh --update-baselines"},
		{Cell: "llama-f16-f64-faon", Outcome: outcomeError, Message: "no check result: dump failed: out of memory | really"},
	}
}

func TestSummaryGolden(t *testing.T) {
	checks := summaryChecks()
	notes := []summaryNote{{"matrix", "default (6 cells)"}, {"commit", "abc1234"}}
	for _, g := range []struct {
		file  string
		write func(*bytes.Buffer) error
	}{
		{"summary.md", func(b *bytes.Buffer) error { return writeSummaryMarkdown(b, checks, notes) }},
		{"junit.xml", func(b *bytes.Buffer) error { return writeSummaryJUnit(b, checks, notes) }},
		{"lines.txt", func(b *bytes.Buffer) error {
			for _, c := range checks {
				b.WriteString(c.line() + "\n")
			}
			return nil
		}},
	} {
		var buf bytes.Buffer
		if err := g.write(&buf); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", "nightly", g.file)
		if *updateNightly {
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
			t.Fatalf("%v (run go test -run TestSummaryGolden -update-nightly)", err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s differs from the golden file:\n%s", path, buf.String())
		}
	}
	var doc nightlySuites
	var buf bytes.Buffer
	if err := writeSummaryJUnit(&buf, checks, notes); err != nil {
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

func FuzzReadBaseline(f *testing.F) {
	var buf bytes.Buffer
	rep := nightlyReport()
	if err := writeBaseline(&buf, newBaseline("cell", rep, nil)); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"schema":1,"cell":"c","verdict":"fail","tensors":[{"name":"a","status":"fail","nmse":"NaN","max_abs":"+Inf"}]}`))
	f.Add([]byte(`{"schema":1,"cell":"c","verdict":"pass","tensors":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := readBaseline(bytes.NewReader(data), "fuzz.json")
		if err != nil {
			return
		}
		// Whatever reads must write, read back and check without panicking.
		var out bytes.Buffer
		if err := writeBaseline(&out, b); err != nil {
			t.Fatalf("write: %v", err)
		}
		b2, err := readBaseline(&out, "rewritten.json")
		if err != nil {
			t.Fatalf("rewritten baseline does not read: %v\n%s", err, out.String())
		}
		if len(b2.Tensors) != len(b.Tensors) || b2.Verdict != b.Verdict {
			t.Fatalf("round trip changed the baseline")
		}
		checkBaseline("fuzz", rep, b, nil, defaultRule).line()
	})
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
		c, err := readCellCheck(bytes.NewReader(data), "fuzz.json")
		if err != nil {
			return
		}
		// Whatever reads must render.
		var b bytes.Buffer
		if err := writeSummaryMarkdown(&b, []*cellCheck{c}, nil); err != nil {
			t.Fatal(err)
		}
		b.Reset()
		if err := writeSummaryJUnit(&b, []*cellCheck{c}, nil); err != nil {
			t.Fatal(err)
		}
		_ = c.line()
	})
}
