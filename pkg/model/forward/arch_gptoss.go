package forward

import "fmt"

// ArchGptOss is gpt-oss: OpenAI's gpt-oss-20b and gpt-oss-120b
// (llama.cpp's LLM_ARCH_OPENAI_MOE): attention with Q/K/V/output biases and
// per-head attention sinks, sliding-window and full attention layers
// alternating (iSWA), YaRN RoPE, a post-attention norm, and a mixture of
// experts with biased router and experts, picked by logit and weighed by
// the softmax of the picked logits, with the clamped SWIGLU_OAI.
const ArchGptOss Arch = "gpt-oss"

// gptoss is llama.cpp's src/models/openai-moe-iswa.cpp
// (llm_build_openai_moe_iswa) with llama-model.cpp's LLM_ARCH_OPENAI_MOE
// hyperparameters and tensors.
var gptoss = &architecture{
	name:     ArchGptOss,
	ropeType: RopeNeox,
	experts:  true,
	hparams: func(m *Model) error {
		h := &m.Hparams
		if h.NExpert == 0 || h.NExpertUsed == 0 {
			return fmt.Errorf("%s: gpt-oss needs %s and %s: %w", m.File.Path, m.key("expert_count"), m.key("expert_used_count"), ErrUnsupported)
		}
		// required keys: expert_feed_forward_length, attention.sliding_window
		h.NFFExp = 0
		if err := m.getUint("expert_feed_forward_length", &h.NFFExp, true); err != nil {
			return err
		}
		if h.NFFExp <= 0 {
			return fmt.Errorf("%s: gpt-oss experts of width %d", m.File.Path, h.NFFExp)
		}
		h.NSWA = 0
		if err := m.getUint("attention.sliding_window", &h.NSWA, true); err != nil {
			return err
		}
		// LLAMA_SWA_TYPE_STANDARD, set_swa_pattern(2): even layers slide
		return m.loadSWA(h.NSWA, 2)
	},
	tensors: gptossTensors,
	globals: func(m *Model) error {
		// output.weight is required (no TENSOR_DUPLICATED fallback)
		if m.TiedOutput {
			return fmt.Errorf("%s: gpt-oss needs output.weight (llama.cpp does not tie it to token_embd)", m.File.Path)
		}
		return nil
	},
	build: buildGptOss,
}

// gptossTensors are the tensors of a gpt-oss block, all required.
func gptossTensors(m *Model, il int) []tensorReq {
	L, e, q, kv, _ := m.blockDims(il)
	h := &m.Hparams
	ff, nExp := int64(h.NFFExp), int64(h.NExpert)
	reqs := []tensorReq{
		{&L.AttnNorm, "attn_norm.weight", true, true, []int64{e}},
		{nil, "post_attention_norm.weight", true, true, []int64{e}},
	}
	reqs = append(reqs, attnTensors(L, e, q, kv)...)
	reqs = append(reqs, tensorReq{nil, "attn_sinks.weight", true, true, []int64{int64(h.NHead)}})
	reqs = append(reqs, moeTensors(L, e, ff, nExp)...)
	return append(reqs,
		tensorReq{&L.Bq, "attn_q.bias", true, true, []int64{q}},
		tensorReq{&L.Bk, "attn_k.bias", true, true, []int64{kv}},
		tensorReq{&L.Bv, "attn_v.bias", true, true, []int64{kv}},
		tensorReq{&L.Bo, "attn_output.bias", true, true, []int64{e}},
		tensorReq{nil, "ffn_gate_inp.bias", true, true, []int64{nExp}},
		tensorReq{nil, "ffn_gate_exps.bias", true, true, []int64{ff, nExp}},
		tensorReq{nil, "ffn_down_exps.bias", true, true, []int64{e, nExp}},
		tensorReq{nil, "ffn_up_exps.bias", true, true, []int64{ff, nExp}},
	)
}

// buildGptOss is llm_build_openai_moe_iswa.
func buildGptOss(c *buildCtx) *node {
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
		Q = g.rope(Q, c.b.pos, nil, c.rope)
		K = g.rope(K, c.b.pos, nil, c.rope)
		g.cb(Q, "Qcur", il)
		g.cb(K, "Kcur", il)
		g.cb(V, "Vcur", il)

		c.b.attnSinks = c.weight(L, "attn_sinks.weight")
		cur = c.attn(c.w(L.Wo), c.w(L.Bo), Q, K, V, il)
		c.b.attnSinks = nil
		g.cb(cur, "attn_out", il)
		c.outputRows(il, &cur, &inpSA)
		ffnInp := g.add(cur, inpSA)
		g.cb(ffnInp, "ffn_inp", il)

		cur = c.norm(ffnInp, c.weight(L, "post_attention_norm.weight"), il)
		g.cb(cur, "attn_post_norm", il)
		cur = c.moeFFNWith(cur, L, il, moeStyle{
			softmaxWeight: true,
			swigluOAI:     true,
			gateInpB:      c.weight(L, "ffn_gate_inp.bias"),
			upB:           c.weight(L, "ffn_up_exps.bias"),
			gateB:         c.weight(L, "ffn_gate_exps.bias"),
			downB:         c.weight(L, "ffn_down_exps.bias"),
		})
		g.cb(cur, "ffn_moe_out", il)
		cur = g.add(cur, ffnInp)
		g.cb(cur, "l_out", il)
		inpL = cur
	}
	return c.output(inpL)
}
