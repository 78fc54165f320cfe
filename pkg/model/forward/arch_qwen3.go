package forward

// ArchQwen3 is qwen3: Qwen 3 dense models (per-head Q/K RMS norms, RoPE
// NEOX, head dimension independent of the embedding).
const ArchQwen3 Arch = "qwen3"

// qwen3 is llama.cpp's src/models/qwen3.cpp (llm_build_qwen3).
var qwen3 = &architecture{
	name:     ArchQwen3,
	ropeType: RopeNeox,
	tensors: func(m *Model, il int) []tensorReq {
		L, e, q, kv, ff := m.blockDims(il)
		hd := int64(m.Hparams.HeadDimK)
		return append(decoderTensors(L, e, q, kv, ff), qkNormTensors(L, hd)...)
	},
	build: func(c *buildCtx) *node { return buildDecoder(c, decoderStyle{qkNorm: true}) },
}

// qkNormTensors are qwen3's per-head Q and K RMS norm weights (qwen3,
// qwen3moe).
func qkNormTensors(L *Layer, hd int64) []tensorReq {
	return []tensorReq{
		{&L.QNorm, "attn_q_norm.weight", true, true, []int64{hd}},
		{&L.KNorm, "attn_k_norm.weight", true, true, []int64{hd}},
	}
}
