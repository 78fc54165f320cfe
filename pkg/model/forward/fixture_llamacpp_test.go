//go:build llamacpp

package forward

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// fixtureTypes are the weight types of the differential tests, as llama_ftype
// values for llama.cpp's quantizer (with `layerdiff fixture`'s recipe,
// fixture.QuantOf, where the name is one of its types with that ftype:
// iq2_s is the pure IQ2_M ftype); ftype -1: every matrix quantized to the
// named type by ggml_quantize_chunk (fixture.TensorType: no llama_ftype
// makes such a model).
var fixtureTypes = []struct {
	name  string
	ftype int
}{
	{"f32", 0}, {"f16", 1}, {"bf16", 32}, {"q8_0", 7}, {"q4_0", 2}, {"q4_1", 3},
	{"q5_0", 8}, {"q5_1", 9}, {"q4_k_m", 15}, {"q6_k", 18}, {"iq4_nl", 25},
	{"q2_k", 10}, {"q3_k_m", 12}, {"q5_k_m", 17}, {"iq4_xs", 30},
	{"iq3_s", 26}, {"tq1_0", 36}, {"tq2_0", 37}, {"iq3_xxs", -1}, {"mxfp4", -1},
	{"iq2_xxs", 19}, {"iq2_xs", 20}, {"iq2_s", 29}, {"iq1_s", 24}, {"iq1_m", 31},
	{"mxfp4_moe", 38}, // LLAMA_FTYPE_MOSTLY_MXFP4_MOE: MXFP4 experts, Q8_0 elsewhere (gpt-oss)
}

// iqBitExact are the types TestFixturesMatchLlamaCpp requires bit-identical
// on every node (not only NMSE <= 1e-10): their kernels have one
// arithmetic on every x86 profile (dot_iq.go, dot_iq3tq.go, mxfp4.go).
var iqBitExact = map[string]bool{
	"iq2_xxs": true, "iq2_xs": true, "iq2_s": true, "iq1_s": true, "iq1_m": true,
	"iq3_xxs": true, "iq3_s": true, "tq1_0": true, "tq2_0": true, "mxfp4": true,
	"mxfp4_moe": true,
}

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureErr  error
	fixtureMu   sync.Mutex
	fixtureMade = map[string]bool{}
)

// fixturePath generates (once per test binary) the fixture of arch quantized
// to typ by llama.cpp and returns its path.
func fixturePath(t testing.TB, arch, typ string, ftype int) string {
	t.Helper()
	return fixturePathCfg(t, arch, fixture.Default(arch), typ, ftype)
}

// fixturePathCfg is fixturePath for a fixture configuration named name.
func fixturePathCfg(t testing.TB, name string, cfg fixture.Config, typ string, ftype int) string {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "forward-fixtures-")
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	src := filepath.Join(fixtureDir, name+"-f32.gguf")
	if !fixtureMade[src] {
		if err := fixture.Generate(cfg, src); err != nil {
			// fall back to a tokenizer from shared/
			vf, verr := gguf.Open(filepath.Join(sharedDirOrSkip(t), "vocab", "ggml-vocab-llama-spm.gguf"))
			if verr != nil {
				t.Fatalf("%v; %v", err, verr)
			}
			defer vf.Close()
			cfg.Vocab = vf
			if err := fixture.Generate(cfg, src); err != nil {
				t.Fatal(err)
			}
		}
		fixtureMade[src] = true
	}
	if ftype == 0 {
		return src
	}
	dst := filepath.Join(fixtureDir, fmt.Sprintf("%s-%s.gguf", name, typ))
	if !fixtureMade[dst] {
		p := llamacpp.QuantizeParams{Ftype: ftype, Threads: 2}
		if q, ok := fixture.QuantOf(typ); ok && q.Ftype == ftype {
			p.Pure, p.TokenEmbdType, p.OutputType = q.Pure, q.TokenEmbd, q.Output
		}
		if tt, ok := fixture.TensorType(typ); ok && ftype < 0 {
			if err := fixture.WriteTensorQuantized(cfg, tt, dst, func(t quant.Type, src []float32, nrows, nPerRow int) ([]byte, error) {
				return llamacpp.QuantizeChunk(int(t), src, nrows, nPerRow)
			}); err != nil {
				t.Fatal(err)
			}
		} else if err := llamacpp.Quantize(src, dst, p); err != nil {
			t.Fatal(err)
		}
		fixtureMade[dst] = true
	}
	return dst
}

