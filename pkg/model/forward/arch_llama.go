package forward

import (
	"math"
)

// ArchLlama is llama: TinyLlama, Llama 2/3/3.1/3.2, Mistral (GQA, RoPE
// NORM, Llama 3.1's rope_freqs, optional biases), and Mixtral's mixtures
// of experts (llama.expert_count > 0: build_moe_ffn in every block).
const ArchLlama Arch = "llama"

// llama is llama.cpp's src/models/llama.cpp (llm_build_llama).
var llama = &architecture{
	name:     ArchLlama,
	ropeType: RopeNorm,
	experts:  true,
	tensors: func(m *Model, il int) []tensorReq {
		L, e, q, kv, ff := m.blockDims(il)
		attnB := []tensorReq{
			{&L.Bq, "attn_q.bias", true, false, []int64{q}},
			{&L.Bk, "attn_k.bias", true, false, []int64{kv}},
			{&L.Bv, "attn_v.bias", true, false, []int64{kv}},
			{&L.Bo, "attn_output.bias", true, false, []int64{e}},
		}
		if n := m.Hparams.NExpert; n > 0 {
			// Mixtral: the experts are n_ff wide
			reqs := append(attnNormTensors(L, e, q, kv), attnB...)
			return append(reqs, moeTensors(L, e, ff, int64(n))...)
		}
		reqs := decoderTensors(L, e, q, kv, ff)
		return append(append(reqs, attnB...),
			tensorReq{&L.FFNGateB, "ffn_gate.bias", true, false, []int64{ff}},
			tensorReq{&L.FFNDownB, "ffn_down.bias", true, false, []int64{e}},
			tensorReq{&L.FFNUpB, "ffn_up.bias", true, false, []int64{ff}},
		)
	},
	globals: func(m *Model) error {
		h := &m.Hparams
		rf, err := m.f32Tensor("rope_freqs.weight", false, int64(h.NRot/2))
		if err != nil || rf == nil {
			return err
		}
		data, err := m.File.TensorData(rf)
		if err != nil {
			return err
		}
		h.RopeFreqs = make([]float32, h.NRot/2)
		for i := range h.RopeFreqs {
			h.RopeFreqs[i] = math.Float32frombits(le32(data[4*i:]))
		}
		return nil
	},
	build: func(c *buildCtx) *node { return buildDecoder(c, decoderStyle{llamaNames: true}) },
}

// decoderStyle is what sets llm_build_llama, llm_build_qwen2 and
// llm_build_qwen3 apart in the one block they share.
type decoderStyle struct {
	qkNorm     bool // qwen3: RMS norms of the Q and K heads before RoPE
	llamaNames bool // llama: "attn_out-il", and "ffn_out-il" twice
}

// decoderTensors are the tensors of a pre-norm block with separate Q, K, V
// projections and a gated FFN (llama, qwen2, qwen3).
func decoderTensors(L *Layer, e, q, kv, ff int64) []tensorReq {
	return append(attnNormTensors(L, e, q, kv), gatedFFNTensors(L, e, ff)...)
}

// attnNormTensors are decoderTensors without the FFN: attn_norm, the Q,
// K, V and output projections, ffn_norm.
func attnNormTensors(L *Layer, e, q, kv int64) []tensorReq {
	reqs := []tensorReq{{&L.AttnNorm, "attn_norm.weight", true, true, []int64{e}}}
	reqs = append(reqs, attnTensors(L, e, q, kv)...)
	return append(reqs, tensorReq{&L.FFNNorm, "ffn_norm.weight", true, true, []int64{e}})
}

// buildDecoder is the block of llm_build_llama, llm_build_qwen2,
// llm_build_qwen3 and llm_build_qwen3moe: pre-norm attention with RoPE
// (biases when the model has them), then a pre-norm SwiGLU FFN or, in a
// block with a router (ffn_gate_inp), a mixture of experts, each with its
// residual.
func buildDecoder(c *buildCtx, s decoderStyle) *node {
	g, h := c.g, c.h
	inpL := c.inpEmbd()
	for il := 0; il < h.NLayer; il++ {
		g.layer = il
		L := &c.m.Layers[il]
		inpSA := inpL
		cur := c.norm(inpL, c.w(L.AttnNorm), il)
		g.cb(cur, "attn_norm", il)

		Q := c.projection(c.w(L.Wq), c.w(L.Bq), cur, "Qcur", il)
		K := c.projection(c.w(L.Wk), c.w(L.Bk), cur, "Kcur", il)
		V := c.projection(c.w(L.Wv), c.w(L.Bv), cur, "Vcur", il)
		Q, K, V = c.heads(Q, h.NHead), c.heads(K, h.NHeadKV), c.heads(V, h.NHeadKV)
		if s.qkNorm {
			Q = c.norm(Q, c.w(L.QNorm), il)
			g.cb(Q, "Qcur_normed", il)
			Q = g.rope(Q, c.b.pos, nil, c.rope)
			K = c.norm(K, c.w(L.KNorm), il)
			g.cb(K, "Kcur_normed", il)
			K = g.rope(K, c.b.pos, nil, c.rope)
		} else {
			Q = g.rope(Q, c.b.pos, c.ropeFreqs, c.rope)
			K = g.rope(K, c.b.pos, c.ropeFreqs, c.rope)
		}
		g.cb(Q, "Qcur", il)
		g.cb(K, "Kcur", il)
		g.cb(V, "Vcur", il)

		cur = c.attn(c.w(L.Wo), c.w(L.Bo), Q, K, V, il)
		if s.llamaNames {
			g.cb(cur, "attn_out", il)
		}
		c.outputRows(il, &cur, &inpSA)
		ffnInp := g.add(cur, inpSA)
		g.cb(ffnInp, "ffn_inp", il)

		cur = c.norm(ffnInp, c.w(L.FFNNorm), il)
		g.cb(cur, "ffn_norm", il)
		if L.FFNGateInp != nil {
			// the MoE branch (graph_moe.go)
			cur = c.moeFFN(cur, L, il)
			g.cb(cur, "ffn_moe_out", il)
		} else {
			cur = c.b.buildFFN(cur, c.w(L.FFNUp), c.w(L.FFNUpB), c.w(L.FFNGate), c.w(L.FFNGateB), c.w(L.FFNDown), c.w(L.FFNDownB), il)
			g.cb(cur, "ffn_out", il)
		}
		cur = g.add(cur, ffnInp)
		if s.llamaNames {
			g.cb(cur, "ffn_out", il)
		}
		g.cb(cur, "l_out", il)
		inpL = cur
	}
	return c.output(inpL)
}
