package compare

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

func randTensor(rng *rand.Rand, name, op string, ne ...int64) *tensor.Tensor {
	d := make([]float32, tensor.Numel(ne))
	for i := range d {
		d[i] = float32(rng.NormFloat64())
	}
	return &tensor.Tensor{Key: name, Name: name, Op: op, Ne: ne, Data: d}
}

func clone(t *tensor.Tensor) *tensor.Tensor {
	c := *t
	c.Data = slices.Clone(t.Data)
	c.Ne = slices.Clone(t.Ne)
	return &c
}

// graph is a small two-layer graph: T = 4 tokens, n_embd 8, vocab 16.
func graph(seed uint64) []*tensor.Tensor {
	rng := rand.New(rand.NewPCG(seed, 7))
	return []*tensor.Tensor{
		randTensor(rng, "inp_embd", "GET_ROWS", 8, 4),
		randTensor(rng, "attn_norm-0", "MUL", 8, 4),
		randTensor(rng, "Qcur-0", "MUL_MAT", 8, 4),
		randTensor(rng, "ffn_out-0", "MUL_MAT", 8, 4),
		randTensor(rng, "l_out-0", "ADD", 8, 4),
		randTensor(rng, "attn_norm-1", "MUL", 8, 4),
		randTensor(rng, "ffn_out-1", "MUL_MAT", 8, 4),
		randTensor(rng, "l_out-1", "ADD", 8, 4),
		randTensor(rng, "result_norm", "MUL", 8, 4),
		randTensor(rng, "result_output", "MUL_MAT", 16, 4),
	}
}

func find(ts []*tensor.Tensor, name string) *tensor.Tensor {
	for _, t := range ts {
		if t.Name == name {
			return t
		}
	}
	panic(name)
}

