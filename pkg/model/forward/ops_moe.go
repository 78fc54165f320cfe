package forward

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// The ggml numerics of the mixture-of-experts ops (ggml-cpu.c:
// ggml_compute_forward_mul_mat_id; ops.cpp: argsort, sum_rows, clamp;
// binary-ops.cpp: div).

// mulMatIDGGML is ggml_compute_forward_mul_mat_id: src1 converted to the
// experts' vec_dot_type (from_float over whole blocks, so the thread split
// does not matter), then, for every token i12 and expert slot s, row i0 of
// dst is the vec_dot (type_traits_cpu[type].vec_dot, one column at a
// time: neither llamafile_sgemm nor the two-column kernels) of row i0 of
// expert ids[s, i12] with src1 row (s % ne11, i12).
//
// Every x86 profile without repacked experts runs exactly these dots; the
// CPU repack buffers give Q4_0, Q4_K, IQ4_NL (and with AVX-512 Q2_K)
// experts their own GEMV (mulMatIDRepack). The NEON profile's MUL_MAT_ID
// is not emulated: refused with an error.
func (e *executor) mulMatIDGGML(dst *node) error {
	a, b, ids := dst.src[0], dst.src[1], dst.src[2]
	if err := checkMulMatID(dst); err != nil {
		return err
	}
	if e.k.neon {
		return fmt.Errorf("%s: MUL_MAT_ID under the %s kernels is not emulated", dst.name, KernelsARM64NEON)
	}
	if rk := e.k.repackedExperts(a); rk != repackNone {
		return e.mulMatIDRepack(dst, rk)
	}
	ne00, ne01 := a.ne[0], a.ne[1]
	ne11 := b.ne[1]
	vdt := quant.VecDotType(a.typ)
	threads := e.threads
	if b.nelements() < 1<<14 {
		threads = 1
	}
	act, err := e.activations(dst, vdt, threads)
	if err != nil {
		return err
	}
	var qdot func(n int, x, y []byte) float32
	if a.typ.Quantized() {
		if qdot, err = quantDot(a.typ, kernVecDot); err != nil {
			return fmt.Errorf("%s: %w", dst.name, err)
		}
	}
	out, off := dst.base()
	nIDs, nTok := ids.ne[0], ids.ne[1]
	parallelFor(int(nIDs*nTok), e.threads, func(lo, hi int) {
		rowF32 := make([]float32, ne00)
		rowU16 := make([]uint16, ne00)
		for p := lo; p < hi; p++ {
			s, i12 := int64(p)%nIDs, int64(p)/nIDs
			x := int64(ids.at(s, i12, 0, 0))
			col := s%ne11 + ne11*i12
			for i01 := int64(0); i01 < ne01; i01++ {
				wr := a.weightRow(i01, x, 0)
				var v float32
				switch {
				case qdot != nil:
					v = qdot(int(ne00), wr, act.b[col])
				case a.typ == quant.F32:
					xf := viewF32(wr)
					if xf == nil {
						for i := range rowF32 {
							rowF32[i] = math.Float32frombits(binary.LittleEndian.Uint32(wr[4*i:]))
						}
						xf = rowF32
					}
					if e.k.lanes16 {
						v = e.k.floatDot(a.typ, kernVecDot, xf, nil, act, col)
					} else {
						v = vecDotF32(xf, act.f32[col])
					}
				default: // F16, BF16
					xh := viewU16(wr)
					if xh == nil {
						for i := range rowU16 {
							rowU16[i] = binary.LittleEndian.Uint16(wr[2*i:])
						}
						xh = rowU16
					}
					switch {
					case e.k.lanes16:
						v = e.k.floatDot(a.typ, kernVecDot, nil, xh, act, col)
					case a.typ == quant.F16:
						v = vecDotF16(xh, act.u16[col])
					default:
						v = vecDotBF16(xh, act.u16[col])
					}
				}
				out.f32[off+dst.elemOffset(i01, s, i12, 0)] = v
			}
		}
	})
	return nil
}

