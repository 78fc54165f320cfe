package forward

import (
	"math"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// The graph of a mixture-of-experts FFN: ggml's constructors for the ops
// it adds (ggml.c: ggml_mul_mat_id, ggml_argsort, ggml_argsort_top_k,
// ggml_sum_rows, ggml_clamp, ggml_div) and llama-graph.cpp's
// build_moe_ffn as qwen3moe and llama's MoE branch call it.

// ggmlSortDesc is GGML_SORT_ORDER_DESC (op param 0 of ARGSORT).
const ggmlSortDesc = 1

// mulMatID is ggml_mul_mat_id(as, b, ids): for every column of ids (a
// token) and every expert slot, b's row times expert ids[slot]'s matrix:
// {as.ne[1], ids.ne[0], b.ne[2]}.
func (g *graph) mulMatID(as, b, ids *node) *node {
	n := g.newTensor(quant.F32, as.ne[1], ids.ne[0], b.ne[2], 1)
	n.op = opMulMatID
	n.src[0], n.src[1], n.src[2] = as, b, ids
	return n
}

// argsort is ggml_argsort(a, GGML_SORT_ORDER_DESC): the I32 indices of
// each row, largest value first.
func (g *graph) argsort(a *node) *node {
	n := g.newTensor(quant.I32, a.ne[:]...)
	n.op = opArgsort
	n.ip[0] = ggmlSortDesc
	n.src[0] = a
	return n
}

// argsortTopK is ggml_argsort_top_k(a, k): the first k columns of the
// descending argsort, a view.
func (g *graph) argsortTopK(a *node, k int64) *node {
	r := g.argsort(a)
	return g.view4d(r, k, r.ne[1], r.ne[2], r.ne[3], r.nb[1], r.nb[2], r.nb[3], 0)
}

// sumRows is ggml_sum_rows(a): {1, a.ne[1], a.ne[2], a.ne[3]}.
func (g *graph) sumRows(a *node) *node {
	n := g.newTensor(a.typ, 1, a.ne[1], a.ne[2], a.ne[3])
	n.op = opSumRows
	n.src[0] = a
	return n
}

// clamp is ggml_clamp(a, lo, hi): in place, a view of a.
func (g *graph) clamp(a *node, lo, hi float32) *node {
	n := g.viewTensor(a)
	n.op = opClamp
	n.fp[0], n.fp[1] = lo, hi
	n.src[0] = a
	return n
}

// div is ggml_div(a, b), b broadcast over a.
func (g *graph) div(a, b *node) *node { return g.binary(opDiv, a, b) }

// moeFFN is llm_graph_context::build_moe_ffn as llm_build_qwen3moe and
// llm_build_llama call it: softmax gating, the top n_expert_used experts
// by probability, their weights normalised to sum 1 (norm_w), no scaling,
// SiLU-gated experts, the weighted experts' outputs added.
func (c *buildCtx) moeFFN(cur *node, L *Layer, il int) *node {
	return c.moeFFNWith(cur, L, il, moeStyle{normW: true})
}

// moeStyle are build_moe_ffn's arguments beyond the tensors.
type moeStyle struct {
	// softmaxWeight is LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX_WEIGHT
	// (gpt-oss): the experts are picked by their logits, and the picked
	// logits' softmax weighs them; else LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX.
	softmaxWeight bool
	// swigluOAI is LLM_FFN_SWIGLU_OAI_MOE (gpt-oss), else LLM_FFN_SILU.
	swigluOAI bool
	normW     bool
	// biases: ffn_gate_inp_b, ffn_{up,gate,down}_exps_b (gpt-oss), or nil
	gateInpB, upB, gateB, downB *node
}

// moeFFNWith is llm_graph_context::build_moe_ffn with the gating, GLU,
// normalisation and biases of s (no scaling, no selection bias, no
// expert groups: llama.cpp's other options are not reproduced).
func (c *buildCtx) moeFFNWith(cur *node, L *Layer, il int, s moeStyle) *node {
	g, h := c.g, c.h
	nEmbd, T := cur.ne[0], cur.ne[1]
	nExp, nUsed := int64(h.NExpert), int64(h.NExpertUsed)

	logits := g.mulMat(c.w(L.FFNGateInp), cur) // [n_expert, n_tokens]
	g.cb(logits, "ffn_moe_logits", il)
	if s.gateInpB != nil {
		logits = g.add(logits, s.gateInpB)
		g.cb(logits, "ffn_moe_logits_biased", il)
	}
	probs := logits
	if !s.softmaxWeight {
		probs = g.softMaxExt(logits, nil, 1, 0) // ggml_soft_max
	}
	g.cb(probs, "ffn_moe_probs", il)

	selected := g.argsortTopK(probs, nUsed) // [n_expert_used, n_tokens]
	g.cb(selected.src[0], "ffn_moe_argsort", il)
	g.cb(selected, "ffn_moe_topk", il)

	probs = g.reshape(probs, 1, nExp, T)
	weights := g.getRows(probs, selected) // [1, n_expert_used, n_tokens]
	g.cb(weights, "ffn_moe_weights", il)

	if s.softmaxWeight {
		weights = g.reshape(weights, nUsed, T)
		weights = g.softMaxExt(weights, nil, 1, 0) // [n_expert_used, n_tokens]
		weights = g.reshape(weights, 1, nUsed, T)
		g.cb(weights, "ffn_moe_weights_softmax", il)
	}
	if s.normW {
		weights = g.reshape(weights, nUsed, T)
		sum := g.sumRows(weights) // [1, n_tokens]
		g.cb(sum, "ffn_moe_weights_sum", il)
		// the smallest normal F16, against a division by zero
		sum = g.clamp(sum, 6.103515625e-5, float32(math.Inf(1)))
		g.cb(sum, "ffn_moe_weights_sum_clamped", il)
		weights = g.div(weights, sum) // [n_expert_used, n_tokens]
		g.cb(weights, "ffn_moe_weights_norm", il)
		weights = g.reshape(weights, 1, nUsed, T)
	}
	g.expand(weights) // "call early so that topk-moe can be used"

	cur = g.reshape(cur, nEmbd, 1, T)
	up := g.mulMatID(c.w(L.FFNUpExps), cur, selected) // [n_ff, n_expert_used, n_tokens]
	g.cb(up, "ffn_moe_up", il)
	if s.upB != nil {
		up = g.addID(up, s.upB, selected)
		g.cb(up, "ffn_moe_up_biased", il)
	}
	cur = g.mulMatID(c.w(L.FFNGateExps), cur, selected)
	g.cb(cur, "ffn_moe_gate", il)
	if s.gateB != nil {
		cur = g.addID(cur, s.gateB, selected)
		g.cb(cur, "ffn_moe_gate_biased", il)
	}
	if s.swigluOAI {
		cur = g.swigluOAI(cur, up, gptossAlpha, gptossLimit)
		g.cb(cur, "ffn_moe_swiglu_oai", il)
	} else {
		cur = g.swigluSplit(cur, up)
		g.cb(cur, "ffn_moe_swiglu", il)
	}

	experts := g.mulMatID(c.w(L.FFNDownExps), cur, selected) // [n_embd, n_expert_used, n_tokens]
	g.cb(experts, "ffn_moe_down", il)
	if s.downB != nil {
		experts = g.addID(experts, s.downB, selected)
		g.cb(experts, "ffn_moe_down_biased", il)
	}
	experts = g.mul(experts, weights)
	// build_moe_ffn names cur (the SwiGLU), not the product, here
	g.cb(cur, "ffn_moe_weighted", il)

	// the views ordered before the adds
	views := make([]*node, nUsed)
	for i := range views {
		views[i] = g.view2d(experts, nEmbd, T, experts.nb[2], int64(i)*experts.nb[1])
		g.expand(views[i])
	}
	out := views[0]
	for _, v := range views[1:] {
		out = g.add(out, v)
	}
	if nUsed == 1 {
		out = g.cont(out, out.ne[:]...) // not a non-contiguous result
	}
	g.cb(out, "ffn_moe_out", il)
	return out
}
