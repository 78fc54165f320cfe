package render

import (
	"bytes"
	"encoding/xml"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func randT(rng *rand.Rand, name, op string, ne ...int64) *tensor.Tensor {
	d := make([]float32, tensor.Numel(ne))
	for i := range d {
		d[i] = float32(rng.NormFloat64())
	}
	return &tensor.Tensor{Key: name, Name: name, Op: op, Ne: ne, Data: d}
}

func cloneT(t *tensor.Tensor) *tensor.Tensor {
	c := *t
	c.Data = slices.Clone(t.Data)
	return &c
}

// model builds a synthetic graph of nLayers layers, T tokens, in the names
// of a 2026 llama.cpp (reference) and returns it with a copy for the other
// side in the names of the ollama copy.
func model(seed uint64, nLayers, T int) (ref, other []*tensor.Tensor) {
	rng := rand.New(rand.NewPCG(seed, 11))
	t := int64(T)
	ref = append(ref, randT(rng, "embd", "GET_ROWS", 8, t))
	for l := 0; l < nLayers; l++ {
		s := func(b string) string { return fmt.Sprintf("%s-%d", b, l) }
		ref = append(ref,
			randT(rng, s("norm"), "RMS_NORM", 8, t),
			randT(rng, s("attn_norm"), "MUL", 8, t),
			randT(rng, s("Qcur"), "MUL_MAT", 8, t),
			randT(rng, s("Qcur"), "RESHAPE", 4, 2, t),
			randT(rng, s("Qcur"), "ROPE", 4, 2, t),
			randT(rng, s("Qcur")+" (view) (permuted)", "PERMUTE", 4, t, 2),
			randT(rng, fmt.Sprintf("node_%d", 10+l*20), "FLASH_ATTN_EXT", 4, 2, t),
			randT(rng, s("kqv_out"), "RESHAPE", 8, t),
			randT(rng, s("ffn_out"), "MUL_MAT", 8, t),
			randT(rng, s("l_out"), "ADD", 8, t),
		)
	}
	ref = append(ref, randT(rng, "result_norm", "MUL", 8, t), randT(rng, "result_output", "MUL_MAT", 6, t))
	for i, x := range ref {
		c := cloneT(x)
		switch {
		case c.Name == "embd":
			c.Name = "inp_embd"
		case c.Op == "FLASH_ATTN_EXT":
			c.Name = fmt.Sprintf("__fattn__-%d", tensor.Layer(ref[i-1].Name))
		case c.Op == "RESHAPE" && strings.HasPrefix(c.Name, "Qcur"):
			c.Name += " (reshaped)"
		case c.Op == "PERMUTE":
			continue
		}
		c.Key = c.Name
		other = append(other, c)
	}
	return ref, other
}

func byName(ts []*tensor.Tensor, name, op string) *tensor.Tensor {
	for _, t := range ts {
		if t.Name == name && (op == "" || t.Op == op) {
			return t
		}
	}
	panic(name)
}

// scenarios are the inputs of the golden files.
var scenarios = []struct {
	name  string
	build func(t *testing.T) *compare.Report
}{
	{"fail", func(t *testing.T) *compare.Report {
		ref, other := model(1, 6, 4)
		// Layers 0–3 agree to the last bit or nearly; layer 4's ffn_out
		// differs at token 3 past the 4th digit, and the error flows on.
		byName(other, "ffn_out-1", "").Data[3] = math.Nextafter32(byName(other, "ffn_out-1", "").Data[3], 10)
		for _, name := range []string{"ffn_out-4", "l_out-4"} {
			d := byName(other, name, "").Data
			d[3*8+1] *= 1.00003
			d[3*8+6] += 2e-4
		}
		for _, x := range other {
			if tensor.Layer(x.Name) == 5 || x.Name == "result_norm" {
				x.Data[30] += 1e-2
			}
		}
		lo := byName(other, "result_output", "").Data
		lo[3*6+0], lo[3*6+1] = 9, 8.5
		rl := byName(ref, "result_output", "").Data
		rl[3*6+0], rl[3*6+1] = 8.5, 9
		// The reference kept only the last token's logits, like llama.cpp.
		rt := byName(ref, "result_output", "")
		rt.Ne, rt.Data = []int64{6, 1}, rt.Data[3*6:]
		other = append(other, &tensor.Tensor{Key: "inp_pos", Name: "inp_pos", Op: "NONE", Ne: []int64{4}, Data: []float32{0, 1, 2, 3}})
		rep, err := compare.Compare(compare.NewTensorList(ref), compare.NewTensorList(other), compare.Options{
			Meta: compare.Meta{
				Reference: compare.Source{Label: "llama.cpp d32676d77", Format: "eval-callback log", Path: "evalcb.log", Model: "S-Q8_0.gguf", ModelSHA256: "5be1d2c0ffee00112233445566778899aabbccddeeff00112233445566778899"},
				Other:     compare.Source{Label: "layerdiff forward pass (ggml numerics, kernels x86-avx2)", Format: "forward", Kernels: "x86-avx2", Model: "S-Q8_0.gguf", ModelSHA256: "5be1d2c0ffee00112233445566778899aabbccddeeff00112233445566778899"},
				Tokens:    []int32{1, 15043, 3186, 29892}, Tool: "layerdiff test",
			},
			Filter: func(n compare.Node) bool { return n.Name != "result_norm" },
			Worst:  5,
		})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}},
	{"pass", func(t *testing.T) *compare.Report {
		ref, other := model(2, 3, 2)
		rep, err := compare.Compare(compare.NewTensorList(ref), compare.NewTensorList(other), compare.Options{
			Policy: compare.MustPolicy(compare.ModeBitExact),
			Meta:   compare.Meta{Reference: compare.Source{Label: "llama.cpp ec98e2002", Format: "dump"}, Other: compare.Source{Label: "llama.cpp ec98e2002", Format: "dump"}, Created: "2026-01-02T03:04:05Z"},
		})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}},
	{"partial", func(t *testing.T) *compare.Report {
		rng := rand.New(rand.NewPCG(3, 3))
		full := []*tensor.Tensor{randT(rng, "inp_embd", "GET_ROWS", 8, 3), randT(rng, "attn_norm-0", "MUL", 8, 3), randT(rng, "l_out-0", "ADD", 8, 3)}
		var ref []*tensor.Tensor
		for k, x := range full {
			p := &tensor.Partial{Quantum: 1e-4, HasSum: true, SumQuantum: 1e-6}
			sum := 0.0
			for i, v := range x.Data {
				sum += float64(v)
				if i%8 < 3 || i%8 >= 5 {
					p.Index = append(p.Index, int64(i))
					p.Values = append(p.Values, math.Round(float64(v)*1e4)/1e4)
				}
			}
			p.Sum = math.Round(sum*1e6) / 1e6
			if k == 2 {
				p.Values[4] += 3e-4 // a printed element that disagrees
				p.Sum += 0.01
			}
			ref = append(ref, &tensor.Tensor{Key: x.Key, Name: x.Name, Op: x.Op, Ne: x.Ne, Partial: p})
		}
		rep, err := compare.Compare(compare.NewTensorList(ref), compare.NewTensorList(full), compare.Options{
			Meta: compare.Meta{Reference: compare.Source{Label: "llama.cpp", Format: "eval-callback log"}, Other: compare.Source{Label: "layerdiff forward"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}},
	{"unmeasured", func(t *testing.T) *compare.Report {
		ref := []*tensor.Tensor{{Key: "a-0", Name: "a-0", Op: "ADD", Ne: []int64{2, 2}}, {Key: "b-0", Name: "b-0", Op: "ADD", Ne: []int64{2, 2}, Data: []float32{1, 2, 3, 4}}}
		other := []*tensor.Tensor{{Key: "a-0", Name: "a-0", Op: "ADD", Ne: []int64{2, 2}, Data: []float32{1, 2, 3, 4}}}
		rep, err := compare.Compare(compare.NewTensorList(ref), compare.NewTensorList(other), compare.Options{Warnings: []string{"log ends early: the last 3 tensors are missing"}})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}},
}

// sparseOther keeps of other only the tensors named in keep, as an
// engine that dumps a few activations does.
func sparseOther(other []*tensor.Tensor, keep ...string) []*tensor.Tensor {
	var out []*tensor.Tensor
	for _, x := range other {
		if slices.Contains(keep, x.Name) {
			out = append(out, x)
		}
	}
	return out
}

func init() {
	scenarios = append(scenarios, []struct {
		name  string
		build func(t *testing.T) *compare.Report
	}{
		// A sparse engine dump: three tensors, all agreeing, against a
		// four-layer reference. The pass says on how little it stands,
		// and layers 1–3 are shown with nothing measured.
		{"sparse", func(t *testing.T) *compare.Report {
			ref, other := model(4, 4, 3)
			rep, err := compare.Compare(compare.NewTensorList(ref), compare.NewTensorList(sparseOther(other, "attn_norm-0", "ffn_out-0", "result_output")), compare.Options{
				Meta: compare.Meta{
					Reference: compare.Source{Label: "llama.cpp ec98e2002", Format: "layerdiff-dump v1", Producer: "layerdiff-dump.c 3 (standalone C dumper)", Path: "ref", Kernels: "x86-avx2"},
					Other:     compare.Source{Label: "my-engine 0.3 (layerdiff capture/python 1)", Format: "layerdiff-dump v1", Producer: "my-engine 0.3 (layerdiff capture/python 1)", Path: "engine"},
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			return rep
		}},
		// The same dump held to --min-coverage 50%: a FAIL without a
		// divergence, the coverage its reason.
		{"mincov", func(t *testing.T) *compare.Report {
			ref, other := model(4, 4, 3)
			rep, err := compare.Compare(compare.NewTensorList(ref), compare.NewTensorList(sparseOther(other, "attn_norm-0", "ffn_out-0", "result_output")), compare.Options{
				Meta: compare.Meta{
					Reference: compare.Source{Label: "llama.cpp ec98e2002", Format: "layerdiff-dump v1", Producer: "layerdiff 0.1.0 (built-in dumper)", Path: "ref", Kernels: "x86-avx2"},
					Other:     compare.Source{Label: "other", Format: "directory of .npy files", Path: "engine"},
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			rep.RequireCoverage(0.5)
			return rep
		}},
		// Layers 2 and 4 missing on the other side: neither is folded into
		// the passing layers around it.
		{"gap", func(t *testing.T) *compare.Report {
			ref, other := model(5, 5, 2)
			var kept []*tensor.Tensor
			for _, x := range other {
				if l := tensor.Layer(x.Name); l != 2 && l != 4 {
					kept = append(kept, x)
				}
			}
			rep, err := compare.Compare(compare.NewTensorList(ref), compare.NewTensorList(kept), compare.Options{
				Meta: compare.Meta{
					Reference: compare.Source{Label: "llama.cpp ec98e2002", Format: "layerdiff-dump v1", Producer: "layerdiff 0.1.0 (built-in dumper)", Path: "ref", Kernels: "x86-avx2"},
					Other:     compare.Source{Label: "layerdiff forward pass (ggml numerics, kernels x86-avx2)", Format: "forward", Kernels: "x86-avx2"},
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			rep.RequireCoverage(0.5)
			return rep
		}},
	}...)
}

type format struct {
	ext string
	fn  Func
}

func formats() []format {
	return []format{
		{"txt", Text},
		{"color.txt", Options{Color: true}.Text},
		{"all.txt", Options{All: true}.Text},
		{"md", Markdown},
		{"json", JSON},
		{"html", HTML},
		{"xml", JUnit},
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", path, lineDiff(string(want), string(got)))
	}
}

// lineDiff shows the first differing lines.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n-%s\n+%s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			rep := sc.build(t)
			for _, f := range formats() {
				var buf bytes.Buffer
				if err := f.fn(&buf, rep); err != nil {
					t.Fatalf("%s: %v", f.ext, err)
				}
				golden(t, filepath.Join("testdata", sc.name+"."+f.ext), buf.Bytes())
			}
		})
	}
}

// TestReRenderFromJSON checks the `layerdiff report --in` path: a report
// read back from its JSON renders byte for byte like the original.
func TestReRenderFromJSON(t *testing.T) {
	for _, sc := range scenarios {
		rep := sc.build(t)
		var js bytes.Buffer
		if err := JSON(&js, rep); err != nil {
			t.Fatal(err)
		}
		back, err := compare.ReadJSON(bytes.NewReader(js.Bytes()), sc.name+".json")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range formats() {
			var a, b bytes.Buffer
			if err := f.fn(&a, rep); err != nil {
				t.Fatal(err)
			}
			if err := f.fn(&b, back); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Errorf("%s.%s: re-rendered from JSON differs:\n%s", sc.name, f.ext, lineDiff(a.String(), b.String()))
			}
		}
	}
}

func TestOutputsAreWellFormed(t *testing.T) {
	rep := scenarios[0].build(t)
	var x bytes.Buffer
	if err := JUnit(&x, rep); err != nil {
		t.Fatal(err)
	}
	var suites junitSuites
	if err := xml.Unmarshal(x.Bytes(), &suites); err != nil {
		t.Fatalf("JUnit output is not XML: %v", err)
	}
	if suites.Tests != len(rep.Tensors) || suites.Failures != rep.Summary.Fail {
		t.Errorf("junit counts tests %d failures %d; report %d / %d", suites.Tests, suites.Failures, len(rep.Tensors), rep.Summary.Fail)
	}
	var h bytes.Buffer
	if err := HTML(&h, rep); err != nil {
		t.Fatal(err)
	}
	page := h.String()
	for _, banned := range []string{"<script src", "<link ", "http://", "https://", "url("} {
		if strings.Contains(strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, ""), banned) {
			t.Errorf("HTML is not self-contained: contains %q", banned)
		}
	}
	if !strings.Contains(page, "<svg") || !strings.Contains(page, "<circle") {
		t.Error("HTML has no plot")
	}
	var plain bytes.Buffer
	if err := Text(&plain, rep); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "\x1b[") {
		t.Error("plain text has ANSI escapes")
	}
	var col bytes.Buffer
	if err := (Options{Color: true}).Text(&col, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(col.String(), "\x1b[31m") {
		t.Error("colour text has no red")
	}
}

func TestLookup(t *testing.T) {
	for _, f := range append(Formats(), "md", "xml", "TEXT") {
		if _, err := (Options{}).Lookup(f); err != nil {
			t.Errorf("Lookup(%q): %v", f, err)
		}
	}
	if _, err := (Options{}).Lookup("pdf"); err == nil {
		t.Error("pdf accepted")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("disk full") }

func TestWriteErrors(t *testing.T) {
	rep := scenarios[0].build(t)
	for _, f := range formats() {
		if err := f.fn(failWriter{}, rep); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("%s: error %v, want the writer's", f.ext, err)
		}
	}
}

func TestCollapse(t *testing.T) {
	rep := &compare.Report{}
	add := func(layer int, st compare.Status) {
		rep.Tensors = append(rep.Tensors, compare.Row{Index: len(rep.Tensors), Name: fmt.Sprint(layer), Layer: layer, Status: st, FirstFailToken: -1})
	}
	add(-1, compare.Pass)
	for l := 0; l < 5; l++ {
		add(l, compare.Pass)
	}
	add(5, compare.Fail)
	add(6, compare.Pass)
	add(7, compare.Unmeasured)
	add(8, compare.Fail)
	add(9, compare.Fail)
	add(10, compare.Fail)
	add(-1, compare.Pass)
	rep.FirstDivergence = &compare.Divergence{Row: 6}
	var labels []string
	for _, s := range collapse(rep, layerGroups(rep)) {
		labels = append(labels, s.Label)
	}
	// Layer 7 has nothing measured: shown alone, not folded into 6.
	if want := []string{"input", "0–4", "5", "6", "7", "8–10", "output"}; !slices.Equal(labels, want) {
		t.Errorf("spans %v, want %v", labels, want)
	}
}

// TestCollapseGaps: layers with nothing measured are never merged with
// passing layers; consecutive ones form a span of their own, as do layers
// the filter skipped whole, and a layer with one measured tensor among
// unmeasured ones counts as measured.
func TestCollapseGaps(t *testing.T) {
	rep := &compare.Report{}
	add := func(layer int, st ...compare.Status) {
		for _, s := range st {
			rep.Tensors = append(rep.Tensors, compare.Row{Index: len(rep.Tensors), Name: fmt.Sprint(layer), Layer: layer, Status: s, FirstFailToken: -1})
		}
	}
	P, U, S := compare.Pass, compare.Unmeasured, compare.Skipped
	add(0, P, P)
	add(1, P, U)
	add(2, U, U)
	add(3, U)
	add(4, P)
	add(5, S, S)
	add(6, S)
	add(7, U, S)
	add(8, P)
	var got []string
	for _, s := range collapse(rep, layerGroups(rep)) {
		got = append(got, s.Label+":"+emptySpan(s))
	}
	want := []string{"0–1:", "2–3:nothing measured", "4:", "5–6:skipped by the filter", "7:nothing measured", "8:"}
	if !slices.Equal(got, want) {
		t.Errorf("spans %q, want %q", got, want)
	}
}

// TestLayerGroupsMidGraphInput: a node outside layers that llama.cpp builds
// inside layer 0 (the attention mask's " (copy)") belongs to "input", and
// only nodes after the last layer form "output".
func TestLayerGroupsMidGraphInput(t *testing.T) {
	rep := &compare.Report{}
	for _, l := range []int{-1, 0, -1, 0, 1, 1, -1, -1} {
		rep.Tensors = append(rep.Tensors, compare.Row{Layer: l})
	}
	var got []string
	for _, g := range layerGroups(rep) {
		got = append(got, fmt.Sprintf("%s:%d", g.Label, len(g.Rows)))
	}
	if want := "input:2 0:2 1:2 output:2"; strings.Join(got, " ") != want {
		t.Errorf("groups %q, want %q", strings.Join(got, " "), want)
	}
}

// TestOtherModelInHeader: two sides made from different model files say so
// in every format's header, not only in the warnings at the bottom.
func TestOtherModelInHeader(t *testing.T) {
	rep := &compare.Report{Schema: compare.SchemaVersion, Verdict: compare.VerdictPass,
		Meta: compare.Meta{Reference: compare.Source{Label: "llama.cpp", ModelSHA256: "aa"}, Other: compare.Source{Label: "other", ModelSHA256: "bb"}}}
	var o Options
	for name, fn := range map[string]func(*bytes.Buffer) error{
		"text":     func(b *bytes.Buffer) error { return o.Text(b, rep) },
		"markdown": func(b *bytes.Buffer) error { return o.Markdown(b, rep) },
		"html":     func(b *bytes.Buffer) error { return o.HTML(b, rep) },
	} {
		var b bytes.Buffer
		if err := fn(&b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(b.String(), "NOT the reference") {
			t.Errorf("%s: the header does not say the models differ:\n%s", name, b.String())
		}
	}
	rep.Meta.Other.ModelSHA256 = "aa"
	var b bytes.Buffer
	if err := o.Text(&b, rep); err != nil || strings.Contains(b.String(), "NOT the reference") {
		t.Errorf("same model reported as different (%v):\n%s", err, b.String())
	}
}

// TestPlotColorsAndFailures: every op has a colour of its own, none of them
// the failure ring's, however many ops there are; and a tensor that fails
// on its mismatch count with an NMSE far below nmse_max is drawn as failed
// (ringed in red and larger, its reason in the tooltip), a passing one is not.
func TestPlotColorsAndFailures(t *testing.T) {
	rep := &compare.Report{Policy: compare.MustPolicy(compare.ModeGGML)}
	const nOps = 45
	for i := 0; i < nOps; i++ {
		m := &compare.Metrics{N: 64, NMSE: 1e-12, MaxAbs: 1e-6}
		row := compare.Row{Index: i, Name: fmt.Sprintf("t%d", i), Op: fmt.Sprintf("OP_%02d", i), Layer: 0, Status: compare.Pass, Metrics: m, FirstFailToken: -1}
		if i == 7 {
			m.Mismatches = 9
			row.Status, row.Reasons = compare.Fail, []string{"9 of 64 elements outside |a−b| ≤ 1e-05 (allowed 0.064)"}
		}
		rep.Tensors = append(rep.Tensors, row)
	}
	p := buildPlot(rep)
	if len(p.Legend) != nOps || len(p.Points) != nOps {
		t.Fatalf("%d legend entries, %d points for %d ops", len(p.Legend), len(p.Points), nOps)
	}
	seen := map[string]string{}
	for _, l := range p.Legend {
		if prev, dup := seen[l.Color]; dup {
			t.Errorf("ops %s and %s share colour %s", prev, l.Op, l.Color)
		}
		if l.Color == failColor || strings.EqualFold(l.Color, "#e15759") {
			t.Errorf("op %s is coloured red (%s), the colour of failure", l.Op, l.Color)
		}
		seen[l.Color] = l.Op
		if y, _ := strconv.ParseFloat(l.Y, 64); y > float64(p.H) {
			t.Errorf("legend entry %s at y %s is below the plot's height %d", l.Op, l.Y, p.H)
		}
	}
	for i, pt := range p.Points {
		failed := pt.Stroke == failColor
		if failed != (i == 7) {
			t.Errorf("point %d (%s): drawn failed %v, status %s", i, pt.Title, failed, rep.Tensors[i].Status)
		}
		if failed && (pt.R == p.Points[0].R || !strings.Contains(pt.Title, "9 of 64 elements outside")) {
			t.Errorf("failed point: r %s (a passing one %s), title %q", pt.R, p.Points[0].R, pt.Title)
		}
	}
	if p.Failed == nil || p.Failed.Color != failColor {
		t.Errorf("no legend entry for the failure ring: %+v", p.Failed)
	}
	rep.Tensors[7].Status = compare.Pass
	if p := buildPlot(rep); p.Failed != nil {
		t.Error("a failure legend entry without a failed tensor")
	}
}

// TestOldReports: results saved before the coverage field and the
// producer-aware header still read back and render in every format, their
// coverage counted from their rows; the text rendering is a golden file.
func TestOldReports(t *testing.T) {
	for _, name := range []string{"fail-before-coverage", "unmeasured-before-coverage"} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join("testdata", "old", name+".json")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(`"coverage"`)) {
				t.Fatalf("%s already has a coverage field: not an old report", p)
			}
			rep, err := compare.ReadJSON(bytes.NewReader(b), p)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Coverage == nil || rep.Coverage.Nodes == 0 {
				t.Fatalf("coverage %+v not counted from the rows", rep.Coverage)
			}
			for _, f := range formats() {
				var buf bytes.Buffer
				if err := f.fn(&buf, rep); err != nil {
					t.Fatalf("%s: %v", f.ext, err)
				}
				if f.ext == "txt" {
					golden(t, filepath.Join("testdata", "old", name+".txt"), buf.Bytes())
				}
			}
		})
	}
}
