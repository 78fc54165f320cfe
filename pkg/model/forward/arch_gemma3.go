package forward

// ArchGemma3 is gemma3: Gemma 3 text models (gemma2's block with per-head
// Q/K norms, interleaved sliding-window attention with five SWA layers of
// every six and their own RoPE base 10000, optional final soft-capping, no
// attention soft-capping).
const ArchGemma3 Arch = "gemma3"

// gemma3 is llama.cpp's src/models/gemma3.cpp (llm_build_gemma3<true> with
// a sliding window, llm_build_gemma3<false> without) with llama-model.cpp's
// LLM_ARCH_GEMMA3 hyperparameters and tensors.
var gemma3 = &architecture{
	name:     ArchGemma3,
	ropeType: RopeNeox,
	hparams: func(m *Model) error {
		h := &m.Hparams
		if err := m.getUint("attention.sliding_window", &h.NSWA, false); err != nil {
			return err
		}
		if h.NSWA > 0 {
			// LLAMA_SWA_TYPE_STANDARD, set_swa_pattern(6), and the SWA
			// layers' RoPE (rope_freq_base_train_swa, _scale_train_swa)
			h.setSWAPattern(6)
			h.RopeBaseSWA, h.RopeScaleSWA = 10000, 1
		}
		if err := m.getFloat("final_logit_softcapping", &h.FinalSoftcap, false); err != nil {
			return err
		}
		h.QueryScale = gemmaQueryScale(h, 62)
		return nil
	},
	tensors: func(m *Model, il int) []tensorReq { return gemmaTensors(m, il, true) },
	build:   func(c *buildCtx) *node { return buildGemma(c, true) },
}
