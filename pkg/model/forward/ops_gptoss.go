package forward

import (
	"fmt"
	"math"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// The ops gpt-oss (llm_build_openai_moe_iswa) adds: attention sinks on
// SOFT_MAX (src[2]) and FLASH_ATTN_EXT (src[4]), SWIGLU_OAI (the clamped
// SwiGLU of gpt-oss's experts) and ADD_ID (a per-expert bias picked by
// the selected experts' ids).

// gptossAlpha and gptossLimit are build_moe_ffn's constants for
// LLM_FFN_SWIGLU_OAI_MOE.
const (
	gptossAlpha = 1.702
	gptossLimit = 7.0
)

// swigluOAI is ggml_swiglu_oai(a, b, alpha, limit): a the gate, b the up
// projection (op params: 1 swapped = 0, 2 alpha, 3 limit).
func (g *graph) swigluOAI(a, b *node, alpha, limit float32) *node {
	n := g.dupTensor(a)
	n.op = opSwigluOAI
	n.src[0], n.src[1] = a, b
	n.fp[2], n.fp[3] = alpha, limit
	return n
}

// addID is ggml_add_id(a, b, ids): a's row (i1, i2) plus b's row
// ids[i1, i2] (b is {a.ne[0], n_expert}).
func (g *graph) addID(a, b, ids *node) *node {
	n := g.dupTensor(a)
	n.op = opAddID
	n.src[0], n.src[1], n.src[2] = a, b, ids
	return n
}

// sinksOf returns the sinks of a SOFT_MAX (src[2]) or FLASH_ATTN_EXT
// (src[4]) node, nil without.
func sinksOf(n *node) *node {
	switch n.op {
	case opSoftMax:
		return n.src[2]
	case opFlashAttnExt:
		return n.src[4]
	}
	return nil
}

// addSinks is ggml_soft_max_add_sinks / ggml_flash_attn_ext_add_sinks: one
// F32 logit per head (checked when the model loads) that joins every row's
// softmax without a value; nothing without sinks.
func addSinks(n, sinks *node) {
	switch {
	case sinks == nil:
	case n.op == opSoftMax:
		n.src[2] = sinks
	case n.op == opFlashAttnExt:
		n.src[4] = sinks
	}
}

// sinkValues returns the sinks' values (read before any goroutine), nil
// without sinks.
func sinkValues(n *node) []float32 {
	s := sinksOf(n)
	if s == nil {
		return nil
	}
	b, off := s.base()
	return b.f32[off : off+s.ne[0]]
}

// softMaxSinkMax is ggml_compute_forward_soft_max_f32's correction for a
// sink s: the row's max includes s (C's MAX), computed before the
// exponentials.
func softMaxSinkMax(max, s float32) float32 {
	if max > s {
		return max
	}
	return s
}

// swigluOAIF32 is ggml_compute_forward_swiglu_oai_f32's element: x =
// std::min(x, limit), y = std::clamp(y, -limit, limit), x/(1 +
// expf(alpha*(-x))) * (y + 1), each operation rounded to float (no
// contraction is possible: the quotient and the sum are separate).
func swigluOAIF32(x, y, alpha, limit float32) float32 {
	if limit < x { // std::min(a, b) is (b < a) ? b : a
		x = limit
	}
	switch { // std::clamp(v, lo, hi) is v < lo ? lo : hi < v ? hi : v
	case y < -limit:
		y = -limit
	case limit < y:
		y = limit
	}
	e := Expf(alpha * (-x))
	glu := x / (1 + e)
	return glu * (y + 1)
}

// swigluOAIGGML is ggml_compute_forward_swiglu_oai_f32: scalar libm expf
// on every profile (GCC does not vectorise expf without -ffast-math).
func (e *executor) swigluOAIGGML(dst *node) {
	alpha, limit := dst.fp[2], dst.fp[3]
	e.forRows(dst, func() func(i1, i2, i3 int64) {
		return func(i1, i2, i3 int64) {
			x, gv := gluRows(dst, i1, i2, i3)
			y := dst.rowF32(i1, i2, i3, nil)
			for k := range y {
				y[k] = swigluOAIF32(x[k], gv[k], alpha, limit)
			}
		}
	})
}

// addID is ggml_compute_forward_add_id_f32: ggml_vec_add_f32 of a's row
// (i1, i2, i3) and b's row ids[i1, i2]; one correctly rounded addition per
// element, so it is also the exact computation. An id outside b's rows is
// an error (ggml asserts).
func (e *executor) addID(dst *node) error {
	a, b, ids := dst.src[0], dst.src[1], dst.src[2]
	if ids.typ != quant.I32 {
		return fmt.Errorf("%s: ADD_ID with %s ids (want I32)", dst.name, ids.typ)
	}
	if b.ne[0] != a.ne[0] {
		return fmt.Errorf("%s: ADD_ID of %v rows and %v biases", dst.name, a.ne, b.ne)
	}
	b.base()
	var bad error
	forEachRow(dst, func(i1, i2, i3 int64) {
		id := int64(ids.at(i1, i2, 0, 0))
		if id < 0 || id >= b.ne[1] {
			if bad == nil {
				bad = fmt.Errorf("%s: expert id %d outside the %d bias rows", dst.name, id, b.ne[1])
			}
			return
		}
		x := a.rowF32(i1, i2, i3, nil)
		br := b.rowF32(id, 0, 0, nil)
		y := dst.rowF32(i1, i2, i3, nil)
		for k := range y {
			y[k] = x[k] + br[k]
		}
	})
	return bad
}

// swigluOAIExact is SWIGLU_OAI in float64 after the (exact) clamps.
func (e *executor) swigluOAIExact(dst *node) {
	alpha, limit := float64(dst.fp[2]), float64(dst.fp[3])
	forEachRow(dst, func(i1, i2, i3 int64) {
		x, gv := gluRows(dst, i1, i2, i3)
		y := dst.rowF32(i1, i2, i3, nil)
		for k := range y {
			xv := math.Min(float64(x[k]), limit)
			yv := math.Max(math.Min(float64(gv[k]), limit), -limit)
			y[k] = float32(xv / (1 + math.Exp(-alpha*xv)) * (yv + 1))
		}
	})
}

// flashAttnSink is ggml_compute_forward_flash_attn_ext_f16_one_chunk's
// sink correction of one row, on the F32 accumulator vkq (already
// converted from F16) with running sum S and max M: the sink s is one more
// score without a value; returns the new sum S*ms + vs, rounded twice:
// unlike the loop's, GCC does not contract this one into an FMA (the
// contracted form differs from llama.cpp in the last bit on a few rows
// of the fixtures; this one is bit-identical).
func flashAttnSink(vkq []float32, S, M, s float32) float32 {
	ms, vs := float32(1), float32(1)
	if s > M {
		ms = Expf(M - s)
		for i := range vkq {
			vkq[i] *= ms
		}
	} else {
		vs = Expf(s - M)
	}
	return float32(S*ms) + vs
}
