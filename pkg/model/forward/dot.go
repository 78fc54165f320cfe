package forward

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/layerdiff/layerdiff/pkg/model"
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
func expandQ0(t model.Type, x, dst []byte) {
	if t == model.Q4_0 {
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
	case model.Q5_0:
		bs, unpack = 22, unpackQ5_0
	case model.IQ4_NL:
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
func expandQ1(t model.Type, x, dst []byte, m []float32) {
	bs := 20
	if t == model.Q5_1 {
		bs = 24
	}
	for b := 0; b < len(dst)/34; b++ {
		xb := x[b*bs : b*bs+bs]
		o := dst[b*34 : b*34+34]
		o[0], o[1] = xb[0], xb[1]
		m[b] = ldF16(xb[2:])
		qs, qh := xb[4:20], uint32(0)
		if t == model.Q5_1 {
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

// q8K reads a block_q8_K: f32 d, 256 int8 quants, 16 int16 bsums.
func q8K(yb []byte) (d float32, q []byte, bsums []byte) {
	return math.Float32frombits(binary.LittleEndian.Uint32(yb)), yb[4:260], yb[260:292]
}

// scaleMinK4 is get_scale_min_k4: the 6-bit scale and min of sub-block j.
func scaleMinK4(j int, s []byte) (uint8, uint8) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return (s[j+4] & 0xF) | ((s[j-4] >> 6) << 4), (s[j+4] >> 4) | ((s[j] >> 6) << 4)
}

// dotQ4_K is ggml_vec_dot_q4_K_q8_K (AVX2). Per super-block: int32 lane l
// sums scale*Σ q4*q8 over bytes 4l..4l+3 of each 32-value chunk; acc[l] =
// fma(d, lane, acc[l]) with d = y.d*x.d; the mins go to four lanes acc_m[i]
// = fma(-y.d*x.dmin, m[2i]*(b[4i]+b[4i+1]) + m[2i+1]*(b[4i+2]+b[4i+3]),
// acc_m[i]) from the Q8_K block sums b. Result hsum8(acc) + hsum4(acc_m).
func dotQ4_K(n int, x, y []byte) float32 { return dotQ4KImpl(n, x, y, true) }

// q4KBlockMeta is the weight side of one Q4_K super-block decoded for the
// assembly kernel (dot_amd64.s reads it at fixed offsets; the words are
// little-endian int16 lanes): the eight 6-bit scales each broadcast over 16
// lanes (sv[2j] for the low nibbles of 32-value chunk j, sv[2j+1] for the
// high ones), the eight 6-bit mins each in two lanes (for VPMADDWD against
// the 16 Q8_K block sums), then x.d and -x.dmin as float32.
type q4KBlockMeta struct {
	sv      [8][4]uint64
	mins2   [4]uint64
	d       float32
	negDmin float32
}

// splat4 is the int16 lane v (the low 16 bits) repeated four times.
const splat4 = 0x0001000100010001

// scales16 is a 32-value chunk's scale vector for VPMADDWD: lo in the low
// eight int16 lanes (values 0-15), hi in the high eight (values 16-31).
func scales16(lo, hi int16) [4]uint64 {
	l, h := uint64(uint16(lo))*splat4, uint64(uint16(hi))*splat4
	return [4]uint64{l, l, h, h}
}

// decodeQ4KRow decodes the super-blocks of the Q4_K row x into meta (one
// per block; len(x) must be at least 144*len(meta)). The 6-bit scales and
// mins are unpacked four at a time as ggml_vec_dot_q4_K_q8_K does (utmp
// with kmask1-3): the same values as get_scale_min_k4.
func decodeQ4KRow(x []byte, meta []q4KBlockMeta) {
	for i := range meta {
		xb := (*[144]byte)(x[i*144 : i*144+144])
		m := &meta[i]
		m.d = ldF16(xb[:])
		m.negDmin = -ldF16(xb[2:])
		a0 := binary.LittleEndian.Uint32(xb[4:])
		a1 := binary.LittleEndian.Uint32(xb[8:])
		a2 := binary.LittleEndian.Uint32(xb[12:])
		sc := uint64(a0&0x3f3f3f3f) | uint64((a2&0x0f0f0f0f)|((a0>>6)&0x03030303)<<4)<<32
		mn := uint64(a1&0x3f3f3f3f) | uint64(((a2>>4)&0x0f0f0f0f)|((a1>>6)&0x03030303)<<4)<<32
		for j := 0; j < 8; j++ {
			w := int16(sc >> (8 * j) & 0xff)
			m.sv[j] = scales16(w, w)
		}
		for k := 0; k < 4; k++ {
			m0, m1 := mn>>(16*k)&0xff, mn>>(16*k+8)&0xff
			m.mins2[k] = m0*0x10001 | m1*0x10001<<32
		}
	}
}

// dotQ4KImpl is dotQ4_K; simd = false forces the portable kernel.
func dotQ4KImpl(n int, x, y []byte, simd bool) float32 {
	nb := n / 256
	if simd && hasAVX2 && len(x) >= nb*144 && len(y) >= nb*292 {
		// the row kernel, in pieces of up to 16 blocks (its accumulators
		// carry over from piece to piece)
		var buf [16]q4KBlockMeta
		var acc [4][8]float32
		var accm [4][4]float32
		ok := true
		for i := 0; i < nb && ok; i += len(buf) {
			meta := buf[:min(len(buf), nb-i)]
			decodeQ4KRow(x[i*144:], meta)
			ys := [4][]byte{y[i*292:]}
			ok = q4KRowAcc(x[i*144:], meta, &ys, 1, &acc, &accm)
		}
		if ok && nb > 0 {
			return hsum8(&acc[0]) + hsum4(&accm[0])
		}
	}
	var acc [8]float32
	var accm [4]float32
	for i := 0; i < nb; i++ {
		xb := x[i*144 : i*144+144]
		yd, yq, bs := q8K(y[i*292 : i*292+292])
		d := yd * ldF16(xb)
		dmin := -yd * ldF16(xb[2:])
		sc := xb[4:16]
		qs := xb[16:144]
		var scales, mins [8]int32
		for j := 0; j < 8; j++ {
			s, m := scaleMinK4(j, sc)
			scales[j], mins[j] = int32(s), int32(m)
		}
		var bsum [16]int32
		for k := range bsum {
			bsum[k] = int32(int16(binary.LittleEndian.Uint16(bs[2*k:])))
		}
		for k := 0; k < 4; k++ {
			pm := mins[2*k]*(bsum[4*k]+bsum[4*k+1]) + mins[2*k+1]*(bsum[4*k+2]+bsum[4*k+3])
			accm[k] = fma32(dmin, float32(pm), accm[k])
		}
		var lane [8]int32
		q4KLanesGo(qs, yq, &scales, &lane)
		for l := 0; l < 8; l++ {
			acc[l] = fma32(d, float32(lane[l]), acc[l])
		}
	}
	return hsum8(&acc) + hsum4(&accm)
}

// q4KLanesGo is the integer part of one Q4_K super-block: lane l sums
// scale*Σ q4*q8 over bytes 4l..4l+3 of each 32-value chunk (exact, so the
// assembly kernel may add in any order).
func q4KLanesGo(qs, yq []byte, scales *[8]int32, lane *[8]int32) {
	for j := 0; j < 4; j++ {
		q4 := qs[32*j : 32*j+32]
		q8l := yq[64*j : 64*j+32]
		q8h := yq[64*j+32 : 64*j+64]
		for l := 0; l < 8; l++ {
			var sl, sh int32
			for b := 4 * l; b < 4*l+4; b++ {
				sl += int32(q4[b]&0xF) * int32(int8(q8l[b]))
				sh += int32(q4[b]>>4) * int32(int8(q8h[b]))
			}
			lane[l] += scales[2*j]*sl + scales[2*j+1]*sh
		}
	}
}

// dotQ6_K is ggml_vec_dot_q6_K_q8_K (AVX2): int32 lane l sums
// scale*Σ (q6-32)*q8 over bytes 4l..4l+3 of each 32-value chunk (the scale
// changes every 16 values); acc[l] = fma(y.d*x.d, lane, acc[l]).
func dotQ6_K(n int, x, y []byte) float32 { return dotQ6KImpl(n, x, y, true) }

// q6KBlockMeta is the weight side of one Q6_K super-block decoded for the
// assembly kernel (dot_amd64.s reads it at fixed offsets): for each 32-value
// chunk c its two 16-value scales broadcast over the low and high eight
// int16 lanes (little-endian words: sv[c][0:2] = scale 2c, sv[c][2:4] =
// scale 2c+1), then x.d.
type q6KBlockMeta struct {
	sv [8][4]uint64
	d  float32
}

// decodeQ6KRow decodes the super-blocks of the Q6_K row x into meta (one
// per block; len(x) must be at least 210*len(meta)).
func decodeQ6KRow(x []byte, meta []q6KBlockMeta) {
	for i := range meta {
		xb := (*[210]byte)(x[i*210 : i*210+210])
		m := &meta[i]
		for c := 0; c < 8; c++ {
			m.sv[c] = scales16(int16(int8(xb[192+2*c])), int16(int8(xb[193+2*c])))
		}
		m.d = ldF16(xb[208:])
	}
}

// dotQ6KImpl is dotQ6_K; simd = false forces the portable kernel.
func dotQ6KImpl(n int, x, y []byte, simd bool) float32 {
	nb := n / 256
	if simd && hasAVX2 && len(x) >= nb*210 && len(y) >= nb*292 {
		// the row kernel in pieces of up to 32 blocks, as dotQ4KImpl
		var buf [32]q6KBlockMeta
		var acc [4][8]float32
		ok := true
		for i := 0; i < nb && ok; i += len(buf) {
			meta := buf[:min(len(buf), nb-i)]
			decodeQ6KRow(x[i*210:], meta)
			ys := [4][]byte{y[i*292:]}
			ok = q6KRowAcc(x[i*210:], meta, &ys, 1, &acc)
		}
		if ok && nb > 0 {
			return hsum8(&acc[0])
		}
	}
	var acc [8]float32
	for i := 0; i < nb; i++ {
		xb := x[i*210 : i*210+210]
		yd, yq, _ := q8K(y[i*292 : i*292+292])
		ql := xb[0:128]
		qh := xb[128:192]
		sc := xb[192:208]
		d := yd * ldF16(xb[208:])
		var scales [16]int16
		for k := range scales {
			scales[k] = int16(int8(sc[k]))
		}
		var lane [8]int32
		q6KLanesGo(ql, qh, yq, &scales, &lane)
		for l := 0; l < 8; l++ {
			acc[l] = fma32(d, float32(lane[l]), acc[l])
		}
	}
	return hsum8(&acc)
}

// k8BlockMeta is one 256-value super-block of an IQ4_XS, Q3_K or Q5_K row
// decoded for k8RowAVX2 (dot_amd64.s reads it at fixed offsets): the
// values as int8, each 32-value chunk's scale(s) broadcast over its 16
// int16 lanes (little-endian words; the low and high eight lanes may
// differ, for 16-value scales), then x.d, and Q2_K's -x.dmin and mins.
type k8BlockMeta struct {
	q       [256]int8
	sv      [8][4]uint64
	d       float32
	negDmin float32   // Q2_K: -x.dmin
	mins    [16]int16 // Q2_K: the 4-bit mins (k8RowAVX2 with mins)
}

// decodeIQ4XSRow decodes the super-blocks of the IQ4_XS row x into meta
// (len(x) must be at least 136*len(meta)).
func decodeIQ4XSRow(x []byte, meta []k8BlockMeta) {
	for i := range meta {
		xb := (*[136]byte)(x[i*136 : i*136+136])
		m := &meta[i]
		m.d = ldF16(xb[0:])
		sh := binary.LittleEndian.Uint16(xb[2:])
		for ib := 0; ib < 8; ib++ {
			ls := int16((xb[4+ib/2]>>(4*(ib%2)))&0xF|uint8((sh>>(2*ib))&3)<<4) - 32
			m.sv[ib] = scales16(ls, ls)
			qs := xb[8+16*ib:]
			for j := 0; j < 16; j++ {
				m.q[32*ib+j] = kvaluesIQ4NL[qs[j]&0xF]
				m.q[32*ib+16+j] = kvaluesIQ4NL[qs[j]>>4]
			}
		}
	}
}

// decodeQ3KRow decodes the super-blocks of the Q3_K row x into meta for
// the int8 row kernel (len(x) at least 110*len(meta)): the values
// q3low - (hbit ? 0 : 4) in ggml's order (chunk 4h+k holds bits 2k..2k+1
// of qs[32h..32h+31] and hmask bit 4h+k), the two 16-value scales of each
// chunk in its low and high eight int16 lanes, then x.d. With Q8_K
// activations (never -128) the kernel's lanes are dotQ3_K's.
func decodeQ3KRow(x []byte, meta []k8BlockMeta) {
	for i := range meta {
		xb := (*[110]byte)(x[i*110 : i*110+110])
		m := &meta[i]
		hm, qs := xb[0:32], xb[32:96]
		sc := q3KScales(xb[96:108])
		m.d = ldF16(xb[108:])
		for h := 0; h < 2; h++ {
			for k := 0; k < 4; k++ {
				c := 4*h + k
				// Eight values at a time in a uint64: the two bits plus 4
				// when the hmask bit is set, then -4 per byte without
				// borrows (setting each byte's top bit first).
				for b := 0; b < 32; b += 8 {
					lo := (binary.LittleEndian.Uint64(qs[32*h+b:]) >> (2 * k)) & 0x0303030303030303
					hb := (binary.LittleEndian.Uint64(hm[b:]) >> uint(c)) & 0x0101010101010101
					v := ((lo | hb<<2 | 0x8080808080808080) - 0x0404040404040404) ^ 0x8080808080808080
					binary.LittleEndian.PutUint64(qBytes(&m.q, 32*c+b), v)
				}
				m.sv[c] = scales16(int16(sc[8*h+2*k]), int16(sc[8*h+2*k+1]))
			}
		}
	}
}

// qBytes is the 8 bytes of q from i on, as bytes.
func qBytes(q *[256]int8, i int) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&q[i])), 8)
}

