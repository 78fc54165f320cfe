package forward

import (
	"fmt"
	"math"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// The graph of one decode of a prompt, built as llama.cpp ec98e2002 builds
// it: the inputs and the KV cache here, the blocks by each architecture's
// builder (arch_<name>.go, after src/models/<name>.cpp) with the pieces of
// llama-graph.cpp (build_inp_embd, build_norm, build_attn, build_attn_mha,
// build_ffn, build_inp_out_ids; llama-kv-cache.cpp: get_k, get_v, cpy_k,
// cpy_v) that buildCtx offers.

// built is a graph ready to run plus its inputs.
type built struct {
	g                     *graph
	tokens, pos           *node // I32 {T}
	kIdxs, vIdxs          *node // I64
	kqMask                *node // F32 {n_kv, T}
	outIDs                *node // I32 {n_outputs}
	cacheK, cacheV        []*node
	kvSize, nKV, nTokens  int
	p0, ubatch            int // position of the first token; micro-batch index
	vTrans                bool
	out                   *node
	weights               map[string]*node
	nEmbdKGQA, nEmbdVGQA  int64
	headK, headV, headsKV int64
	flashAttn             bool
	// iSWA (gemma2, gemma3; swa.go): the sliding-window cache's inputs,
	// nil for a model without SWA layers.
	kIdxsSWA, vIdxsSWA, kqMaskSWA *node
	nSWA                          int
	swaLayers                     []bool
	attnSoftcap                   float32
	// attnSinks are the attention sinks of the layer being built
	// (gpt-oss's attn_sinks.weight), nil without
	attnSinks *node
}

// weight returns the leaf of a model tensor, creating it once.
func (b *built) weight(m *Model, ti *gguf.TensorInfo) (*node, error) {
	if ti == nil {
		return nil, nil
	}
	if n, ok := b.weights[ti.Name]; ok {
		return n, nil
	}
	data, err := m.File.TensorData(ti)
	if err != nil {
		return nil, err
	}
	ne := make([]int64, len(ti.Ne))
	copy(ne, ti.Ne)
	n := b.g.weightLeaf(ti.Name, ti.Type, data, ne)
	b.weights[ti.Name] = n
	return n, nil
}

// kvPadding is the KV cache padding of this llama.cpp version (256, see
// llama_kv_cache::get_n_kv and llama_context's n_ctx rounding).
const kvPadding = 256

// buildGraph builds the graph for nTokens tokens at positions p0..p0+T-1 of
// a KV cache of kvSize cells whose cells 0..p0-1 hold the earlier tokens
// (p0 = 0: an empty cache), with every position an output (as layerdiff's
// llama.cpp dumps request). The graph attends to n_kv cells, llama.cpp's
// get_n_kv: the used cells (p0+T) rounded up to the padding, at most
// kvSize.
func (m *Model) buildGraph(nTokens, p0, kvSize int, flashAttn bool, kvType quant.Type) (*built, error) {
	h := &m.Hparams
	if nTokens <= 0 {
		return nil, fmt.Errorf("no tokens")
	}
	if kvSize < p0+nTokens {
		return nil, fmt.Errorf("%d tokens do not fit a KV cache of %d cells", p0+nTokens, kvSize)
	}
	g := &graph{layer: -1}
	T := int64(nTokens)
	hd := int64(h.HeadDimK)
	b := &built{g: g, weights: map[string]*node{}, kvSize: kvSize, nTokens: nTokens, p0: p0, flashAttn: flashAttn}
	used := p0 + nTokens
	b.nKV = min(kvSize, max(kvPadding, (used+kvPadding-1)/kvPadding*kvPadding))
	b.vTrans = !flashAttn
	b.attnSoftcap = h.AttnSoftcap
	b.nEmbdKGQA = hd * int64(h.NHeadKV)
	b.nEmbdVGQA = int64(h.HeadDimV) * int64(h.NHeadKV)
	b.headK, b.headV, b.headsKV = hd, int64(h.HeadDimV), int64(h.NHeadKV)
	nKV := int64(b.nKV)

	w := func(ti *gguf.TensorInfo) *node {
		n, err := b.weight(m, ti)
		if err != nil {
			panic(buildError{err})
		}
		return n
	}
	var out *node
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				be, ok := r.(buildError)
				if !ok {
					panic(r)
				}
				err = be.err
			}
		}()
		// KV cache buffers.
		for il := 0; il < h.NLayer; il++ {
			k := g.leaf(kvType, b.nEmbdKGQA, int64(kvSize), 1)
			g.setName(k, fmt.Sprintf("cache_k_l%d", il))
			v := g.leaf(kvType, b.nEmbdVGQA, int64(kvSize), 1)
			g.setName(v, fmt.Sprintf("cache_v_l%d", il))
			b.cacheK = append(b.cacheK, k)
			b.cacheV = append(b.cacheV, v)
		}

		// build_inp_embd's input (the architecture's builder makes the
		// GET_ROWS: buildCtx.inpEmbd)
		b.tokens = g.leaf(quant.I32, T)
		// build_inp_pos
		b.pos = g.leaf(quant.I32, T)
		// build_attn_inp_kv
		b.kIdxs = g.leaf(quant.I64, T)
		if b.vTrans {
			b.vIdxs = g.leaf(quant.I64, T*b.nEmbdVGQA)
		} else {
			b.vIdxs = g.leaf(quant.I64, T)
		}
		b.kqMask = g.leaf(quant.F32, nKV, T, 1, 1)
		kqMaskCnv := b.kqMask
		if flashAttn {
			kqMaskCnv = g.cast(b.kqMask, quant.F16)
		}
		kqMaskSWACnv := b.swaInputs(m, T, kqMaskCnv)
		kqScale := float32(1 / float32(math.Sqrt(float64(float32(hd)))))
		if m.variant != nil && m.variant.AttnScale != 0 {
			kqScale = m.variant.AttnScale
		}
		// build_inp_out_ids
		b.outIDs = g.leaf(quant.I32, T)

		var ropeFreqs *node
		if h.RopeFreqs != nil {
			ti, _ := m.File.Tensor("rope_freqs.weight")
			ropeFreqs = w(ti)
		}
		c := &buildCtx{b: b, g: g, m: m, h: h, T: T, hd: hd, w: w,
			kqMask: kqMaskCnv, kqMaskSWA: kqMaskSWACnv, kqScale: kqScale, ropeFreqs: ropeFreqs,
			rope: ropeParams{
				nDims: int32(h.NRot), mode: int32(h.RopeType), nCtxOrig: int32(h.NCtxOrig),
				freqBase: h.RopeBase, freqScale: h.RopeScale, extFactor: h.RopeExtFactor, attnFactor: h.AttnFactor,
				betaFast: h.YarnBetaFast, betaSlow: h.YarnBetaSlow,
			}}
		cur := m.arch.build(c)
		g.layer = -1
		g.expand(cur)
		out = cur
		return nil
	}()
	if err != nil {
		return nil, err
	}
	b.out = out
	return b, nil
}

