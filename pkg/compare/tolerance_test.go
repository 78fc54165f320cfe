package compare

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// TestJudgeTable is the verdict table: one case per criterion and state,
// each with the reason it exists.
func TestJudgeTable(t *testing.T) {
	full := func(f func(m *Metrics)) *Metrics {
		m := &Metrics{N: 100, Finite: 100, BitIdentical: 100, ULP: &ULPStats{}, Cosine: 1}
		if f != nil {
			f(m)
		}
		return m
	}
	partial := func(f func(m *Metrics)) *Metrics {
		m := &Metrics{N: 6, Finite: 6, WithinQuantum: 6, Quantum: 1e-4, Cosine: 1}
		if f != nil {
			f(m)
		}
		return m
	}
	base := Tolerance{NMSEMax: 1e-10, ATolRMS: 1e-4, RTol: 1e-4, NearTieGap: 1e-4, KLMax: Float(math.Inf(1))}
	with := func(f func(t *Tolerance)) Tolerance {
		t := base
		f(&t)
		return t
	}
	cases := []struct {
		why     string
		m       *Metrics
		tol     Tolerance
		want    Status
		reasons int
	}{
		{"identical tensors pass", full(nil), base, Pass, 0},
		{"nothing measured is unmeasured, never a failure", &Metrics{}, base, Unmeasured, 1},
		{"NMSE at the limit passes", full(func(m *Metrics) { m.NMSE = 1e-10; m.BitIdentical = 0 }), base, Pass, 0},
		{"NMSE above the limit fails", full(func(m *Metrics) { m.NMSE = 2e-10 }), base, Fail, 1},
		{"+Inf nmse_max disables the NMSE criterion", full(func(m *Metrics) { m.NMSE = 1 }), with(func(t *Tolerance) { t.NMSEMax = Float(math.Inf(1)) }), Pass, 0},
		{"a NaN on one side fails even when NMSE is fine", full(func(m *Metrics) { m.NonFiniteMismatch, m.RefNaN, m.Mismatches = 1, 1, 1 }), base, Fail, 2},
		{"shared NaN passes by default", full(func(m *Metrics) { m.SharedNonFinite = 3 }), base, Pass, 0},
		{"shared NaN fails on request", full(func(m *Metrics) { m.SharedNonFinite = 3 }), with(func(t *Tolerance) { t.FailSharedNonFinite = true }), Fail, 1},
		{"mismatches beyond the allowed fraction fail", full(func(m *Metrics) { m.Mismatches = 1 }), base, Fail, 1},
		{"mismatches within the allowed fraction pass", full(func(m *Metrics) { m.Mismatches = 1 }), with(func(t *Tolerance) { t.MismatchFracMax = 0.01 }), Pass, 0},
		{"bit-exact fails on any differing bit", full(func(m *Metrics) {
			m.BitIdentical = 99
			m.FirstDiff = &Element{Index: 5, Coord: []int64{5}, Ref: 1, Other: Float(math.Nextafter32(1, 2))}
		}), with(func(t *Tolerance) { t.BitExact = true }), Fail, 1},
		{"bit-exact passes identical data", full(nil), with(func(t *Tolerance) { t.BitExact = true }), Pass, 0},
		{"partial: NMSE of printed values is not judged", partial(func(m *Metrics) { m.NMSE = 1e-6 }), base, Pass, 0},
		{"partial: failing sum check fails", partial(func(m *Metrics) { m.Sum = &SumCheck{Ref: 1, Other: 2, Diff: 1, Limit: 0.5} }), base, Fail, 1},
		{"partial: sum-only tensor is measured", &Metrics{Sum: &SumCheck{OK: true}}, base, Pass, 0},
		{"partial bit-exact: element beyond printed precision fails", partial(func(m *Metrics) { m.WithinQuantum = 5 }), with(func(t *Tolerance) { t.BitExact = true }), Fail, 1},
		{"logits: argmax disagreement beyond a near tie fails", full(func(m *Metrics) {
			m.Logits = &Logits{Tokens: []TokenLogits{{Token: 3, RefArgmax: 1, OtherArgmax: 2, Gap: 0.5}}}
		}), with(func(t *Tolerance) { t.Logits = true }), Fail, 1},
		{"logits: near tie excused", full(func(m *Metrics) {
			m.Logits = &Logits{Tokens: []TokenLogits{{Token: 3, RefArgmax: 1, OtherArgmax: 2, Gap: 1e-5, NearTie: true}}}
		}), with(func(t *Tolerance) { t.Logits = true }), Pass, 0},
		{"logits: KL above kl_max fails", full(func(m *Metrics) { m.Logits = &Logits{MaxKL: 0.2} }), with(func(t *Tolerance) { t.Logits = true; t.KLMax = 0.1 }), Fail, 1},
		{"logits: NaN KL fails a finite kl_max", full(func(m *Metrics) { m.Logits = &Logits{MaxKL: Float(math.NaN())} }), with(func(t *Tolerance) { t.Logits = true; t.KLMax = 0.1 }), Fail, 1},
		{"logits: NaN KL passes a disabled kl_max", full(func(m *Metrics) { m.Logits = &Logits{MaxKL: Float(math.NaN())} }), with(func(t *Tolerance) { t.Logits = true }), Pass, 0},
		{"logits criteria ignored unless the tolerance says logits", full(func(m *Metrics) {
			m.Logits = &Logits{Tokens: []TokenLogits{{RefArgmax: 1, OtherArgmax: 2, Gap: 1}}}
		}), base, Pass, 0},
	}
	for _, c := range cases {
		j := Judge(c.m, c.tol)
		if j.Status != c.want || len(j.Reasons) != c.reasons {
			t.Errorf("%s: %s %q, want %s with %d reasons", c.why, j.Status, j.Reasons, c.want, c.reasons)
		}
	}
}