// cmpResult summarizes a comparison of a run with llama.cpp.
type cmpResult struct {
	nodes, same int
	worst       map[string]float64 // op -> worst NMSE
	diffs       []string
	argmaxOK    bool
}

// compareRun runs m with opts and compares every node with llama.cpp's.
func compareRun(t *testing.T, path string, toks []int32, opts Options) cmpResult {
	t.Helper()
	cfg := refConfig{Path: path, Tokens: toks, FA: opts.FlashAttn, KVType: opts.KVType, NCtx: opts.NCtx}
	if len(opts.UBatches) > 0 {
		cfg.NBatch = opts.UBatches[0] // llama.cpp's decode calls: n_batch tokens each, the rest last
	}
	ref := llamaNodes(t, cfg)
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	var c collect
	logits, err := m.Run(toks, opts, &c)
	if err != nil {
		t.Fatal(err)
	}
	res := cmpResult{nodes: len(ref), worst: map[string]float64{}}
	if len(c.nodes) != len(ref) {
		t.Errorf("%d nodes, llama.cpp %d", len(c.nodes), len(ref))
	}
	for i := 0; i < min(len(ref), len(c.nodes)); i++ {
		r, g := ref[i], c.nodes[i]
		if r.Name != g.Name || r.Op != g.Op || r.Ne != g.Ne {
			t.Errorf("node %d: %q %s %v, llama.cpp %q %s %v", i, g.Name, g.Op, g.Ne, r.Name, r.Op, r.Ne)
			continue
		}
		d := c.ts[i].Data
		if r.Data == nil || len(r.Data) != len(d) {
			t.Errorf("node %d %q: no comparable data", i, r.Name)
			continue
		}
		diff, num, den := 0, 0.0, 0.0
		for k := range d {
			if math.Float32bits(d[k]) != math.Float32bits(r.Data[k]) && !(d[k] == 0 && r.Data[k] == 0) {
				diff++
			}
			if !math.IsInf(float64(r.Data[k]), 0) {
				e := float64(d[k]) - float64(r.Data[k])
				num += e * e
				den += float64(r.Data[k]) * float64(r.Data[k])
			}
		}
		nmse := 0.0
		if den > 0 {
			nmse = num / den
		}
		if nmse > res.worst[r.Op] {
			res.worst[r.Op] = nmse
		}
		if _, ok := res.worst[r.Op]; !ok {
			res.worst[r.Op] = 0
		}
		if diff == 0 {
			res.same++
		} else {
			res.diffs = append(res.diffs, fmt.Sprintf("%d %s %s: %d/%d differ, nmse %.3g", i, r.Name, r.Op, diff, len(d), nmse))
		}
		if nmse > 1e-10 {
			t.Errorf("node %d %q (%s): NMSE %.3g > 1e-10", i, r.Name, r.Op, nmse)
		}
	}
	// argmax of every position (the last node is result_output; with
	// micro-batches there is one per batch, each with its positions)
	last := ref[len(ref)-1]
	var lg []float32
	for _, r := range ref {
		if r.Name == last.Name {
			lg = append(lg, r.Data...)
		}
	}
	res.argmaxOK = true
	nv := int(last.Ne[0])
	for p := 0; p < len(toks) && (p+1)*nv <= len(lg); p++ {
		if argmax(lg[p*nv:(p+1)*nv]) != argmax(logits.Data[p*nv:(p+1)*nv]) {
			res.argmaxOK = false
			t.Errorf("position %d: argmax differs", p)
		}
	}
	return res
}