type buildError struct{ err error }

// buildCtx is what an architecture's builder works with: llm_graph_context
// with the inputs made, the model's hyperparameters and weights.
type buildCtx struct {
	b         *built
	g         *graph
	m         *Model
	h         *Hparams
	T         int64 // tokens in the micro-batch
	hd        int64 // head dimension
	w         func(*gguf.TensorInfo) *node
	kqMask    *node // the mask as the attention reads it (F16 with flash attention)
	kqMaskSWA *node // the sliding-window mask likewise, nil without SWA layers
	kqScale   float32
	rope      ropeParams
	ropeFreqs *node // rope_freqs.weight, or nil
}

// weight is the leaf of block L's tensor name (Layer.Tensor), nil if absent.
func (c *buildCtx) weight(L *Layer, name string) *node { return c.w(L.Tensor(name)) }

// norm is build_norm with LLM_NORM_RMS: the RMS norm, named "norm-il",
// times the weight mw when there is one.
func (c *buildCtx) norm(cur, mw *node, il int) *node {
	cur = c.g.rmsNorm(cur, c.h.NormRMSEps)
	if mw != nil {
		c.g.cb(cur, "norm", il)
		cur = c.g.mul(cur, mw)
	}
	return cur
}

// inpEmbd is build_inp_embd: the rows of token_embd.weight of the tokens.
func (c *buildCtx) inpEmbd() *node {
	cur := c.g.getRows(c.w(c.m.TokEmbd), c.b.tokens)
	c.g.cb(cur, "inp_embd", -1)
	return cur
}

