package forward

import (
	"encoding/binary"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// Dot-product kernels of ggml-cpu as they run on x86-64 with AVX2, FMA and
// F16C (ggml-cpu/arch/x86/quants.c, vec.cpp, llamafile/sgemm.cpp). Each
// reproduces the kernel's lanes: which products are summed in which integer
// or float32 lane, which multiply-adds are fused (including the ones GCC
// contracts from intrinsics or scalar code), and the order of the final
// horizontal sums. x is the weight row (src0), y the activation row already
// converted to the vec_dot_type, n the number of values.

func ldF16(b []byte) float32 { return f16Table[binary.LittleEndian.Uint16(b)] }

// dotQ0 is the shared shape of ggml_vec_dot_{q4_0,q5_0,q8_0}_q8_0 and of
// llamafile's tinyBLAS_Q0_AVX for those types (both give the same bits):
// per block of 32, eight int32 lanes each summing 4 consecutive products
// (maddubs + madd), then acc[l] = fma(dx*dy, float(lane), acc[l]), and the
// horizontal sum hsum_float_8. unpack writes the 32 int8 weights of block
// xb and returns its scale.
func dotQ0(n int, x, y []byte, bsize int, unpack func(xb []byte, q *[32]int8) float32) float32 {
	var acc [8]float32
	var q [32]int8
	nb := n / 32
	for ib := 0; ib < nb; ib++ {
		xb := x[ib*bsize : (ib+1)*bsize]
		yb := y[ib*34 : ib*34+34]
		dx := unpack(xb, &q)
		d := dx * ldF16(yb)
		yq := yb[2:34]
		for l := 0; l < 8; l++ {
			s := int32(q[4*l])*int32(int8(yq[4*l])) + int32(q[4*l+1])*int32(int8(yq[4*l+1])) +
				int32(q[4*l+2])*int32(int8(yq[4*l+2])) + int32(q[4*l+3])*int32(int8(yq[4*l+3]))
			acc[l] = fma32(d, float32(s), acc[l])
		}
	}
	return hsum8(&acc)
}

func unpackQ8_0(xb []byte, q *[32]int8) float32 {
	for i := 0; i < 32; i++ {
		q[i] = int8(xb[2+i])
	}
	return ldF16(xb)
}

func unpackQ4_0(xb []byte, q *[32]int8) float32 {
	for i := 0; i < 16; i++ {
		b := xb[2+i]
		q[i] = int8(b&0xF) - 8
		q[i+16] = int8(b>>4) - 8
	}
	return ldF16(xb)
}

func unpackQ5_0(xb []byte, q *[32]int8) float32 {
	qh := binary.LittleEndian.Uint32(xb[2:6])
	for i := 0; i < 16; i++ {
		b := xb[6+i]
		q[i] = int8(b&0xF|byte((qh>>i)&1)<<4) - 16
		q[i+16] = int8(b>>4|byte((qh>>(i+16))&1)<<4) - 16
	}
	return ldF16(xb)
}

// kvaluesIQ4NL is kvalues_iq4nl (ggml-common.h).
var kvaluesIQ4NL = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

func unpackIQ4NL(xb []byte, q *[32]int8) float32 {
	for i := 0; i < 16; i++ {
		b := xb[2+i]
		q[i] = kvaluesIQ4NL[b&0xF]
		q[i+16] = kvaluesIQ4NL[b>>4]
	}
	return ldF16(xb)
}

// expandQ0 writes the Q4_0, Q5_0 or IQ4_NL row x as Q8_0 blocks into dst
// (34 bytes a block: the same f16 scale, then the 32 values as int8). The
// Q8_0 kernels then compute exactly ggml's Q4_0/Q5_0 vec_dot and
// tinyBLAS_Q0_AVX, and IQ4_NL's tinyBLAS: per block, lanes of four int8
// products, fma(dx*dy, lane, acc); only the unpacking differs.
func expandQ0(t quant.Type, x, dst []byte) {
	if t == quant.Q4_0 {
		// Nibbles eight at a time in a uint64, -8 per byte without
		// borrows (each byte's top bit set first).
		const top, eight, nib = 0x8080808080808080, 0x0808080808080808, 0x0F0F0F0F0F0F0F0F
		for b := 0; b < len(dst)/34; b++ {
			xb := x[b*18 : b*18+18]
			o := dst[b*34 : b*34+34]
			o[0], o[1] = xb[0], xb[1]
			for j := 0; j < 16; j += 8 {
				w := binary.LittleEndian.Uint64(xb[2+j:])
				binary.LittleEndian.PutUint64(o[2+j:], ((w&nib|top)-eight)^top)
				binary.LittleEndian.PutUint64(o[18+j:], ((w>>4&nib|top)-eight)^top)
			}
		}
		return
	}
	var q [32]int8
	bs, unpack := 18, unpackQ4_0
	switch t {
	case quant.Q5_0:
		bs, unpack = 22, unpackQ5_0
	case quant.IQ4_NL:
		unpack = unpackIQ4NL
	}
	for b := 0; b < len(dst)/34; b++ {
		xb := x[b*bs : b*bs+bs]
		unpack(xb, &q)
		o := dst[b*34 : b*34+34]
		o[0], o[1] = xb[0], xb[1]
		for i, v := range q {
			o[2+i] = byte(v)
		}
	}
}

// expandQ1 writes the Q4_1 or Q5_1 row x as Q8_0 blocks into dst (the
// scale d, then the unsigned 4- or 5-bit values as int8) and each block's
// min into m. ggml_vec_dot_q4_1_q8_1 and _q5_1_q8_1 are then the Q8_0
// kernels' lanes and fma(d0*d1, lane, acc) (an unsigned value times y is
// the sign trick's product), plus summs (summsQ1) after the horizontal sum.
func expandQ1(t quant.Type, x, dst []byte, m []float32) {
	bs := 20
	if t == quant.Q5_1 {
		bs = 24
	}
	for b := 0; b < len(dst)/34; b++ {
		xb := x[b*bs : b*bs+bs]
		o := dst[b*34 : b*34+34]
		o[0], o[1] = xb[0], xb[1]
		m[b] = ldF16(xb[2:])
		qs, qh := xb[4:20], uint32(0)
		if t == quant.Q5_1 {
			qs, qh = xb[8:24], binary.LittleEndian.Uint32(xb[4:8])
		}
		for i := 0; i < 16; i++ {
			o[2+i] = qs[i]&0xF | byte((qh>>i)&1)<<4
			o[18+i] = qs[i]>>4 | byte((qh>>(i+16))&1)<<4
		}
	}
}

// splitQ8_1 splits Q8_1 activation rows (d, s, 32 quants) into Q8_0 rows
// (d, quants) for the Q8_0 kernels and the blocks' s as float32.
func splitQ8_1(rows [][]byte, nb int) (q8 [][]byte, s [][]float32) {
	q8, s = make([][]byte, len(rows)), make([][]float32, len(rows))
	for c, r := range rows {
		q, sc := make([]byte, nb*34), make([]float32, nb)
		for b := 0; b < nb; b++ {
			copy(q[b*34:b*34+2], r[b*36:b*36+2])
			copy(q[b*34+2:b*34+34], r[b*36+4:b*36+36])
			sc[b] = ldF16(r[b*36+2:])
		}
		q8[c], s[c] = q, sc
	}
	return q8, s
}

// summsQ1 is the scalar part of ggml_vec_dot_q4_1_q8_1 (and q5_1): over
// the blocks in order, summs = fma(m, s, summs).
func summsQ1(m, s []float32) float32 {
	var summs float32
	for b := range m {
		summs = fma32(m[b], s[b], summs)
	}
	return summs
}

// dotQ8_0 is dotQ0 for Q8_0 weights: the assembly kernel (dot_amd64.s)
// when the CPU has AVX2, else dotQ8_0Go. Both give the same bits.
func dotQ8_0(n int, x, y []byte) float32 {
	if v, ok := dotQ8_0SIMD(n, x, y); ok {
		return v
	}
	return dotQ8_0Go(n, x, y)
}

// dotQ8_0Go is the portable dotQ8_0, dotQ0 written out for speed.
// q8Packed holds Q8_0 activation rows for the eight-column kernel: the
// quants of column c, block b at quants[32*(c*nb+b):], and the block
// scales as float32 (converted exactly from float16) transposed,
// scales[b*ncols+c], so that eight consecutive columns' scales of a block
// are one vector.
type q8Packed struct {
	quants []byte
	scales []float32
	nb     int
	ncols  int
}

// packQ8_0 packs Q8_0 rows of nb blocks each.
func packQ8_0(rows [][]byte, nb int) *q8Packed {
	p := &q8Packed{nb: nb, ncols: len(rows)}
	p.quants = make([]byte, 32*nb*len(rows))
	p.scales = make([]float32, nb*len(rows))
	for c, r := range rows {
		q := p.quants[32*nb*c:]
		for b := 0; b < nb; b++ {
			p.scales[b*p.ncols+c] = f16Table[binary.LittleEndian.Uint16(r[34*b:])]
			copy(q[32*b:32*b+32], r[34*b+2:34*b+34])
		}
	}
	return p
}

// q8_0Clean reports whether no Q8_0 row in rows holds a -128 quant (the
// value the assembly kernels' sign trick cannot negate). Rows from
// quantize_row_q8_0 never do: it rounds x/d with d = amax/127.
func q8_0Clean(rows [][]byte) bool {
	for _, r := range rows {
		for b := 0; b+34 <= len(r); b += 34 {
			for _, q := range r[b+2 : b+34] {
				if q == 0x80 {
					return false
				}
			}
		}
	}
	return true
}

func dotQ8_0Go(n int, x, y []byte) float32 {
	var acc [8]float32
	nb := n / 32
	for ib := 0; ib < nb; ib++ {
		xb := (*[34]byte)(x[ib*34 : ib*34+34])
		yb := (*[34]byte)(y[ib*34 : ib*34+34])
		d := ldF16(xb[:]) * ldF16(yb[:])
		for l := 0; l < 8; l++ {
			o := 2 + 4*l
			s := int32(int8(xb[o]))*int32(int8(yb[o])) + int32(int8(xb[o+1]))*int32(int8(yb[o+1])) +
				int32(int8(xb[o+2]))*int32(int8(yb[o+2])) + int32(int8(xb[o+3]))*int32(int8(yb[o+3]))
			acc[l] = fma32(d, float32(s), acc[l])
		}
	}
	return hsum8(&acc)
}

// dotQ4_0 is dotQ0 for Q4_0 weights, written out for speed: bytes 0-15 of
// the block are the low nibbles (values 0-15), 16-31 the high ones.
func dotQ4_0(n int, x, y []byte) float32 {
	var acc [8]float32
	nb := n / 32
	for ib := 0; ib < nb; ib++ {
		xb := (*[18]byte)(x[ib*18 : ib*18+18])
		yb := (*[34]byte)(y[ib*34 : ib*34+34])
		d := ldF16(xb[:]) * ldF16(yb[:])
		for l := 0; l < 4; l++ {
			o := 2 + 4*l
			s := (int32(xb[o]&0xF)-8)*int32(int8(yb[o])) + (int32(xb[o+1]&0xF)-8)*int32(int8(yb[o+1])) +
				(int32(xb[o+2]&0xF)-8)*int32(int8(yb[o+2])) + (int32(xb[o+3]&0xF)-8)*int32(int8(yb[o+3]))
			acc[l] = fma32(d, float32(s), acc[l])
		}
		for l := 4; l < 8; l++ {
			o := 2 + 4*(l-4)
			p := 2 + 4*l
			s := (int32(xb[o]>>4)-8)*int32(int8(yb[p])) + (int32(xb[o+1]>>4)-8)*int32(int8(yb[p+1])) +
				(int32(xb[o+2]>>4)-8)*int32(int8(yb[p+2])) + (int32(xb[o+3]>>4)-8)*int32(int8(yb[p+3]))
			acc[l] = fma32(d, float32(s), acc[l])
		}
	}
	return hsum8(&acc)
}
func dotQ5_0(n int, x, y []byte) float32 { return dotQ0(n, x, y, 22, unpackQ5_0) }

// dotIQ4NLTiny is tinyBLAS_Q0_AVX for IQ4_NL (prompts).
func dotIQ4NLTiny(n int, x, y []byte) float32 { return dotQ0(n, x, y, 18, unpackIQ4NL) }

// dotIQ4NL is ggml_vec_dot_iq4_nl_q8_0 (AVX2): blocks in pairs into two
// accumulators (d = dy*dx), added before the horizontal sum; an odd last
// block is added in scalar code, fused: sumf = fma(d, sumi, sumf).
func dotIQ4NL(n int, x, y []byte) float32 {
	var acc1, acc2 [8]float32
	var q [32]int8
	nb := n / 32
	ib := 0
	lanes := func(ib int, acc *[8]float32) {
		xb := x[ib*18 : ib*18+18]
		yb := y[ib*34 : ib*34+34]
		unpackIQ4NL(xb, &q)
		d := ldF16(yb) * ldF16(xb)
		yq := yb[2:34]
		for l := 0; l < 8; l++ {
			s := int32(q[4*l])*int32(int8(yq[4*l])) + int32(q[4*l+1])*int32(int8(yq[4*l+1])) +
				int32(q[4*l+2])*int32(int8(yq[4*l+2])) + int32(q[4*l+3])*int32(int8(yq[4*l+3]))
			acc[l] = fma32(d, float32(s), acc[l])
		}
	}
	for ; ib+1 < nb; ib += 2 {
		lanes(ib, &acc1)
		lanes(ib+1, &acc2)
	}
	var sum [8]float32
	for l := range sum {
		sum[l] = acc1[l] + acc2[l]
	}
	sumf := hsum8(&sum)
	for ; ib < nb; ib++ {
		xb := x[ib*18 : ib*18+18]
		yb := y[ib*34 : ib*34+34]
		unpackIQ4NL(xb, &q)
		d := ldF16(yb) * ldF16(xb)
		var s int32
		for j := 0; j < 32; j++ {
			s += int32(q[j]) * int32(int8(yb[2+j]))
		}
		sumf = fma32(d, float32(s), sumf)
	}
	return sumf
}

// mulSign8 is q*y as ggml's mul_add_epi8 computes it: |q| times y with
// q's sign applied in int8 (so y = -128 stays -128 when q < 0, as VPSIGNB
// wraps; Q8_K quants are never -128, so this is q*y in practice).
func mulSign8(q, y int8) int32 {
	switch {
	case q > 0:
		return int32(q) * int32(y)
	case q < 0:
		return -int32(q) * int32(-y)
	}
	return 0
}

// dotIQ4XS is ggml_vec_dot_iq4_xs_q8_K (AVX2). block_iq4_xs is d (f16),
// scales_h (u16), scales_l[4], qs[128]: eight 32-value sub-blocks, value j
// of sub-block ib from the low (j < 16) or high nibble of qs[16ib + j%16]
// through kvalues_iq4nl, with the 6-bit scale ls = (scales_l[ib/2] nibble
// ib%2) | ((scales_h >> 2ib) & 3) << 4, minus 32. Int32 lane l sums
// ls*Σ q*q8 over bytes 4l..4l+3 of each sub-block (integer, exact in any
// order), then acc[l] = fma(x.d*y.d, lane, acc[l]); result hsum8(acc).
// This is the portable kernel; kRowDots runs k8RowAVX2, the same bits.
func dotIQ4XS(n int, x, y []byte) float32 {
	var acc [8]float32
	var q [32]int8
	nb := n / 256
	for i := 0; i < nb; i++ {
		xb := x[i*136 : i*136+136]
		yd, yq, _ := q8K(y[i*292 : i*292+292])
		d := ldF16(xb) * yd
		sh := binary.LittleEndian.Uint16(xb[2:])
		var lane [8]int32
		for ib := 0; ib < 8; ib++ {
			ls := int32((xb[4+ib/2]>>(4*(ib%2)))&0xF|uint8((sh>>(2*ib))&3)<<4) - 32
			qs := xb[8+16*ib : 8+16*ib+16]
			for j := 0; j < 16; j++ {
				q[j] = kvaluesIQ4NL[qs[j]&0xF]
				q[j+16] = kvaluesIQ4NL[qs[j]>>4]
			}
			y8 := yq[32*ib : 32*ib+32]
			for l := 0; l < 8; l++ {
				var s int32
				for b := 4 * l; b < 4*l+4; b++ {
					s += mulSign8(q[b], int8(y8[b]))
				}
				lane[l] += ls * s
			}
		}
		for l := 0; l < 8; l++ {
			acc[l] = fma32(d, float32(lane[l]), acc[l])
		}
	}
	return hsum8(&acc)
}

// dotQ4_1 is ggml_vec_dot_q4_1_q8_1 (AVX2): unsigned nibbles times int8 in
// eight lanes, acc = fma(d0*d1, lanes, acc), plus summs, the fused running
// sum of m*s, after the horizontal sum.
func dotQ4_1(n int, x, y []byte) float32 {
	var acc [8]float32
	var summs float32
	var q [32]int32
	nb := n / 32
	for ib := 0; ib < nb; ib++ {
		xb := x[ib*20 : ib*20+20]
		yb := y[ib*36 : ib*36+36]
		d0, m := ldF16(xb), ldF16(xb[2:])
		d1, s := ldF16(yb), ldF16(yb[2:])
		summs = fma32(m, s, summs)
		d := d0 * d1
		for i := 0; i < 16; i++ {
			b := xb[4+i]
			q[i] = int32(b & 0xF)
			q[i+16] = int32(b >> 4)
		}
		yq := yb[4:36]
		for l := 0; l < 8; l++ {
			v := q[4*l]*int32(int8(yq[4*l])) + q[4*l+1]*int32(int8(yq[4*l+1])) +
				q[4*l+2]*int32(int8(yq[4*l+2])) + q[4*l+3]*int32(int8(yq[4*l+3]))
			acc[l] = fma32(d, float32(v), acc[l])
		}
	}
	return hsum8(&acc) + summs
}

// dotQ5_1 is ggml_vec_dot_q5_1_q8_1 (AVX2): as dotQ4_1 with the fifth bit
// and acc = fma(lanes, dx*dy, acc).
func dotQ5_1(n int, x, y []byte) float32 {
	var acc [8]float32
	var summs float32
	var q [32]int32
	nb := n / 32
	for ib := 0; ib < nb; ib++ {
		xb := x[ib*24 : ib*24+24]
		yb := y[ib*36 : ib*36+36]
		dx, m := ldF16(xb), ldF16(xb[2:])
		dy, s := ldF16(yb), ldF16(yb[2:])
		summs = fma32(m, s, summs)
		qh := binary.LittleEndian.Uint32(xb[4:8])
		for i := 0; i < 16; i++ {
			b := xb[8+i]
			q[i] = int32(b&0xF) | int32((qh>>i)&1)<<4
			q[i+16] = int32(b>>4) | int32((qh>>(i+16))&1)<<4
		}
		d := dx * dy
		yq := yb[4:36]
		for l := 0; l < 8; l++ {
			v := q[4*l]*int32(int8(yq[4*l])) + q[4*l+1]*int32(int8(yq[4*l+1])) +
				q[4*l+2]*int32(int8(yq[4*l+2])) + q[4*l+3]*int32(int8(yq[4*l+3]))
			acc[l] = fma32(float32(v), d, acc[l])
		}
	}
	return hsum8(&acc) + summs
}
