package nightly

import (
	"math"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

func TestCheckBaseline(t *testing.T) {
	base := NewBaseline("cell", nightlyReport(), nil)
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
		{"identical", func(*compare.Report) {}, want{outcome: OutcomeOK}},
		{"grew within the factor", func(r *compare.Report) {
			r.Tensors[1].Metrics.NMSE = 3.9e-6
			r.Tensors[1].Metrics.MaxAbs = 3.9e-3
		}, want{outcome: OutcomeOK}},
		{"nmse grew past the factor", func(r *compare.Report) { r.Tensors[1].Metrics.NMSE = 4.1e-6 },
			want{outcome: OutcomeRegressed, kinds: []string{kindNMSE}, severity: []string{sevRegression}}},
		{"max_abs grew past the factor", func(r *compare.Report) { r.Tensors[3].Metrics.MaxAbs = 0.1 },
			want{outcome: OutcomeRegressed, kinds: []string{kindMaxAbs}, severity: []string{sevRegression}}},
		{"NaN appeared", func(r *compare.Report) { r.Tensors[3].Metrics.NMSE = compare.Float(math.NaN()) },
			want{outcome: OutcomeRegressed, kinds: []string{kindNMSE}, severity: []string{sevRegression}}},
		{"bit-exact lost within the floors", func(r *compare.Report) {
			m := r.Tensors[0].Metrics
			m.BitIdentical, m.NMSE, m.MaxAbs = m.N-1, 1e-15, 1e-7
		}, want{outcome: OutcomeRegressed, kinds: []string{kindExact}, severity: []string{sevRegression}}},
		{"shrunk past the factor: tighter", func(r *compare.Report) {
			r.Tensors[3].Metrics.NMSE = 1e-9
		}, want{outcome: OutcomeOK, tighter: 1}},
		{"became bit-exact: tighter", func(r *compare.Report) {
			m := r.Tensors[1].Metrics
			m.BitIdentical, m.NMSE, m.MaxAbs = m.N, 0, 0
		}, want{outcome: OutcomeOK, tighter: 1}},
		{"status and verdict pass → fail", func(r *compare.Report) {
			r.Tensors[3].Status = compare.Fail
			r.Tensors[3].Reasons = []string{"argmax differs"}
			resummarize(r)
		}, want{outcome: OutcomeRegressed, kinds: []string{kindVerdict, kindStatus}, severity: []string{sevRegression, sevRegression}}},
		{"unmeasured → pass is an improvement, still a failure", func(r *compare.Report) {
			r.Tensors[4] = nightlyRow("cache_k_l0", compare.Pass, 0, 0, true)
		}, want{outcome: OutcomeChanged, kinds: []string{kindStatus}, severity: []string{sevImprovement}}},
		{"tensor missing and new: the graph changed", func(r *compare.Report) {
			r.Tensors[2].Key = "ffn_out-0 (view)"
		}, want{outcome: OutcomeChanged, kinds: []string{kindNew, kindMissing}, severity: []string{sevChange, sevChange}}},
		{"different model and prompt: warnings only", func(r *compare.Report) {
			r.Meta.Other.ModelSHA256 = "bbbb"
			r.Meta.Prompt = "Hello"
		}, want{outcome: OutcomeOK, warnings: 2}},
		{"different mode: warning", func(r *compare.Report) { r.Meta.Mode = "ggml" }, want{outcome: OutcomeOK, warnings: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := nightlyReport()
			tc.change(rep)
			c := CheckBaseline("cell", rep, base, nil, defaultRule)
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
			if c.Failed() != (tc.want.outcome != OutcomeOK) {
				t.Errorf("failed() = %v for outcome %s", c.Failed(), c.Outcome)
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
	b := NewBaseline("cell", rep, nil)
	c := CheckBaseline("cell", rep, b, nil, defaultRule)
	if c.Outcome != OutcomeOK || c.Verdict != compare.VerdictFail || c.FirstDivergence != "result_output (MUL_MAT, layer 0)" {
		t.Errorf("known failure: %+v", c)
	}
	if !strings.Contains(c.Line(), "known failure, first divergence result_output") {
		t.Errorf("line %q does not mention the known failure", c.Line())
	}
	rep.Tensors[3].Metrics.NMSE = 5e-2
	c = CheckBaseline("cell", rep, b, nil, defaultRule)
	if c.Outcome != OutcomeRegressed || len(c.Findings) != 1 || c.Findings[0].Kind != kindNMSE {
		t.Errorf("grown known failure: %s %+v", c.Outcome, c.Findings)
	}
	if got := float64(c.Growth); math.Abs(got-5e-2/float64(roundUp(1e-2))) > 1e-9 {
		t.Errorf("growth %g", got)
	}
}

func TestCheckError(t *testing.T) {
	errBase := &Baseline{Schema: Schema, Cell: "c", Verdict: VerdictError, Error: "run failed: unsupported"}
	passBase := NewBaseline("c", nightlyReport(), nil)
	for _, tc := range []struct {
		name    string
		msg     string
		b       *Baseline
		outcome string
		finding string
	}{
		{"same error as recorded", "run failed: unsupported", errBase, OutcomeOK, ""},
		{"another error", "run failed: panic", errBase, OutcomeError, kindVerdict},
		{"error where the baseline passed", "run failed: panic", passBase, OutcomeError, kindVerdict},
		{"error without baseline", "run failed: panic", nil, OutcomeError, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := CheckError("c", tc.msg, tc.b, "c.json")
			if c.Outcome != tc.outcome {
				t.Errorf("outcome %s, want %s", c.Outcome, tc.outcome)
			}
			if (tc.finding == "") != (len(c.Findings) == 0) || (tc.finding != "" && c.Findings[0].Kind != tc.finding) {
				t.Errorf("findings %+v, want kind %q", c.Findings, tc.finding)
			}
		})
	}
	// A result where the baseline recorded an error: one improvement.
	c := CheckBaseline("c", nightlyReport(), errBase, nil, defaultRule)
	if c.Outcome != OutcomeChanged || len(c.Findings) != 1 || c.Findings[0].Severity != sevImprovement || !strings.Contains(c.Findings[0].Message, "run failed: unsupported") {
		t.Errorf("error → pass: %s %+v", c.Outcome, c.Findings)
	}
}

func TestCheckSystemInfoWarning(t *testing.T) {
	rep := nightlyReport()
	b := NewBaseline("cell", rep, &reference.Info{SystemInfo: "CPU : AVX2 = 1 | "})
	c := CheckBaseline("cell", rep, b, &reference.Info{SystemInfo: "CPU : AVX512 = 1 | "}, defaultRule)
	if c.Outcome != OutcomeOK || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "SIMD") {
		t.Errorf("system info: %s %q", c.Outcome, c.Warnings)
	}
}