// decodeQ2KRow decodes the super-blocks of the Q2_K row x into meta for
// k8RowAVX2 with its mins step: the 2-bit values (chunk 4h+k holds bits
// 2k..2k+1 of qs[32h..32h+31]), each chunk's two 16-value scales (the low
// nibbles of scales[8h+2k], scales[8h+2k+1]), x.d, -x.dmin and the sixteen
// mins (the high nibbles).
func decodeQ2KRow(x []byte, meta []k8BlockMeta) {
	for i := range meta {
		xb := (*[84]byte)(x[i*84 : i*84+84])
		m := &meta[i]
		sc, qs := xb[0:16], xb[16:80]
		m.d = ldF16(xb[80:])
		m.negDmin = -ldF16(xb[82:])
		for j := 0; j < 16; j++ {
			m.mins[j] = int16(sc[j] >> 4)
		}
		for h := 0; h < 2; h++ {
			for k := 0; k < 4; k++ {
				c := 4*h + k
				for b := 0; b < 32; b += 8 {
					v := (binary.LittleEndian.Uint64(qs[32*h+b:]) >> (2 * k)) & 0x0303030303030303
					binary.LittleEndian.PutUint64(qBytes(&m.q, 32*c+b), v)
				}
				m.sv[c] = scales16(int16(sc[8*h+2*k]&0xF), int16(sc[8*h+2*k+1]&0xF))
			}
		}
	}
}

