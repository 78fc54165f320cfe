package nightly

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/internal/nightlytest"
	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// The shared report (internal/nightlytest) under the names these tests use.
var (
	nightlyRow    = nightlytest.Row
	nightlyReport = nightlytest.Report
	resummarize   = nightlytest.Resummarize
	writeTestFile = nightlytest.WriteFile
)

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
	writeBaselineTensor(&b, BaselineTensor{Name: "x", Status: compare.Pass, NMSE: ptrF(v)})
	s := b.String()
	s = strings.TrimPrefix(s, `{"name":"x","status":"pass","nmse":`)
	return strings.TrimSuffix(s, "}")
}

func ptrF(v float64) *compare.Float { f := compare.Float(v); return &f }

func TestBaselineRoundTrip(t *testing.T) {
	rep := nightlyReport()
	rep.Tensors = append(rep.Tensors, nightlyRow("weird \"name\" (view)", compare.Pass, math.Inf(1), 0, false))
	b := NewBaseline("llama-q8_0-f64-faon", rep, &reference.Info{SystemInfo: "CPU : AVX2 = 1 | "})
	var buf bytes.Buffer
	if err := WriteBaseline(&buf, b); err != nil {
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
	got, err := ReadBaseline(strings.NewReader(first), "b.json")
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := WriteBaseline(&buf, got); err != nil {
		t.Fatal(err)
	}
	if buf.String() != first {
		t.Errorf("write → read → write differs:\n%s\nvs\n%s", first, buf.String())
	}
	if !json.Valid([]byte(first)) {
		t.Error("baseline is not valid JSON")
	}
	// A result checked against its own baseline is ok.
	if c := CheckBaseline(b.Cell, rep, got, nil, defaultRule); c.Outcome != OutcomeOK || len(c.Findings) != 0 {
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
		_, err := ReadBaseline(strings.NewReader(tc.in), "b.json")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
	if _, err := ReadBaseline(bytes.NewReader(make([]byte, maxBaselineBytes+1)), "big.json"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized baseline: %v", err)
	}
}

func FuzzReadBaseline(f *testing.F) {
	var buf bytes.Buffer
	rep := nightlyReport()
	if err := WriteBaseline(&buf, NewBaseline("cell", rep, nil)); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"schema":1,"cell":"c","verdict":"fail","tensors":[{"name":"a","status":"fail","nmse":"NaN","max_abs":"+Inf"}]}`))
	f.Add([]byte(`{"schema":1,"cell":"c","verdict":"pass","tensors":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ReadBaseline(bytes.NewReader(data), "fuzz.json")
		if err != nil {
			return
		}
		// Whatever reads must write, read back and check without panicking.
		var out bytes.Buffer
		if err := WriteBaseline(&out, b); err != nil {
			t.Fatalf("write: %v", err)
		}
		b2, err := ReadBaseline(&out, "rewritten.json")
		if err != nil {
			t.Fatalf("rewritten baseline does not read: %v\n%s", err, out.String())
		}
		if len(b2.Tensors) != len(b.Tensors) || b2.Verdict != b.Verdict {
			t.Fatalf("round trip changed the baseline")
		}
		CheckBaseline("fuzz", rep, b, nil, defaultRule).Line()
	})
}
