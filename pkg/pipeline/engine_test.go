package pipeline

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

func TestChainOf(t *testing.T) {
	// 0 inp_embd, 1 norm (RMS_NORM), 2 attn_norm (MUL), 3 Qcur (MUL_MAT),
	// 4 reshape (view), 5 rope, 6 kq (MUL_MAT, from 5 and 1 for the test)
	nodes := []forward.Node{
		{Index: 0, Name: "inp_embd", Op: "GET_ROWS"},
		{Index: 1, Name: "norm-0", Op: "RMS_NORM", Src: []int{0}},
		{Index: 2, Name: "attn_norm-0", Op: "MUL", Src: []int{1}},
		{Index: 3, Name: "Qcur-0", Op: "MUL_MAT", Src: []int{2}},
		{Index: 4, Name: "Qcur-0 (reshaped)", Op: "RESHAPE", View: true, Src: []int{3}},
		{Index: 5, Name: "Qcur-0", Op: "ROPE", Src: []int{4}},
		{Index: 6, Name: "kq-0", Op: "MUL_MAT", Src: []int{5, 1}},
	}
	names := func(ns []forward.Node) []string {
		var out []string
		for _, n := range ns {
			out = append(out, n.Name+" "+n.Op)
		}
		return out
	}
	for _, tc := range []struct {
		at       int
		injected []int
		want     []string
	}{
		{5, []int{3}, nil}, // the direct input (through a view) recorded
		{5, []int{2}, []string{"Qcur-0 MUL_MAT"}},
		{2, nil, []string{"inp_embd GET_ROWS", "norm-0 RMS_NORM"}},
		{6, []int{2}, []string{"inp_embd GET_ROWS", "norm-0 RMS_NORM", "Qcur-0 MUL_MAT", "Qcur-0 ROPE"}}, // norm-0 is read twice
		{6, []int{5, 1}, nil},
		{9, nil, nil},
	} {
		inj := map[int]bool{}
		for _, i := range tc.injected {
			inj[i] = true
		}
		if got := names(chainOf(nodes, tc.at, inj)); !slices.Equal(got, tc.want) {
			t.Errorf("chainOf(%d, %v) = %q, want %q", tc.at, tc.injected, got, tc.want)
		}
	}
}

func TestFloatBound(t *testing.T) {
	lookup := func(at int, name string) ([]int64, quant.Type, bool) {
		if name == "blk.0.attn_q.weight" {
			return []int64{256, 256}, quant.Q8_0, true
		}
		return nil, 0, false
	}
	nmse := func(b crossBound) float64 { return float64(*b.tolerance().NMSEMax) }
	mm := floatBound(forward.Node{Op: "MUL_MAT", SrcNames: []string{"blk.0.attn_q.weight", "attn_norm-0"}}, lookup, 8, unitF32)
	if mm.n != 256 || mm.uacc != unitF32 {
		t.Errorf("MUL_MAT bound %+v: want n 256, u 2^-24", mm)
	}
	unknown := floatBound(forward.Node{Op: "MUL_MAT", SrcNames: []string{"x"}}, lookup, 8, unitF32)
	if unknown.n != 4096 {
		t.Errorf("unknown K: n %v", unknown.n)
	}
	// an f16 engine's bound is wider than an f32 one's by (2^13)^2
	f16 := floatBound(forward.Node{Op: "MUL_MAT", SrcNames: []string{"blk.0.attn_q.weight"}}, lookup, 8, unitF16)
	if r := nmse(f16) / nmse(mm); r < math.Exp2(25) || r > math.Exp2(26) {
		t.Errorf("f16/f32 nmse bound ratio %g", r)
	}
	// an RMS epsilon ÷10 on unit-mean-square rows (nmse ≈ (4.5e-6)² ≈ 2e-11)
	// is outside the RMS norm's bound; float32 round-off (≈ 256/12·u²) is in
	rms := nmse(floatBound(forward.Node{Op: "RMS_NORM", Ne: [4]int64{256, 8, 1, 1}}, lookup, 8, unitF32))
	if rms >= 2e-11 || rms <= 256.0/12*unitF32*unitF32 {
		t.Errorf("RMS_NORM nmse bound %g", rms)
	}
	rope8 := nmse(floatBound(forward.Node{Op: "ROPE"}, lookup, 8, unitF32))
	rope64 := nmse(floatBound(forward.Node{Op: "ROPE"}, lookup, 64, unitF32))
	if rope64 <= rope8 {
		t.Errorf("ROPE bound does not grow with the positions: %g, %g", rope8, rope64)
	}
	for typ, u := range map[string]float64{"f32": unitF32, "": unitF32, "F16": unitF16, "bf16": unitBF16} {
		if unitOf(typ) != u {
			t.Errorf("unitOf(%q) = %g", typ, unitOf(typ))
		}
	}
}

