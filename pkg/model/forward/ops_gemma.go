package forward

import "math"

// The ops the gemma family brings (gemma2, gemma3): TANH (the logit
// soft-capping of llm_build_gemma2_iswa's output and of build_attn_mha's
// kq without flash attention) and GEGLU (build_ffn with LLM_FFN_GELU and
// LLM_FFN_PAR). Graph constructors, ggml numerics and f64 numerics.

// tanh is ggml_tanh(a).
func (g *graph) tanh(a *node) *node {
	n := g.dupTensor(a)
	n.op = opTanh
	n.src[0] = a
	return n
}

// gegluSplit is ggml_geglu_split(a, b): gelu(a)*b (the tanh
// approximation).
func (g *graph) gegluSplit(a, b *node) *node {
	n := g.dupTensor(a)
	n.op = opGeglu
	n.src[0], n.src[1] = a, b
	return n
}

// softcap is the three nodes of a logit soft-capping by c: scale(1/c),
// tanh, scale(c), as llama.cpp's builders write it.
func (g *graph) softcap(a *node, c float32, names [3]string, il int) *node {
	a = g.scale(a, 1/c)
	if names[0] != "" {
		g.cb(a, names[0], il)
	}
	a = g.tanh(a)
	if names[1] != "" {
		g.cb(a, names[1], il)
	}
	a = g.scale(a, c)
	if names[2] != "" {
		g.cb(a, names[2], il)
	}
	return a
}

// GELU constants of ggml-cpu's vec.h.
const (
	geluCoefA   float32 = 0.044715
	sqrt2OverPi float32 = 0.79788456080286535587989211986876
)

// geluF32 is ggml_gelu_f32 as GCC compiles it with FMA: 1 + a·x·x is
// contracted into fma(a·x, x, 1); the other products are rounded one by
// one.
func geluF32(x float32) float32 {
	u := fma32(geluCoefA*x, x, 1)
	return 0.5 * x * (1 + Tanhf(sqrt2OverPi*x*u))
}

// geluTable is ggml_table_gelu_f16 (ggml_cpu_init): fp16(ggml_gelu_f32(x))
// for every fp16 x.
var geluTable = func() *[1 << 16]uint16 {
	var t [1 << 16]uint16
	for i := range t {
		t[i] = toF16(geluF32(f16Table[i]))
	}
	return &t
}()

// gegluF32 is one element of ggml_vec_geglu_f32 (GGML_GELU_FP16): 0 below
// -10, x·g above 10, else the table entry of fp16(x) times g.
func gegluF32(x, g float32) float32 {
	switch {
	case x <= -10:
		return 0
	case x >= 10:
		return x * g
	}
	return f16Table[geluTable[toF16(x)]] * g
}

// gegluGGML is ggml_compute_forward_geglu_f32 with two sources (the
// table-based ggml_vec_geglu_f32: no SIMD, so every kernel profile agrees).
func (e *executor) gegluGGML(dst *node) {
	a, g := dst.src[0], dst.src[1]
	e.forRows(dst, func() func(i1, i2, i3 int64) {
		return func(i1, i2, i3 int64) {
			x := a.rowF32(i1, i2, i3, nil)
			gv := g.rowF32(i1, i2, i3, nil)
			y := dst.rowF32(i1, i2, i3, nil)
			for i := range x {
				y[i] = gegluF32(x[i], gv[i])
			}
		}
	})
}

// tanhGGML is ggml_compute_forward_tanh_f32 (unary_op<op_tanh>: libm
// tanhf per element).
func (e *executor) tanhGGML(dst *node) {
	a := dst.src[0]
	e.forRows(dst, func() func(i1, i2, i3 int64) {
		return func(i1, i2, i3 int64) {
			x := a.rowF32(i1, i2, i3, nil)
			y := dst.rowF32(i1, i2, i3, nil)
			for i, v := range x {
				y[i] = Tanhf(v)
			}
		}
	})
}

// gegluExact is gelu(x)·g in float64 with the exact tanh-approximation
// GELU (no fp16 table).
func (e *executor) gegluExact(dst *node) {
	a, g := dst.src[0], dst.src[1]
	forEachRow(dst, func(i1, i2, i3 int64) {
		x := a.rowF32(i1, i2, i3, nil)
		gv := g.rowF32(i1, i2, i3, nil)
		y := dst.rowF32(i1, i2, i3, nil)
		for i, v := range x {
			y[i] = float32(geluF64("gelu", float64(v)) * float64(gv[i]))
		}
	})
}

// tanhExact is tanh in float64, rounded once.
func (e *executor) tanhExact(dst *node) {
	a := dst.src[0]
	forEachRow(dst, func(i1, i2, i3 int64) {
		x := a.rowF32(i1, i2, i3, nil)
		y := dst.rowF32(i1, i2, i3, nil)
		for i, v := range x {
			y[i] = float32(math.Tanh(float64(v)))
		}
	})
}

// softcapF64 is c·tanh(s/c) in float64 (flash attention's logit
// soft-capping in the f64 numerics); c = 0 leaves s unchanged.
func softcapF64(s, c float64) float64 {
	if c == 0 {
		return s
	}
	return c * math.Tanh(s/c)
}