// q5KMins is what dotQ5_K needs of a Q5_K super-block beyond the int8 row
// kernel's lanes: the eight 6-bit mins and x.dmin.
type q5KMins struct {
	mins [8]int32
	dmin float32
}

// decodeQ5KRow decodes the super-blocks of the Q5_K row x into meta for the
// int8 row kernel (the 5-bit values, chunk 2j from the low nibbles of
// qs[32j..] and qh bit 2j, chunk 2j+1 from the high ones and bit 2j+1;
// each chunk's scale in all 16 lanes; x.d) and into mins.
func decodeQ5KRow(x []byte, meta []k8BlockMeta, mins []q5KMins) {
	for i := range meta {
		xb := (*[176]byte)(x[i*176 : i*176+176])
		m := &meta[i]
		m.d = ldF16(xb[0:])
		mins[i].dmin = ldF16(xb[2:])
		sc, qh, qs := xb[4:16], xb[16:48], xb[48:176]
		for c := 0; c < 8; c++ {
			s, mn := scaleMinK4(c, sc)
			m.sv[c] = scales16(int16(s), int16(s))
			mins[i].mins[c] = int32(mn)
		}
		const nib, one = 0x0F0F0F0F0F0F0F0F, 0x0101010101010101
		for j := 0; j < 4; j++ {
			for b := 0; b < 32; b += 8 { // eight values at a time
				w := binary.LittleEndian.Uint64(qs[32*j+b:])
				h := binary.LittleEndian.Uint64(qh[b:])
				binary.LittleEndian.PutUint64(qBytes(&m.q, 64*j+b), w&nib|(h>>(2*j)&one)<<4)
				binary.LittleEndian.PutUint64(qBytes(&m.q, 64*j+32+b), w>>4&nib|(h>>(2*j+1)&one)<<4)
			}
		}
	}
}

