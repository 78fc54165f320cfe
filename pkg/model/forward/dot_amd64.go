//go:build amd64 && !purego

package forward

import "unsafe"

// hasAVX2 reports whether the CPU and OS support AVX2, FMA and F16C, the
// instructions of the assembly kernels in dot_amd64.s. Without them (or
// built with -tags purego, or on another architecture) the portable Go
// kernels run; both give the same bits.
var hasAVX2 = cpuidAVX2()

//go:noescape
func cpuidAVX2() bool

//go:noescape
func dotQ8_0AVX2(nb int, x, y *byte, tab *[1 << 16]float32, acc *[8]float32) bool

// dotQ8_0SIMD is dotQ8_0 through the assembly kernel, or ok = false when
// the CPU lacks it or y holds a -128 quant (see dotQ8_0AVX2).
func dotQ8_0SIMD(n int, x, y []byte) (float32, bool) {
	nb := n / 32
	if !hasAVX2 || nb == 0 || len(x) < nb*34 || len(y) < nb*34 {
		return 0, false
	}
	var acc [8]float32
	if !dotQ8_0AVX2(nb, &x[0], &y[0], f16Table, &acc) {
		return 0, false
	}
	return hsum8(&acc), true
}

//go:noescape
func q4KRowAVX2(nb int, qs *byte, meta *q4KBlockMeta, ncol int, y *[4]*byte, acc *[4][8]float32, accm *[4][4]float32)

// q4KRowAcc adds the len(meta) Q4_K super-blocks of the weight row x (meta:
// x decoded by decodeQ4KRow) times those of the first ncol (1..4)
// activation rows y[c] to acc[c] and accm[c] (dotQ4_K's accumulators) in
// one pass over x, or returns false having done nothing when the CPU lacks
// AVX2 or a size is wrong.
func q4KRowAcc(x []byte, meta []q4KBlockMeta, y *[4][]byte, ncol int, acc *[4][8]float32, accm *[4][4]float32) bool {
	nb := len(meta)
	p, ok := q8KColumns(y, ncol, nb)
	if !ok || len(x) < nb*144 {
		return false
	}
	q4KRowAVX2(nb, &x[16], &meta[0], ncol, p, acc, accm)
	return true
}

//go:noescape
func q6KRowAVX2(nb int, x *byte, meta *q6KBlockMeta, ncol int, y *[4]*byte, acc *[4][8]float32)

// q6KRowAcc is q4KRowAcc for Q6_K (meta from decodeQ6KRow; no mins).
func q6KRowAcc(x []byte, meta []q6KBlockMeta, y *[4][]byte, ncol int, acc *[4][8]float32) bool {
	nb := len(meta)
	p, ok := q8KColumns(y, ncol, nb)
	if !ok || len(x) < nb*210 {
		return false
	}
	q6KRowAVX2(nb, &x[0], &meta[0], ncol, p, acc)
	return true
}

//go:noescape
func k8RowAVX2(nb int, meta *k8BlockMeta, ncol int, y *[4]*byte, acc *[4][8]float32, mins int)

// k8RowAcc is q4KRowAcc for the rows decoded into k8BlockMeta (IQ4_XS,
// Q2_K, Q3_K, Q5_K, IQ3_XXS, IQ3_S, TQ1_0, TQ2_0; meta holds the whole
// row); mode k8Mins runs Q2_K's mins first, k8SubBsums subtracts the
// Q8_K block sums from the lanes (TQ1_0, TQ2_0).
func k8RowAcc(meta []k8BlockMeta, y *[4][]byte, ncol int, mode k8Mode, acc *[4][8]float32) bool {
	nb := len(meta)
	p, ok := q8KColumns(y, ncol, nb)
	if !ok {
		return false
	}
	k8RowAVX2(nb, &meta[0], ncol, p, acc, int(mode))
	return true
}