func TestPolicyResolve(t *testing.T) {
	p := MustPolicy(ModeGGML)
	p.Ops["GLU"] = Override{NMSEMax: fp(1e-8)}
	p.Ops["SWIGLU"] = Override{RTol: fp(1e-3)}
	p.Ops["MUL_MAT"] = Override{NMSEMax: fp(1e-9)}
	p.Names["ffn_out"] = Override{NMSEMax: fp(1e-7)}

	cases := []struct {
		name, op string
		check    func(Tolerance) bool
	}{
		{"attn_norm-0", "MUL", func(t Tolerance) bool { return t == p.Default }},
		{"ffn_swiglu-0", "GLU(SWIGLU)", func(t Tolerance) bool { return t.NMSEMax == 1e-8 && t.RTol == 1e-3 }},
		{"ffn_swiglu-0", "SWIGLU", func(t Tolerance) bool { return t.NMSEMax == 1e-8 && t.RTol == 1e-3 }},
		{"ffn_gate-3", "MUL_MAT", func(t Tolerance) bool { return t.NMSEMax == 1e-9 }},
		{"ffn_out-3", "MUL_MAT", func(t Tolerance) bool { return t.NMSEMax == 1e-7 }},
		{"result_output", "MUL_MAT", func(t Tolerance) bool { return t.Logits && t.NMSEMax == 1e-9 }},
		{"embd", "GET_ROWS", func(t Tolerance) bool { return t.BitExact }},     // via the alias to inp_embd
		{"inp_embd", "GET_ROWS", func(t Tolerance) bool { return t.BitExact }}, // directly
	}
	for _, c := range cases {
		if got := p.Resolve(c.name, c.op); !c.check(got) {
			t.Errorf("Resolve(%q, %q) = %+v", c.name, c.op, got)
		}
	}
	p.SetATol(0.5)
	p.SetRTol(0)
	if got := p.Resolve("ffn_swiglu-0", "SWIGLU"); got.ATol != 0.5 || got.RTol != 0 || got.NMSEMax != 1e-8 {
		t.Errorf("forced: %+v", got)
	}
}