// q5KSumMins is dotQ5_K's scalar part for one column: over the blocks in
// order, summs = fma(-y.d*x.dmin, Σ_k mins[k]*(bsums[2k]+bsums[2k+1]),
// summs).
func q5KSumMins(mins []q5KMins, y []byte) float32 {
	var summs float32
	for i := range mins {
		yd, _, bs := q8K(y[i*292 : i*292+292])
		var ps int32
		for k := 0; k < 8; k++ {
			b0 := int32(int16(binary.LittleEndian.Uint16(bs[4*k:])))
			b1 := int32(int16(binary.LittleEndian.Uint16(bs[4*k+2:])))
			ps += mins[i].mins[k] * (b0 + b1)
		}
		if r, ok := fma32Fast(-yd*mins[i].dmin, float32(ps), summs); ok {
			summs = r
		} else {
			summs = fma32Slow(-yd*mins[i].dmin, float32(ps), summs)
		}
	}
	return summs
}

// kRowDots holds a goroutine's decoded weight row for the K-quant and
// IQ4_XS row kernels of mulMatGGML.
type kRowDots struct {
	q4  []q4KBlockMeta
	q6  []q6KBlockMeta
	k8  []k8BlockMeta // IQ4_XS, Q2_K, Q3_K, Q5_K
	q5m []q5KMins
}

