package forward

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// parallelFor splits [0, n) into contiguous ranges run on up to threads
// goroutines (the caller's among them). There are a few ranges per thread,
// taken in turn from a shared counter, so a thread slowed by the system
// does not leave the others idle at the end. Every index is computed the
// same way whatever the split, so results never depend on the thread count.
func parallelFor(n, threads int, f func(lo, hi int)) {
	if threads < 1 {
		threads = 1
	}
	if threads > n {
		threads = n
	}
	if threads <= 1 {
		if n > 0 {
			f(0, n)
		}
		return
	}
	chunks := min(n, 4*threads)
	size := (n + chunks - 1) / chunks
	var next atomic.Int64
	work := func() {
		for {
			lo := int(next.Add(int64(size))) - size
			if lo >= n {
				return
			}
			f(lo, min(lo+size, n))
		}
	}
	var wg sync.WaitGroup
	for range threads - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}

// matKernel names the ggml kernel a MUL_MAT uses, for documentation and
// tests.
type matKernel int

const (
	kernVecDot   matKernel = iota // ggml_vec_dot_* (type_traits_cpu[t].vec_dot)
	kernTinyBLAS                  // llamafile_sgemm (tinyBLAS / tinyBLAS_Q0_AVX)
)

// chooseKernel repeats ggml_compute_forward_mul_mat's dispatch on this
// build (GGML_USE_LLAMAFILE, AVX2, no repack buffers): llamafile_sgemm is
// tried for n >= 2 columns, first with the float32 src1 (only F32 weights
// accept it, when src1 is contiguous), then with src1 converted to the
// vec_dot_type. tinyBLAS needs k%8 == 0 and m%4 == 0 for F32/F16/BF16; the
// Q0 kernel (Q8_0, Q4_0, Q5_0, IQ4_NL) takes any shape.
//
// Under AVX-512 (ks.lanes16) tinyBLAS is tinyBLAS<16> (k%16 == 0) and, with
// AVX512_BF16, tinyBLAS<32> for BF16 (k%32 == 0).
func chooseKernel(ks kernels, t quant.Type, m, n, k int64, src1Contiguous bool) matKernel {
	if n < 2 {
		return kernVecDot
	}
	kn := int64(8)
	if ks.lanes16 {
		kn = 16
		if t == quant.BF16 && ks.bf16dp {
			kn = 32
		}
	}
	switch t {
	case quant.F32:
		if src1Contiguous && k%kn == 0 && m%4 == 0 {
			return kernTinyBLAS
		}
	case quant.F16, quant.BF16:
		if k%kn == 0 && m%4 == 0 {
			return kernTinyBLAS
		}
	case quant.Q8_0, quant.Q4_0, quant.Q5_0, quant.IQ4_NL:
		return kernTinyBLAS
	}
	return kernVecDot
}

// quantDot returns the dot kernel of a block-quantized weight type.
func quantDot(t quant.Type, kern matKernel) (func(n int, x, y []byte) float32, error) {
	switch t {
	case quant.Q8_0:
		return dotQ8_0, nil
	case quant.Q4_0:
		return dotQ4_0, nil
	case quant.Q5_0:
		return dotQ5_0, nil
	case quant.IQ4_NL:
		if kern == kernTinyBLAS {
			return dotIQ4NLTiny, nil
		}
		return dotIQ4NL, nil
	case quant.Q4_1:
		return dotQ4_1, nil
	case quant.Q5_1:
		return dotQ5_1, nil
	case quant.Q4_K:
		return dotQ4_K, nil
	case quant.Q6_K:
		return dotQ6_K, nil
	case quant.Q2_K:
		return dotQ2_K, nil
	case quant.Q3_K:
		return dotQ3_K, nil
	case quant.Q5_K:
		return dotQ5_K, nil
	case quant.IQ4_XS:
		return dotIQ4XS, nil
	case quant.IQ3_XXS:
		return dotIQ3XXS, nil
	case quant.IQ3_S:
		return dotIQ3S, nil
	case quant.TQ1_0:
		return dotTQ1_0, nil
	case quant.TQ2_0:
		return dotTQ2_0, nil
	case quant.MXFP4:
		return dotMXFP4, nil
	case quant.IQ2_XXS, quant.IQ2_XS, quant.IQ2_S, quant.IQ1_S, quant.IQ1_M:
		return iqDot(t), nil
	}
	return nil, fmt.Errorf("no dot product for weight type %s", t)
}

