package forward

import "fmt"

// ArchQwen3MoE is qwen3moe: Qwen 3 mixtures of experts (Qwen3-30B-A3B,
// Qwen3-235B-A22B): qwen3's attention, a softmax-routed mixture of
// expert_feed_forward_length-wide experts in every block.
const ArchQwen3MoE Arch = "qwen3moe"

// qwen3moe is llama.cpp's src/models/qwen3moe.cpp (llm_build_qwen3moe).
var qwen3moe = &architecture{
	name:     ArchQwen3MoE,
	ropeType: RopeNeox,
	experts:  true,
	hparams: func(m *Model) error {
		h := &m.Hparams
		if h.NExpert == 0 || h.NExpertUsed == 0 {
			return fmt.Errorf("%s: qwen3moe needs %s and %s: %w", m.File.Path, m.key("expert_count"), m.key("expert_used_count"), ErrUnsupported)
		}
		// n_ff_exp, or n_ff / n_expert_used without the key
		h.NFFExp = 0
		if err := m.getUint("expert_feed_forward_length", &h.NFFExp, false); err != nil {
			return err
		}
		if h.NFFExp == 0 {
			h.NFFExp = h.NFF / h.NExpertUsed
		}
		if h.NFFExp <= 0 {
			return fmt.Errorf("%s: qwen3moe experts of width %d", m.File.Path, h.NFFExp)
		}
		return nil
	},
	tensors: func(m *Model, il int) []tensorReq {
		L, e, q, kv, _ := m.blockDims(il)
		h := &m.Hparams
		hd := int64(h.HeadDimK)
		reqs := append(attnNormTensors(L, e, q, kv), qkNormTensors(L, hd)...)
		return append(reqs, moeTensors(L, e, int64(h.NFFExp), int64(h.NExpert))...)
	},
	build: func(c *buildCtx) *node { return buildDecoder(c, decoderStyle{qkNorm: true}) },
}
