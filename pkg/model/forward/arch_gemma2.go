package forward

import (
	"fmt"
	"math"
)

// ArchGemma2 is gemma2: Gemma 2 (interleaved sliding-window attention,
// attention and final logit soft-capping, post-attention and post-FFN
// norms, GELU-gated FFN, embeddings scaled by √n_embd, tied output).
const ArchGemma2 Arch = "gemma2"

// gemma2 is llama.cpp's src/models/gemma2-iswa.cpp (llm_build_gemma2_iswa)
// with llama-model.cpp's LLM_ARCH_GEMMA2 hyperparameters and tensors.
var gemma2 = &architecture{
	name:     ArchGemma2,
	ropeType: RopeNeox,
	hparams: func(m *Model) error {
		h := &m.Hparams
		// hparams.n_swa = 4096 (the default of gemma 2), set_swa_pattern(2)
		if err := m.loadSWA(4096, 2); err != nil {
			return err
		}
		h.AttnSoftcap, h.FinalSoftcap = 50, 30
		if err := m.getFloat("attn_logit_softcapping", &h.AttnSoftcap, false); err != nil {
			return err
		}
		if err := m.getFloat("final_logit_softcapping", &h.FinalSoftcap, false); err != nil {
			return err
		}
		if h.AttnSoftcap == 0 || h.FinalSoftcap == 0 {
			// llama.cpp divides by both unconditionally
			return fmt.Errorf("%s: gemma2 soft-capping of %g (attention) and %g (output): %w", m.File.Path, h.AttnSoftcap, h.FinalSoftcap, ErrUnsupported)
		}
		h.QueryScale = gemmaQueryScale(h, 46)
		return nil
	},
	tensors: func(m *Model, il int) []tensorReq { return gemmaTensors(m, il, false) },
	globals: func(m *Model) error {
		// output = token_embd (TENSOR_DUPLICATED): gemma2 has no output.weight
		if m.Output != m.TokEmbd {
			return fmt.Errorf("%s: gemma2 has a tied output, but the file holds output.weight: %w", m.File.Path, ErrUnsupported)
		}
		return nil
	},
	build: func(c *buildCtx) *node { return buildGemma(c, false) },
}

// gemmaQueryScale is f_attention_scale: 1/√(n_embd/n_head) for the 27B
// model (n_layer layers27B), else 1/√n_embd_head_k, in float as
// llama-model.cpp computes it.
func gemmaQueryScale(h *Hparams, layers27B int) float32 {
	d := float32(h.HeadDimK)
	if h.NLayer == layers27B {
		d = float32(h.NEmbd / h.NHead)
	}
	return 1 / float32(math.Sqrt(float64(d)))
}

// gemmaTensors are the tensors of a gemma2 or gemma3 block (gemma3 adds the
// Q and K norms).
func gemmaTensors(m *Model, il int, qkNorm bool) []tensorReq {
	L, e, q, kv, ff := m.blockDims(il)
	reqs := []tensorReq{{&L.AttnNorm, "attn_norm.weight", true, true, []int64{e}}}
	reqs = append(reqs, attnTensors(L, e, q, kv)...)
	reqs = append(reqs, tensorReq{nil, "post_attention_norm.weight", true, true, []int64{e}})
	if qkNorm {
		hd := int64(m.Hparams.HeadDimK)
		reqs = append(reqs,
			tensorReq{&L.KNorm, "attn_k_norm.weight", true, true, []int64{hd}},
			tensorReq{&L.QNorm, "attn_q_norm.weight", true, true, []int64{hd}})
	}
	reqs = append(reqs, tensorReq{&L.FFNNorm, "ffn_norm.weight", true, true, []int64{e}})
	reqs = append(reqs, gatedFFNTensors(L, e, ff)...)
	return append(reqs, tensorReq{nil, "post_ffw_norm.weight", true, true, []int64{e}})
}