// tinyPair computes rows i01 and i01+1 of a plain 2-D product with F32,
// F16 or BF16 weights (kind) through the two-row tinyBLAS kernel, four
// columns a pass and the last ones through dotF32Tiny/dotF16Tiny/
// dotBF16Tiny, the same bits. It returns false, having written nothing,
// when the rows cannot be read in place.
func tinyPair(kind int, a *node, i01, i02, i03 int64, act actRows, act16f [][]float32, out *buffer, off int64, dst *node, colStride int64, oct []float32) bool {
	w0, w1 := a.weightRow(i01, i02, i03), a.weightRow(i01+1, i02, i03)
	var p0, p1 unsafe.Pointer
	var h0, h1 []uint16
	var f0, f1 []float32
	if kind == tinyF32 {
		if f0, f1 = viewF32(w0), viewF32(w1); f0 == nil || f1 == nil {
			return false
		}
		p0, p1 = unsafe.Pointer(&f0[0]), unsafe.Pointer(&f1[0])
	} else {
		if h0, h1 = viewU16(w0), viewU16(w1); h0 == nil || h1 == nil {
			return false
		}
		p0, p1 = unsafe.Pointer(&h0[0]), unsafe.Pointer(&h1[0])
	}
	cols := act16f
	if kind == tinyF32 {
		cols = act.f32
	}
	n := int(a.ne[0])
	ne11 := int64(len(cols))
	o0 := off + dst.elemOffset(i01, 0, 0, 0)
	o1 := off + dst.elemOffset(i01+1, 0, 0, 0)
	i11 := int64(0)
	for ; i11+4 <= ne11; i11 += 4 {
		if !tinyX2x4(kind, n, p0, p1, &[4][]float32{cols[i11], cols[i11+1], cols[i11+2], cols[i11+3]}, oct) {
			break
		}
		for c := int64(0); c < 4; c++ {
			out.f32[o0+(i11+c)*colStride] = oct[c]
			out.f32[o1+(i11+c)*colStride] = oct[4+c]
		}
	}
	for ; i11 < ne11; i11++ {
		var v0, v1 float32
		switch kind {
		case tinyF32:
			v0, v1 = dotF32Tiny(f0, act.f32[i11]), dotF32Tiny(f1, act.f32[i11])
		case tinyF16:
			v0, v1 = dotF16Tiny(h0, act.u16[i11]), dotF16Tiny(h1, act.u16[i11])
		default:
			v0, v1 = dotBF16Tiny(h0, act.u16[i11]), dotBF16Tiny(h1, act.u16[i11])
		}
		out.f32[o0+i11*colStride] = v0
		out.f32[o1+i11*colStride] = v1
	}
	return true
}

// littleEndian reports a little-endian host, where the mapped weights'
// float32 and 16-bit values can be read in place.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// viewF32 returns the little-endian float32 values of b in place (no
// copy), or nil when the host or b's alignment does not allow it.
func viewF32(b []byte) []float32 {
	if !littleEndian || len(b) < 4 || uintptr(unsafe.Pointer(&b[0]))%4 != 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// viewU16 is viewF32 for 16-bit values (F16, BF16 bits).
func viewU16(b []byte) []uint16 {
	if !littleEndian || len(b) < 2 || uintptr(unsafe.Pointer(&b[0]))%2 != 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), len(b)/2)
}

// actRows holds src1's rows converted to the vec_dot_type, indexed by
// i11 + ne11*(i12 + ne12*i13).
type actRows struct {
	b   [][]byte
	f32 [][]float32
	u16 [][]uint16
}

