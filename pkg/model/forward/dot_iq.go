package forward

import (
	"encoding/binary"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// The IQ2 and IQ1 weight types (IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M)
// against Q8_K activations: ggml_vec_dot_<t>_q8_K, AVX2 branch
// (ggml-cpu/arch/x86/quants.c; these functions have no AVX-512 branch,
// so the -march=native build of this machine compiles the same code, and
// llamafile_sgemm and the repack buffers take none of these types).
//
// Each kernel is the IQ4_XS pattern: per super-block, int32 lane l sums
// scale*Σ q*q8 over bytes 4l..4l+3 of every 32-value chunk (q the signed
// grid value, scale the odd 2s+1 of its 16 values: VPMADDUBSW of the grid
// magnitudes and the sign-flipped q8, then VPMADDWD by the scales; exact
// integers, so the order of the additions does not matter), then acc[l] =
// fma(x.d*y.d, float(lane), acc[l]) in eight float lanes. What follows
// differs by type:
//
//	IQ2_XXS, IQ2_XS, IQ2_S: 0.125 * hsum_float_8(acc)
//	IQ1_S:  accum1 = fma(d, float(sumi1), accum1) per super-block (GCC
//	        contracts `accum1 += d * sumi1`: vfmadd231ss in the object
//	        code), sumi1 = Σ ls*sign(delta)*(bsums[2ib]+bsums[2ib+1]);
//	        hsum_float_8(acc) + 0.125*accum1
//	IQ1_M:  a second set of lanes, the delta signs (±1) in place of the
//	        grid values with the same scales, into acc2;
//	        hsum_float_8(acc) + 0.125*hsum_float_8(acc2)
//
// (0.125 times a float is exact, so whether the last product is fused
// into the addition does not change the result.) The lanes come from
// quant.DecodeIQBlock; the row kernels of mulMatGGML decode a weight row
// into k8BlockMeta once and run k8RowAVX2 (IQ1_M: k8Row2AVX2, both sets of
// lanes from one load of the activations), the portable dotIQ the same
// arithmetic in Go.

// iqDelta is IQ1S_DELTA and IQ1M_DELTA.
const iqDelta = float32(0.125)

// iq1SDelta is what the IQ1_S delta term needs of one super-block: ls*sign
// per 32-value chunk.
type iq1SDelta struct {
	c [8]int32
}

// iqLanes adds the integer lanes of one super-block (values q, scales
// sc) against the Q8_K quants yq to lane.
func iqLanes(q *[256]int8, sc *[16]int16, yq []byte, lane *[8]int32) {
	for c := 0; c < 8; c++ {
		for l := 0; l < 8; l++ {
			var s int32
			for b := 32*c + 4*l; b < 32*c+4*l+4; b++ {
				s += mulSign8(q[b], int8(yq[b]))
			}
			lane[l] += int32(sc[2*c+l/4]) * s
		}
	}
}

// iq1SSum is sumi1 of ggml_vec_dot_iq1_s_q8_K for one super-block.
func iq1SSum(c *[8]int32, bs []byte) int32 {
	var s int32
	for ib := 0; ib < 8; ib++ {
		b0 := int32(int16(binary.LittleEndian.Uint16(bs[4*ib:])))
		b1 := int32(int16(binary.LittleEndian.Uint16(bs[4*ib+2:])))
		s += (b0 + b1) * c[ib]
	}
	return s
}

// iq1SCoef fills c with ls*sign(delta) per 32-value chunk of blk.
func iq1SCoef(blk *quant.IQBlock, c *[8]int32) {
	for ib := 0; ib < 8; ib++ {
		c[ib] = int32(blk.Scale[2*ib]) * int32(blk.Delta[32*ib])
	}
}

// dotIQ is ggml_vec_dot_<t>_q8_K (AVX2) for t an IQ2/IQ1 type, in Go.
// The caller (quantDot) has checked t; n is a multiple of 256 and x, y
// hold n/256 blocks of t and of Q8_K.
func dotIQ(t quant.Type, n int, x, y []byte) float32 {
	var acc, acc2 [8]float32
	var accum1 float32
	var blk quant.IQBlock
	bb := t.BlockBytes()
	for i := 0; i < n/256; i++ {
		if err := quant.DecodeIQBlock(t, x[i*bb:], &blk); err != nil {
			panic("forward: " + err.Error()) // t checked by quantDot, sizes by the caller
		}
		yd, yq, bs := q8K(y[i*292 : i*292+292])
		d := yd * blk.D
		var lane [8]int32
		iqLanes(&blk.Q, &blk.Scale, yq, &lane)
		for l := range acc {
			acc[l] = fma32(d, float32(lane[l]), acc[l])
		}
		switch t {
		case quant.IQ1_S:
			var c [8]int32
			iq1SCoef(&blk, &c)
			accum1 = fma32(d, float32(iq1SSum(&c, bs)), accum1)
		case quant.IQ1_M:
			var lane2 [8]int32
			iqLanes(&blk.Delta, &blk.Scale, yq, &lane2)
			for l := range acc2 {
				acc2[l] = fma32(d, float32(lane2[l]), acc2[l])
			}
		}
	}
	switch t {
	case quant.IQ1_S:
		return hsum8(&acc) + iqDelta*accum1
	case quant.IQ1_M:
		return hsum8(&acc) + iqDelta*hsum8(&acc2)
	}
	return 0.125 * hsum8(&acc)
}

// iqDot returns dotIQ for t as a quantDot kernel.
func iqDot(t quant.Type) func(n int, x, y []byte) float32 {
	return func(n int, x, y []byte) float32 { return dotIQ(t, n, x, y) }
}

// decodeIQRow decodes the super-blocks of the IQ2/IQ1 row x (type t) into
// meta for k8RowAVX2 (values, scales in the low and high eight int16 lanes
// of each chunk, x.d), and for IQ1_M the delta signs into delta (same
// scales and d), for IQ1_S the delta coefficients into d1.
func decodeIQRow(t quant.Type, x []byte, meta, delta []k8BlockMeta, d1 []iq1SDelta) {
	var blk quant.IQBlock
	bb := t.BlockBytes()
	for i := range meta {
		if err := quant.DecodeIQBlock(t, x[i*bb:], &blk); err != nil {
			panic("forward: " + err.Error()) // checked by kRowDots.decode
		}
		m := &meta[i]
		m.q = blk.Q
		m.d = blk.D
		for c := 0; c < 8; c++ {
			m.sv[c] = scales16(blk.Scale[2*c], blk.Scale[2*c+1])
		}
		switch t {
		case quant.IQ1_M:
			delta[i].q = blk.Delta
			delta[i].sv = m.sv
			delta[i].d = m.d
		case quant.IQ1_S:
			iq1SCoef(&blk, &d1[i].c)
		}
	}
}

// iqRowDots finishes kRowDots.dots for an IQ2/IQ1 row: the lanes of the
// first ncol columns through k8RowAcc (IQ1_M: k8Row2Acc, its grid and
// delta lanes in one pass), then each type's tail (see the top of this
// file). It returns false having written nothing when the row
// kernel cannot run.
func (k *kRowDots) iqRowDots(t quant.Type, y *[4][]byte, ncol int, out []float32) bool {
	var acc [4][8]float32
	if t == quant.IQ1_M {
		var acc2 [4][8]float32
		if !k8Row2Acc(k.k8, k.iqd, y, ncol, &acc, &acc2) {
			return false
		}
		for c := 0; c < ncol; c++ {
			out[c] = hsum8(&acc[c]) + iqDelta*hsum8(&acc2[c])
		}
		return true
	}
	if !k8RowAcc(k.k8, y, ncol, k8Plain, &acc) {
		return false
	}
	switch t {
	case quant.IQ1_S:
		for c := 0; c < ncol; c++ {
			var accum1 float32
			for i := range k.iq1s {
				yd, _, bs := q8K(y[c][i*292 : i*292+292])
				accum1 = fma32(yd*k.k8[i].d, float32(iq1SSum(&k.iq1s[i].c, bs)), accum1)
			}
			out[c] = hsum8(&acc[c]) + iqDelta*accum1
		}
	default:
		for c := 0; c < ncol; c++ {
			out[c] = 0.125 * hsum8(&acc[c])
		}
	}
	return true
}

// decodeIQ is kRowDots.decode for an IQ2/IQ1 row of nb super-blocks.
func (k *kRowDots) decodeIQ(t quant.Type, nb int, x []byte) bool {
	if len(x) < nb*t.BlockBytes() {
		return false
	}
	if cap(k.k8) < nb {
		k.k8 = make([]k8BlockMeta, nb)
		k.q5m = make([]q5KMins, nb)
	}
	k.k8 = k.k8[:nb]
	switch t {
	case quant.IQ1_M:
		if cap(k.iqd) < nb {
			k.iqd = make([]k8BlockMeta, nb)
		}
		k.iqd = k.iqd[:nb]
	case quant.IQ1_S:
		if cap(k.iq1s) < nb {
			k.iq1s = make([]iq1SDelta, nb)
		}
		k.iq1s = k.iq1s[:nb]
	}
	decodeIQRow(t, x, k.k8, k.iqd, k.iq1s)
	return true
}