// projection is a MUL_MAT by weight w plus an optional bias, both named
// name-il (build_lora_mm and the bias add of llama.cpp's builders).
func (c *buildCtx) projection(w, bias, cur *node, name string, il int) *node {
	cur = c.g.mulMat(w, cur)
	c.g.cb(cur, name, il)
	if bias != nil {
		cur = c.g.add(cur, bias)
		c.g.cb(cur, name, il)
	}
	return cur
}

// heads reshapes a projection to {head_dim, n, T}.
func (c *buildCtx) heads(cur *node, n int) *node {
	return c.g.reshape(cur, c.hd, int64(n), c.T)
}

// attn is build_attn with the KV cache: Q, K and V stored and attended,
// then the output projection wo (and bias bo).
func (c *buildCtx) attn(wo, bo, q, k, v *node, il int) *node {
	return c.b.buildAttn(wo, bo, q, k, v, c.maskOf(il), c.kqScale, il)
}

// outputRows keeps the output tokens' rows of the last layer's tensors
// (build_inp_out_ids: every token here, but the GET_ROWS nodes are there).
func (c *buildCtx) outputRows(il int, ts ...**node) {
	if il != c.h.NLayer-1 {
		return
	}
	for _, t := range ts {
		*t = c.g.getRows(*t, c.b.outIDs)
	}
}

// output is the model's head: result_norm (output_norm) and result_output
// (output.weight, or token_embd.weight when tied, plus output.bias).
func (c *buildCtx) output(cur *node) *node {
	c.g.layer = -1
	cur = c.norm(cur, c.w(c.m.OutputNorm), -1)
	c.g.cb(cur, "result_norm", -1)
	cur = c.g.mulMat(c.w(c.m.Output), cur)
	if c.m.OutputB != nil {
		cur = c.g.add(cur, c.w(c.m.OutputB))
	}
	c.g.cb(cur, "result_output", -1)
	return cur
}

// buildAttn is llm_graph_context::build_attn with a KV cache.
func (b *built) buildAttn(wo, bo, q, k, v, kqMask *node, kqScale float32, il int) *node {
	g := b.g
	// these nodes are added together so that they are not reordered (the
	// iSWA build_attn expands K before V)
	g.expand(q)
	if b.kqMaskSWA != nil {
		g.expand(k)
		g.expand(v)
	} else {
		g.expand(v)
		g.expand(k)
	}
	g.expand(b.cpyK(k, il))
	g.expand(b.cpyV(v, il))
	kc := b.getK(il)
	vc := b.getV(il)
	cur := b.buildAttnMHA(q, kc, vc, kqMask, kqScale, il)
	g.cb(cur, "kqv_out", il)
	if wo != nil {
		cur = g.mulMat(wo, cur)
	}
	if bo != nil {
		cur = g.add(cur, bo)
	}
	return cur
}

// cpyK is llama_kv_cache::cpy_k.
func (b *built) cpyK(kCur *node, il int) *node {
	g := b.g
	nEmbdGQA := kCur.ne[0] * kCur.ne[1]
	kCur = g.view2d(kCur, nEmbdGQA, kCur.ne[2], kCur.nb[2], 0)
	return g.setRows(b.cacheK[il], kCur, b.kIdxsOf(il))
}

// cpyV is llama_kv_cache::cpy_v.
func (b *built) cpyV(vCur *node, il int) *node {
	g := b.g
	nEmbdGQA := vCur.ne[0] * vCur.ne[1]
	nTokens := vCur.ne[2]
	if !b.vTrans {
		vCur = g.view2d(vCur, nEmbdGQA, nTokens, vCur.nb[2], 0)
		return g.setRows(b.cacheV[il], vCur, b.vIdxsOf(il))
	}
	if typeSize(vCur.typ)*nEmbdGQA == vCur.nb[2] {
		vCur = g.reshape(vCur, nEmbdGQA, nTokens)
	} else {
		vCur = g.cont(vCur, nEmbdGQA, nTokens)
	}
	c := b.cacheV[il]
	vView := g.reshape(c, 1, c.nelements())
	vCur = g.reshape(vCur, 1, vCur.nelements())
	return g.setRows(vView, vCur, b.vIdxsOf(il))
}