// checkMulMatID checks a MUL_MAT_ID's operands as ggml_mul_mat_id and the
// CPU kernel assert, and every expert index against the number of experts
// (ggml only asserts it in debug builds).
func checkMulMatID(dst *node) error {
	a, b, ids := dst.src[0], dst.src[1], dst.src[2]
	if a.weight == nil {
		return fmt.Errorf("%s: MUL_MAT_ID of %s, not a model tensor", dst.name, a.name)
	}
	if b.typ != quant.F32 || ids.typ != quant.I32 {
		return fmt.Errorf("%s: MUL_MAT_ID with src1 %s and ids %s (want f32, i32)", dst.name, b.typ, ids.typ)
	}
	if a.ne[0] != b.ne[0] || ids.ne[1] != b.ne[2] || ids.ne[0]%b.ne[1] != 0 || a.ne[3] != 1 || b.ne[3] != 1 {
		return fmt.Errorf("%s: MUL_MAT_ID shapes %v, %v, ids %v do not fit", dst.name, a.ne, b.ne, ids.ne)
	}
	for i12 := int64(0); i12 < ids.ne[1]; i12++ {
		for s := int64(0); s < ids.ne[0]; s++ {
			if x := int64(ids.at(s, i12, 0, 0)); x < 0 || x >= a.ne[2] {
				return fmt.Errorf("%s: expert index %d (slot %d, token %d) outside the %d experts of %s", dst.name, x, s, i12, a.ne[2], a.name)
			}
		}
	}
	return nil
}

// repackedExperts reports 3-D expert weights that llama.cpp with the CPU
// repack buffers moves there (repack.cpp's supports_op for MUL_MAT_ID:
// ggml_n_dims 3 and ggml_repack_get_optimal_repack_type, the rows of the
// 2-D rule).
func (ks kernels) repackedExperts(a *node) repackKind {
	if !ks.repack || a.weight == nil || a.ne[1]%8 != 0 {
		return repackNone
	}
	return ks.repackType(a.typ)
}

// mulMatIDRepack is the repack buffer's forward_mul_mat_id: src1's rows
// converted by from_float (not the 4-row ggml_quantize_mat_t), then every
// selected expert's rows through the interleaved GEMV, one src1 row at a
// time (repack.go's kernels with gemm false).
func (e *executor) mulMatIDRepack(dst *node, kind repackKind) error {
	a, b, ids := dst.src[0], dst.src[1], dst.src[2]
	ne00, ne01, ne11 := a.ne[0], a.ne[1], b.ne[1]
	vdt, nb := quant.Q8_0, int(ne00)/32
	if kind == repackQ4_K || kind == repackQ2_K {
		vdt, nb = quant.Q8_K, int(ne00)/256
	}
	rb, err := vdt.RowBytes(ne00)
	if err != nil {
		return fmt.Errorf("%s: %w", dst.name, err)
	}
	ncols := ne11 * b.ne[2]
	acts := make([]repackAct, ncols)
	tmpf := make([]float32, ne00)
	for c := int64(0); c < ncols; c++ {
		q := make([]byte, rb)
		if err := quant.QuantizeRow(vdt, b.rowF32(c%ne11, c/ne11, 0, tmpf), q, quant.QuantCPU); err != nil {
			return fmt.Errorf("%s: quantizing %s: %w", dst.name, b.name, err)
		}
		acts[c] = newRepackAct(vdt, q)
	}
	out, off := dst.base()
	nIDs, nTok := ids.ne[0], ids.ne[1]
	parallelFor(int(nIDs*nTok), e.threads, func(lo, hi int) {
		var w repackRow
		w.init(kind, nb)
		tmp := make([]int32, ne00/16)
		for p := lo; p < hi; p++ {
			s, i12 := int64(p)%nIDs, int64(p)/nIDs
			x := int64(ids.at(s, i12, 0, 0))
			y := &acts[s%ne11+ne11*i12]
			for r := int64(0); r < ne01; r++ {
				w.decode(kind, a.weightRow(r, x, 0))
				out.f32[off+dst.elemOffset(r, s, i12, 0)] = w.dot(kind, y, false, tmp)
			}
		}
	})
	return nil
}