// q8KColumns checks what every row kernel needs (AVX2, 1 to nb blocks, 1
// to 4 columns of nb block_q8_K each) and returns the columns' first bytes.
func q8KColumns(y *[4][]byte, ncol, nb int) (*[4]*byte, bool) {
	if !hasAVX2 || nb == 0 || ncol < 1 || ncol > 4 {
		return nil, false
	}
	var p [4]*byte
	for c := 0; c < ncol; c++ {
		if len(y[c]) < nb*292 {
			return nil, false
		}
		p[c] = &y[c][0]
	}
	return &p, true
}

//go:noescape
func dotQ8_0x4AVX2(nb int, x *byte, y *[4]*byte, tab *[1 << 16]float32, acc *[4][8]float32) bool

//go:noescape
func dotQ8_0x8PAVX2(nb int, x *byte, q *byte, qstride int, s *float32, sstride int, tab *[1 << 16]float32, acc *[8][8]float32)

// dotQ8_0x8Packed sets out[c] = dotQ8_0(n, x, column first+c) for eight
// activation columns packed in p, with one pass over the weight row, or
// returns false (no AVX2, bad sizes) having written nothing.
func dotQ8_0x8Packed(n int, x []byte, p *q8Packed, first int, out []float32) bool {
	nb := n / 32
	if !hasAVX2 || nb == 0 || nb != p.nb || len(x) < nb*34 || len(out) < 8 || first < 0 || first+8 > p.ncols {
		return false
	}
	var acc [8][8]float32
	dotQ8_0x8PAVX2(nb, &x[0], &p.quants[first*32*nb], 32*nb, &p.scales[first], 4*p.ncols, f16Table, &acc)
	for c := range acc {
		out[c] = hsum8(&acc[c])
	}
	return true
}

// dotQ8_0x4 sets out[c] = dotQ8_0(n, x, y[c]) for four activation rows with
// one pass over the weight row, or returns false (no AVX2, or a -128 quant
// in an activation) having written nothing.
func dotQ8_0x4(n int, x []byte, y *[4][]byte, out []float32) bool {
	nb := n / 32
	if !hasAVX2 || nb == 0 || len(x) < nb*34 || len(out) < 4 {
		return false
	}
	var p [4]*byte
	for c := range p {
		if len(y[c]) < nb*34 {
			return false
		}
		p[c] = &y[c][0]
	}
	var acc [4][8]float32
	if !dotQ8_0x4AVX2(nb, &x[0], &p, f16Table, &acc) {
		return false
	}
	for c := range acc {
		out[c] = hsum8(&acc[c])
	}
	return true
}

//go:noescape
func tinyF32x4AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[4][8]float32)

//go:noescape
func tinyF16x4AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[4][8]float32)

//go:noescape
func tinyBF16x4AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[4][8]float32)

// tinyX4 runs the tinyBLAS four-column kernel of kind on the first n&^7
// elements of the weight row a and the float32 activation columns b[c],
// or returns false when the CPU lacks AVX2 or a column is short. (A
// switch, not a func value: the arguments then stay on the stack.)
func tinyX4(kind, n int, a unsafe.Pointer, b *[4][]float32, out []float32) bool {
	n &^= 7
	p, ok := tinyColumns(b, n)
	if !ok || len(out) < 4 {
		return false
	}
	var acc [4][8]float32
	switch kind {
	case tinyF32:
		tinyF32x4AVX2(n, a, p, &acc)
	case tinyF16:
		tinyF16x4AVX2(n, a, p, &acc)
	default:
		tinyBF16x4AVX2(n, a, p, &acc)
	}
	for c := range acc {
		out[c] = hsum8(&acc[c])
	}
	return true
}

//go:noescape
func tinyF32x2x4AVX2(n int, a0, a1 unsafe.Pointer, b *[4]unsafe.Pointer, acc *[8][8]float32)

//go:noescape
func tinyF16x2x4AVX2(n int, a0, a1 unsafe.Pointer, b *[4]unsafe.Pointer, acc *[8][8]float32)

