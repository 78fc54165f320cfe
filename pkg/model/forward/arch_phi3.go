package forward

import "fmt"

// ArchPhi3 is phi3: Phi-3 mini and medium, Phi-3.5 mini (fused QKV and
// gate-up projections, RoPE NEOX, the 128k models' long and short
// frequency factors).
const ArchPhi3 Arch = "phi3"

// phi3 is llama.cpp's src/models/phi3.cpp (llm_build_phi3<false>). The
// {arch}.attention.sliding_window key of the Phi-3 GGUFs is read and
// dropped, as llama.cpp's load_hparams does ("Phi SWA is currently
// disabled": n_swa = 0, no iSWA cache), so every layer attends to the
// whole cache. The MoE branch of the builder is phimoe's, another
// architecture.
var phi3 = &architecture{
	name:     ArchPhi3,
	ropeType: RopeNeox,
	hparams: func(m *Model) error {
		h := &m.Hparams
		// the views of the fused QKV output start K at n_embd
		if h.HeadDimK*h.NHead != h.NEmbd {
			return fmt.Errorf("%s: phi3 head dimension %d * %d heads != embedding length %d: %w", m.File.Path, h.HeadDimK, h.NHead, h.NEmbd, ErrUnsupported)
		}
		if h.NFF <= 0 {
			// llama.cpp's n_ff stays 0 and ffn_down {0, n_embd} fails to
			// load
			return fmt.Errorf("%s: missing metadata key %s (llama.cpp does not load phi3 without it)", m.File.Path, m.key("feed_forward_length"))
		}
		return nil
	},
	tensors: func(m *Model, il int) []tensorReq {
		L, e, q, kv, ff := m.blockDims(il)
		return []tensorReq{
			{&L.AttnNorm, "attn_norm.weight", true, true, []int64{e}},
			// llama.cpp's wq/wk/wv branch is unreachable for phi3: its
			// load_tensors creates only attn_qkv
			{nil, "attn_qkv.weight", false, true, []int64{e, q + 2*kv}},
			{&L.Wo, "attn_output.weight", false, true, []int64{q, e}},
			{&L.FFNNorm, "ffn_norm.weight", true, true, []int64{e}},
			{&L.FFNDown, "ffn_down.weight", false, true, []int64{ff, e}},
			{&L.FFNUp, "ffn_up.weight", false, true, []int64{e, 2 * ff}},
		}
	},
	globals: func(m *Model) error {
		n := int64(m.Hparams.NRot / 2)
		for _, name := range []string{"rope_factors_long.weight", "rope_factors_short.weight"} {
			if _, err := m.f32Tensor(name, false, n); err != nil {
				return err
			}
		}
		return nil
	},
	build: buildPhi3,
}

// phi3RopeFactors is llama_model::get_rope_factors: rope_factors_long when
// the context (n_ctx_seq, the KV cache cells of one sequence) exceeds the
// original context n_ctx_orig_yarn, else rope_factors_short; nil when the
// model has neither.
func phi3RopeFactors(c *buildCtx) *node {
	name := "rope_factors_short.weight"
	if c.b.kvSize > phi3OrigCtx(c.m) {
		name = "rope_factors_long.weight"
	}
	ti, ok := c.m.File.Tensor(name)
	if !ok {
		return nil
	}
	return c.w(ti)
}

// phi3OrigCtx is hparams.n_ctx_orig_yarn as get_rope_factors reads it:
// rope.scaling.original_context_length as stored, even 0 (which ollama's
// converter writes when the HF config has no
// original_max_position_embeddings: any context then selects the long
// factors), else the training context. Hparams.NCtxOrig is the context's
// n_ctx_orig_yarn instead, the training context for 0.
func phi3OrigCtx(m *Model) int {
	v := m.Hparams.NCtxTrain
	if err := m.getUint("rope.scaling.original_context_length", &v, false); err != nil {
		return m.Hparams.NCtxOrig // Load read the key already
	}
	return v
}

// buildPhi3 is llm_build_phi3: the fused QKV projection split by views,
// RoPE with the frequency factors, Q scaled by 1/√head_dim before the
// attention (which then scales by 1), and the fused gate-up FFN of
// ggml_swiglu.
func buildPhi3(c *buildCtx) *node {
	g, h := c.g, c.h
	nEmbd := int64(h.NEmbd)
	nGQA := c.hd * int64(h.NHeadKV)
	ropeFactors := phi3RopeFactors(c)
	// 1.0f/sqrtf(float(n_embd_head)), the scale build_attn gets elsewhere
	// (and a Variant's AttnScale)
	qScale := c.kqScale
	inpL := c.inpEmbd()
	for il := 0; il < h.NLayer; il++ {
		g.layer = il
		L := &c.m.Layers[il]
		residual := inpL
		cur := c.norm(inpL, c.w(L.AttnNorm), il)
		g.cb(cur, "attn_norm", il)

		cur = g.mulMat(c.weight(L, "attn_qkv.weight"), cur)
		g.cb(cur, "wqkv", il)
		Q := g.view3d(cur, c.hd, int64(h.NHead), c.T, c.hd*4, cur.nb[1], 0)
		K := g.view3d(cur, c.hd, int64(h.NHeadKV), c.T, c.hd*4, cur.nb[1], 4*nEmbd)
		V := g.view3d(cur, c.hd, int64(h.NHeadKV), c.T, c.hd*4, cur.nb[1], 4*(nEmbd+nGQA))
		Q = g.rope(Q, c.b.pos, ropeFactors, c.rope)
		K = g.rope(K, c.b.pos, ropeFactors, c.rope)
		g.cb(Q, "Qcur", il)
		g.cb(K, "Kcur", il)
		g.cb(V, "Vcur", il)
		Q = g.scale(Q, qScale)
		g.cb(Q, "Qcur", il)
		cur = c.b.buildAttn(c.w(L.Wo), nil, Q, K, V, c.kqMask, 1, il)

		c.outputRows(il, &cur, &residual)
		cur = g.add(cur, residual)
		residual = cur

		cur = c.norm(cur, c.w(L.FFNNorm), il)
		g.cb(cur, "ffn_norm", il)
		// build_ffn with LLM_FFN_SWIGLU and no gate tensor
		cur = g.mulMat(c.w(L.FFNUp), cur)
		g.cb(cur, "ffn_up", il)
		cur = g.swiglu(cur)
		g.cb(cur, "ffn_swiglu", il)
		cur = g.mulMat(c.w(L.FFNDown), cur)
		g.cb(cur, "ffn_out", il)
		cur = g.add(residual, cur)
		g.cb(cur, "l_out", il)
		inpL = cur
	}
	return c.output(inpL)
}
