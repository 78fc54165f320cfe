package forward

import "fmt"

// maxExperts is LLAMA_MAX_EXPERTS.
const maxExperts = 512

// loadExperts reads the mixture-of-experts keys every architecture may
// have (llama-model.cpp's load_hparams: expert_count, expert_used_count,
// expert_group_count) and refuses what the family's builder does not run.
func (m *Model) loadExperts() error {
	h := &m.Hparams
	for _, k := range []struct {
		name string
		dst  *int
	}{{"expert_count", &h.NExpert}, {"expert_used_count", &h.NExpertUsed}} {
		if err := m.getUint(k.name, k.dst, false); err != nil {
			return err
		}
	}
	if h.NExpert == 0 {
		h.NExpertUsed = 0
		return nil
	}
	if !m.arch.experts {
		return fmt.Errorf("%s: %s mixture-of-experts models (%d experts): %w", m.File.Path, h.Arch, h.NExpert, ErrUnsupported)
	}
	if h.NExpert > maxExperts {
		return fmt.Errorf("%s: %d experts, more than llama.cpp's %d", m.File.Path, h.NExpert, maxExperts)
	}
	if h.NExpertUsed <= 0 || h.NExpertUsed > h.NExpert {
		return fmt.Errorf("%s: %s = %d with %d experts (want 1 to %d)", m.File.Path, m.key("expert_used_count"), h.NExpertUsed, h.NExpert, h.NExpert)
	}
	var groups int
	if err := m.getUint("expert_group_count", &groups, false); err != nil {
		return err
	}
	if groups > 1 {
		return fmt.Errorf("%s: %d expert groups (DeepSeek-V3 group selection): %w", m.File.Path, groups, ErrUnsupported)
	}
	// llama's experts are feed_forward_length wide (qwen3moe and gpt-oss
	// read expert_feed_forward_length in their hparams hooks, after this)
	h.NFFExp = h.NFF
	if h.Arch == ArchLlama && h.NFF <= 0 {
		return fmt.Errorf("%s: a mixture of experts without %s (the experts' width)", m.File.Path, m.key("feed_forward_length"))
	}
	return nil
}

// moeTensors are the router and experts of a mixture-of-experts FFN of
// n_expert experts ff wide (llama-model.cpp's load_tensors: ffn_gate_inp,
// ffn_gate_exps, ffn_down_exps, ffn_up_exps). llama.cpp lets llama's
// gate experts be absent (then a plain SiLU of the up projection), which
// no published model uses: here they are required.
func moeTensors(L *Layer, e, ff, nExp int64) []tensorReq {
	return []tensorReq{
		{&L.FFNGateInp, "ffn_gate_inp.weight", false, true, []int64{e, nExp}},
		{&L.FFNGateExps, "ffn_gate_exps.weight", false, true, []int64{e, ff, nExp}},
		{&L.FFNDownExps, "ffn_down_exps.weight", false, true, []int64{ff, e, nExp}},
		{&L.FFNUpExps, "ffn_up_exps.weight", false, true, []int64{e, ff, nExp}},
	}
}
