package forward

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

func parseTiny(t *testing.T, b []byte) *gguf.File {
	t.Helper()
	f, err := gguf.Parse(bytes.NewReader(b), int64(len(b)), "tiny.gguf")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestLoadHparams(t *testing.T) {
	cfg := defaultTiny("qwen3")
	cfg.headDim = 32 // qwen3 allows head_dim*heads != embd
	cfg.tied = true
	m := tinyModel(t, cfg)
	h := m.Hparams
	want := Hparams{Arch: ArchQwen3, NCtxTrain: 512, NEmbd: 256, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 512,
		HeadDimK: 32, HeadDimV: 32, NRot: 32, NormRMSEps: 1e-5, RopeType: RopeNeox, RopeBase: 10000, RopeScale: 1,
		RopeScaling: "linear", NCtxOrig: 512, AttnFactor: 1, YarnBetaFast: 32, YarnBetaSlow: 1, NVocab: 512}
	if h.RopeFreqs != nil {
		t.Errorf("RopeFreqs = %v", h.RopeFreqs)
	}
	h.RopeFreqs = nil
	if !reflect.DeepEqual(h, want) {
		t.Errorf("hparams\n got %+v\nwant %+v", h, want)
	}
	if !m.TiedOutput || m.Output != m.TokEmbd {
		t.Errorf("tied output not detected")
	}
	// defaults: no rope base, no head_count_kv
	cfg = defaultTiny("llama")
	cfg.kvHeads = cfg.heads
	cfg.omit = "llama.rope.freq_base"
	cfg.ropeFreqs = true
	m = tinyModel(t, cfg)
	if m.Hparams.RopeBase != 10000 || m.Hparams.RopeType != RopeNorm || len(m.Hparams.RopeFreqs) != 32 {
		t.Errorf("llama defaults: %+v", m.Hparams)
	}
	// the llama arch with optional biases builds Q/K/V adds
	cfg = defaultTiny("llama")
	cfg.biases = true
	m = tinyModel(t, cfg)
	if m.Layers[0].Bq == nil || m.Layers[1].Bv == nil {
		t.Errorf("llama biases not loaded")
	}
	var c Collector
	if _, err := m.Run([]int32{1, 2}, DefaultOptions(), &c); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, nd := range c.Nodes {
		if nd.Name == "Qcur-0" && nd.Op == "ADD" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d Qcur-0 ADD nodes, want 1", n)
	}
}

func TestLoadErrors(t *testing.T) {
	f32 := quant.F32
	cases := []struct {
		name   string
		mutate func(c *tinyConfig)
		kvs    func(b []byte) []byte
		want   string
		unsup  bool
	}{
		{name: "missing eps", mutate: func(c *tinyConfig) { c.omit = "llama.attention.layer_norm_rms_epsilon" }, want: "layer_norm_rms_epsilon"},
		{name: "missing tensor", mutate: func(c *tinyConfig) { c.omit = "blk.1.ffn_up.weight" }, want: `"blk.1.ffn_up.weight"`},
		{name: "missing block count", mutate: func(c *tinyConfig) { c.omit = "llama.block_count" }, want: "block_count"},
		{name: "missing qwen3 norm", mutate: func(c *tinyConfig) { c.arch = "qwen3"; c.omit = "blk.0.attn_k_norm.weight" }, want: "attn_k_norm"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := defaultTiny("llama")
			cfg.weight = f32
			c.mutate(&cfg)
			f := parseTiny(t, tinyGGUF(t, cfg))
			_, err := Load(f)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load: %v, want an error naming %s", err, c.want)
			}
			if !strings.Contains(err.Error(), "tiny.gguf") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// tensorsOf returns f's tensors, to be written again (their data stays
// f's mapping).
func tensorsOf(t *testing.T, f *gguf.File) []gguf.WriteTensor {
	t.Helper()
	var ts []gguf.WriteTensor
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		data, err := f.TensorData(ti)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, gguf.WriteTensor{Name: ti.Name, Ne: ti.Ne, Type: ti.Type, Data: data})
	}
	return ts
}

// writeGGUF writes kvs and tensors to memory and parses them.
func writeGGUF(t *testing.T, kvs []gguf.KV, ts []gguf.WriteTensor) *gguf.File {
	t.Helper()
	var buf bytes.Buffer
	if err := gguf.Write(&buf, kvs, ts, 0); err != nil {
		t.Fatal(err)
	}
	return parseTiny(t, buf.Bytes())
}

func TestLoadUnsupported(t *testing.T) {
	f := writeGGUF(t, []gguf.KV{gguf.NewKV("general.architecture", "bert")}, nil)
	if _, err := Load(f); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), `"bert"`) || !strings.Contains(err.Error(), archList()) {
		t.Errorf("bert: %v", err)
	}
	f = writeGGUF(t, nil, nil)
	if _, err := Load(f); !errors.Is(err, ErrUnsupported) {
		t.Errorf("no architecture: %v", err)
	}
	if _, err := Load(nil); err == nil {
		t.Error("Load(nil) succeeded")
	}
	// an unsupported weight type names the tensor and the type
	b := tinyGGUF(t, defaultTiny("llama"))
	f = parseTiny(t, b)
	var ts []gguf.WriteTensor
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		data, err := f.TensorData(ti)
		if err != nil {
			t.Fatal(err)
		}
		w := gguf.WriteTensor{Name: ti.Name, Ne: ti.Ne, Type: ti.Type, Data: data}
		if ti.Name == "blk.0.attn_q.weight" {
			// Q8_K: an activation type, never a weight (no vec_dot in ggml)
			w.Type = quant.Q8_K
			w.Data = make([]byte, ti.Ne[1]*ti.Ne[0]/256*int64(quant.Q8_K.BlockBytes()))
		}
		ts = append(ts, w)
	}
	f2 := writeGGUF(t, f.KVs, ts)
	_, err := Load(f2)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "blk.0.attn_q.weight") || !strings.Contains(err.Error(), "q8_K") {
		t.Errorf("q8_K weight: %v", err)
	}
	// LongRoPE scaling outside phi3's factors
	kvs := append(append([]gguf.KV(nil), f.KVs...), gguf.NewKV("llama.rope.scaling.type", "longrope"))
	var plain []gguf.WriteTensor
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		data, _ := f.TensorData(ti)
		plain = append(plain, gguf.WriteTensor{Name: ti.Name, Ne: ti.Ne, Type: ti.Type, Data: data})
	}
	if _, err := Load(writeGGUF(t, kvs, plain)); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "longrope") {
		t.Errorf("longrope: %v", err)
	}
}

