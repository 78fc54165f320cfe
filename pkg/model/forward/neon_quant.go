package forward

import (
	"encoding/binary"
	"math"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// quantizeQ8NEON is quantize_row_q8_0 (q1 false) or quantize_row_q8_1
// (q1 true) of ggml-cpu/arch/arm/quants.c: d = amax/127, id = 1/d (not
// 127/amax as on x86), q = vcvtnq_s32_f32(x·id) (ties to even), stored as
// its low byte; Q8_1's s = f16(d·Σq) over the int32 values.
func quantizeQ8NEON(src []float32, dst []byte, q1 bool) {
	bs, off := 34, 2
	if q1 {
		bs, off = 36, 4
	}
	for i := 0; i < len(src)/32; i++ {
		x := src[32*i : 32*i+32]
		y := dst[bs*i : bs*i+bs]
		var amax float32
		for _, v := range x {
			if a := float32(math.Abs(float64(v))); a > amax || a != a {
				amax = a
			}
		}
		d := amax / 127
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(y, toF16(d))
		var sum int32
		for j, v := range x {
			q := cvtnS32(v * id)
			sum += q
			y[off+j] = byte(q)
		}
		if q1 {
			binary.LittleEndian.PutUint16(y[2:], toF16(d*float32(sum)))
		}
	}
}

// cvtnS32 is FCVTNS: to the nearest int32, ties to even, saturating, NaN
// to 0.
func cvtnS32(x float32) int32 {
	switch {
	case x != x:
		return 0
	case x >= 2147483647:
		return math.MaxInt32
	case x <= -2147483648:
		return math.MinInt32
	}
	return int32(math.RoundToEven(float64(x)))
}

// q0Block is a Q8_0-like view of one block of 32 weights: their integer
// values (Q4_1/Q5_1: unsigned), the scale d and, for Q4_1/Q5_1, the min m.
type q0Block struct {
	q    [32]int8
	d, m float32
}

// q0BlockBytes is the size of a block of t.
func q0BlockBytes(t quant.Type) int {
	switch t {
	case quant.Q8_0:
		return 34
	case quant.Q4_0:
		return 18
	case quant.Q5_0:
		return 22
	case quant.Q4_1:
		return 20
	case quant.Q5_1:
		return 24
	}
	return 0
}

// unpackQ0NEON reads block xb of t as the NEON kernels see it: element j
// of the 32 at q[j] (low nibbles 0..15, high nibbles 16..31).
func unpackQ0NEON(t quant.Type, xb []byte, b *q0Block) {
	switch t {
	case quant.Q8_0:
		b.d = unpackQ8_0(xb, &b.q)
	case quant.Q4_0:
		b.d = unpackQ4_0(xb, &b.q)
	case quant.Q5_0:
		b.d = unpackQ5_0(xb, &b.q)
	case quant.Q4_1, quant.Q5_1:
		b.d, b.m = ldF16(xb), ldF16(xb[2:])
		qs, qh := xb[4:20], uint32(0)
		if t == quant.Q5_1 {
			qs, qh = xb[8:24], binary.LittleEndian.Uint32(xb[4:8])
		}
		for i := 0; i < 16; i++ {
			b.q[i] = int8(qs[i]&0xF | byte((qh>>i)&1)<<4)
			b.q[i+16] = int8(qs[i]>>4 | byte((qh>>(i+16))&1)<<4)
		}
	}
}

// q0Lanes is vdotq_s32 over the two 16-byte halves of a block: lane l sums
// the products of elements 4l..4l+3 and 16+4l..16+4l+3 (exact).
func q0Lanes(x *[32]int8, y []byte) (lane [4]int32, sum int32) {
	y = y[:32]
	for l := 0; l < 4; l++ {
		j := 4 * l
		lane[l] = int32(x[j])*int32(int8(y[j])) + int32(x[j+1])*int32(int8(y[j+1])) +
			int32(x[j+2])*int32(int8(y[j+2])) + int32(x[j+3])*int32(int8(y[j+3])) +
			int32(x[j+16])*int32(int8(y[j+16])) + int32(x[j+17])*int32(int8(y[j+17])) +
			int32(x[j+18])*int32(int8(y[j+18])) + int32(x[j+19])*int32(int8(y[j+19]))
		sum += lane[l]
	}
	return lane, sum
}

// unpackQ0RowNEON decodes the n/32 blocks of a weight row of t into bs.
func unpackQ0RowNEON(t quant.Type, n int, x []byte, bs []q0Block) []q0Block {
	bb := q0BlockBytes(t)
	bs = bs[:0]
	for ib := 0; ib < n/32; ib++ {
		bs = append(bs, q0Block{})
		unpackQ0NEON(t, x[ib*bb:], &bs[ib])
	}
	return bs
}

// dotQ0NEON is ggml_vec_dot_{q8_0,q4_0,q5_0}_q8_0 and
// ggml_vec_dot_{q4_1,q5_1}_q8_1 on NEON (one column): blocks in pairs, the
// even ones into sumv0 and the odd ones into sumv1, each lane acc +
// float(lane)·(dx·dy) with the product and the sum rounded (vmlaq_n_f32 is
// FMUL+FADD); sumf = vaddvq(sumv0) + vaddvq(sumv1) (+ the mins); an odd
// last block in scalar code, with the type's own contraction.
func dotQ0NEON(t quant.Type, n int, x, y []byte) float32 {
	return dotQ0BlocksNEON(t, unpackQ0RowNEON(t, n, x, nil), y)
}

// dotQ0BlocksNEON is dotQ0NEON on a row decoded by unpackQ0RowNEON.
func dotQ0BlocksNEON(t quant.Type, b []q0Block, y []byte) float32 {
	ys := 34
	if t == quant.Q4_1 || t == quant.Q5_1 {
		ys = 36
	}
	nb := len(b)
	var acc [2][4]float32
	var summs, summs1 float32
	ib := 0
	for ; ib+1 < nb; ib += 2 {
		y0, y1 := y[ib*ys:], y[(ib+1)*ys:]
		switch t {
		case quant.Q4_1: // summs += m0·s0 + m1·s1: fma(m0, s0, m1·s1)
			summs += fma32(b[ib].m, ldF16(y0[2:]), float32(b[ib+1].m*ldF16(y1[2:])))
		case quant.Q5_1:
			summs = fma32(b[ib].m, ldF16(y0[2:]), summs)
			summs1 = fma32(b[ib+1].m, ldF16(y1[2:]), summs1)
		}
		for k, yb := range [2][]byte{y0, y1} {
			d := b[ib+k].d * ldF16(yb)
			lane, _ := q0Lanes(&b[ib+k].q, yb[ys-32:])
			for l := 0; l < 4; l++ {
				acc[k][l] += float32(float32(lane[l]) * d)
			}
		}
	}
	sumf := vaddvq(&acc[0]) + vaddvq(&acc[1])
	switch t {
	case quant.Q4_1:
		sumf += summs
	case quant.Q5_1:
		sumf = (sumf + summs) + summs1
	}
	for ; ib < nb; ib++ {
		blk := &b[ib]
		yb := y[ib*ys:]
		_, sumi := q0Lanes(&blk.q, yb[ys-32:])
		dy := ldF16(yb)
		switch t {
		case quant.Q8_0: // sumf += sumi*(dx*dy)
			sumf = fma32(float32(sumi), blk.d*dy, sumf)
		case quant.Q4_0: // sumf += sumi*dx*dy
			sumf = fma32(float32(sumi)*blk.d, dy, sumf)
		case quant.Q5_0: // sumf += (dx*dy)*sumi
			sumf = fma32(blk.d*dy, float32(sumi), sumf)
		case quant.Q4_1, quant.Q5_1: // sumf += (dx*dy)*sumi + m*s
			sumf += fma32(blk.d*dy, float32(sumi), float32(blk.m*ldF16(yb[2:])))
		}
	}
	return sumf
}

// dotQ0TinyNEON is tinyBLAS_Q0_ARM (Q8_0 and Q4_0 prompts): per block,
// lane l of vdotq(vdotq(0, lo), hi) times fp16(A.d)·fp16(B.d), multiplied
// and added with two roundings (vmlaq_n_f32), then vaddvq_f32.
func dotQ0TinyNEON(t quant.Type, n int, x, y []byte) float32 {
	return dotQ0TinyBlocksNEON(unpackQ0RowNEON(t, n, x, nil), y)
}

// dotQ0TinyBlocksNEON is dotQ0TinyNEON on a row decoded by
// unpackQ0RowNEON.
func dotQ0TinyBlocksNEON(b []q0Block, y []byte) float32 {
	var acc [4]float32
	for ib := range b {
		yb := y[ib*34:]
		d := b[ib].d * ldF16(yb)
		lane, _ := q0Lanes(&b[ib].q, yb[2:34])
		for l := 0; l < 4; l++ {
			acc[l] += float32(float32(lane[l]) * d)
		}
	}
	return vaddvq(&acc)
}

// kMins is Σ m[sub]·(bsums[2sub] + bsums[2sub+1]) over the eight 32-value
// sub-blocks (the NEON kernels' vpaddq_s16 + vmull_s16, exact).
func kMins(mins *[8]int32, bsums []byte) int32 {
	var s int32
	for sub := 0; sub < 8; sub++ {
		b0 := int32(int16(binary.LittleEndian.Uint16(bsums[4*sub:])))
		b1 := int32(int16(binary.LittleEndian.Uint16(bsums[4*sub+2:])))
		s += mins[sub] * (b0 + b1)
	}
	return s
}

// dotQ4KNEON is ggml_vec_dot_q4_K_q8_K on NEON: per super-block the
// integer sums Σ scale·Σ q·q8 and Σ min·bsum (exact), then in scalar code
// sumf = sumf − dmin·mins (fused) and sumf = fma(float(sumi), d, sumf),
// with d = y.d·x.d and dmin = y.d·x.dmin.
func dotQ4KNEON(n int, x, y []byte) float32 {
	var sumf float32
	for i := 0; i < n/256; i++ {
		xb := x[i*144 : i*144+144]
		yd, yq, bsums := q8K(y[i*292:])
		d := yd * ldF16(xb)
		dmin := yd * ldF16(xb[2:])
		var mins [8]int32
		var sumi int32
		qs := xb[16:144]
		for j := 0; j < 4; j++ {
			sc0, m0 := scaleMinK4(2*j, xb[4:16])
			sc1, m1 := scaleMinK4(2*j+1, xb[4:16])
			mins[2*j], mins[2*j+1] = int32(m0), int32(m1)
			var s0, s1 int32
			for l := 0; l < 32; l++ {
				q := qs[32*j+l]
				s0 += int32(q&0xF) * int32(int8(yq[64*j+l]))
				s1 += int32(q>>4) * int32(int8(yq[64*j+32+l]))
			}
			sumi += s0*int32(sc0) + s1*int32(sc1)
		}
		sumf = fma32(-dmin, float32(kMins(&mins, bsums)), sumf)
		sumf = fma32(float32(sumi), d, sumf)
	}
	return sumf
}

// dotQ5KNEON is ggml_vec_dot_q5_K_q8_K on NEON: as dotQ4KNEON with the
// fifth bit, and sumf += d·sumi − dmin·mins as GCC compiles it:
// dmin·mins rounded, d·sumi fused with its subtraction (FNMSUB), then
// the add.
func dotQ5KNEON(n int, x, y []byte) float32 {
	var sumf float32
	for i := 0; i < n/256; i++ {
		xb := x[i*176 : i*176+176]
		yd, yq, bsums := q8K(y[i*292:])
		d := yd * ldF16(xb)
		dmin := yd * ldF16(xb[2:])
		qh, qs := xb[16:48], xb[48:176]
		var mins [8]int32
		var sumi int32
		for j := 0; j < 4; j++ {
			sc0, m0 := scaleMinK4(2*j, xb[4:16])
			sc1, m1 := scaleMinK4(2*j+1, xb[4:16])
			mins[2*j], mins[2*j+1] = int32(m0), int32(m1)
			var s0, s1 int32
			for l := 0; l < 32; l++ {
				q := qs[32*j+l]
				v0 := int32(q&0xF) | int32((qh[l]>>(2*j))&1)<<4
				v1 := int32(q>>4) | int32((qh[l]>>(2*j+1))&1)<<4
				s0 += v0 * int32(int8(yq[64*j+l]))
				s1 += v1 * int32(int8(yq[64*j+32+l]))
			}
			sumi += s0*int32(sc0) + s1*int32(sc1)
		}
		sumf += fma32(float32(sumi), d, -float32(dmin*float32(kMins(&mins, bsums))))
	}
	return sumf
}

// dotQ6KNEON is ggml_vec_dot_q6_K_q8_K on NEON: per super-block the exact
// integer Σ scale·Σ (q−32)·q8, then sum = fma(x.d·y.d, float(·), sum).
func dotQ6KNEON(n int, x, y []byte) float32 {
	var sum float32
	for i := 0; i < n/256; i++ {
		xb := x[i*210 : i*210+210]
		yd, yq, _ := q8K(y[i*292:])
		ql, qh, sc := xb[0:128], xb[128:192], xb[192:208]
		var isum int32
		for c := 0; c < 2; c++ {
			for l := 0; l < 32; l++ {
				h := qh[32*c+l]
				v := [4]int32{
					int32(ql[64*c+l]&0xF|(h&3)<<4) - 32,
					int32(ql[64*c+32+l]&0xF|((h>>2)&3)<<4) - 32,
					int32(ql[64*c+l]>>4|((h>>4)&3)<<4) - 32,
					int32(ql[64*c+32+l]>>4|((h>>6)&3)<<4) - 32,
				}
				for k := 0; k < 4; k++ {
					e := 128*c + 32*k + l
					isum += v[k] * int32(int8(yq[e])) * int32(int8(sc[e/16]))
				}
			}
		}
		sum = fma32(ldF16(xb[208:])*yd, float32(isum), sum)
	}
	return sum
}