// decode decodes the weight row x of type t (Q2_K to Q6_K or IQ4_XS, n
// values) once, for any number of dots calls; it returns false when the
// row kernels cannot run (no AVX2, another type, or a short row).
func (k *kRowDots) decode(t model.Type, n int, x []byte) bool {
	nb := n / 256
	if !hasAVX2 || nb == 0 {
		return false
	}
	switch t {
	case model.Q4_K:
		if len(x) < nb*144 {
			return false
		}
		if cap(k.q4) < nb {
			k.q4 = make([]q4KBlockMeta, nb)
		}
		k.q4 = k.q4[:nb]
		decodeQ4KRow(x, k.q4)
		return true
	case model.Q6_K:
		if len(x) < nb*210 {
			return false
		}
		if cap(k.q6) < nb {
			k.q6 = make([]q6KBlockMeta, nb)
		}
		k.q6 = k.q6[:nb]
		decodeQ6KRow(x, k.q6)
		return true
	case model.IQ4_XS, model.Q2_K, model.Q3_K, model.Q5_K:
		if len(x) < nb*t.BlockBytes() {
			return false
		}
		if cap(k.k8) < nb {
			k.k8 = make([]k8BlockMeta, nb)
			k.q5m = make([]q5KMins, nb)
		}
		k.k8, k.q5m = k.k8[:nb], k.q5m[:nb]
		switch t {
		case model.IQ4_XS:
			decodeIQ4XSRow(x, k.k8)
		case model.Q2_K:
			decodeQ2KRow(x, k.k8)
		case model.Q3_K:
			decodeQ3KRow(x, k.k8)
		default:
			decodeQ5KRow(x, k.k8, k.q5m)
		}
		return true
	}
	return false
}

// dots sets out[c] = dot(x, y[c]) (dotQ2_K to dotQ6_K or dotIQ4XS, the
// same bits) for the first ncol (1..4) activation rows, x the row last decoded
// for t, or returns false having written nothing.
func (k *kRowDots) dots(t model.Type, x []byte, y *[4][]byte, ncol int, out []float32) bool {
	if len(out) < ncol {
		return false
	}
	var acc [4][8]float32
	switch t {
	case model.Q4_K:
		var accm [4][4]float32
		if !q4KRowAcc(x, k.q4, y, ncol, &acc, &accm) {
			return false
		}
		for c := 0; c < ncol; c++ {
			out[c] = hsum8(&acc[c]) + hsum4(&accm[c])
		}
		return true
	case model.Q6_K:
		if !q6KRowAcc(x, k.q6, y, ncol, &acc) {
			return false
		}
		for c := 0; c < ncol; c++ {
			out[c] = hsum8(&acc[c])
		}
		return true
	case model.IQ4_XS, model.Q2_K, model.Q3_K, model.Q5_K:
		if !k8RowAcc(k.k8, y, ncol, t == model.Q2_K, &acc) {
			return false
		}
		for c := 0; c < ncol; c++ {
			out[c] = hsum8(&acc[c])
			if t == model.Q5_K {
				out[c] += q5KSumMins(k.q5m, y[c])
			}
		}
		return true
	}
	return false
}

