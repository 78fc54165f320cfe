package forward

import (
	"encoding/binary"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// MXFP4 weights (block_mxfp4: e, an E8M0 exponent; qs[16], E2M1 codes, the
// low nibbles values 0-15, the high ones 16-31) with Q8_0 activations.
// llamafile's tinyBLAS has no MXFP4 kernel and the repack buffers none
// either, so every product, prompt or not, is ggml_vec_dot_mxfp4_q8_0.

// unpackMXFP4 writes the 32 values of block xb through kvalues_mxfp4 (the
// E2M1 values doubled) into q and returns the block scale halved,
// GGML_E8M0_TO_FP32_HALF(e).
func unpackMXFP4(xb []byte, q *[32]int8) float32 {
	for j := 0; j < 16; j++ {
		b := xb[1+j]
		q[j] = quant.KValuesMXFP4(b & 0xF)
		q[j+16] = quant.KValuesMXFP4(b >> 4)
	}
	return quant.E8M0ToFP32Half(xb[0])
}

// dotMXFP4 is ggml_vec_dot_mxfp4_q8_0 (AVX2): blocks in pairs, even ones
// into one accumulator and odd ones into another, d = y.d·e8m0_half(x.e),
// int32 lane l = Σ of the products of bytes 4l..4l+3 (mul_add_epi8, the
// sign trick, then madd with ones), acc = fma(d, float(lane), acc); the
// accumulators added lane by lane before hsum_float_8; an odd last block
// in scalar code, *not* fused (GCC 12 -O3 -march=native: vcvtsi2ss,
// vmulss, vaddss): sumf += d·(float)(sumi1 + sumi2).
func dotMXFP4(n int, x, y []byte) float32 {
	var acc1, acc2 [8]float32
	var q [32]int8
	nb := n / 32
	lanes := func(ib int, acc *[8]float32) {
		dx := unpackMXFP4(x[ib*17:ib*17+17], &q)
		yb := y[ib*34 : ib*34+34]
		d := ldF16(yb) * dx
		for l := 0; l < 8; l++ {
			var s int32
			for b := 4 * l; b < 4*l+4; b++ {
				s += mulSign8(q[b], int8(yb[2+b]))
			}
			acc[l] = fma32(d, float32(s), acc[l])
		}
	}
	ib := 0
	for ; ib+1 < nb; ib += 2 {
		lanes(ib, &acc1)
		lanes(ib+1, &acc2)
	}
	return mxfp4Tail(x, y, nb, ib, &acc1, &acc2)
}

// mxfp4Tail finishes dotMXFP4 from its two accumulators: their lane sums'
// hsum_float_8, then blocks ib..nb-1 (at most one) in scalar code.
func mxfp4Tail(x, y []byte, nb, ib int, acc1, acc2 *[8]float32) float32 {
	var sum [8]float32
	for l := range sum {
		sum[l] = acc1[l] + acc2[l]
	}
	sumf := hsum8(&sum)
	var q [32]int8
	for ; ib < nb; ib++ {
		dx := unpackMXFP4(x[ib*17:ib*17+17], &q)
		yb := y[ib*34 : ib*34+34]
		d := ldF16(yb) * dx
		var s int32
		for j := 0; j < 32; j++ {
			s += int32(q[j]) * int32(int8(yb[2+j]))
		}
		sumf += float32(d * float32(s)) // rounded, then added: not fused
	}
	return sumf
}

// f16ExactPow2 returns the float16 bits of v when v is a power of two that
// float16 holds exactly (2^-24 to 2^15, subnormals included).
func f16ExactPow2(v float32) (uint16, bool) {
	h := toF16(v)
	return h, f16Table[h] == v && v != 0
}

// mxfp4Cols holds a MUL_MAT's Q8_0 activation columns split for the
// MXFP4 fast path: the even blocks of each column, then the odd ones, as
// Q8_0 rows of nb/2 blocks (dotQ8_0x4's input).
type mxfp4Cols struct {
	even, odd [][]byte
	nb        int
}

// splitMXFP4Cols splits Q8_0 rows of nb blocks into their even and odd
// blocks; nil when nb < 2 (no pair) or a row is short.
func splitMXFP4Cols(rows [][]byte, nb int) *mxfp4Cols {
	if nb < 2 || !hasAVX2 {
		return nil
	}
	np := nb / 2
	c := &mxfp4Cols{even: make([][]byte, len(rows)), odd: make([][]byte, len(rows)), nb: nb}
	for i, r := range rows {
		if len(r) < nb*34 {
			return nil
		}
		e, o := make([]byte, np*34), make([]byte, np*34)
		for p := 0; p < np; p++ {
			copy(e[p*34:p*34+34], r[(2*p)*34:(2*p+1)*34])
			copy(o[p*34:p*34+34], r[(2*p+1)*34:(2*p+2)*34])
		}
		c.even[i], c.odd[i] = e, o
	}
	return c
}

// mxfp4Row is one MXFP4 weight row expanded for the fast path: its even
// and odd blocks as Q8_0 blocks (the values as int8, the scale
// e8m0_half(e) as an exact float16), so that dotQ8_0x4's per-block
// fma(dx·dy, lane, acc) is the MXFP4 kernel's on each accumulator.
type mxfp4Row struct {
	even, odd []byte
	x         []byte // the MXFP4 row (its odd last block)
	ok        bool
}

// decode expands the MXFP4 row x of nb blocks; ok is false when a block
// scale is outside float16's range (the portable kernel runs then).
func (r *mxfp4Row) decode(x []byte, nb int) bool {
	np := nb / 2
	r.ok = false
	if np == 0 || len(x) < nb*17 {
		return false
	}
	if cap(r.even) < np*34 {
		r.even, r.odd = make([]byte, np*34), make([]byte, np*34)
	}
	r.even, r.odd, r.x = r.even[:np*34], r.odd[:np*34], x
	var q [32]int8
	for ib := 0; ib < 2*np; ib++ {
		dst := r.even[(ib/2)*34:]
		if ib%2 == 1 {
			dst = r.odd[(ib/2)*34:]
		}
		h, ok := f16ExactPow2(unpackMXFP4(x[ib*17:ib*17+17], &q))
		if !ok {
			return false
		}
		binary.LittleEndian.PutUint16(dst, h)
		for j, v := range q {
			dst[2+j] = byte(v)
		}
	}
	r.ok = true
	return true
}

// dots sets out[c] = dotMXFP4(n, r's row, column first+c) for ncol (1..4)
// columns of cols (y their whole Q8_0 rows, for the last odd block), or
// returns false having written nothing.
func (r *mxfp4Row) dots(cols *mxfp4Cols, y [][]byte, first, ncol int, out []float32) bool {
	if !r.ok || cols == nil || ncol < 1 || ncol > 4 || len(out) < ncol || first+ncol > len(cols.even) {
		return false
	}
	np := cols.nb / 2
	var acc1, acc2 [4][8]float32
	if ncol == 4 {
		ye := [4][]byte{cols.even[first], cols.even[first+1], cols.even[first+2], cols.even[first+3]}
		yo := [4][]byte{cols.odd[first], cols.odd[first+1], cols.odd[first+2], cols.odd[first+3]}
		if !dotQ8_0x4Acc(np, r.even, &ye, &acc1) || !dotQ8_0x4Acc(np, r.odd, &yo, &acc2) {
			return false
		}
	} else {
		for c := 0; c < ncol; c++ {
			if !dotQ8_0Acc(np, r.even, cols.even[first+c], &acc1[c]) || !dotQ8_0Acc(np, r.odd, cols.odd[first+c], &acc2[c]) {
				return false
			}
		}
	}
	for c := 0; c < ncol; c++ {
		out[c] = mxfp4Tail(r.x, y[first+c], cols.nb, 2*np, &acc1[c], &acc2[c])
	}
	return true
}
