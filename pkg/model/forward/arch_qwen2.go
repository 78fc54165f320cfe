package forward

// ArchQwen2 is qwen2: Qwen 1.5/2/2.5 (Q/K/V biases, RoPE NEOX).
const ArchQwen2 Arch = "qwen2"

// qwen2 is llama.cpp's src/models/qwen2.cpp (llm_build_qwen2).
var qwen2 = &architecture{
	name:     ArchQwen2,
	ropeType: RopeNeox,
	tensors: func(m *Model, il int) []tensorReq {
		L, e, q, kv, ff := m.blockDims(il)
		return append(decoderTensors(L, e, q, kv, ff),
			tensorReq{&L.Bq, "attn_q.bias", true, false, []int64{q}},
			tensorReq{&L.Bk, "attn_k.bias", true, false, []int64{kv}},
			tensorReq{&L.Bv, "attn_v.bias", true, false, []int64{kv}},
		)
	},
	globals: func(m *Model) (err error) {
		m.OutputB, err = m.f32Tensor("output.bias", false, int64(m.Hparams.NVocab))
		return err
	},
	build: func(c *buildCtx) *node { return buildDecoder(c, decoderStyle{}) },
}
