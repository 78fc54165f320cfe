package forward

import (
	"fmt"
	"math"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// Interleaved sliding-window attention (iSWA), as llama.cpp ec98e2002
// builds it for gemma2 and gemma3: llama_kv_cache_iswa holds two caches,
// one for the layers that attend to every earlier position and one for the
// sliding-window (SWA) layers, which see only the last n_swa positions
// (LLAMA_SWA_TYPE_STANDARD: llama_hparams::is_masked_swa masks cell
// position p0 for token position p1 when p1 - p0 >= n_swa).
// build_attn_inp_kv_iswa makes a k_idxs, v_idxs and kq_mask input for each
// cache (the base cache's first), and the iSWA build_attn picks a layer's
// cache, indices and mask by llama_hparams::is_swa.
//
// The cache tensors keep their model layer's name (cache_k_l<il>), whichever
// cache holds them. llama_context_default_params sets swa_full, so the SWA
// cache has as many cells as the base cache (llama_kv_cache_iswa's
// constructor); both then hold the same cells for one sequence decoded from
// an empty cache, their n_kv are equal and only the masks differ.

// setSWAPattern is llama_hparams::set_swa_pattern without dense_first: of
// every n layers, the first n-1 are SWA layers, the last is not; n = 0
// makes every layer SWA.
func (h *Hparams) setSWAPattern(n int) {
	h.SWALayers = make([]bool, h.NLayer)
	for il := range h.SWALayers {
		h.SWALayers[il] = n == 0 || il%n < n-1
	}
}

// IsSWA reports whether layer il attends through the sliding window
// (llama_hparams::is_swa).
func (h *Hparams) IsSWA(il int) bool {
	return h.NSWA > 0 && il >= 0 && il < len(h.SWALayers) && h.SWALayers[il]
}

// ropeOf is layer il's RoPE parameters (llama_model::get_rope_freq_base
// and get_rope_freq_scale): the SWA layers of a model with RopeBaseSWA
// (gemma3) rotate with RopeBaseSWA and RopeScaleSWA, the others with the
// model's.
func (c *buildCtx) ropeOf(il int) ropeParams {
	r := c.rope
	if c.h.IsSWA(il) && c.h.RopeBaseSWA != 0 {
		r.freqBase, r.freqScale = c.h.RopeBaseSWA, c.h.RopeScaleSWA
	}
	return r
}

// loadSWA reads {arch}.attention.sliding_window (default def) and lays out
// the SWA layers with pattern n (setSWAPattern).
func (m *Model) loadSWA(def, n int) error {
	h := &m.Hparams
	h.NSWA = def
	if err := m.getUint("attention.sliding_window", &h.NSWA, false); err != nil {
		return err
	}
	if h.NSWA <= 0 {
		return fmt.Errorf("%s: %s is %d: %w", m.File.Path, m.key("attention.sliding_window"), h.NSWA, ErrUnsupported)
	}
	h.setSWAPattern(n)
	return nil
}

// swaInputs makes the SWA cache's inputs after the base cache's (the second
// half of build_attn_inp_kv_iswa) when the model has SWA layers, and
// returns the SWA mask as the attention reads it (cast to F16 like the
// base mask kqMask when flash attention is on), or nil.
func (b *built) swaInputs(m *Model, T int64, kqMask *node) *node {
	h := &m.Hparams
	if h.NSWA <= 0 {
		return nil
	}
	g := b.g
	b.nSWA, b.swaLayers = h.NSWA, h.SWALayers
	b.kIdxsSWA = g.leaf(quant.I64, T)
	b.vIdxsSWA = g.leaf(quant.I64, b.vIdxs.ne[0])
	b.kqMaskSWA = g.leaf(quant.F32, kqMask.ne[0], T, 1, 1)
	if b.flashAttn {
		return g.cast(b.kqMaskSWA, quant.F16)
	}
	return b.kqMaskSWA
}

// isSWA reports whether layer il uses the SWA cache's inputs.
func (b *built) isSWA(il int) bool {
	return b.kqMaskSWA != nil && il < len(b.swaLayers) && b.swaLayers[il]
}

// kIdxsOf and vIdxsOf are the cache row indices of layer il's cache.
func (b *built) kIdxsOf(il int) *node {
	if b.isSWA(il) {
		return b.kIdxsSWA
	}
	return b.kIdxs
}

func (b *built) vIdxsOf(il int) *node {
	if b.isSWA(il) {
		return b.vIdxsSWA
	}
	return b.vIdxs
}

// maskOf is the attention mask of layer il.
func (c *buildCtx) maskOf(il int) *node {
	if c.b.isSWA(il) {
		return c.kqMaskSWA
	}
	return c.kqMask
}

// setSWAInputs fills the SWA cache's inputs (llama_kv_cache's
// set_input_k_idxs, set_input_v_idxs and set_input_kq_mask for the SWA
// cache): the same cells as the base cache, and the causal mask with the
// window applied.
func (e *executor) setSWAInputs(b *built, T int) {
	if b.kqMaskSWA == nil {
		return
	}
	for _, n := range []*node{b.kIdxsSWA, b.vIdxsSWA, b.kqMaskSWA} {
		e.alloc(n)
	}
	copy(b.kIdxsSWA.buf.i64, b.kIdxs.buf.i64)
	copy(b.vIdxsSWA.buf.i64, b.vIdxs.buf.i64)
	mask := b.kqMaskSWA.buf.f32
	for i := 0; i < T; i++ {
		p1 := b.p0 + i
		for j := 0; j < b.nKV; j++ {
			v := float32(0)
			if j > p1 || p1-j >= b.nSWA {
				v = float32(math.Inf(-1))
			}
			mask[i*b.nKV+j] = v
		}
	}
}