func TestCompareIdentical(t *testing.T) {
	ref := graph(1)
	var other []*tensor.Tensor
	for _, x := range ref {
		other = append(other, clone(x))
	}
	rep, err := Compare(NewTensorList(ref), NewTensorList(other), Options{Policy: MustPolicy(ModeBitExact)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != VerdictPass || rep.Summary.Pass != len(ref) || rep.FirstDivergence != nil || rep.Blame != nil {
		t.Fatalf("identical graphs: verdict %s summary %+v", rep.Verdict, rep.Summary)
	}
	if rep.Meta.NTokens != 4 {
		t.Errorf("inferred T = %d, want 4 (from inp_embd)", rep.Meta.NTokens)
	}
	for _, r := range rep.Tensors {
		if r.Tokens != 4 || r.Metrics.BitIdentical != r.Metrics.N {
			t.Errorf("%s: tokens %d, bit-identical %d/%d", r.Name, r.Tokens, r.Metrics.BitIdentical, r.Metrics.N)
		}
	}
}

func TestCompareFirstDivergence(t *testing.T) {
	ref := graph(2)
	var other []*tensor.Tensor
	for _, x := range ref {
		if x.Name == "attn_norm-1" {
			continue // the other side does not produce it
		}
		other = append(other, clone(x))
	}
	// A small error at token 2 of ffn_out-0 that propagates, a last-layer
	// subset on the reference, and an extra node on the other side.
	find(other, "ffn_out-0").Data[2*8+3] += 1e-3
	find(other, "l_out-0").Data[2*8+3] += 1e-3
	rs := find(ref, "result_output")
	rs.Ne = []int64{16, 1}
	rs.Data = rs.Data[3*16:]
	other = append(other, &tensor.Tensor{Key: "extra", Name: "extra", Op: "CPY", Ne: []int64{2}, Data: []float32{1, 2}})

	var blamed *Divergence
	opts := Options{
		Policy: MustPolicy(ModeGGML),
		Meta: Meta{Tokens: []int32{1, 2, 3, 4},
			Reference: Source{Label: "llama.cpp", ModelSHA256: "aaaa"}, Other: Source{Label: "ours", ModelSHA256: "bbbb"}},
		Filter: func(n Node) bool { return n.Name != "result_norm" },
		Blamer: BlamerFunc(func(d *Divergence, env *BlameEnv) (*Blame, error) {
			blamed = d
			tt, err := env.Counterpart(d.Row)
			if err != nil || tt == nil {
				return nil, errors.New("no counterpart")
			}
			return &Blame{Name: d.Name, Op: d.Op, Layer: d.Layer, By: "test", Evidence: []string{tt.Name}}, nil
		}),
		Worst: 3,
	}
	rep, err := Compare(NewTensorList(ref), NewTensorList(other), opts)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]Status{}
	for _, r := range rep.Tensors {
		status[r.Name] = r.Status
	}
	want := map[string]Status{"inp_embd": Pass, "attn_norm-0": Pass, "Qcur-0": Pass, "ffn_out-0": Fail, "l_out-0": Fail,
		"attn_norm-1": Unmeasured, "ffn_out-1": Pass, "l_out-1": Pass, "result_norm": Skipped, "result_output": Pass}
	for k, v := range want {
		if status[k] != v {
			t.Errorf("%s: %s, want %s", k, status[k], v)
		}
	}
	d := rep.FirstDivergence
	if d == nil || d.Name != "ffn_out-0" || d.Op != "MUL_MAT" || d.Layer != 0 || d.Token != 2 || d.Row != 3 || blamed != d {
		t.Fatalf("first divergence = %+v", d)
	}
	if rep.Blame == nil || rep.Blame.By != "test" || rep.Blame.Evidence[0] != "ffn_out-0" {
		t.Errorf("blame = %+v", rep.Blame)
	}
	if len(rep.Worst) != 1 || rep.Worst[0].Index != 19 || !slices.Equal(rep.Worst[0].Coord, []int64{3, 2}) {
		t.Errorf("worst = %+v", rep.Worst)
	}
	row := rep.Tensors[3]
	if len(row.PerToken) != 4 || !row.PerToken[2].Fail || row.PerToken[1].Fail || row.FirstFailToken != 2 {
		t.Errorf("per token = %+v", row.PerToken)
	}
	ro := rep.Tensors[9]
	if ro.Transform != LastRows || ro.Metrics.Logits == nil || ro.Metrics.Logits.Tokens[0].Token != 3 || ro.Metrics.Logits.ArgmaxAgree != 1 {
		t.Errorf("result_output row: transform %s logits %+v", ro.Transform, ro.Metrics.Logits)
	}
	if rep.Verdict != VerdictFail || rep.Summary != (Summary{Tensors: 10, Pass: 6, Fail: 2, Unmeasured: 1, Skipped: 1, UnmatchedOther: 1}) {
		t.Errorf("verdict %s summary %+v", rep.Verdict, rep.Summary)
	}
	if len(rep.Unmatched) != 2 || rep.Unmatched[0].Name != "attn_norm-1" || rep.Unmatched[1].Side != "other" || len(rep.Skipped) != 1 {
		t.Errorf("unmatched %+v skipped %+v", rep.Unmatched, rep.Skipped)
	}
	if !strings.Contains(strings.Join(rep.Warnings, "\n"), "different model file (sha256 aaaa, other side bbbb)") {
		t.Errorf("warnings = %q", rep.Warnings)
	}
}

func TestCompareDefaultBlameAndProblems(t *testing.T) {
	ref := []*tensor.Tensor{
		{Key: "a", Name: "a", Op: "ADD", Ne: []int64{2}, Data: []float32{1, 2}},
		{Key: "b", Name: "b", Op: "ADD", Ne: []int64{2}, Data: []float32{1, 2}},
		{Key: "c", Name: "c", Op: "ADD", Ne: []int64{2}, Data: []float32{1}}, // data does not fit the shape
		{Key: "d", Name: "d", Op: "ADD", Ne: []int64{2}},                     // no data
		{Key: "e", Name: "e", Op: "ADD", Ne: []int64{3}, Data: []float32{1, 2, 3}},
	}
	other := []*tensor.Tensor{
		{Key: "a", Name: "a", Op: "ADD", Ne: []int64{2}, Data: []float32{1, 2}},
		{Key: "b", Name: "b", Op: "ADD", Ne: []int64{2}, Data: []float32{1, float32(math.NaN())}},
		{Key: "c", Name: "c", Op: "ADD", Ne: []int64{2}, Data: []float32{1, 2}},
		{Key: "d", Name: "d", Op: "ADD", Ne: []int64{2}, Data: []float32{1, 2}},
		{Key: "e", Name: "e", Op: "ADD", Ne: []int64{4}, Data: []float32{1, 2, 3, 4}}, // no correspondence
	}
	rep, err := Compare(NewTensorList(ref), NewTensorList(other), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := []Status{}
	for _, r := range rep.Tensors {
		got = append(got, r.Status)
	}
	if want := []Status{Pass, Fail, Unmeasured, Unmeasured, Fail}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	if !strings.Contains(rep.Tensors[2].Reasons[0], "1 values for shape {2}") || rep.Tensors[3].Reasons[0] != "reference has no data" {
		t.Errorf("reasons: %q / %q", rep.Tensors[2].Reasons, rep.Tensors[3].Reasons)
	}
	if !strings.Contains(rep.Tensors[4].Reasons[0], "no element correspondence") {
		t.Errorf("shape reason %q", rep.Tensors[4].Reasons)
	}
	b := rep.Blame
	if b == nil || b.Name != "b" || b.By != "first-fail" || !strings.Contains(strings.Join(b.Evidence, "\n"), "last passing tensor before it is a (ADD)") {
		t.Errorf("default blame = %+v", b)
	}
	if _, err := Compare(NewTensorList(nil), NewTensorList(other), Options{}); err == nil {
		t.Error("empty reference accepted")
	}
	// Nothing measurable: verdict unmeasured, not pass.
	rep, _ = Compare(NewTensorList(ref[3:4]), NewTensorList(other), Options{})
	if rep.Verdict != VerdictUnmeasured {
		t.Errorf("verdict %s, want unmeasured", rep.Verdict)
	}
	// A blamer error becomes a warning.
	rep, _ = Compare(NewTensorList(ref[:2]), NewTensorList(other), Options{Blamer: BlamerFunc(func(*Divergence, *BlameEnv) (*Blame, error) {
		return nil, errors.New("weights not loaded")
	})})
	if rep.Blame != nil || !slices.Contains(rep.Warnings, "blame: weights not loaded") {
		t.Errorf("blame %+v warnings %q", rep.Blame, rep.Warnings)
	}
}

func TestComparePartialReference(t *testing.T) {
	other := []*tensor.Tensor{{Key: "x", Name: "x-0", Op: "MUL", Ne: []int64{3, 2}, Data: []float32{0.12345, 1, 2, 3, 4, -2.00004}}}
	sum := 0.0
	for _, v := range other[0].Data {
		sum += float64(v)
	}
	ref := []*tensor.Tensor{{Key: "x", Name: "x-0", Op: "MUL", Ne: []int64{3, 2}, Partial: &tensor.Partial{
		Index: []int64{0, 5}, Values: []float64{0.1235, -2.0000}, Quantum: 1e-4, Sum: math.Round(sum*1e6) / 1e6, HasSum: true, SumQuantum: 1e-6}}}
	rep, err := Compare(NewTensorList(ref), NewTensorList(other), Options{Tokens: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Tensors[0]
	if r.Status != Pass || !r.Partial || r.Metrics.N != 2 || r.Metrics.Sum == nil || !r.Metrics.Sum.OK {
		t.Errorf("partial row: %s %q %+v", r.Status, r.Reasons, r.Metrics)
	}
	if !strings.Contains(strings.Join(rep.Warnings, "\n"), "1 tensor compared on a text log") {
		t.Errorf("warnings %q", rep.Warnings)
	}
	// An element beyond the printed precision fails at its token.
	other[0].Data[5] = -2.002
	rep, _ = Compare(NewTensorList(ref), NewTensorList(other), Options{Tokens: 2})
	if r := rep.Tensors[0]; r.Status != Fail || r.FirstFailToken != 1 {
		t.Errorf("partial failure: %s token %d %q", r.Status, r.FirstFailToken, r.Reasons)
	}
}

func TestTensorListKeys(t *testing.T) {
	l := NewTensorList([]*tensor.Tensor{{Name: "norm-0"}, {Name: "norm-0"}, {Key: "norm-0#1", Name: "x"}, nil})
	var keys []string
	for _, n := range l.Nodes() {
		keys = append(keys, n.Key)
	}
	if want := []string{"norm-0", "norm-0#1", "norm-0#1#1"}; !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
	if _, err := l.Tensor("missing"); err == nil {
		t.Error("missing key found")
	}
}

// sampleReport is a failing comparison with every optional part filled.
func sampleReport(t testing.TB) *Report {
	ref := graph(3)
	var other []*tensor.Tensor
	for _, x := range ref {
		other = append(other, clone(x))
	}
	find(other, "Qcur-0").Data[5] = float32(math.NaN())
	find(other, "l_out-1").Data[9] += 1e-6
	rep, err := Compare(NewTensorList(ref), NewTensorList(other), Options{Meta: Meta{Tokens: []int32{1, 2, 3, 4}, Tool: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestJSONRoundTrip(t *testing.T) {
	rep := sampleReport(t)
	var a bytes.Buffer
	if err := WriteJSON(&a, rep); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(bytes.NewReader(a.Bytes()), "a.json")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteJSON(&b, back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("JSON round trip differs")
	}
	for _, s := range []string{`"verdict": "fail"`, `"first_divergence": {`, `"name": "Qcur-0"`, `"nmse_max": 1e-10`, `"kl_max": "+Inf"`} {
		if !strings.Contains(a.String(), s) {
			t.Errorf("JSON lacks %s", s)
		}
	}
}

func TestReadJSONErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{`{`, "offset"},
		{`{"verdict": "pass"}`, `no "schema"`},
		{`{"schema": 99, "verdict": "pass"}`, "newer"},
		{`{"schema": 1, "verdict": "maybe"}`, "verdict"},
		{`{"schema": 1, "verdict": "pass", "tensors": [{"name": "x", "status": "odd"}]}`, "tensors[0] (x)"},
		{`{"schema": 1, "verdict": "fail", "first_divergence": {"row": 3}}`, "first_divergence.row 3"},
		{`{"schema": 1, "verdict": "pass", "tensors": [{"metrics": {"nmse": "big"}}]}`, "r.json"},
		{`{"schema": "1"}`, "field schema"},
	}
	for _, c := range cases {
		_, err := ReadJSON(strings.NewReader(c.src), "r.json")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ReadJSON(%s) error %v, want %q", c.src, err, c.want)
		}
	}
}

func FuzzReadJSON(f *testing.F) {
	var b bytes.Buffer
	if err := WriteJSON(&b, sampleReport(f)); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Add([]byte(`{"schema": 1, "verdict": "pass", "tensors": [{"status": "pass", "metrics": {"nmse": "NaN"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ReadJSON(bytes.NewReader(data), "fuzz.json")
		if err != nil {
			return
		}
		var x, y bytes.Buffer
		if err := WriteJSON(&x, r); err != nil {
			t.Fatal(err)
		}
		r2, err := ReadJSON(bytes.NewReader(x.Bytes()), "again.json")
		if err != nil {
			t.Fatalf("re-reading written report: %v", err)
		}
		if err := WriteJSON(&y, r2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x.Bytes(), y.Bytes()) {
			t.Fatalf("second round trip differs")
		}
	})
}

func TestFloatJSON(t *testing.T) {
	for _, v := range []float64{0, -0.5, 1e-300, math.MaxFloat64, math.Inf(1), math.Inf(-1), math.NaN(), 5e-324} {
		b, err := Float(v).MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var f Float
		if err := f.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		if !(float64(f) == v || (math.IsNaN(v) && math.IsNaN(float64(f)))) {
			t.Errorf("%g → %s → %g", v, b, f)
		}
	}
	var f Float
	if err := f.UnmarshalJSON([]byte(`"huge"`)); err == nil {
		t.Error(`"huge" accepted`)
	}
}

func TestFormatPair(t *testing.T) {
	cases := []struct {
		a, b   float64
		min    int
		sa, sb string
	}{
		{0.12345678, 0.12345679, 4, "0.12345678", "0.12345679"},
		{1, 2, 4, "1", "2"},
		{1.00001, 1.00002, 4, "1.00001", "1.00002"},
		{3, 3, 4, "3", "3"},
		{math.NaN(), math.NaN(), 4, "NaN", "NaN"},
		{math.Inf(1), 1, 3, "+Inf", "1"},
		{float64(float32(0.1)), 0.1, 4, "0.100000001", "0.1"},
	}
	for _, c := range cases {
		sa, sb := FormatPair(c.a, c.b, c.min)
		if sa != c.sa || sb != c.sb {
			t.Errorf("FormatPair(%v, %v) = %s, %s; want %s, %s", c.a, c.b, sa, sb, c.sa, c.sb)
		}
	}
}

// releasing is a Side that records which keys Compare releases.
type releasing struct {
	*TensorList
	mu       sync.Mutex
	released []string
}

func (r *releasing) Release(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.released = append(r.released, key)
}

// TestCompareReleasesMeasuredTensors checks that Compare releases the
// tensors of every measured row on both sides but the first divergence's,
// which the blamer gets, and the other side's tensors no row reads.
func TestCompareReleasesMeasuredTensors(t *testing.T) {
	ref := graph(1)
	var other []*tensor.Tensor
	for _, x := range ref {
		if x.Name == "ffn_out-1" {
			continue // the reference's ffn_out-1 has no counterpart
		}
		other = append(other, clone(x))
	}
	other = append(other, &tensor.Tensor{Key: "extra", Name: "extra", Op: "ADD", Ne: []int64{8, 4}, Data: make([]float32, 32)})
	find(other, "l_out-0").Data[3] += 1     // fails: the first divergence
	find(other, "result_norm").Data[0] += 1 // fails later
	a := &releasing{TensorList: NewTensorList(ref)}
	b := &releasing{TensorList: NewTensorList(other)}
	var blamedWith *tensor.Tensor
	blamer := BlamerFunc(func(d *Divergence, env *BlameEnv) (*Blame, error) {
		var err error
		blamedWith, err = env.Counterpart(d.Row)
		return nil, err
	})
	rep, err := Compare(a, b, Options{Blamer: blamer, Filter: func(n Node) bool { return n.Name != "attn_norm-1" }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.FirstDivergence == nil || rep.FirstDivergence.Name != "l_out-0" {
		t.Fatalf("first divergence %+v, want l_out-0", rep.FirstDivergence)
	}
	if blamedWith == nil || blamedWith.Name != "l_out-0" {
		t.Errorf("blamer got %v for the divergent row", blamedWith)
	}
	var measured []string
	for _, r := range rep.Tensors {
		if (r.Status == Pass || r.Status == Fail) && r.Key != "l_out-0" {
			measured = append(measured, r.Key)
		}
	}
	if !slices.Contains(measured, "result_norm") {
		t.Fatalf("result_norm not measured: %v", measured)
	}
	for _, c := range []struct {
		side *releasing
		want []string
	}{
		// the reference: every measured row but the first divergence
		{a, measured},
		// the other side: the same, plus what no row reads (the filtered
		// row's counterpart and the node without a reference)
		{b, append(slices.Clone(measured), "attn_norm-1", "extra")},
	} {
		got := slices.Clone(c.side.released)
		slices.Sort(got)
		slices.Sort(c.want)
		if !slices.Equal(got, c.want) {
			t.Errorf("released %v, want %v", got, c.want)
		}
	}
}

// TestSharedNonFiniteWarningNamesNode: the warning about NaN/Inf shared by
// both sides names its first tensor by graph index, op and quoted key, so
// a node llama.cpp names " (copy)" (an empty name plus the suffix) reads
// as one.
func TestSharedNonFiniteWarningNamesNode(t *testing.T) {
	ref := graph(1)
	rng := rand.New(rand.NewPCG(3, 3))
	cp := randTensor(rng, " (copy)", "CPY", 8, 4)
	cp.Data[5] = float32(math.Inf(-1))
	ref = slices.Insert(ref, 1, cp)
	var other []*tensor.Tensor
	for _, x := range ref {
		other = append(other, clone(x))
	}
	rep, err := Compare(NewTensorList(ref), NewTensorList(other), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := `NaN/Inf at the same positions on both sides in 1 tensor (first: #1 CPY " (copy)")`
	found := false
	for _, w := range rep.Warnings {
		found = found || strings.HasPrefix(w, want)
	}
	if !found {
		t.Errorf("warnings %q, want one starting %q", rep.Warnings, want)
	}
}