// q6KLanesGo is the integer part of one Q6_K super-block: int32 lane l sums
// scale*Σ (q6-32)*q8 over bytes 4l..4l+3 of each 32-value chunk (exact, so
// the assembly kernel may add in any order).
func q6KLanesGo(ql, qh, yq []byte, scales *[16]int16, lane *[8]int32) {
	var q6 [256]int32
	for h := 0; h < 2; h++ {
		l4 := ql[64*h:]
		hh := qh[32*h:]
		o := q6[128*h:]
		for b := 0; b < 32; b++ {
			o[b] = int32(l4[b]&0xF|(hh[b]&3)<<4) - 32
			o[b+32] = int32(l4[b+32]&0xF|((hh[b]>>2)&3)<<4) - 32
			o[b+64] = int32(l4[b]>>4|((hh[b]>>4)&3)<<4) - 32
			o[b+96] = int32(l4[b+32]>>4|((hh[b]>>6)&3)<<4) - 32
		}
	}
	for c := 0; c < 8; c++ { // 32-value chunks
		for l := 0; l < 8; l++ {
			var s int32
			for b := 4 * l; b < 4*l+4; b++ {
				e := 32*c + b
				s += q6[e] * int32(int8(yq[e]))
			}
			lane[l] += int32(scales[(32*c+4*l)/16]) * s
		}
	}
}

// Kinds of tinyX4 and tinyX2x4, the tinyBLAS assembly kernels.
const (
	tinyF32 = iota
	tinyF16
	tinyBF16
)

// dotF32Tiny is llamafile's tinyBLAS<8, __m256> for float32 (prompts):
// lane i accumulates fma(a[l+i], b[l+i]) over steps of 8; then hsum.
func dotF32Tiny(a, b []float32) float32 {
	var acc [8]float32
	for l := 0; l+8 <= len(a); l += 8 {
		for i := 0; i < 8; i++ {
			acc[i] = fma32(a[l+i], b[l+i], acc[i])
		}
	}
	return hsum8(&acc)
}

// vecDotF32 is ggml_vec_dot_f32 (AVX2) as GCC compiles it: four 8-lane
// FMA accumulators over steps of 32, GGML_F32x8_REDUCE into a float; the
// leftovers are added in order, in blocks of 8 and then 4 with rounded
// products (GCC's vectorised in-order reduction), the last 0-3 fused.
func vecDotF32(a, b []float32) float32 {
	n := len(a)
	np := n &^ 31
	var sum [4][8]float32
	for i := 0; i < np; i += 32 {
		for j := 0; j < 4; j++ {
			for k := 0; k < 8; k++ {
				e := i + 8*j + k
				sum[j][k] = fma32(a[e], b[e], sum[j][k])
			}
		}
	}
	sumf := reduceF32x8(&sum)
	i := np
	r := n - np
	for ; r >= 8; r -= 8 {
		for k := 0; k < 8; k++ {
			sumf += float32(a[i+k] * b[i+k])
		}
		i += 8
	}
	if r >= 4 {
		for k := 0; k < 4; k++ {
			sumf += float32(a[i+k] * b[i+k])
		}
		i += 4
	}
	for ; i < n; i++ {
		sumf = fma32(a[i], b[i], sumf)
	}
	return sumf
}

// dotF16Tiny is tinyBLAS<8> for float16 (F16C loads, FMA lanes).
func dotF16Tiny(a, b []uint16) float32 {
	var acc [8]float32
	for l := 0; l+8 <= len(a); l += 8 {
		for i := 0; i < 8; i++ {
			acc[i] = fma32(f16Table[a[l+i]], f16Table[b[l+i]], acc[i])
		}
	}
	return hsum8(&acc)
}

// vecDotF16 is ggml_vec_dot_f16 (AVX2+F16C): four 8-lane FMA accumulators
// over steps of 32, reduced into a double; leftovers add their (exact)
// float products in double; the result is rounded to float.
func vecDotF16(a, b []uint16) float32 {
	n := len(a)
	np := n &^ 31
	var sum [4][8]float32
	if !dotF16Acc(np, a, b, &sum) {
		vecDotF16Acc(np, a, b, &sum)
	}
	sumf := float64(reduceF32x8(&sum))
	for i := np; i < n; i++ {
		sumf += float64(float32(f16Table[a[i]] * f16Table[b[i]]))
	}
	return float32(sumf)
}