func TestOtherTokens(t *testing.T) {
	toks := []int32{1, 5, 6, 7}
	mk := func(tokens []int32, embT int64) *memSource {
		return &memSource{info: reference.Info{Tokens: tokens}, nodes: []reference.NodeInfo{
			{Key: "tok_embeddings", Name: "inp_embd", Ne: []int64{8, embT}, Data: reference.FullData},
			{Key: "norm-0", Name: "norm-0", Ne: []int64{8, embT}, Data: reference.FullData},
		}}
	}
	for _, tc := range []struct {
		src  *memSource
		bos  int32
		want []int32
	}{
		{mk(nil, 4), 1, toks},
		{mk(nil, 3), 1, toks[1:]},                // one row fewer and BOS first: no BOS
		{mk(nil, 3), 2, toks},                    // not the model's BOS
		{mk([]int32{9, 9}, 2), 1, []int32{9, 9}}, // recorded tokens win
	} {
		got, emb := otherTokens(tc.src, toks, tc.bos)
		if !slices.Equal(got, tc.want) || emb != "tok_embeddings" {
			t.Errorf("otherTokens = %v %q, want %v", got, emb, tc.want)
		}
	}
}

func TestHypothesesFor(t *testing.T) {
	h := forward.Hparams{NEmbd: 256, NHead: 4, NHeadKV: 2, HeadDimK: 64, NormRMSEps: 1e-5, RopeBase: 10000, RopeType: forward.RopeNorm}
	kinds := func(n forward.Node) []string {
		var out []string
		for _, hy := range hypothesesFor(n, h, nil) {
			if !slices.Contains(out, hy.kind) {
				out = append(out, hy.kind)
			}
		}
		return out
	}
	for _, tc := range []struct {
		n    forward.Node
		want []string
	}{
		{forward.Node{Name: "norm-0", Op: "RMS_NORM"}, []string{"rms-eps"}},
		{forward.Node{Name: "Qcur-0", Op: "ROPE"}, []string{"rope-mode", "rope-position", "rope-base"}},
		{forward.Node{Name: "kq_soft_max-0", Op: "SOFT_MAX"}, []string{HintSoftmaxScale}},
		{forward.Node{Name: "kq-0", Op: "MUL_MAT", SrcNames: []string{"cache_k_l0 (view) (permuted)"}}, []string{HintGQAMapping}},
		{forward.Node{Name: "ffn_swiglu-0", Op: "SWIGLU"}, []string{HintActivation}},
		{forward.Node{Name: "l_out-0", Op: "ADD"}, nil},
	} {
		if got := kinds(tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("%s (%s): hypotheses %v, want %v", tc.n.Name, tc.n.Op, got, tc.want)
		}
	}
	// every hypothesis changes something, and none repeats the model's own value
	for _, hy := range hypothesesFor(forward.Node{Name: "norm-0", Op: "RMS_NORM"}, h, nil) {
		if hy.v.IsZero() || hy.v.RMSEps == h.NormRMSEps {
			t.Errorf("hypothesis %s changes nothing", hy.v.String())
		}
	}
}

func TestQuantizationHint(t *testing.T) {
	mk := func(op string, nmse float64) *compare.Report {
		return &compare.Report{
			Tensors:         []compare.Row{{Name: "Qcur-0", Op: op, Metrics: &compare.Metrics{NMSE: compare.Float(nmse)}}},
			FirstDivergence: &compare.Divergence{Row: 0, Name: "Qcur-0", Op: op},
			Blame:           &compare.Blame{Name: "Qcur-0"},
		}
	}
	for _, tc := range []struct {
		op     string
		nmse   float64
		engine bool
		want   bool
	}{
		{"MUL_MAT", 3.4e-5, true, true},
		{"MUL_MAT", 3.4e-5, false, false}, // two llama.cpp dumps: a kernel matter
		{"MUL_MAT", 0.5, true, false},     // a real difference
		{"ROPE", 3.4e-5, true, false},
	} {
		rep := mk(tc.op, tc.nmse)
		QuantizationHint(rep, tc.engine)
		got := len(rep.Blame.Hints) > 0 && rep.Blame.Hints[0].Kind == "activation-quantization" && strings.Contains(rep.Blame.Hints[0].Text, "--model")
		if got != tc.want {
			t.Errorf("%s nmse %g engine %v: hint %v, want %v", tc.op, tc.nmse, tc.engine, rep.Blame.Hints, tc.want)
		}
	}
}

// memSource is an in-memory reference.Source without data.
type memSource struct {
	info  reference.Info
	nodes []reference.NodeInfo
}

func (m *memSource) Describe() reference.Info    { return m.info }
func (m *memSource) Nodes() []reference.NodeInfo { return m.nodes }
func (m *memSource) Load(string) (*tensor.Tensor, error) {
	return nil, reference.ErrNoData
}