// activations converts a MUL_MAT's src1 to the vec_dot_type vdt (ggml's
// from_float: the NEON Q8_0/Q8_1 quantizers under arm64-neon), columns
// split over threads; column index i11 + ne11*(i12 + ne12*i13).
func (e *executor) activations(dst *node, vdt quant.Type, threads int) (act actRows, err error) {
	a, b := dst.src[0], dst.src[1]
	ne00 := a.ne[0]
	ne11, ne12, ne13 := b.ne[1], b.ne[2], b.ne[3]
	ncols := ne11 * ne12 * ne13
	var rb int64
	switch vdt {
	case quant.F32:
		act.f32 = make([][]float32, ncols)
	case quant.F16, quant.BF16:
		act.u16 = make([][]uint16, ncols)
	default:
		if rb, err = vdt.RowBytes(ne00); err != nil {
			return act, fmt.Errorf("%s: %w", dst.name, err)
		}
		act.b = make([][]byte, ncols)
	}
	for _, s := range dst.src {
		if s != nil {
			s.base() // converts F32 weights on first use: not in the goroutines
		}
	}
	var convErr error
	var convOnce sync.Once
	parallelFor(int(ncols), threads, func(lo, hi int) {
		tmp := make([]float32, ne00)
		for c := int64(lo); c < int64(hi); c++ {
			i11, i12, i13 := c%ne11, (c/ne11)%ne12, c/(ne11*ne12)
			x := b.rowF32(i11, i12, i13, tmp)
			switch vdt {
			case quant.F32:
				act.f32[c] = append([]float32(nil), x...)
			case quant.F16:
				u := make([]uint16, len(x))
				for i, v := range x {
					u[i] = toF16(v)
				}
				act.u16[c] = u
			case quant.BF16:
				u := make([]uint16, len(x))
				for i, v := range x {
					u[i] = quant.F32ToBF16(v)
				}
				act.u16[c] = u
			default:
				q := make([]byte, rb)
				if e.k.neon && (vdt == quant.Q8_0 || vdt == quant.Q8_1) {
					quantizeQ8NEON(x, q, vdt == quant.Q8_1)
				} else if err := quant.QuantizeRow(vdt, x, q, quant.QuantCPU); err != nil {
					convOnce.Do(func() { convErr = fmt.Errorf("%s: quantizing %s: %w", dst.name, b.name, err) })
					return
				}
				act.b[c] = q
			}
		}
	})
	return act, convErr
}

