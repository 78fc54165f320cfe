package forward

import (
	"encoding/binary"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// The dot products of IQ3_XXS, IQ3_S, TQ1_0 and TQ2_0 weights with Q8_K
// activations, as ggml-cpu/arch/x86/quants.c computes them with AVX2 (the
// path of the -march=native builds with and without AVX-512: these
// kernels have no AVX-512 branch). Each is an exact integer sum per int32
// lane l (the products of bytes 4l..4l+3 of every 32-value chunk, as
// VPMADDUBSW and VPMADDWD pair them) and one fused multiply-add per
// super-block and lane, acc[l] = fma(d, float(lane), acc[l]), then
// hsum_float_8 (GCC contracts TQ's _mm256_add_ps(_mm256_mul_ps()) into
// the same vfmadd231ps, read from its -O3 -march=native assembly).

// k8Mode selects k8RowAVX2's extra step.
type k8Mode int

const (
	k8Plain    k8Mode = 0 // IQ4_XS, Q3_K, Q5_K, IQ3_XXS, IQ3_S
	k8Mins     k8Mode = 1 // Q2_K: the mins' fma first
	k8SubBsums k8Mode = 2 // TQ1_0, TQ2_0: lane -= bsums[2l] + bsums[2l+1]
)

// signMask7[i] is keven_signs_q2xs[i]: byte j is 0xFF where bit j of
// ksigns_iq2xs[i] is set (element j negative), else 0; signMask8[b] is
// the same for the eight sign bits of byte b (IQ3_S).
var signMask7, signMask8 = func() (m7 [128]uint64, m8 [256]uint64) {
	for b := range m8 {
		for j := 0; j < 8; j++ {
			if b>>uint(j)&1 != 0 {
				m8[b] |= 0xFF << (8 * uint(j))
			}
		}
	}
	for i := range m7 {
		m7[i] = m8[quant.KSignsIQ2XS(uint32(i))]
	}
	return m7, m8
}()

// applySigns negates the bytes of w (eight magnitudes, none 0) where the
// mask m is 0xFF: (v ^ 0xFF) + 1 = -v in each byte, without carries since
// no magnitude is 0.
func applySigns(w, m uint64) uint64 {
	return (w ^ m) + (m & 0x0101010101010101)
}

// decodeIQ3XXSBlock writes the 256 signed values of the IQ3_XXS block xb
// (98 bytes: d f16, qs[64] grid indices, then per 32 values a u32 of four
// 7-bit sign groups and a 4-bit scale) into q and the eight sub-block
// scales 2*ls+1 into sc; it returns d. Value 8l+j of sub-block ib is byte
// j%4 of iq3xxs_grid[qs[8ib+2l+j/4]] with sign bit j of
// ksigns_iq2xs[(aux >> 7l) & 127] (keven_signs_q2xs in the kernel).
func decodeIQ3XXSBlock(xb []byte, q *[256]int8, sc *[8]int32) float32 {
	qs, ss := xb[2:66], xb[66:98]
	for ib := 0; ib < 8; ib++ {
		aux := binary.LittleEndian.Uint32(ss[4*ib:])
		sc[ib] = 2*int32(aux>>28) + 1
		for l := 0; l < 4; l++ {
			g := uint64(quant.IQ3XXSGrid(qs[8*ib+2*l])) | uint64(quant.IQ3XXSGrid(qs[8*ib+2*l+1]))<<32
			v := applySigns(g, signMask7[(aux>>(7*uint(l)))&127])
			binary.LittleEndian.PutUint64(qBytes(q, 32*ib+8*l), v)
		}
	}
	return ldF16(xb)
}

// decodeIQ3SBlock is decodeIQ3XXSBlock for IQ3_S (110 bytes: d f16, qs[64]
// grid index low bits, qh[8] ninth bits, signs[32], scales[4]): group k of
// sub-block ib is iq3s_grid[qs[8ib+k] | (qh[ib] << (8-k)) & 256], value j
// of the sub-block has the sign bit j%8 of signs[4ib+j/8], and the scale
// is 2*(scales[ib/2] nibble ib%2)+1.
func decodeIQ3SBlock(xb []byte, q *[256]int8, sc *[8]int32) float32 {
	qs, qh, signs, scales := xb[2:66], xb[66:74], xb[74:106], xb[106:110]
	for ib := 0; ib < 8; ib++ {
		sc[ib] = 2*int32((scales[ib/2]>>(4*uint(ib%2)))&0xF) + 1
		h := int(qh[ib])
		for l := 0; l < 4; l++ {
			k := 2 * l
			g := uint64(quant.IQ3SGrid(int(qs[8*ib+k])|(h<<(8-uint(k)))&256)) |
				uint64(quant.IQ3SGrid(int(qs[8*ib+k+1])|(h<<(7-uint(k)))&256))<<32
			v := applySigns(g, signMask8[signs[4*ib+l]])
			binary.LittleEndian.PutUint64(qBytes(q, 32*ib+8*l), v)
		}
	}
	return ldF16(xb)
}

// tq1Digit is the base-3 digit that ggml_vec_dot_tq1_0_q8_K extracts from
// byte b times pow3 (mod 256): the kernel's _mm256_subs_epu8(q, 1), avg(q,
// avg(q, 0)) and top two bits equal dequantize_row_tq1_0's (q*3) >> 8 on
// every byte (checked over all 256).
func tq1Digit(b, pow3 uint8) int8 {
	q := b * pow3
	return int8((uint16(q) * 3) >> 8)
}

// decodeTQ1Block writes the 256 digits (0..2, the value plus one) of the
// TQ1_0 block xb (54 bytes: qs[48], qh[4], d f16) in Q8_K order: chunks
// 0-4 are digit n of qs[0:32]; then digit n of qs[32:48] for 16 values
// each; then digit n of qh[j] at 240+4n+j. It returns d.
func decodeTQ1Block(xb []byte, q *[256]int8) float32 {
	pow3 := [5]uint8{1, 3, 9, 27, 81}
	qs, qh := xb[0:48], xb[48:52]
	k := 0
	for n := 0; n < 5; n++ {
		for m := 0; m < 32; m++ {
			q[k] = tq1Digit(qs[m], pow3[n])
			k++
		}
	}
	for n := 0; n < 5; n++ {
		for m := 0; m < 16; m++ {
			q[k] = tq1Digit(qs[32+m], pow3[n])
			k++
		}
	}
	for n := 0; n < 4; n++ {
		for j := 0; j < 4; j++ {
			q[k] = tq1Digit(qh[j], pow3[n])
			k++
		}
	}
	return ldF16(xb[52:])
}

// decodeTQ2Block writes the 256 2-bit values (0..3, the value plus one)
// of the TQ2_0 block xb (66 bytes: qs[64], d f16): value 128h+32l+m is
// bits 2l..2l+1 of qs[32h+m]. It returns d.
func decodeTQ2Block(xb []byte, q *[256]int8) float32 {
	for h := 0; h < 2; h++ {
		for l := 0; l < 4; l++ {
			for m := 0; m < 32; m += 8 { // eight values at a time
				w := binary.LittleEndian.Uint64(xb[32*h+m:]) >> (2 * uint(l)) & 0x0303030303030303
				binary.LittleEndian.PutUint64(qBytes(q, 128*h+32*l+m), w)
			}
		}
	}
	return ldF16(xb[64:])
}

// dotIQ3XXS is ggml_vec_dot_iq3_xxs_q8_K (AVX2): per super-block d =
// x.d*y.d, int32 lane l sums (2ls+1)·Σ q·q8 over bytes 4l..4l+3 of each
// 32-value sub-block (the sign on q8, _mm256_sign_epi8), acc[l] = fma(d,
// lane, acc[l]); the result is 0.25f * hsum_float_8(acc).
func dotIQ3XXS(n int, x, y []byte) float32 {
	return dotIQ3Go(n, x, y, 98, decodeIQ3XXSBlock) * 0.25
}

// dotIQ3S is ggml_vec_dot_iq3_s_q8_K (AVX2): dotIQ3XXS's lanes for IQ3_S,
// without the factor 0.25.
func dotIQ3S(n int, x, y []byte) float32 {
	return dotIQ3Go(n, x, y, 110, decodeIQ3SBlock)
}

// dotIQ3Go is the portable shape of both IQ3 kernels.
func dotIQ3Go(n int, x, y []byte, bs int, decode func([]byte, *[256]int8, *[8]int32) float32) float32 {
	var acc [8]float32
	var q [256]int8
	var sc [8]int32
	for i := 0; i < n/256; i++ {
		d := decode(x[i*bs:(i+1)*bs], &q, &sc)
		yd, yq, _ := q8K(y[i*292 : i*292+292])
		d *= yd
		var lane [8]int32
		for ib := 0; ib < 8; ib++ {
			for l := 0; l < 8; l++ {
				var s int32
				for b := 32*ib + 4*l; b < 32*ib+4*l+4; b++ {
					s += mulSign8(q[b], int8(yq[b]))
				}
				lane[l] += sc[ib] * s
			}
		}
		for l := range acc {
			acc[l] = fma32(d, float32(lane[l]), acc[l])
		}
	}
	return hsum8(&acc)
}

// dotTQ1_0 is ggml_vec_dot_tq1_0_q8_K (AVX2): per super-block d =
// y.d*x.d; int32 lane l sums digit·q8 over bytes 4l..4l+3 of every
// 32-value chunk minus bsums[2l] + bsums[2l+1] (the digits are the values
// plus one; the kernel subtracts the Q8_K block sums lane by lane, which
// moves sums between lanes but keeps their total); acc[l] = fma(lane, d,
// acc[l]) (GCC's contraction); hsum_float_8.
func dotTQ1_0(n int, x, y []byte) float32 { return dotTQGo(n, x, y, 54, decodeTQ1Block) }

// dotTQ2_0 is ggml_vec_dot_tq2_0_q8_K (AVX2): dotTQ1_0's lanes for the
// 2-bit values of TQ2_0.
func dotTQ2_0(n int, x, y []byte) float32 { return dotTQGo(n, x, y, 66, decodeTQ2Block) }

// dotTQGo is the portable shape of both TQ kernels.
func dotTQGo(n int, x, y []byte, bs int, decode func([]byte, *[256]int8) float32) float32 {
	var acc [8]float32
	var q [256]int8
	for i := 0; i < n/256; i++ {
		dx := decode(x[i*bs:(i+1)*bs], &q)
		yd, yq, bsums := q8K(y[i*292 : i*292+292])
		d := yd * dx
		for l := range acc {
			var s int32
			for c := 0; c < 8; c++ {
				for b := 32*c + 4*l; b < 32*c+4*l+4; b++ {
					s += int32(q[b]) * int32(int8(yq[b]))
				}
			}
			s -= int32(int16(binary.LittleEndian.Uint16(bsums[4*l:]))) + int32(int16(binary.LittleEndian.Uint16(bsums[4*l+2:])))
			acc[l] = fma32(float32(s), d, acc[l])
		}
	}
	return hsum8(&acc)
}

// decodeIQ3TQRow decodes the IQ3_XXS, IQ3_S, TQ1_0 or TQ2_0 row x into
// meta for k8RowAVX2 (one per 256 values): the values as int8 (TQ: the
// digits 0..2, unsigned), each sub-block's scale in all 16 lanes (TQ: 1),
// x.d, and for TQ the sixteen mins 1 that k8SubBsums pairs the block sums
// with.
func decodeIQ3TQRow(t quant.Type, x []byte, meta []k8BlockMeta) {
	bs := t.BlockBytes()
	var sc [8]int32
	for i := range meta {
		m := &meta[i]
		xb := x[i*bs : (i+1)*bs]
		switch t {
		case quant.IQ3_XXS, quant.IQ3_S:
			if t == quant.IQ3_XXS {
				m.d = decodeIQ3XXSBlock(xb, &m.q, &sc)
			} else {
				m.d = decodeIQ3SBlock(xb, &m.q, &sc)
			}
			for ib := range sc {
				m.sv[ib] = scales16(int16(sc[ib]), int16(sc[ib]))
			}
		default:
			if t == quant.TQ1_0 {
				m.d = decodeTQ1Block(xb, &m.q)
			} else {
				m.d = decodeTQ2Block(xb, &m.q)
			}
			for ib := range m.sv {
				m.sv[ib] = scales16(1, 1)
			}
			for j := range m.mins {
				m.mins[j] = 1
			}
		}
	}
}
