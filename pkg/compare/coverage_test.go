package compare

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

func TestCoverageOf(t *testing.T) {
	row := func(name, op string, st Status, reasons ...string) Row {
		return Row{Name: name, Op: op, Status: st, Reasons: reasons, FirstFailToken: -1}
	}
	for _, tc := range []struct {
		name string
		rows []Row
		want Coverage
	}{
		{"empty", nil, Coverage{}},
		{"all measured", []Row{row("a-0", "MUL", Pass), row("b-0", "ADD", Fail)},
			Coverage{Nodes: 2, Measured: 2, Fraction: 1}},
		{"views by op are not counted, measured or not", []Row{
			row("Qcur-0", "MUL_MAT", Pass), row("Qcur-0", "RESHAPE", Pass), row("Qcur-0 (view)", "VIEW", Unmeasured, "no counterpart on the other side"),
			row("k (permuted)", "PERMUTE", Pass), row("k (transposed)", "TRANSPOSE", Unmeasured, "x"),
		}, Coverage{Nodes: 1, Measured: 1, Fraction: 1, Views: 4}},
		{"views by suffix when the op is unknown", []Row{
			row("x", "", Pass), row("x (reshaped)", "", Unmeasured, "no counterpart on the other side"), row("y", "", Unmeasured, "no counterpart on the other side"),
		}, Coverage{Nodes: 2, Measured: 1, Unmeasured: 1, Fraction: 0.5, Views: 1}},
		{"a copy with an op is counted", []Row{row(" (copy)", "CPY", Pass), row("z", "ADD", Unmeasured, "cannot read reference tensor z: EOF")},
			Coverage{Nodes: 2, Measured: 1, Unmeasured: 1, Fraction: 0.5}},
		{"no data and skipped are not counted", []Row{
			row("w", "MUL_MAT", Unmeasured, reasonNoData), row("f", "ADD", Skipped, "filtered out"), row("fv", "VIEW", Skipped, "filtered out"),
			row("u", "ADD", Unmeasured, "other side has no data"), row("p", "ADD", Pass),
		}, Coverage{Nodes: 2, Measured: 1, Unmeasured: 1, Fraction: 0.5, NoData: 1, Skipped: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, CoverageOf(tc.rows)); d != "" {
				t.Errorf("CoverageOf (-want +got):\n%s", d)
			}
		})
	}
}

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		measured, nodes int
		want            string
	}{
		{0, 0, "0%"}, {0, 10, "0%"}, {1, 1000, "<1%"}, {1, 100, "1%"}, {3, 100, "3%"}, {3, 45, "7%"},
		{1, 3, "33%"}, {2, 3, "67%"}, {999, 1000, "99%"}, {995, 1000, "99%"}, {994, 1000, "99%"}, {10, 10, "100%"},
	} {
		c := Coverage{Measured: tc.measured, Nodes: tc.nodes}
		if tc.nodes > 0 {
			c.Fraction = Float(float64(tc.measured) / float64(tc.nodes))
		}
		if got := c.Percent(); got != tc.want {
			t.Errorf("%d of %d: %q, want %q", tc.measured, tc.nodes, got, tc.want)
		}
	}
}

func TestParseMinCoverage(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		err  string
	}{
		{"0", 0, ""}, {"0.5", 0.5, ""}, {"1", 1, ""}, {" 0.25 ", 0.25, ""}, {"50%", 0.5, ""}, {"100%", 1, ""}, {"0%", 0, ""},
		{"12.5%", 0.125, ""}, {"1e-1", 0.1, ""}, {"50 %", 0.5, ""},
		{"", 0, "not a number"}, {"%", 0, "not a number"}, {"half", 0, "not a number"}, {"NaN", 0, "not a number"}, {"inf", 0, "not a number"},
		{"-0.1", 0, "outside 0 to 1"}, {"1.01", 0, "outside 0 to 1"}, {"50", 0, "needs its % sign (50%)"}, {"101", 0, "outside 0 to 1"},
		{"101%", 0, "outside 0% to 100%"}, {"-5%", 0, "outside 0% to 100%"}, {"0.5%%", 0, "not a number"},
	} {
		got, err := ParseMinCoverage(tc.in)
		switch {
		case tc.err == "" && (err != nil || math.Abs(got-tc.want) > 1e-15):
			t.Errorf("ParseMinCoverage(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseMinCoverage(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
		}
	}
}

