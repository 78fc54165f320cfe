package forward

// The one-tensor GLU (phi3's fused gate-up FFN): ggml_swiglu(a) halves a's
// rows, the first half the gate and the second the up projection
// (ggml_compute_forward_swiglu_f32 with swapped = 0), with the same
// ggml_vec_swiglu_f32 as ggml_swiglu_split.

// swiglu is ggml_swiglu(a): {a.ne[0]/2, a.ne[1], a.ne[2], a.ne[3]}, silu of
// each row's first half times its second half.
func (g *graph) swiglu(a *node) *node {
	n := g.newTensor(a.typ, a.ne[0]/2, a.ne[1], a.ne[2], a.ne[3])
	n.op = opSwiglu
	n.ip[0] = 0 // GGML_GLU_OP_SWIGLU
	n.ip[1] = 0 // not swapped
	n.src[0] = a
	return n
}

// gluRows returns the gate and the other operand of a GLU's row (i1, i2,
// i3): rows of src[0] and src[1] for the split form, the two halves of
// src[0]'s row otherwise (swapped, ip[1], exchanges them).
func gluRows(dst *node, i1, i2, i3 int64) (x, g []float32) {
	a, b := dst.src[0], dst.src[1]
	if b != nil {
		return a.rowF32(i1, i2, i3, nil), b.rowF32(i1, i2, i3, nil)
	}
	row := a.rowF32(i1, i2, i3, nil)
	nc := dst.ne[0]
	x, g = row[:nc], row[nc:2*nc]
	if dst.ip[1] != 0 {
		x, g = g, x
	}
	return x, g
}

// view3d is ggml_view_3d.
func (g *graph) view3d(a *node, ne0, ne1, ne2, nb1, nb2, offset int64) *node {
	return g.view4d(a, ne0, ne1, ne2, 1, nb1, nb2, nb2*ne2, offset)
}