// argsort is ggml_compute_forward_argsort_f32: each row's indices 0..n-1
// ordered by std::sort (libstdc++'s introsort, sortArgs) with the
// comparator cmp_argsort (descending: data[a] > data[b]). The same in both
// numerics: the order is discrete, and a tie is broken as std::sort does.
func (e *executor) argsort(dst *node) error {
	a := dst.src[0]
	if a.typ != quant.F32 || dst.ip[0] != ggmlSortDesc {
		return fmt.Errorf("%s: ARGSORT of %s, order %d (want f32, descending)", dst.name, a.typ, dst.ip[0])
	}
	out, off := dst.base()
	n := a.ne[0]
	idx := make([]int32, n)
	var tmp []float32
	forEachRow(dst, func(i1, i2, i3 int64) {
		x := a.rowF32(i1, i2, i3, tmp)
		for j := range idx {
			idx[j] = int32(j)
		}
		sortArgs(idx, func(p, q int32) bool { return x[p] > x[q] })
		o := off + dst.elemOffset(0, i1, i2, i3)
		copy(out.i32[o:o+n], idx)
	})
	return nil
}

// sumRows is ggml_compute_forward_sum_rows_f32: ggml_vec_sum_f32, each
// row's values added in double, rounded once to float (exact up to that
// rounding for the f64 numerics too).
func (e *executor) sumRows(dst *node) {
	a := dst.src[0]
	forEachRow(dst, func(i1, i2, i3 int64) {
		var s float64
		for _, v := range a.rowF32(i1, i2, i3, nil) {
			s += float64(v)
		}
		dst.rowF32(i1, i2, i3, nil)[0] = float32(s)
	})
}

// clamp is ggml_compute_forward_clamp_f32: MAX(MIN(x, max), min) with C's
// macros (a NaN becomes max).
func (e *executor) clamp(dst *node) {
	a := dst.src[0]
	lo, hi := dst.fp[0], dst.fp[1]
	forEachRow(dst, func(i1, i2, i3 int64) {
		x := a.rowF32(i1, i2, i3, nil)
		y := dst.rowF32(i1, i2, i3, nil)
		for i, v := range x {
			m := hi
			if v < hi {
				m = v
			}
			if m > lo {
				y[i] = m
			} else {
				y[i] = lo
			}
		}
	})
}

// div is ggml's DIV with src1 broadcast (binary-ops.cpp op_div): one
// correctly rounded division per element in any implementation.
func (e *executor) div(dst *node) {
	a, b := dst.src[0], dst.src[1]
	forEachRow(dst, func(i1, i2, i3 int64) {
		x := a.rowF32(i1, i2, i3, nil)
		y := b.rowF32(i1%b.ne[1], i2%b.ne[2], i3%b.ne[3], nil)
		z := dst.rowF32(i1, i2, i3, nil)
		nb := len(y)
		for i := range z {
			z[i] = x[i] / y[i%nb]
		}
	})
}

// injectI32 offers an I32 node's values to inj as float32 (exact for the
// indices ARGSORT holds) and stores the replacement, which must be
// integers in int32's range.
func injectI32(inj Injector, info *Node, n *node) error {
	vals := make([]float32, len(n.buf.i32))
	for i, v := range n.buf.i32 {
		vals[i] = float32(v)
	}
	data, ok := inj.Inject(info, vals)
	if !ok {
		return nil
	}
	if int64(len(data)) != n.nelements() {
		return fmt.Errorf("forward: injected %d values into %q of %d elements", len(data), n.name, n.nelements())
	}
	for i, v := range data {
		if v != float32(math.Trunc(float64(v))) || math.Abs(float64(v)) > math.MaxInt32 {
			return fmt.Errorf("forward: injected %v at %d into the integer node %q", v, i, n.name)
		}
		n.buf.i32[i] = int32(v)
	}
	return nil
}