func TestRunErrors(t *testing.T) {
	m := tinyModel(t, defaultTiny("llama"))
	for _, c := range []struct {
		toks []int32
		opts Options
		want string
	}{
		{nil, DefaultOptions(), "no tokens"},
		{[]int32{1, 512}, DefaultOptions(), "outside the vocabulary"},
		{[]int32{-1}, DefaultOptions(), "outside the vocabulary"},
		{[]int32{1}, Options{Numerics: "f128", KVType: quant.F16}, "numerics"},
		{[]int32{1}, Options{KVType: quant.Q8_0}, "KV cache type"},
	} {
		if _, err := m.Run(c.toks, c.opts, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%v, %+v): %v, want %q", c.toks, c.opts, err, c.want)
		}
	}
	// a recorder error stops the run
	stop := errors.New("stop")
	_, err := m.Run([]int32{1}, DefaultOptions(), RecorderFunc(func(*Node, *tensor.Tensor) error { return stop }))
	if !errors.Is(err, stop) {
		t.Errorf("recorder error: %v", err)
	}
}

func TestRecorders(t *testing.T) {
	m := tinyModel(t, defaultTiny("qwen2"))
	toks := []int32{1, 2, 3, 4}
	var all Collector
	if _, err := m.Run(toks, DefaultOptions(), &all); err != nil {
		t.Fatal(err)
	}
	// keys of repeated names
	if all.Get("norm-0") == nil || all.Get("norm-0#1") == nil || all.Get("norm-0#2") != nil {
		t.Errorf("norm-0 keys: %v %v", all.Get("norm-0"), all.Get("norm-0#1"))
	}
	var sel Collector
	f := &Filter{Names: regexp.MustCompile(`^(l_out|kq_soft_max|Qcur|__fattn__|result_output)`), Layers: []int{1}, OutsideLayers: true, SkipViews: true, Tokens: []int{3, 1}, Next: &sel}
	opts := DefaultOptions()
	if _, err := m.Run(toks, opts, f); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i, n := range sel.Nodes {
		names = append(names, n.Name)
		full := all.Get(n.Name)
		if n.Name == "Qcur-1" && n.Op == "MUL_MAT" {
			full = all.Get("Qcur-1")
		}
		tt := sel.Tensors[i]
		switch n.Name {
		case "l_out-1", "result_output":
			// {n, T}: rows 3 and 1
			w := full.Ne[0]
			if tt.Ne[1] != 2 || !equal(tt.Data[:w], full.Data[3*w:4*w]) || !equal(tt.Data[w:], full.Data[w:2*w]) {
				t.Errorf("%s: token selection wrong (ne %v)", n.Name, tt.Ne)
			}
		case "__fattn__-1":
			// {d, heads, T}
			if n.TokenDim != 2 || tt.Ne[2] != 2 {
				t.Errorf("%s: token dim %d, ne %v", n.Name, n.TokenDim, tt.Ne)
			}
		}
	}
	want := "Qcur-1 Qcur-1 Qcur-1 __fattn__-1 l_out-1 result_output"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("selected %s, want %s", got, want)
	}
	// token dims of the attention scores without flash attention
	opts.FlashAttn = false
	var c Collector
	if _, err := m.Run(toks, opts, &Filter{Names: regexp.MustCompile(`^kq`), Next: &c}); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		want := 1
		if strings.HasSuffix(n.Name, "(permuted)") {
			want = 2 // {d, heads, T}
		}
		if n.TokenDim != want {
			t.Errorf("%s %v: token dim %d, want %d", n.Name, n.Ne, n.TokenDim, want)
		}
	}
	if _, err := SelectTokens(&c.Nodes[0], c.Tensors[0], []int{9}); err == nil {
		t.Error("selecting token 9 of 4 succeeded")
	}
}