// TestFixturesMatchLlamaCpp compares every node of every fixture (the
// architectures of fixture.Archs × weight types × flash attention on/off × 1 and 8 tokens)
// with llama.cpp: same names, ops and shapes, NMSE <= 1e-10, and counts the
// bit-identical tensors.
func TestFixturesMatchLlamaCpp(t *testing.T) {
	archs := fixture.Archs
	types := fixtureTypes
	if s := os.Getenv("FORWARD_TYPES"); s != "" {
		var keep = types[:0:0]
		for _, ft := range types {
			if strings.Contains(","+s+",", ","+ft.name+",") {
				keep = append(keep, ft)
			}
		}
		types = keep
	}
	toks8 := []int32{1, 300, 301, 302, 303, 304, 305, 306}
	var report []string
	total, same := 0, 0
	worst := map[string]float64{}
	for _, arch := range archs {
		for _, ft := range types {
			for _, fa := range []bool{true, false} {
				for _, toks := range [][]int32{toks8, toks8[:1]} {
					name := fmt.Sprintf("%s/%s/fa=%v/T=%d", arch, ft.name, fa, len(toks))
					t.Run(name, func(t *testing.T) {
						// (made here, so that -run filters skip the others)
						path := fixturePath(t, arch, ft.name, ft.ftype)
						opts := llamaOptions(t)
						opts.FlashAttn = fa
						opts.Threads = 2
						r := compareRun(t, path, toks, opts)
						total += r.nodes
						same += r.same
						for op, v := range r.worst {
							if v > worst[op] {
								worst[op] = v
							}
							if _, ok := worst[op]; !ok {
								worst[op] = 0
							}
						}
						if iqBitExact[ft.name] && r.same != r.nodes {
							t.Errorf("%d of %d nodes bit-identical; first difference %s", r.same, r.nodes, r.diffs[0])
						}
						line := fmt.Sprintf("%-34s %3d/%3d bit-identical", name, r.same, r.nodes)
						if len(r.diffs) > 0 {
							line += "; first: " + r.diffs[0]
						}
						report = append(report, line)
					})
				}
			}
		}
	}
	for _, l := range report {
		t.Log(l)
	}
	var ops []string
	for op := range worst {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	for _, op := range ops {
		t.Logf("worst NMSE %-16s %.3g", op, worst[op])
	}
	t.Logf("total: %d of %d tensors bit-identical", same, total)
}

// TestOddShapesMatchLlamaCpp covers the kernel tails the default fixtures do
// not reach: head size 18 (RoPE with 9 pairs: the unfused last pair of the
// vectorised NORM rotation; flash attention entirely in scalar code), row
// lengths 72 and 104 (ggml_vec_dot_f32 leftovers in blocks of 8 and 4 and
// fused scalars), head size 80 (float16 dot and V accumulation with 16
// scalar leftovers), and an F32 KV cache (flash attention on F16 casts; the
// F32 kq and kqv products).
func TestOddShapesMatchLlamaCpp(t *testing.T) {
	toks := []int32{1, 300, 301, 302, 303, 304, 305, 306}
	type variant struct {
		name  string
		cfg   fixture.Config
		types []string
	}
	small := func(arch string) fixture.Config {
		c := fixture.Default(arch)
		c.Embd, c.Heads, c.KVHeads, c.FF = 72, 4, 2, 104
		return c
	}
	wide := func(arch string) fixture.Config {
		c := fixture.Default(arch)
		c.Embd, c.Heads, c.KVHeads, c.FF = 320, 4, 2, 640
		return c
	}
	ftypes := map[string]int{"f32": 0, "f16": 1, "q8_0": 7, "q4_0": 2}
	variants := []variant{
		{"llama-hd18", small("llama"), []string{"f32", "f16"}},
		{"qwen2-hd18", small("qwen2"), []string{"f32", "f16"}},
		{"llama-hd80", wide("llama"), []string{"f16", "q8_0"}},
		{"qwen3-hd80", wide("qwen3"), []string{"q4_0"}},
	}
	total, same, runs := 0, 0, 0
	defer func() { t.Logf("total: %d of %d tensors bit-identical in %d runs", same, total, runs) }()
	for _, v := range variants {
		for _, typ := range v.types {
			path := fixturePathCfg(t, v.name, v.cfg, typ, ftypes[typ])
			for _, kv := range []quant.Type{quant.F16, quant.F32} {
				for _, fa := range []bool{true, false} {
					for _, n := range []int{8, 1} {
						name := fmt.Sprintf("%s/%s/kv=%s/fa=%v/T=%d", v.name, typ, kv, fa, n)
						t.Run(name, func(t *testing.T) {
							opts := llamaOptions(t)
							opts.FlashAttn = fa
							opts.KVType = kv
							opts.Threads = 2
							r := compareRun(t, path, toks[:n], opts)
							total, same, runs = total+r.nodes, same+r.same, runs+1
							if r.same != r.nodes {
								t.Errorf("%d of %d nodes bit-identical; first difference %s", r.same, r.nodes, r.diffs[0])
							}
						})
					}
				}
			}
		}
	}
}

// TestLongPromptMatchesLlamaCpp runs 40 and 300 tokens (300 needs a 512-cell
// KV cache and attends 512 cells) through the default llama and qwen2
// fixtures, and gemma2's and gemma3's (a 4-token sliding window).
func TestLongPromptMatchesLlamaCpp(t *testing.T) {
	var toks []int32
	for i := 0; i < 300; i++ {
		toks = append(toks, int32(1+(i*37)%300))
	}
	for _, arch := range []string{"llama", "qwen2", "gemma2", "gemma3"} {
		for _, typ := range []struct {
			name  string
			ftype int
		}{{"q8_0", 7}, {"q4_k_m", 15}} {
			path := fixturePath(t, arch, typ.name, typ.ftype)
			for _, fa := range []bool{true, false} {
				for _, n := range []int{40, 300} {
					t.Run(fmt.Sprintf("%s/%s/fa=%v/T=%d", arch, typ.name, fa, n), func(t *testing.T) {
						opts := llamaOptions(t)
						opts.FlashAttn = fa
						opts.Threads = 2
						r := compareRun(t, path, toks[:n], opts)
						if r.same != r.nodes {
							t.Errorf("%d of %d nodes bit-identical; first difference %s", r.same, r.nodes, r.diffs[0])
						}
						t.Logf("%d of %d nodes bit-identical", r.same, r.nodes)
					})
				}
			}
		}
	}
}

// TestMicroBatchesMatchLlamaCpp splits prompts into llama_decode calls of
// n_batch tokens (the KV cache filling across them) and compares every node
// of every micro-batch with llama.cpp's: 10 tokens in calls of 4, and 300
// tokens in calls of 128, where the attended cells grow from 256 to 512
// between calls; and 13 tokens in one call, whose matmuls take the
// eight-, four- and one-column paths.
func TestMicroBatchesMatchLlamaCpp(t *testing.T) {
	var long []int32
	for i := 0; i < 300; i++ {
		long = append(long, int32(1+(i*37)%300))
	}
	for _, c := range []struct {
		arch, typ string
		ftype     int
		toks      []int32
		ubatches  []int
	}{
		{"llama", "q8_0", 7, long[:10], []int{4, 4, 2}},
		{"qwen2", "q4_k_m", 15, long[:10], []int{4, 4, 2}},
		{"qwen3", "f16", 1, long[:10], []int{4, 4, 2}},
		{"llama", "q4_k_m", 15, long, []int{128, 128, 44}},
		// 13 tokens in one batch: eight, four and one column per pass
		{"llama", "q4_1", 3, long[:13], []int{13}},
		{"qwen2", "q5_1", 9, long[:10], []int{4, 4, 2}},
		{"qwen3", "q4_0", 2, long[:13], []int{13}},
		{"llama", "bf16", 32, long[:13], []int{13}},
		// iSWA: the sliding-window cache fills across calls
		{"gemma2", "q8_0", 7, long[:10], []int{4, 4, 2}},
		{"gemma2", "f16", 1, long, []int{128, 128, 44}},
		{"gemma3", "q4_k_m", 15, long[:10], []int{4, 4, 2}},
	} {
		path := fixturePath(t, c.arch, c.typ, c.ftype)
		for _, fa := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/%s/fa=%v/%v", c.arch, c.typ, fa, c.ubatches), func(t *testing.T) {
				opts := llamaOptions(t)
				opts.FlashAttn = fa
				opts.Threads = 2
				opts.UBatches = c.ubatches
				r := compareRun(t, path, c.toks, opts)
				if r.same != r.nodes {
					t.Errorf("%d of %d nodes bit-identical; first difference %s", r.same, r.nodes, r.diffs[0])
				}
				t.Logf("%d of %d nodes bit-identical", r.same, r.nodes)
			})
		}
	}
}