func TestDefaultPolicies(t *testing.T) {
	for _, mode := range Modes() {
		p, err := DefaultPolicy(mode)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Resolve("result_output", "MUL_MAT").Logits {
			t.Errorf("%s: result_output not measured as logits", mode)
		}
	}
	if MustPolicy(ModeBitExact).Default.BitExact != true {
		t.Error("bitexact mode is not bit-exact")
	}
	if _, err := DefaultPolicy("f32"); err == nil {
		t.Error("unknown mode accepted")
	}
}

func TestReadPolicy(t *testing.T) {
	src := `{
  "base": "f64",
  "mode": "f64-measured",
  "default": {"nmse_max": 1e-4},
  "ops": {"MUL_MAT": {"rtol": 0.1}, "FLASH_ATTN_EXT": {"nmse_max": "+Inf"}},
  "names": {"result_output": {"near_tie_gap": 0.5}}
}`
	p, err := ReadPolicy(strings.NewReader(src), "tol.json")
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != "f64-measured" || p.Default.NMSEMax != 1e-4 || p.Default.ATolRMS != 0.25 {
		t.Errorf("default = %+v (mode %s)", p.Default, p.Mode)
	}
	if got := p.Resolve("result_output", "MUL_MAT"); !got.Logits || got.NearTieGap != 0.5 || got.RTol != 0.1 {
		t.Errorf("result_output: merged override lost a field: %+v", got)
	}
	if got := p.Resolve("__fattn__-0", "FLASH_ATTN_EXT"); !math.IsInf(float64(got.NMSEMax), 1) {
		t.Errorf("+Inf not read: %+v", got)
	}
	bad := []struct{ src, want string }{
		{`{"default": {"nmse": 1}}`, `unknown field "nmse"`},
		{`{"default": {"rtol": -1}}`, "default.rtol"},
		{`{"ops": {"ADD": {"atol": "NaN"}}}`, "ops.ADD.atol"},
		{`{"base": "fast"}`, `unknown tolerance mode "fast"`},
		{`{"default": {"rtol": "x"}}`, "tol.json"},
		{`{"default": `, "tol.json"},
		{`{} {}`, "trailing data"},
	}
	for _, b := range bad {
		_, err := ReadPolicy(strings.NewReader(b.src), "tol.json")
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("ReadPolicy(%s): error %v, want it to mention %q", b.src, err, b.want)
		}
	}
}

func TestPolicyJSONRoundTrip(t *testing.T) {
	p := MustPolicy(ModeGGML)
	p.SetATol(1e-3)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q Policy
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	c, _ := json.Marshal(&q)
	if !bytes.Equal(b, c) {
		t.Errorf("policy JSON round trip:\n%s\n%s", b, c)
	}
}

func FuzzReadPolicy(f *testing.F) {
	f.Add(`{"base": "f64", "default": {"nmse_max": 1e-4}, "ops": {"MUL_MAT": {"rtol": 0.1}}}`)
	f.Add(`{"names": {"result_output": {"kl_max": "+Inf", "logits": true}}}`)
	f.Add(`{"default": {"rtol": -1}}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, src string) {
		p, err := ReadPolicy(strings.NewReader(src), "fuzz.json")
		if err != nil {
			return
		}
		for _, op := range []string{"MUL_MAT", "GLU(SWIGLU)", ""} {
			tol := p.Resolve("ffn_out-1", op)
			for _, v := range []Float{tol.NMSEMax, tol.ATol, tol.ATolRMS, tol.RTol, tol.MismatchFracMax, tol.NearTieGap} {
				if math.IsNaN(float64(v)) || v < 0 {
					t.Fatalf("accepted an invalid tolerance: %+v", tol)
				}
			}
		}
	})
}