//go:noescape
func tinyBF16x2x4AVX2(n int, a0, a1 unsafe.Pointer, b *[4]unsafe.Pointer, acc *[8][8]float32)

// tinyColumns checks what the tinyBLAS kernels need (AVX2, n > 0 values
// in every column) and returns the columns' first values.
func tinyColumns(b *[4][]float32, n int) (*[4]unsafe.Pointer, bool) {
	if !hasAVX2 || n == 0 {
		return nil, false
	}
	var p [4]unsafe.Pointer
	for c := range b {
		if len(b[c]) < n {
			return nil, false
		}
		p[c] = unsafe.Pointer(&b[c][0])
	}
	return &p, true
}

// tinyX2x4 is tinyX4 for two weight rows a0, a1 of n elements: out[c] is
// row 0's dot with column c, out[4+c] row 1's.
func tinyX2x4(kind, n int, a0, a1 unsafe.Pointer, b *[4][]float32, out []float32) bool {
	n &^= 7
	p, ok := tinyColumns(b, n)
	if !ok || len(out) < 8 {
		return false
	}
	var acc [8][8]float32
	switch kind {
	case tinyF32:
		tinyF32x2x4AVX2(n, a0, a1, p, &acc)
	case tinyF16:
		tinyF16x2x4AVX2(n, a0, a1, p, &acc)
	default:
		tinyBF16x2x4AVX2(n, a0, a1, p, &acc)
	}
	for c := range acc {
		out[c] = hsum8(&acc[c])
	}
	return true
}

// dotF32Tinyx4 sets out[c] = dotF32Tiny(a, b[c]) for four columns.
func dotF32Tinyx4(a []float32, b *[4][]float32, out []float32) bool {
	if len(a) < 8 {
		return false
	}
	return tinyX4(tinyF32, len(a), unsafe.Pointer(&a[0]), b, out)
}

// dotF16Tinyx4 sets out[c] = dotF16Tiny(a, b[c]) for four columns (with bf
// true, dotBF16Tiny) from the columns converted to float32 (b[c]).
func dotF16Tinyx4(a []uint16, b *[4][]float32, bf bool, out []float32) bool {
	if len(a) < 8 {
		return false
	}
	kind := tinyF16
	if bf {
		kind = tinyBF16
	}
	return tinyX4(kind, len(a), unsafe.Pointer(&a[0]), b, out)
}

//go:noescape
func summs8AVX2(nb int, m, s *float32, stride int, out *[8]float32)

// summsQ1x8 sets out[c] = summsQ1(m, s of column first+c) for eight
// columns, their s packed [block][ncols] in sp.
func summsQ1x8(m, sp []float32, ncols, first int, out *[8]float32) bool {
	nb := len(m)
	if !hasAVX2 || nb == 0 || first < 0 || first+8 > ncols || len(sp) < nb*ncols {
		return false
	}
	summs8AVX2(nb, &m[0], &sp[first], 4*ncols, out)
	return true
}

// dotQ8_0Acc sets acc to dotQ8_0AVX2's accumulator (before the horizontal
// sum) for nb blocks of the Q8_0 rows x and y, or returns false (no AVX2,
// short rows, or a -128 quant in y).
func dotQ8_0Acc(nb int, x, y []byte, acc *[8]float32) bool {
	if !hasAVX2 || nb == 0 || len(x) < nb*34 || len(y) < nb*34 {
		return false
	}
	return dotQ8_0AVX2(nb, &x[0], &y[0], f16Table, acc)
}

// dotQ8_0x4Acc is dotQ8_0Acc for four activation rows, one pass over x.
func dotQ8_0x4Acc(nb int, x []byte, y *[4][]byte, acc *[4][8]float32) bool {
	if !hasAVX2 || nb == 0 || len(x) < nb*34 {
		return false
	}
	var p [4]*byte
	for c := range p {
		if len(y[c]) < nb*34 {
			return false
		}
		p[c] = &y[c][0]
	}
	return dotQ8_0x4AVX2(nb, &x[0], &p, f16Table, acc)
}