// vecDotF16Acc is the portable main loop of vecDotF16 (dotF16AccAVX2).
func vecDotF16Acc(np int, a, b []uint16, sum *[4][8]float32) {
	for i := 0; i < np; i += 32 {
		for j := 0; j < 4; j++ {
			for k := 0; k < 8; k++ {
				e := i + 8*j + k
				sum[j][k] = fma32(f16Table[a[e]], f16Table[b[e]], sum[j][k])
			}
		}
	}
}

func bf16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// dotBF16Tiny is tinyBLAS<8> for bfloat16 on AVX2.
func dotBF16Tiny(a, b []uint16) float32 {
	var acc [8]float32
	for l := 0; l+8 <= len(a); l += 8 {
		for i := 0; i < 8; i++ {
			acc[i] = fma32(bf16(a[l+i]), bf16(b[l+i]), acc[i])
		}
	}
	return hsum8(&acc)
}

// vecDotBF16 is ggml_vec_dot_bf16 (AVX2, GCC fuses the mul+add): four
// 8-lane accumulators over steps of 32, (c1+c3)+(c2+c4), hsum into a
// double, leftovers in double.
func vecDotBF16(a, b []uint16) float32 {
	n := len(a)
	var c [4][8]float32
	i := 0
	for ; i+32 <= n; i += 32 {
		for j := 0; j < 4; j++ {
			for k := 0; k < 8; k++ {
				e := i + 8*j + k
				c[j][k] = fma32(bf16(a[e]), bf16(b[e]), c[j][k])
			}
		}
	}
	var s [8]float32
	for k := 0; k < 8; k++ {
		s[k] = (c[0][k] + c[2][k]) + (c[1][k] + c[3][k])
	}
	sumf := float64(hsum8(&s))
	for ; i < n; i++ {
		sumf += float64(float32(bf16(a[i]) * bf16(b[i])))
	}
	return float32(sumf)
}

// dotQ2_K is ggml_vec_dot_q2_K_q8_K (AVX2). Per super-block the mins come
// first: acc[l] = fma(-y.d*x.dmin, m[2l]*b[2l] + m[2l+1]*b[2l+1], acc[l])
// with the 4-bit mins m and the Q8_K sums b; then int32 lane l sums
// scale*Σ q2*q8 over bytes 4l..4l+3 of each 32-value chunk and acc[l] =
// fma(y.d*x.d, lane, acc[l]).
func dotQ2_K(n int, x, y []byte) float32 {
	var acc [8]float32
	nb := n / 256
	for i := 0; i < nb; i++ {
		xb := x[i*84 : i*84+84]
		yd, yq, bs := q8K(y[i*292 : i*292+292])
		sc := xb[0:16]
		qs := xb[16:80]
		d := yd * ldF16(xb[80:])
		dmin := -yd * ldF16(xb[82:])
		for l := 0; l < 8; l++ {
			b0 := int32(int16(binary.LittleEndian.Uint16(bs[4*l:])))
			b1 := int32(int16(binary.LittleEndian.Uint16(bs[4*l+2:])))
			p := int32(sc[2*l]>>4)*b0 + int32(sc[2*l+1]>>4)*b1
			acc[l] = fma32(dmin, float32(p), acc[l])
		}
		var lane [8]int32
		for h := 0; h < 2; h++ {
			q2 := qs[32*h : 32*h+32]
			for k := 0; k < 4; k++ {
				for l := 0; l < 8; l++ {
					var s int32
					for b := 4 * l; b < 4*l+4; b++ {
						e := 128*h + 32*k + b
						s += int32((q2[b]>>(2*k))&3) * int32(int8(yq[e]))
					}
					lane[l] += int32(sc[8*h+2*k+l/4]&0xF) * s
				}
			}
		}
		for l := 0; l < 8; l++ {
			acc[l] = fma32(d, float32(lane[l]), acc[l])
		}
	}
	return hsum8(&acc)
}