func FuzzParseMinCoverage(f *testing.F) {
	for _, s := range []string{"0.5", "50%", "1", "0", "100%", "-1", "1e309", "0x1p-2", "50", "%", " 7 % "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseMinCoverage(s)
		if err != nil {
			return
		}
		if !(v >= 0 && v <= 1) {
			t.Fatalf("ParseMinCoverage(%q) = %v, outside 0..1", s, v)
		}
		if strings.HasSuffix(strings.TrimSpace(s), "%") {
			return
		}
		// A fraction and its percentage agree.
		p, err := ParseMinCoverage(strings.TrimSpace(s) + "%")
		if err != nil || math.Abs(p*100-v) > 1e-12*math.Max(1, v) {
			t.Fatalf("%q gives %v, %q%% gives %v, %v", s, v, s, p, err)
		}
	})
}

// sparseReport compares a reference of n nodes in layers with an other
// side holding only the first k of them.
func sparseReport(t *testing.T, n, k int) *Report {
	t.Helper()
	var ref, other []*tensor.Tensor
	for i := range n {
		x := &tensor.Tensor{Name: "t-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), Op: "ADD", Ne: []int64{2}, Data: []float32{1, float32(i)}}
		x.Name += "-0"
		ref = append(ref, x)
		if i < k {
			other = append(other, x)
		}
	}
	rep, err := Compare(NewTensorList(ref), NewTensorList(other), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestCompareCoverage(t *testing.T) {
	rep := sparseReport(t, 40, 3)
	want := Coverage{Nodes: 40, Measured: 3, Unmeasured: 37, Fraction: Float(3.0 / 40)}
	if rep.Verdict != VerdictPass || rep.Coverage == nil || *rep.Coverage != want {
		t.Fatalf("verdict %s, coverage %+v; want pass, %+v", rep.Verdict, rep.Coverage, want)
	}
	if !strings.Contains(strings.Join(rep.Warnings, "\n"), "low coverage: 3 of 40 reference nodes measured (8%), 37 unmeasured") {
		t.Errorf("no low-coverage warning: %q", rep.Warnings)
	}
	if rep := sparseReport(t, 40, 20); rep.Coverage.Low() || strings.Contains(strings.Join(rep.Warnings, "\n"), "low coverage") {
		t.Errorf("half measured: warned %q", rep.Warnings)
	}
}

// TestCompareNoData: a reference node without data is unmeasured with the
// reason coverage recognizes, is not read, not listed as unmatched, and is
// left out of the coverage count.
func TestCompareNoData(t *testing.T) {
	a := &tensor.Tensor{Key: "a-0", Name: "a-0", Op: "ADD", Ne: []int64{2}, Data: []float32{1, 2}}
	w := &tensor.Tensor{Key: "w-0", Name: "w-0", Op: "MUL_MAT", Ne: []int64{2}, Data: []float32{3, 4}}
	ref := &noDataSide{TensorList: NewTensorList([]*tensor.Tensor{a, w}), none: "w-0"}
	rep, err := Compare(ref, NewTensorList([]*tensor.Tensor{a, w}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	row := rep.Tensors[1]
	if row.Status != Unmeasured || len(row.Reasons) != 1 || row.Reasons[0] != reasonNoData || row.Other == nil || row.Other.Key != "w-0" {
		t.Errorf("row %+v, want unmeasured %q with its counterpart", row, reasonNoData)
	}
	if ref.read["w-0"] {
		t.Error("the node without data was read")
	}
	if len(rep.Unmatched) != 0 {
		t.Errorf("unmatched %+v", rep.Unmatched)
	}
	if want := (Coverage{Nodes: 1, Measured: 1, Fraction: 1, NoData: 1}); *rep.Coverage != want {
		t.Errorf("coverage %+v, want %+v", *rep.Coverage, want)
	}
}

type noDataSide struct {
	*TensorList
	none string
	read map[string]bool
}

func (s *noDataSide) Nodes() []Node {
	ns := append([]Node(nil), s.TensorList.Nodes()...)
	for i := range ns {
		ns[i].NoData = ns[i].Key == s.none
	}
	return ns
}

func (s *noDataSide) Tensor(key string) (*tensor.Tensor, error) {
	if s.read == nil {
		s.read = map[string]bool{}
	}
	s.read[key] = true
	return s.TensorList.Tensor(key)
}

func TestRequireCoverage(t *testing.T) {
	rep := sparseReport(t, 40, 3)
	rep.RequireCoverage(0.5)
	if rep.Verdict != VerdictFail || !rep.Coverage.BelowMin || rep.Coverage.Min != 0.5 || rep.FirstDivergence != nil {
		t.Fatalf("verdict %s, coverage %+v, divergence %+v; want a fail on coverage alone", rep.Verdict, rep.Coverage, rep.FirstDivergence)
	}
	// Judged again with a lower minimum (report --in --min-coverage).
	rep.RequireCoverage(0.075)
	if rep.Verdict != VerdictPass || rep.Coverage.BelowMin {
		t.Fatalf("3 of 40 against 7.5%%: verdict %s, coverage %+v; want pass", rep.Verdict, rep.Coverage)
	}
	rep.RequireCoverage(0.076)
	if rep.Verdict != VerdictFail {
		t.Fatalf("3 of 40 against 7.6%%: verdict %s, want fail", rep.Verdict)
	}
	rep.RequireCoverage(0)
	if rep.Verdict != VerdictPass || rep.Coverage.BelowMin || rep.Coverage.Min != 0 {
		t.Fatalf("no minimum: verdict %s, coverage %+v", rep.Verdict, rep.Coverage)
	}
	// Exactly at the minimum passes: 26 of 52 is 50%; 1 of 3 is 1/3.
	for _, tc := range []struct {
		n, k int
		min  float64
	}{{52, 26, 0.5}, {3, 1, 1.0 / 3}, {10, 3, 0.3}, {10, 10, 1}} {
		r := sparseReport(t, tc.n, tc.k)
		if r.RequireCoverage(tc.min); r.Verdict != VerdictPass {
			t.Errorf("%d of %d against %v: %s", tc.k, tc.n, tc.min, r.Verdict)
		}
	}
	// Only views measured: no node counted, no minimum met, no low-coverage
	// claim either.
	views := &Report{Verdict: VerdictPass, Summary: Summary{Pass: 1}, Tensors: []Row{{Name: "v-0", Op: "VIEW", Status: Pass}}}
	if c := views.CoverageInfo(); c.Low() || c.Nodes != 0 || c.Views != 1 || !strings.HasPrefix(c.Phrase(), "no reference node counted") {
		t.Errorf("views only: coverage %+v, low %v, %q", c, c.Low(), c.Phrase())
	}
	if views.RequireCoverage(0.01); views.Verdict != VerdictFail {
		t.Errorf("views only against 1%%: %s", views.Verdict)
	}
	// A divergence stays a fail, unmeasured stays unmeasured.
	fail := &Report{Verdict: VerdictFail, Summary: Summary{Fail: 1}, FirstDivergence: &Divergence{}, Tensors: []Row{{Status: Fail}}}
	fail.RequireCoverage(0)
	if fail.Verdict != VerdictFail {
		t.Errorf("a divergence became %s", fail.Verdict)
	}
	none := &Report{Verdict: VerdictUnmeasured, Tensors: []Row{{Name: "a", Op: "ADD", Status: Unmeasured}}}
	none.RequireCoverage(0.5)
	if none.Verdict != VerdictUnmeasured || !none.Coverage.BelowMin {
		t.Errorf("unmeasured became %s, coverage %+v", none.Verdict, none.Coverage)
	}
}

// TestReadJSONWithoutCoverage: a report saved before the coverage field
// reads back with its coverage counted from its rows, and re-encodes with
// it; a coverage that contradicts itself is refused.
func TestReadJSONWithoutCoverage(t *testing.T) {
	rep := sparseReport(t, 10, 4)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, rep); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["coverage"]; !ok {
		t.Fatal("no coverage field written")
	}
	delete(m, "coverage")
	old, _ := json.Marshal(m)
	back, err := ReadJSON(bytes.NewReader(old), "old.json")
	if err != nil {
		t.Fatal(err)
	}
	if back.Coverage == nil || *back.Coverage != *rep.Coverage {
		t.Errorf("coverage of an old report %+v, want %+v", back.Coverage, rep.Coverage)
	}
	for _, bad := range []string{`{"nodes": 2, "measured": 3}`, `{"nodes": -1}`, `{"nodes": 2, "measured": 1, "min": 2}`} {
		m["coverage"] = json.RawMessage(bad)
		b, _ := json.Marshal(m)
		if _, err := ReadJSON(bytes.NewReader(b), "bad.json"); err == nil || !strings.Contains(err.Error(), "bad.json: coverage") {
			t.Errorf("coverage %s: error %v", bad, err)
		}
	}
}