// TestRopeFreqsAndTiedOutputMatchLlamaCpp covers Llama 3's rope_freqs.weight
// (RoPE frequency factors) and a tied output (no output.weight) on a llama
// fixture rewritten with both, in F32 and quantized to Q8_0.
func TestRopeFreqsAndTiedOutputMatchLlamaCpp(t *testing.T) {
	cfg := fixture.Default("llama")
	cfg.Tied = true
	src := fixturePathCfg(t, "llama-tied", cfg, "f32", 0)
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ts := tensorsOf(t, f)
	if _, ok := f.Tensor("output.weight"); ok {
		t.Fatal("fixture with Tied has output.weight")
	}
	nRot := int64(cfg.Embd / cfg.Heads)
	freqs := make([]float32, nRot/2)
	for i := range freqs { // shaped like Llama 3.1's: 1 for high frequencies, up to 8 for low ones
		freqs[i] = 1 + 7*float32(i)/float32(len(freqs)-1)
	}
	ts = append(ts, gguf.WriteTensor{Name: "rope_freqs.weight", Ne: []int64{nRot / 2}, Type: quant.F32, Data: f32Bytes(freqs)})
	path := filepath.Join(filepath.Dir(src), "llama-ropefreqs-f32.gguf")
	if err := gguf.WriteFile(path, f.KVs, ts, 0); err != nil {
		t.Fatal(err)
	}
	q8 := filepath.Join(filepath.Dir(src), "llama-ropefreqs-q8_0.gguf")
	if err := llamacpp.QuantizeModel(path, q8, 7, 2); err != nil {
		t.Fatal(err)
	}
	toks := []int32{1, 300, 301, 302, 303, 304, 305, 306}
	for _, p := range []string{path, q8} {
		for _, fa := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/fa=%v", filepath.Base(p), fa), func(t *testing.T) {
				opts := llamaOptions(t)
				opts.FlashAttn = fa
				opts.Threads = 2
				r := compareRun(t, p, toks, opts)
				if r.same != r.nodes {
					t.Errorf("%d of %d nodes bit-identical; first difference %s", r.same, r.nodes, r.diffs[0])
				}
			})
		}
	}
}

