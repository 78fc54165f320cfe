package capture_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/internal/testshared"
	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/pipeline"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

const engine = "python/examples/numpy_llama.py"

// TestPythonKitUnitTests runs the kit's own unittest suite.
func TestPythonKitUnitTests(t *testing.T) {
	py := python(t)
	out := run(t, "python", false, py, "-m", "unittest", "-v")
	if !strings.Contains(out, "OK") {
		t.Fatalf("unittest did not report OK:\n%s", out)
	}
}

// fixtureModel writes a small F32 llama fixture (pure Go) and returns its path.
func fixtureModel(t *testing.T, mod func(*fixture.Config)) string {
	t.Helper()
	c := fixture.Default("llama")
	c.Embd, c.FF, c.VocabSize = 128, 256, 300
	if mod != nil {
		mod(&c)
	}
	p := filepath.Join(t.TempDir(), "m.gguf")
	if err := fixture.Generate(c, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// runEngine runs numpy_llama.py with args and opens what it wrote.
func runEngine(t *testing.T, py, out string, args ...string) reference.Source {
	t.Helper()
	abs, err := filepath.Abs(engine)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ".", false, py, append([]string{abs, "--out", out}, args...)...)
	src, err := reference.Open(out)
	if err != nil {
		t.Fatalf("reading the engine's output %s: %v", out, err)
	}
	return src
}

func policy(t *testing.T) *compare.Policy {
	t.Helper()
	pol, err := compare.DefaultPolicy(compare.ModeF64)
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// noAttnMatrices leaves out llama.cpp's kq / kq_soft_max, which hold n_kv
// (a multiple of 256) columns where an engine holds T; layerdiff does not
// map those shapes (yet).
func noAttnMatrices(n compare.Node) bool {
	return !strings.HasPrefix(n.Name, "kq-") && !strings.HasPrefix(n.Name, "kq_soft_max-")
}

var tokens = "1,17,42,99,123,200,7"

// TestNumpyEngineAgainstGoForward checks the engine against layerdiff's own
// forward pass on F32 fixtures (f64 numerics: both compute in float32 with
// float64-exact references, so they agree to float32 rounding), untied and
// tied output.
func TestNumpyEngineAgainstGoForward(t *testing.T) {
	py := python(t)
	for _, tied := range []bool{false, true} {
		model := fixtureModel(t, func(c *fixture.Config) { c.Tied = tied })
		eng := runEngine(t, py, filepath.Join(t.TempDir(), "eng"), "--model", model, "--tokens", tokens, "--names", "llamacpp")
		rep, err := pipeline.Run(eng, model, pipeline.RunOptions{
			CompareOptions: pipeline.CompareOptions{Policy: policy(t), Filter: noAttnMatrices},
			Numerics:       "f64", FlashAttn: "off", CrossKernel: "off",
		})
		if err != nil {
			t.Fatal(err)
		}
		checkRows(t, rep, 1e-9, 30)
	}
}

// TestNumpyEngineRopeScaling checks linear RoPE scaling and Llama 3's
// per-pair frequency factors (rope_freqs.weight) against the Go forward pass.
func TestNumpyEngineRopeScaling(t *testing.T) {
	py := python(t)
	c := fixture.Default("llama")
	c.Embd, c.FF, c.VocabSize = 128, 256, 300
	kvs, ts, err := fixture.Build(c)
	if err != nil {
		t.Fatal(err)
	}
	kvs = append(kvs,
		gguf.KV{Key: "llama.rope.scaling.type", Type: gguf.ValueString, Value: "linear"},
		gguf.KV{Key: "llama.rope.scaling.factor", Type: gguf.ValueFloat32, Value: float32(4)})
	half := c.Embd / c.Heads / 2
	var freqs []byte
	for i := 0; i < half; i++ {
		freqs = binary.LittleEndian.AppendUint32(freqs, math.Float32bits(1+float32(i%5)))
	}
	ts = append(ts, gguf.WriteTensor{Name: "rope_freqs.weight", Ne: []int64{int64(half)}, Type: quant.F32, Data: freqs})
	model := filepath.Join(t.TempDir(), "scaled.gguf")
	if err := gguf.WriteFile(model, kvs, ts, 32); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	eng := runEngine(t, py, filepath.Join(dir, "eng"), "--model", model, "--tokens", tokens, "--names", "llamacpp")
	rep, err := pipeline.Run(eng, model, pipeline.RunOptions{
		CompareOptions: pipeline.CompareOptions{Policy: policy(t), Filter: noAttnMatrices},
		Numerics:       "f64", FlashAttn: "off", CrossKernel: "off",
	})
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, rep, 1e-9, 30)
	// and the scaling matters: the unscaled fixture differs at the ROPE
	plain := fixtureModel(t, nil)
	other := runEngine(t, py, filepath.Join(dir, "plain"), "--model", plain, "--tokens", tokens, "--names", "llamacpp")
	rep, err = pipeline.Compare(eng, other, pipeline.CompareOptions{Policy: policy(t)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.FirstDivergence == nil || rep.FirstDivergence.Key != "Qcur-0#2" {
		t.Errorf("scaled against unscaled: first divergence %+v, want Qcur-0#2", rep.FirstDivergence)
	}
}

// checkRows requires every compared row to pass with nmse <= maxNMSE and
// at least minRows rows compared.
func checkRows(t *testing.T, rep *compare.Report, maxNMSE float64, minRows int) {
	t.Helper()
	n := 0
	for _, r := range rep.Tensors {
		if r.Metrics == nil {
			continue
		}
		n++
		if r.Status != compare.Pass || float64(r.Metrics.NMSE) > maxNMSE {
			t.Errorf("%s (%s): status %s, nmse %.3g (want pass, <= %.3g) %v", r.Key, r.Op, r.Status, float64(r.Metrics.NMSE), maxNMSE, r.Reasons)
		}
	}
	if n < minRows {
		t.Errorf("only %d rows compared, want at least %d", n, minRows)
	}
}

// TestNumpyEngineAgainstLlamaCpp compares the engine with real llama.cpp
// dumps of the shared reference pack (ec98e2002, flash attention off), one
// per weight type the engine's GGUF reader dequantizes. llama.cpp rounds
// activations to Q8_0 for quantized matmuls and K/V to f16: the bounds are
// those differences, not zero.
func TestNumpyEngineAgainstLlamaCpp(t *testing.T) {
	shared := testshared.Find()
	if shared == "" {
		t.Skip("no shared/ directory with the reference pack")
	}
	pack := filepath.Join(shared, "refpack", "avx512")
	py := python(t)
	for _, c := range []struct {
		typ     string
		maxNMSE float64
	}{
		{"f32", 1e-6}, {"f16", 1e-5}, {"bf16", 1e-3}, {"q8_0", 1e-3}, {"q4_0", 1e-2}, {"q4_1", 1e-2}, {"q4_k_m", 1e-3}, {"q5_k_m", 1e-3}, {"q6_k", 1e-3},
	} {
		t.Run(c.typ, func(t *testing.T) {
			dump := filepath.Join(pack, "dumps", "llama-"+c.typ+"-faoff-T8")
			model := filepath.Join(pack, "models", "llama-"+c.typ+".gguf")
			if _, err := os.Stat(dump); err != nil {
				t.Skip(err)
			}
			ref, err := reference.Open(dump)
			if err != nil {
				t.Fatal(err)
			}
			eng := runEngine(t, py, filepath.Join(t.TempDir(), "eng"), "--model", model, "--tokens-from", dump, "--names", "llamacpp")
			rep, err := pipeline.Compare(ref, eng, pipeline.CompareOptions{Policy: policy(t), Filter: noAttnMatrices})
			if err != nil {
				t.Fatal(err)
			}
			checkRows(t, rep, c.maxNMSE, 30)
			for _, r := range rep.Tensors {
				if r.Key == "result_output" && r.Metrics != nil {
					t.Logf("%s: result_output nmse %.3g", c.typ, float64(r.Metrics.NMSE))
				}
			}
		})
	}
}

// TestNumpyEngineBugs plants each bug and requires layerdiff to put the
// first divergence from the clean engine at the op the bug is in.
func TestNumpyEngineBugs(t *testing.T) {
	py := python(t)
	// an epsilon large enough against mean(x²) for eps-x10 / eps-div10 to show
	model := fixtureModel(t, func(c *fixture.Config) { c.RMSEps = 0.1 })
	dir := t.TempDir()
	clean := runEngine(t, py, filepath.Join(dir, "clean"), "--model", model, "--tokens", tokens, "--names", "llamacpp")
	for _, c := range []struct{ bug, first string }{
		{"rope-halves", "Qcur-0#2"},
		{"pos-offset", "Qcur-0#2"},
		{"rope-base", "Qcur-0#2"},
		{"softmax-scale", "kq_soft_max-0"},
		{"eps-x10", "norm-0"},
		{"eps-div10", "norm-0"},
		{"gqa-tile", "kq-0"},
		{"gelu", "ffn_swiglu-0"},
		{"transposed-weight", "attn_out-0"},
	} {
		t.Run(c.bug, func(t *testing.T) {
			bug := runEngine(t, py, filepath.Join(dir, c.bug), "--model", model, "--tokens", tokens, "--names", "llamacpp", "--bug", c.bug)
			rep, err := pipeline.Compare(clean, bug, pipeline.CompareOptions{Policy: policy(t)})
			if err != nil {
				t.Fatal(err)
			}
			if rep.FirstDivergence == nil {
				t.Fatalf("--bug %s: no divergence", c.bug)
			}
			if got := rep.FirstDivergence.Key; got != c.first {
				t.Errorf("--bug %s: first divergence at %s, want %s", c.bug, got, c.first)
			}
		})
	}
	t.Run("no-bos", func(t *testing.T) {
		bug := runEngine(t, py, filepath.Join(dir, "no-bos"), "--model", model, "--tokens", tokens, "--names", "llamacpp", "--bug", "no-bos")
		if got := bug.Describe().Tokens; len(got) != 6 || got[0] != 17 {
			t.Fatalf("--bug no-bos evaluated %v, want the tokens without the leading BOS", got)
		}
		_, err := pipeline.Compare(clean, bug, pipeline.CompareOptions{Policy: policy(t)})
		var tm *pipeline.TokenMismatchError
		if !errors.As(err, &tm) {
			t.Fatalf("comparing with the BOS-less run: err %v, want a token mismatch", err)
		}
	})
}

// TestNumpyEngineOptions checks --names meta against the names file,
// --layout, --sparse and --no-manifest.
func TestNumpyEngineOptions(t *testing.T) {
	py := python(t)
	model := fixtureModel(t, nil)
	dir := t.TempDir()
	base := []string{"--model", model, "--tokens", tokens}
	lc := runEngine(t, py, filepath.Join(dir, "lc"), append(base, "--names", "llamacpp")...)
	meta := runEngine(t, py, filepath.Join(dir, "meta"), base...)

	// Every meta name maps, through numpy_llama.names, to a key of the
	// llama.cpp-named run holding the same values.
	names := readNamesFile(t, "python/examples/numpy_llama.names")
	mapped := 0
	for _, n := range meta.Nodes() {
		want, ok := names.lookup(n.Key)
		if !ok {
			t.Errorf("meta name %q has no line in numpy_llama.names", n.Key)
			continue
		}
		a, err := meta.Load(n.Key)
		if err != nil {
			t.Fatal(err)
		}
		b, err := lc.Load(want)
		if err != nil {
			t.Errorf("%s = %s: %v", n.Key, want, err)
			continue
		}
		if len(a.Data) != len(b.Data) {
			t.Errorf("%s = %s: %d vs %d values", n.Key, want, len(a.Data), len(b.Data))
			continue
		}
		same := true
		if strings.HasSuffix(n.Key, "_rope") {
			// natural layout: heads first (H, T, d) against llama.cpp's (T, H, d)
			same = sameTransposed(a.Data, b.Data, n.Ne)
		} else {
			for i := range a.Data {
				same = same && a.Data[i] == b.Data[i]
			}
		}
		if !same {
			t.Errorf("%s = %s: values differ", n.Key, want)
		}
		mapped++
	}
	if mapped < 30 {
		t.Errorf("only %d meta names mapped", mapped)
	}

	ggml := runEngine(t, py, filepath.Join(dir, "meta-ggml"), append(base, "--layout", "ggml")...)
	for _, src := range []reference.Source{meta, ggml} {
		for _, n := range src.Nodes() {
			if n.Key == "layers.0.attention.q_rope" {
				t.Logf("%s: q_rope ne %v", src.Describe().Path, n.Ne)
			}
		}
	}
	if ne := neOf(t, meta, "layers.0.attention.q_rope"); !equalNe(ne, []int64{32, 7, 4}) {
		t.Errorf("natural layout q_rope ne %v, want [32 7 4] (heads, T, d)", ne)
	}
	if ne := neOf(t, ggml, "layers.0.attention.q_rope"); !equalNe(ne, []int64{32, 4, 7}) {
		t.Errorf("ggml layout q_rope ne %v, want [32 4 7] (T, heads, d)", ne)
	}

	sparse := runEngine(t, py, filepath.Join(dir, "sparse"), append(base, "--names", "llamacpp", "--sparse")...)
	var keys []string
	for _, n := range sparse.Nodes() {
		keys = append(keys, n.Key)
	}
	if strings.Join(keys, " ") != "attn_norm-0 ffn_out-0 result_output" {
		t.Errorf("--sparse recorded %v", keys)
	}

	plain := runEngine(t, py, filepath.Join(dir, "plain"), append(base, "--no-manifest")...)
	if k := plain.Describe().Kind; k != reference.KindNPYDir {
		t.Errorf("--no-manifest: read as %s, want %s", k, reference.KindNPYDir)
	}
	if len(plain.Nodes()) != len(meta.Nodes()) {
		t.Errorf("--no-manifest: %d tensors, with a manifest %d", len(plain.Nodes()), len(meta.Nodes()))
	}

	// An existing output is refused without --force.
	abs, _ := filepath.Abs(engine)
	out := run(t, ".", true, py, append([]string{abs, "--out", filepath.Join(dir, "lc")}, base...)...)
	if !strings.Contains(out, "not empty") {
		t.Errorf("overwrite without --force: %s", out)
	}
	run(t, ".", false, py, append([]string{abs, "--out", filepath.Join(dir, "lc"), "--force"}, base...)...)
}

func neOf(t *testing.T, s reference.Source, key string) []int64 {
	t.Helper()
	for _, n := range s.Nodes() {
		if n.Key == key {
			return n.Ne
		}
	}
	t.Fatalf("%s: no node %s", s.Describe().Path, key)
	return nil
}

func equalNe(a, b []int64) bool {
	for len(a) > 1 && a[len(a)-1] == 1 {
		a = a[:len(a)-1]
	}
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sameTransposed reports whether a, of ggml shape ne = {d, T, H} (numpy
// (H, T, d)), holds b's values of numpy shape (T, H, d).
func sameTransposed(a, b []float32, ne []int64) bool {
	d, T, H := int(ne[0]), int(ne[1]), int(ne[2])
	for h := 0; h < H; h++ {
		for tk := 0; tk < T; tk++ {
			for i := 0; i < d; i++ {
				if a[(h*T+tk)*d+i] != b[(tk*H+h)*d+i] {
					return false
				}
			}
		}
	}
	return true
}

// namesFile is a parsed ENGINE = LLAMACPP map with {L} patterns.
type namesFile [][2]string

func readNamesFile(t *testing.T, path string) namesFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out namesFile
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		l, r, ok := strings.Cut(s, "=")
		if !ok {
			t.Fatalf("%s:%d: no '='", path, line)
		}
		out = append(out, [2]string{strings.TrimSpace(l), strings.TrimSpace(r)})
	}
	return out
}

// lookup maps an engine key through the first matching line.
func (nf namesFile) lookup(key string) (string, bool) {
	for _, p := range nf {
		if !strings.Contains(p[0], "{L}") {
			if p[0] == key {
				return p[1], true
			}
			continue
		}
		pre, suf, _ := strings.Cut(p[0], "{L}")
		if !strings.HasPrefix(key, pre) || !strings.HasSuffix(key, suf) || len(key) < len(pre)+len(suf) {
			continue
		}
		l := key[len(pre) : len(key)-len(suf)]
		if _, err := strconv.Atoi(l); err != nil {
			continue
		}
		return strings.ReplaceAll(p[1], "{L}", l), true
	}
	return "", false
}