// q3KScales decodes the 16 signed 6-bit scales of a Q3_K block.
func q3KScales(s []byte) [16]int32 {
	a0 := binary.LittleEndian.Uint32(s[0:])
	a1 := binary.LittleEndian.Uint32(s[4:])
	a2 := binary.LittleEndian.Uint32(s[8:])
	const k1, k2 = 0x03030303, 0x0f0f0f0f
	w := [4]uint32{
		(a0 & k2) | (((a2 >> 0) & k1) << 4),
		(a1 & k2) | (((a2 >> 2) & k1) << 4),
		((a0 >> 4) & k2) | (((a2 >> 4) & k1) << 4),
		((a1 >> 4) & k2) | (((a2 >> 6) & k1) << 4),
	}
	var out [16]int32
	for i := 0; i < 16; i++ {
		out[i] = int32(int8(byte(w[i/4]>>(8*(i%4))))) - 32
	}
	return out
}

// dotQ3_K is ggml_vec_dot_q3_K_q8_K (AVX2): int32 lane l sums
// scale*Σ (q3low - (hbit ? 0 : 4))*q8 over bytes 4l..4l+3 of each 32-value
// chunk; acc[l] = fma(y.d*x.d, lane, acc[l]).
func dotQ3_K(n int, x, y []byte) float32 {
	var acc [8]float32
	nb := n / 256
	for i := 0; i < nb; i++ {
		xb := x[i*110 : i*110+110]
		yd, yq, _ := q8K(y[i*292 : i*292+292])
		hm := xb[0:32]
		qs := xb[32:96]
		scales := q3KScales(xb[96:108])
		d := yd * ldF16(xb[108:])
		var lane [8]int32
		for h := 0; h < 2; h++ {
			q3 := qs[32*h : 32*h+32]
			for k := 0; k < 4; k++ {
				bit := uint(4*h + k)
				for l := 0; l < 8; l++ {
					var s int32
					for b := 4 * l; b < 4*l+4; b++ {
						e := 128*h + 32*k + b
						v := int32((q3[b] >> (2 * k)) & 3)
						if hm[b]&(1<<bit) == 0 {
							v -= 4
						}
						s += v * int32(int8(yq[e]))
					}
					lane[l] += scales[8*h+2*k+l/4] * s
				}
			}
		}
		for l := 0; l < 8; l++ {
			acc[l] = fma32(d, float32(lane[l]), acc[l])
		}
	}
	return hsum8(&acc)
}

// dotQ5_K is ggml_vec_dot_q5_K_q8_K (AVX2): as dotQ4_K with the fifth bits,
// but the mins are summed as integers and added to a scalar, fused: summs
// = fma(-y.d*x.dmin, Σ m*b, summs); the result is hsum8(acc) + summs.
func dotQ5_K(n int, x, y []byte) float32 {
	var acc [8]float32
	var summs float32
	nb := n / 256
	for i := 0; i < nb; i++ {
		xb := x[i*176 : i*176+176]
		yd, yq, bs := q8K(y[i*292 : i*292+292])
		d := yd * ldF16(xb)
		dmin := -yd * ldF16(xb[2:])
		sc := xb[4:16]
		qh := xb[16:48]
		qs := xb[48:176]
		var scales, mins [8]int32
		for j := 0; j < 8; j++ {
			s, m := scaleMinK4(j, sc)
			scales[j], mins[j] = int32(s), int32(m)
		}
		var bsum [16]int32
		for k := range bsum {
			bsum[k] = int32(int16(binary.LittleEndian.Uint16(bs[2*k:])))
		}
		var ps int32
		for k := 0; k < 8; k++ {
			ps += mins[k] * (bsum[2*k] + bsum[2*k+1])
		}
		summs = fma32(dmin, float32(ps), summs)
		var lane [8]int32
		for j := 0; j < 4; j++ {
			q5 := qs[32*j : 32*j+32]
			q8l := yq[64*j : 64*j+32]
			q8h := yq[64*j+32 : 64*j+64]
			for l := 0; l < 8; l++ {
				var sl, sh int32
				for b := 4 * l; b < 4*l+4; b++ {
					lo := int32(q5[b]&0xF) | int32((qh[b]>>(2*j))&1)<<4
					hi := int32(q5[b]>>4) | int32((qh[b]>>(2*j+1))&1)<<4
					sl += lo * int32(int8(q8l[b]))
					sh += hi * int32(int8(q8h[b]))
				}
				lane[l] += scales[2*j]*sl + scales[2*j+1]*sh
			}
		}
		for l := 0; l < 8; l++ {
			acc[l] = fma32(d, float32(lane[l]), acc[l])
		}
	}
	return hsum8(&acc) + summs
}