// TestMain removes the generated fixtures after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// TestYaRNMatchesLlamaCpp covers YaRN RoPE scaling (rope.scaling.type
// "yarn" over an original context of 64, so that the ramp lies inside the
// head dimensions) on llama (pairs) and qwen2 (halves), F32 and Q8_0, flash
// attention on and off: every node bit-identical. Factor 13 is one where
// the magnitude 1 + 0.1·ln(factor) differs fused and unfused.
func TestYaRNMatchesLlamaCpp(t *testing.T) {
	for _, c := range []struct {
		arch   string
		factor float32
	}{{"llama", 4}, {"qwen2", 4}, {"llama", 13}} {
		arch := c.arch
		src := fixturePath(t, arch, "f32", 0)
		f, err := gguf.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		ts := tensorsOf(t, f)
		kvs := append(append([]gguf.KV(nil), f.KVs...),
			gguf.NewKV(arch+".rope.scaling.type", "yarn"),
			gguf.NewKV(arch+".rope.scaling.factor", c.factor),
			gguf.NewKV(arch+".rope.scaling.original_context_length", uint32(64)))
		name := fmt.Sprintf("%s-yarn%g", arch, c.factor)
		path := filepath.Join(filepath.Dir(src), name+"-f32.gguf")
		err = gguf.WriteFile(path, kvs, ts, 0)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		yf, err := gguf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Load(yf)
		if err != nil {
			t.Fatal(err)
		}
		if h := m.Hparams; h.RopeExtFactor != 1 || h.RopeScale != 1/c.factor || h.NCtxOrig != 64 {
			t.Fatalf("%s: YaRN hparams %+v", arch, h)
		}
		// the f64 RoPE, isolated on llama.cpp's inputs, is within float32
		// round-off of llama.cpp's
		f64toks := []int32{1, 300, 301, 302, 303, 304, 305, 306}
		ref := llamaNodes(t, refConfig{Path: path, Tokens: f64toks, FA: true, KVType: quant.F16})
		opts := DefaultOptions()
		opts.Numerics, opts.Threads, opts.FlashAttn = NumericsF64, 2, true
		inj := &refInjector{ref: ref}
		opts.Inject = inj
		ropes := 0
		_, err = m.Run(f64toks, opts, RecorderFunc(func(n *Node, _ *tensor.Tensor) error {
			if n.Op != "ROPE" || inj.got[n.Index] == nil {
				return nil
			}
			ropes++
			if e := nmse(inj.got[n.Index], ref[n.Index].Data); e > 1e-12 {
				t.Errorf("%s: f64 %s has nmse %.3g against llama.cpp's", name, n.Name, e)
			}
			return nil
		}))
		yf.Close()
		if err != nil || ropes == 0 {
			t.Fatalf("%s: f64 run: %v (%d ROPE nodes)", name, err, ropes)
		}
		q8 := filepath.Join(filepath.Dir(src), name+"-q8_0.gguf")
		if err := llamacpp.QuantizeModel(path, q8, 7, 2); err != nil {
			t.Fatal(err)
		}
		toks := make([]int32, 40)
		for i := range toks {
			toks[i] = int32(1 + 7*i)
		}
		for _, p := range []string{path, q8} {
			for _, fa := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/fa=%v", filepath.Base(p), fa), func(t *testing.T) {
					opts := llamaOptions(t)
					opts.FlashAttn = fa
					opts.Threads = 2
					r := compareRun(t, p, toks, opts)
					if r.same != r.nodes {
						t.Errorf("%d of %d nodes bit-identical; first difference %s", r.same, r.nodes, r.diffs[0])
					}
				})
			}
		}
	}
}