// mulMatGGML is ggml_compute_forward_mul_mat: dst[i1][i0] = dot(src0 row
// i0, src1 row i1), with src0 broadcast over dims 2 and 3.
func (e *executor) mulMatGGML(dst *node) error {
	if e.k.neon {
		return e.mulMatNEON(dst)
	}
	a, b := dst.src[0], dst.src[1]
	if b.typ != quant.F32 {
		return fmt.Errorf("%s: src1 %s has type %s, want f32", dst.name, b.name, b.typ)
	}
	ne00, ne01 := a.ne[0], a.ne[1]
	ne11, ne12, ne13 := b.ne[1], b.ne[2], b.ne[3]
	if b.ne[0] != ne00 {
		return fmt.Errorf("%s: inner dimensions differ: %s has %d, %s has %d", dst.name, a.name, ne00, b.name, b.ne[0])
	}
	// GGML_USE_CPU_REPACK: the repacked weights' own kernels (repack.go).
	if rk := e.k.repackOf(a, b); rk != repackNone {
		return e.mulMatRepack(dst, rk)
	}
	r2, r3 := ne12/a.ne[2], ne13/a.ne[3]
	vdt := quant.VecDotType(a.typ)
	kern := chooseKernel(e.k, a.typ, ne01, ne11, ne00, b.isContiguous())

	ncols := ne11 * ne12 * ne13
	threads := e.threads
	if ncols*ne00 < 1<<14 {
		threads = 1
	}
	act, err := e.activations(dst, vdt, threads)
	if err != nil {
		return err
	}

	var qdot func(n int, x, y []byte) float32
	if a.typ.Quantized() {
		var err error
		if qdot, err = quantDot(a.typ, kern); err != nil {
			return fmt.Errorf("%s: %w", dst.name, err)
		}
	}
	// Q8_0, eight columns at a time: the kernel reads them packed, scales
	// already float32, and trusts them to hold no -128 quant (our
	// quantizer never writes one: checked once here).
	// Q4_0, Q5_0 and (tinyBLAS) IQ4_NL are Q8_0 in their arithmetic: each
	// weight row is expanded to Q8_0 blocks (the same f16 scale, the
	// values as int8) and takes Q8_0's kernels.
	asQ8 := a.typ == quant.Q8_0 || a.typ == quant.Q4_0 || a.typ == quant.Q5_0 ||
		(a.typ == quant.IQ4_NL && kern == kernTinyBLAS)
	// Q4_1 and Q5_1 too, with their Q8_1 activations split into Q8_0 rows
	// and the blocks' s, and summs = Σ fma(m, s) added to every dot.
	var actS [][]float32
	var sPacked []float32
	asQ1 := (a.typ == quant.Q4_1 || a.typ == quant.Q5_1) && hasAVX2
	if asQ1 {
		nb := int(ne00 / 32)
		act.b, actS = splitQ8_1(act.b, nb)
		sPacked = make([]float32, nb*len(actS))
		for c, sc := range actS {
			for b, v := range sc {
				sPacked[b*len(actS)+c] = v
			}
		}
		asQ8 = true
	}
	var q8p *q8Packed
	if asQ8 && hasAVX2 && ne11 >= 8 && q8_0Clean(act.b) {
		q8p = packQ8_0(act.b, int(ne00/32))
	}
	if asQ8 && a.typ != quant.Q8_0 {
		qdot = dotQ8_0
	}
	// MXFP4: the columns split into even and odd blocks (mxfp4.go).
	var mxCols *mxfp4Cols
	if a.typ == quant.MXFP4 {
		mxCols = splitMXFP4Cols(act.b, int(ne00/32))
	}
	// F16, BF16 (tinyBLAS): the columns also as float32 for the
	// four-column kernel (exact), converted once here, not once per row.
	var act16f [][]float32
	// (The assembly float kernels are tinyBLAS<8>'s: AVX2 profile only.)
	tiny8 := hasAVX2 && !e.k.lanes16
	// x86-avx512: tinyBLAS<16> four columns a pass in assembly (not
	// vdpbf16ps, which the portable dotBF16Tiny32 computes).
	tiny16 := hasAVX2 && e.k.lanes16 && kern == kernTinyBLAS && !(a.typ == quant.BF16 && e.k.bf16dp)
	if (a.typ == quant.F16 || a.typ == quant.BF16) && kern == kernTinyBLAS && (tiny8 || tiny16) {
		act16f = make([][]float32, ncols)
		for c, u := range act.u16 {
			f := make([]float32, len(u))
			for i, h := range u {
				if a.typ == quant.BF16 {
					f[i] = bf16(h)
				} else {
					f[i] = f16Table[h]
				}
			}
			act16f[c] = f
		}
	}
	out, off := dst.base()
	colStride := dst.nb[1] / typeSize(dst.typ) // elements from column i11 to i11+1
	tinyKind := -1
	if kern == kernTinyBLAS && tiny8 && a.weight != nil && r2 == 1 && r3 == 1 && ne12 == 1 && ne13 == 1 && a.ne[2] == 1 && a.ne[3] == 1 {
		switch a.typ {
		case quant.F32:
			tinyKind = tinyF32
		case quant.F16:
			tinyKind = tinyF16
		case quant.BF16:
			tinyKind = tinyBF16
		}
		if tinyKind != tinyF32 && act16f == nil {
			tinyKind = -1
		}
	}
	nmat := a.ne[2] * a.ne[3]
	parallelFor(int(ne01*nmat), e.threads, func(lo, hi int) {
		rowF32 := make([]float32, ne00)
		rowU16 := make([]uint16, ne00)
		var quad [4]float32
		var oct [8]float32
		var krow kRowDots
		var q8row []byte
		var q1m []float32 // Q4_1/Q5_1: the row's block minima
		if asQ8 && a.typ != quant.Q8_0 {
			q8row = make([]byte, ne00/32*34)
		}
		if asQ1 {
			q1m = make([]float32, ne00/32)
		}
		var sums8 [8]float32
		var mxr mxfp4Row
		for r := lo; r < hi; r++ {
			i01 := int64(r) % ne01
			i02 := (int64(r) / ne01) % a.ne[2]
			i03 := int64(r) / ne01 / a.ne[2]
			// F32, F16, BF16 weights (tinyBLAS, a plain 2-D product): two
			// rows at a time, four columns a pass.
			if tinyKind >= 0 && i01+1 < ne01 && r+1 < hi && tinyPair(tinyKind, a, i01, i02, i03, act, act16f, out, off, dst, colStride, oct[:]) {
				r++
				continue
			}
			// prepare the src0 row
			var xb []byte
			var xf []float32
			var xh []uint16
			useKRow := false
			switch {
			case asQ1:
				expandQ1(a.typ, a.weightRow(i01, i02, i03), q8row, q1m)
				xb = q8row
			case q8row != nil:
				expandQ0(a.typ, a.weightRow(i01, i02, i03), q8row)
				xb = q8row
			case a.typ.Quantized():
				xb = a.weightRow(i01, i02, i03)
				// Q2_K to Q6_K, IQ4_XS, IQ3_XXS, IQ3_S, TQ1_0, TQ2_0, IQ2/IQ1:
				// the scales (and values) decoded once per row, not per
				// column and block
				useKRow = krow.decode(a.typ, int(ne00), xb)
				if mxCols != nil {
					mxr.decode(xb, int(ne00/32))
				}
			case a.weight != nil && a.typ == quant.F32:
				wr := a.weightRow(i01, i02, i03)
				if xf = viewF32(wr); xf == nil {
					for i := range rowF32 {
						rowF32[i] = math.Float32frombits(binary.LittleEndian.Uint32(wr[4*i:]))
					}
					xf = rowF32
				}
			case a.weight != nil: // F16, BF16
				wr := a.weightRow(i01, i02, i03)
				if xh = viewU16(wr); xh == nil {
					for i := range rowU16 {
						rowU16[i] = binary.LittleEndian.Uint16(wr[2*i:])
					}
					xh = rowU16
				}
			case a.typ == quant.F32:
				xf = a.rowF32(i01, i02, i03, rowF32)
			case a.typ == quant.F16:
				xh = a.rowF16(i01, i02, i03)
			}
			for i13 := i03 * r3; i13 < (i03+1)*r3; i13++ {
				for i12 := i02 * r2; i12 < (i02+1)*r2; i12++ {
					for i11 := int64(0); i11 < ne11; i11++ {
						col := i11 + ne11*(i12+ne12*i13)
						o0 := off + dst.elemOffset(i01, i11, i12, i13)
						// Q2_K to Q6_K, IQ4_XS: up to four columns per pass
						// over the weight row (the same bits as their dot
						// per column).
						if useKRow {
							nc := ne11 - i11
							if nc > 4 {
								nc = 4
							}
							var ys [4][]byte
							for c := int64(0); c < nc; c++ {
								ys[c] = act.b[col+c]
							}
							if krow.dots(a.typ, xb, &ys, int(nc), quad[:]) {
								for c := int64(0); c < nc; c++ {
									out.f32[o0+c*colStride] = quad[c]
								}
								i11 += nc - 1
								continue
							}
						}
						// MXFP4: up to four columns per pass (Q8_0's kernels
						// on the even and the odd blocks).
						if mxr.ok {
							nc := min(ne11-i11, 4)
							if mxr.dots(mxCols, act.b, int(col), int(nc), quad[:]) {
								for c := int64(0); c < nc; c++ {
									out.f32[o0+c*colStride] = quad[c]
								}
								i11 += nc - 1
								continue
							}
						}
						// Q8_0 (and the weights expanded to it): eight, else
						// four columns per pass over the weight row (the same
						// bits as dotQ8_0 per column).
						if q8p != nil && i11+8 <= ne11 && (!asQ1 || summsQ1x8(q1m, sPacked, len(actS), int(col), &sums8)) &&
							dotQ8_0x8Packed(int(ne00), xb, q8p, int(col), oct[:]) {
							for c := int64(0); c < 8; c++ {
								if asQ1 {
									oct[c] += sums8[c]
								}
								out.f32[o0+c*colStride] = oct[c]
							}
							i11 += 7
							continue
						}
						if asQ8 && i11+4 <= ne11 {
							ys := [4][]byte{act.b[col], act.b[col+1], act.b[col+2], act.b[col+3]}
							if dotQ8_0x4(int(ne00), xb, &ys, quad[:]) {
								for c := int64(0); c < 4; c++ {
									if asQ1 {
										quad[c] += summsQ1(q1m, actS[col+c])
									}
									out.f32[o0+c*colStride] = quad[c]
								}
								i11 += 3
								continue
							}
						}
						// x86-avx512: tinyBLAS<16>, four columns per pass.
						if tiny16 && i11+4 <= ne11 {
							kind, cols, p := tinyF32, act.f32, unsafe.Pointer(nil)
							switch {
							case a.typ == quant.F32 && len(xf) > 0:
								p = unsafe.Pointer(&xf[0])
							case a.typ != quant.F32 && len(xh) > 0 && act16f != nil:
								kind, cols, p = tinyF16, act16f, unsafe.Pointer(&xh[0])
								if a.typ == quant.BF16 {
									kind = tinyBF16
								}
							}
							if p != nil && tinyX4L16(kind, int(ne00), p, &[4][]float32{cols[col], cols[col+1], cols[col+2], cols[col+3]}, quad[:]) {
								for c := int64(0); c < 4; c++ {
									out.f32[o0+c*colStride] = quad[c]
								}
								i11 += 3
								continue
							}
						}
						// x86-avx512 BF16: tinyBLAS<32> with vdpbf16ps,
						// four columns per pass.
						if kern == kernTinyBLAS && e.k.bf16dp && a.typ == quant.BF16 && len(xh) > 0 && i11+4 <= ne11 &&
							dpbf16X4(xh, &[4][]uint16{act.u16[col], act.u16[col+1], act.u16[col+2], act.u16[col+3]}, quad[:]) {
							for c := int64(0); c < 4; c++ {
								out.f32[o0+c*colStride] = quad[c]
							}
							i11 += 3
							continue
						}
						// F32, F16, BF16 (tinyBLAS): four columns per pass.
						if kern == kernTinyBLAS && tiny8 && i11+4 <= ne11 {
							ok := false
							switch a.typ {
							case quant.F32:
								ok = dotF32Tinyx4(xf, &[4][]float32{act.f32[col], act.f32[col+1], act.f32[col+2], act.f32[col+3]}, quad[:])
							case quant.F16, quant.BF16:
								ok = act16f != nil && dotF16Tinyx4(xh, &[4][]float32{act16f[col], act16f[col+1], act16f[col+2], act16f[col+3]}, a.typ == quant.BF16, quad[:])
							}
							if ok {
								for c := int64(0); c < 4; c++ {
									out.f32[o0+c*colStride] = quad[c]
								}
								i11 += 3
								continue
							}
						}
						var v float32
						switch {
						case e.k.lanes16 && !a.typ.Quantized():
							v = e.k.floatDot(a.typ, kern, xf, xh, act, col)
						case asQ1:
							v = dotQ8_0(int(ne00), xb, act.b[col]) + summsQ1(q1m, actS[col])
						case qdot != nil:
							v = qdot(int(ne00), xb, act.b[col])
						case a.typ == quant.F32 && kern == kernTinyBLAS:
							v = dotF32Tiny(xf, act.f32[col])
						case a.typ == quant.F32:
							v = vecDotF32(xf, act.f32[col])
						case a.typ == quant.F16 && kern == kernTinyBLAS:
							v = dotF16Tiny(xh, act.u16[col])
						case a.typ == quant.F16:
							v = vecDotF16(xh, act.u16[col])
						case a.typ == quant.BF16 && kern == kernTinyBLAS:
							v = dotBF16Tiny(xh, act.u16[col])
						default:
							v = vecDotBF16(xh, act.u16[col])
						}
						out.f32[o0] = v
					}
				}
			}
		}
	})
	return nil
}