func equal(a, b []float32) bool {
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

func TestAliasesFor(t *testing.T) {
	for _, c := range []struct {
		name string
		want string
	}{
		{"inp_embd", "embd"},
		{"Qcur-12 (reshaped)", "Qcur-12"},
		{"__fattn__-3", "node_N"},
		{"attn_out-7", "kqv_out-7"},
		{"kqv_out-7", "kqv_merged_cont-7"},
		{"ffn_up-0", ""},
	} {
		if got := strings.Join(AliasesFor(c.name), ","); got != c.want {
			t.Errorf("AliasesFor(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}

// FuzzLoad feeds mutated GGUF files to Load and, when they load, runs one
// token: neither may panic.
func FuzzLoad(f *testing.F) {
	small := defaultTiny("llama")
	small.embd, small.ff, small.heads, small.kvHeads, small.vocab, small.layers = 64, 64, 2, 1, 300, 1
	f.Add(tinyGGUF(f, small))
	small.arch = "qwen3"
	f.Add(tinyGGUF(f, small))
	f.Fuzz(func(t *testing.T, b []byte) {
		mf, err := gguf.Parse(bytes.NewReader(b), int64(len(b)), "fuzz.gguf")
		if err != nil {
			return
		}
		m, err := Load(mf)
		if err != nil {
			return
		}
		h := m.Hparams
		if int64(h.NEmbd)*int64(h.NLayer)*int64(max(h.NFF, h.NEmbd)) > 1<<22 || h.NVocab > 1<<16 {
			return // too large to run in a fuzz iteration
		}
		_, _ = m.Run([]int32{0}, DefaultOptions(), nil)
	})
}

// TestNodesMatchRun checks that Nodes lists exactly the nodes Run hands its
// Recorder, in order, for every graph variant.
func TestNodesMatchRun(t *testing.T) {
	for _, tc := range []struct {
		arch     string
		fa       bool
		numerics string
		kv       quant.Type
		ubatches []int
	}{
		{"llama", true, NumericsGGML, quant.F16, nil},
		{"llama", false, NumericsGGML, quant.F16, nil},
		{"qwen2", false, NumericsF64, quant.F32, nil},
		{"qwen3", true, NumericsGGML, quant.F32, nil},
		{"llama", true, NumericsGGML, quant.F16, []int{2, 2, 1}},
		{"qwen2", false, NumericsF64, quant.F32, []int{4, 1}},
	} {
		t.Run(fmt.Sprintf("%s-fa%v-%s-%s-%v", tc.arch, tc.fa, tc.numerics, tc.kv, tc.ubatches), func(t *testing.T) {
			m := tinyModel(t, defaultTiny(tc.arch))
			opts := DefaultOptions()
			opts.FlashAttn, opts.Numerics, opts.KVType, opts.UBatches = tc.fa, tc.numerics, tc.kv, tc.ubatches
			toks := goldenTokens[:5]
			want, err := m.Nodes(len(toks), opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []Node
			_, err = m.Run(toks, opts, RecorderFunc(func(n *Node, x *tensor.Tensor) error {
				got = append(got, *n)
				if !slices.Equal(x.Ne, tensor.Trim(n.Ne[:])) {
					t.Errorf("%s: tensor shape %v, node shape %v", n.Name, x.Ne, n.Ne)
				}
				return nil
			}))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("Run recorded %d nodes, Nodes lists %d", len(got), len(want))
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("node %d: Run %+v, Nodes %+v", i, got[i], want[i])
				}
			}
		})
	}
	m := tinyModel(t, defaultTiny("llama"))
	if _, err := m.Nodes(0, DefaultOptions()); err == nil {
		t.Error("Nodes(0) gave no error")
	}
	if _, err := m.Nodes(4, Options{Numerics: "fast", KVType: quant.F16}); err == nil {
		t.Error("Nodes with unknown numerics gave no error")
	}
	for _, ub := range [][]int{{2, 1}, {3, 0, 1}, {5}} {
		o := DefaultOptions()
		o.UBatches = ub
		if _, err := m.Run(goldenTokens[:4], o, nil); err == nil || !strings.Contains(err.Error(), "micro-batch") {
			t.Errorf("micro-batches %v for 4 tokens: %v", ub, err)
		}
	}
}

// TestMicroBatches checks a run split into micro-batches against the same
// tokens in one batch: the same graph per micro-batch (names, ops, shapes
// with its tokens, positions continuing), logits for every token, and
// values that agree to float32 rounding (the matmuls see fewer columns,
// the attention more cached cells).
func TestMicroBatches(t *testing.T) {
	m := tinyModel(t, defaultTiny("llama"))
	toks := goldenTokens[:7]
	one := DefaultOptions()
	split := DefaultOptions()
	split.UBatches = []int{3, 3, 1}
	var cOne, cSplit Collector
	lOne, err := m.Run(toks, one, &cOne)
	if err != nil {
		t.Fatal(err)
	}
	lSplit, err := m.Run(toks, split, &cSplit)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(lOne.Ne, lSplit.Ne) || len(lSplit.Data) != len(lOne.Data) {
		t.Fatalf("logits %v (%d values), one batch %v", lSplit.Ne, len(lSplit.Data), lOne.Ne)
	}
	num, den := 0.0, 0.0
	for i := range lOne.Data {
		d := float64(lOne.Data[i] - lSplit.Data[i])
		num += d * d
		den += float64(lOne.Data[i]) * float64(lOne.Data[i])
	}
	if num/den > 1e-10 {
		t.Errorf("logits nmse %.3g between one batch and three", num/den)
	}
	nodes, err := m.Nodes(len(toks), split)
	if err != nil {
		t.Fatal(err)
	}
	perGraph := len(nodes) / 3
	if len(nodes)%3 != 0 || nodes[0].Name != nodes[perGraph].Name || nodes[perGraph].UBatch != 1 || nodes[2*perGraph].UBatch != 2 {
		t.Fatalf("%d nodes; graph starts %q, %q (micro-batch %d, %d)", len(nodes), nodes[0].Name, nodes[perGraph].Name, nodes[perGraph].UBatch, nodes[2*perGraph].UBatch)
	}
	if nodes[0].Ne[1] != 3 || nodes[2*perGraph].Ne[1] != 1 {
		t.Errorf("inp_embd shapes %v, %v: want 3 and 1 tokens", nodes[0].Ne, nodes[2*perGraph].Ne)
	}
}

// TestLoadHostileHparams: values a crafted header could carry are refused
// with an error naming the key, before anything is allocated for them.
func TestLoadHostileHparams(t *testing.T) {
	f := parseTiny(t, tinyGGUF(t, defaultTiny("llama")))
	ts := tensorsOf(t, f)
	for _, c := range []struct {
		key  string
		v    any
		want string
	}{
		{"llama.block_count", uint32(1 << 20), "more than llama.cpp's 512 layers"},
		{"llama.attention.head_count", []int32{4, 4, 4}, "has 3 values for 2 layers"},
		{"llama.feed_forward_length", []int32{-5, -5}, "is negative"},
		{"llama.rope.scaling.factor", float32(-2), "rope scaling factor -2 is not a positive number"},
		{"llama.rope.scaling.factor", float32(math.NaN()), "is not a positive number"},
	} {
		kvs, ts := withKV(c.key, c.v)(append([]gguf.KV(nil), f.KVs...), ts)
		_, err := Load(writeGGUF(t, kvs, ts))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s = %v: %v, want %q", c.key, c.v, err, c.want)
		}
	}
}