// buildGemma is the block of llm_build_gemma2_iswa and of llm_build_gemma3
// (gemma3: Q/K norms before RoPE, a RoPE base per layer, "ffn_post_norm-il"
// where gemma2 names it "ffn_post_norm", optional output soft-capping).
func buildGemma(c *buildCtx, gemma3 bool) *node {
	g, h := c.g, c.h
	inpL := c.inpEmbd()
	inpL = g.scale(inpL, float32(math.Sqrt(float64(h.NEmbd))))
	g.cb(inpL, "inp_scaled", -1)
	for il := 0; il < h.NLayer; il++ {
		g.layer = il
		L := &c.m.Layers[il]
		rope := c.ropeOf(il)
		cur := c.norm(inpL, c.w(L.AttnNorm), il)
		g.cb(cur, "attn_norm", il)

		Q := c.projection(c.w(L.Wq), nil, cur, "Qcur", il)
		K := c.projection(c.w(L.Wk), nil, cur, "Kcur", il)
		V := c.projection(c.w(L.Wv), nil, cur, "Vcur", il)
		Q, K, V = c.heads(Q, h.NHead), c.heads(K, h.NHeadKV), c.heads(V, h.NHeadKV)
		if gemma3 {
			Q = c.norm(Q, c.w(L.QNorm), il)
			g.cb(Q, "Qcur_normed", il)
			Q = g.rope(Q, c.b.pos, nil, rope)
			K = c.norm(K, c.w(L.KNorm), il)
			g.cb(K, "Kcur_normed", il)
			K = g.rope(K, c.b.pos, nil, rope)
		} else {
			Q = g.rope(Q, c.b.pos, nil, rope)
			K = g.rope(K, c.b.pos, nil, rope)
		}
		g.cb(Q, "Qcur", il)
		g.cb(K, "Kcur", il)
		g.cb(V, "Vcur", il)
		qScale := h.QueryScale
		if v := c.m.variant; v != nil && v.AttnScale != 0 {
			qScale = v.AttnScale // the whole Q·K scale (kq_scale is 1)
		}
		Q = g.scale(Q, qScale)

		cur = c.b.buildAttn(c.w(L.Wo), nil, Q, K, V, c.maskOf(il), 1, il)
		c.outputRows(il, &cur, &inpL)
		cur = c.norm(cur, c.weight(L, "post_attention_norm.weight"), il)
		g.cb(cur, "attn_post_norm", il)
		saOut := g.add(cur, inpL)
		g.cb(saOut, "sa_out", il)

		cur = c.norm(saOut, c.w(L.FFNNorm), il)
		g.cb(cur, "ffn_norm", il)
		cur = c.b.buildGeGLUFFN(cur, c.w(L.FFNUp), c.w(L.FFNGate), c.w(L.FFNDown), il)
		g.cb(cur, "ffn_out", il)
		cur = c.norm(cur, c.weight(L, "post_ffw_norm.weight"), -1)
		if gemma3 {
			g.cb(cur, "ffn_post_norm", il)
		} else {
			g.cb(cur, "ffn_post_norm", -1)
		}
		cur = g.add(cur, saOut)
		g.cb(cur, "l_out", il)
		inpL = cur
	}
	g.layer = -1
	cur := c.norm(inpL, c.w(c.m.OutputNorm), -1)
	g.cb(cur, "result_norm", -1)
	cur = g.mulMat(c.w(c.m.Output), cur)
	if h.FinalSoftcap != 0 {
		cur = g.softcap(cur, h.FinalSoftcap, [3]string{}, -1)
	}
	g.cb(cur, "result_output", -1)
	return cur
}

// buildGeGLUFFN is llm_graph_context::build_ffn with LLM_FFN_GELU and
// LLM_FFN_PAR, without biases: ffn_up, ffn_gate, ffn_geglu, then the down
// projection (unnamed; the builder names it ffn_out).
func (b *built) buildGeGLUFFN(cur, up, gate, down *node, il int) *node {
	g := b.g
	tmp := g.mulMat(up, cur)
	g.cb(tmp, "ffn_up", il)
	cur = g.mulMat(gate, cur)
	g.cb(cur, "ffn_gate", il)
	cur = g.gegluSplit(cur, tmp)
	g.cb(cur, "ffn_geglu", il)
	return g.mulMat(down, cur)
}