// getK is llama_kv_cache::get_k.
func (b *built) getK(il int) *node {
	c := b.cacheK[il]
	hd, nh := b.headK, b.headsKV
	ts := typeSize(c.typ)
	kv := int64(b.kvSize)
	return b.g.view4d(c, hd, nh, int64(b.nKV), 1,
		ts*hd, ts*b.nEmbdKGQA, ts*b.nEmbdKGQA*kv, 0)
}

// getV is llama_kv_cache::get_v.
func (b *built) getV(il int) *node {
	c := b.cacheV[il]
	hd, nh := b.headV, b.headsKV
	ts := typeSize(c.typ)
	kv := int64(b.kvSize)
	if !b.vTrans {
		return b.g.view4d(c, hd, nh, int64(b.nKV), 1,
			ts*hd, ts*b.nEmbdVGQA, ts*b.nEmbdVGQA*kv, 0)
	}
	return b.g.view4d(c, int64(b.nKV), nh, hd, 1,
		ts*kv*hd, ts*kv, ts*kv*b.nEmbdVGQA, 0)
}

// buildAttnMHA is llm_graph_context::build_attn_mha.
func (b *built) buildAttnMHA(q, k, v, kqMask *node, kqScale float32, il int) *node {
	g := b.g
	vTrans := v.nb[1] > v.nb[2]
	q = g.view4d(q, q.ne[0], q.ne[1], q.ne[2], 1, q.nb[1], q.nb[2], q.nb[3], 0)
	q = g.permute(q, 0, 2, 1, 3)
	k = g.permute(k, 0, 2, 1, 3)
	v = g.permute(v, 0, 2, 1, 3)
	var cur *node
	if b.flashAttn {
		if vTrans {
			v = g.transpose(v)
		}
		if k.typ == quant.F32 {
			k = g.cast(k, quant.F16)
		}
		if v.typ == quant.F32 {
			v = g.cast(v, quant.F16)
		}
		cur = g.flashAttnExt(q, k, v, kqMask, kqScale, 0, b.attnSoftcap)
		addSinks(cur, b.attnSinks)
		g.cb(cur, "__fattn__", il)
		cur = g.reshape(cur, cur.ne[0]*cur.ne[1], cur.ne[2]*cur.ne[3])
	} else {
		kq := g.mulMat(k, q)
		g.cb(kq, "kq", il)
		if b.attnSoftcap != 0 { // gemma2 (hparams.attn_soft_cap)
			kq = g.softcap(kq, b.attnSoftcap, [3]string{"kq_scaled_1", "kq_tanh", "kq_scaled_2"}, il)
		}
		kq = g.softMaxExt(kq, kqMask, kqScale, 0)
		addSinks(kq, b.attnSinks)
		g.cb(kq, "kq_soft_max", il)
		if !vTrans {
			v = g.cont(g.transpose(v), v.ne[1], v.ne[0], v.ne[2], v.ne[3])
			g.cb(v, "v_cont", il)
		}
		kqv := g.mulMat(v, kq)
		g.cb(kqv, "kqv", il)
		cur = g.permute(kqv, 0, 2, 1, 3)
		cur = g.cont(cur, cur.ne[0]*cur.ne[1], cur.ne[2]*cur.ne[3])
	}
	g.expand(cur)
	return cur
}

// buildFFN is llm_graph_context::build_ffn with LLM_FFN_SILU and
// LLM_FFN_PAR (a gated SwiGLU feed-forward).
func (b *built) buildFFN(cur, up, upB, gate, gateB, down, downB *node, il int) *node {
	g := b.g
	tmp := g.mulMat(up, cur)
	g.cb(tmp, "ffn_up", il)
	if upB != nil {
		tmp = g.add(tmp, upB)
		g.cb(tmp, "ffn_up_b", il)
	}
	cur = g.mulMat(gate, cur)
	g.cb(cur, "ffn_gate", il)
	if gateB != nil {
		cur = g.add(cur, gateB)
		g.cb(cur, "ffn_gate_b", il)
	}
	cur = g.swigluSplit(cur, tmp)
	g.cb(cur, "ffn_swiglu", il)
	cur = g.mulMat(down, cur)
	if downB != nil {
		g.cb(cur, "ffn_down", il)
		cur = g.add(cur, downB)
	}
	return cur
}
