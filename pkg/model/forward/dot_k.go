package forward

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

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
	q4   []q4KBlockMeta
	q6   []q6KBlockMeta
	k8   []k8BlockMeta // IQ4_XS, Q2_K, Q3_K, Q5_K, IQ2_*, IQ1_*
	q5m  []q5KMins
	iqd  []k8BlockMeta // IQ1_M: the delta signs (dot_iq.go)
	iq1s []iq1SDelta   // IQ1_S: the delta coefficients
}

// decode decodes the weight row x of type t (Q2_K to Q6_K, IQ4_XS, IQ3_XXS,
// IQ3_S, TQ1_0, TQ2_0 or an IQ2/IQ1 type, n values) once, for any number of
// dots calls; it returns false when the
// row kernels cannot run (no AVX2, another type, or a short row).
func (k *kRowDots) decode(t quant.Type, n int, x []byte) bool {
	nb := n / 256
	if !hasAVX2 || nb == 0 {
		return false
	}
	switch t {
	case quant.Q4_K:
		if len(x) < nb*144 {
			return false
		}
		if cap(k.q4) < nb {
			k.q4 = make([]q4KBlockMeta, nb)
		}
		k.q4 = k.q4[:nb]
		decodeQ4KRow(x, k.q4)
		return true
	case quant.Q6_K:
		if len(x) < nb*210 {
			return false
		}
		if cap(k.q6) < nb {
			k.q6 = make([]q6KBlockMeta, nb)
		}
		k.q6 = k.q6[:nb]
		decodeQ6KRow(x, k.q6)
		return true
	case quant.IQ4_XS, quant.Q2_K, quant.Q3_K, quant.Q5_K, quant.IQ3_XXS, quant.IQ3_S, quant.TQ1_0, quant.TQ2_0:
		if len(x) < nb*t.BlockBytes() {
			return false
		}
		if cap(k.k8) < nb {
			k.k8 = make([]k8BlockMeta, nb)
			k.q5m = make([]q5KMins, nb)
		}
		k.k8, k.q5m = k.k8[:nb], k.q5m[:nb]
		switch t {
		case quant.IQ4_XS:
			decodeIQ4XSRow(x, k.k8)
		case quant.Q2_K:
			decodeQ2KRow(x, k.k8)
		case quant.Q3_K:
			decodeQ3KRow(x, k.k8)
		case quant.IQ3_XXS, quant.IQ3_S, quant.TQ1_0, quant.TQ2_0:
			decodeIQ3TQRow(t, x, k.k8)
		default:
			decodeQ5KRow(x, k.k8, k.q5m)
		}
		return true
	case quant.IQ2_XXS, quant.IQ2_XS, quant.IQ2_S, quant.IQ1_S, quant.IQ1_M:
		return k.decodeIQ(t, nb, x)
	}
	return false
}

// dots sets out[c] = dot(x, y[c]) (dotQ2_K to dotQ6_K, dotIQ4XS or dotIQ, the
// same bits) for the first ncol (1..4) activation rows, x the row last decoded
// for t, or returns false having written nothing.
func (k *kRowDots) dots(t quant.Type, x []byte, y *[4][]byte, ncol int, out []float32) bool {
	if len(out) < ncol {
		return false
	}
	var acc [4][8]float32
	switch t {
	case quant.Q4_K:
		var accm [4][4]float32
		if !q4KRowAcc(x, k.q4, y, ncol, &acc, &accm) {
			return false
		}
		for c := 0; c < ncol; c++ {
			out[c] = hsum8(&acc[c]) + hsum4(&accm[c])
		}
		return true
	case quant.Q6_K:
		if !q6KRowAcc(x, k.q6, y, ncol, &acc) {
			return false
		}
		for c := 0; c < ncol; c++ {
			out[c] = hsum8(&acc[c])
		}
		return true
	case quant.IQ4_XS, quant.Q2_K, quant.Q3_K, quant.Q5_K, quant.IQ3_XXS, quant.IQ3_S, quant.TQ1_0, quant.TQ2_0:
		mode := k8Plain
		switch t {
		case quant.Q2_K:
			mode = k8Mins
		case quant.TQ1_0, quant.TQ2_0:
			mode = k8SubBsums
		}
		if !k8RowAcc(k.k8, y, ncol, mode, &acc) {
			return false
		}
		for c := 0; c < ncol; c++ {
			out[c] = hsum8(&acc[c])
			switch t {
			case quant.Q5_K:
				out[c] += q5KSumMins(k.q5m, y[c])
			case quant.IQ3_XXS:
				out[c] *= 0.25 // *s = 0.25f * hsum_float_8(accumf)
			}
		}
		return true
	case quant.IQ2_XXS, quant.IQ2_XS, quant.IQ2_S, quant.IQ1_S, quant.IQ1_M:
		return k.iqRowDots(t, y, ncol, out)
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
