package quant

//go:generate go run iqtables_gen.go

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
)

// Dequantization, bit-identical to ggml's to_float.
//
// Every decoder below is a port of the ggml function named in its comment
// (ggml-quants.c dequantize_row_*, ggml.c ggml_fp16_to_fp32_row and
// ggml_bf16_to_fp32_row, llama.cpp ec98e2002). The float32 operations are
// kept in the C order, so each value is rounded exactly where C rounds it.
//
// On fused multiply-add: the llama.cpp build compiles ggml-quants.c with
// -O3 -march=native and GCC's default -ffp-contract=fast, so on this FMA
// machine the a*b+c forms of Q4_1, Q5_1, Q2_K, Q4_K and Q5_K become
// vfmadd/vfmsub/vfnmadd instructions. In all of them the product is exact in
// float32 (a float16 times a small integer, at most 23 significant bits), so
// fusing cannot change a result and the plain Go expressions below are
// bit-identical to either build. The other decoders have no a*b+c (checked
// on the object code: objdump shows no FMA in any other dequantize_row_*).
//
// NaN and Inf scales decode to the same bits as in ggml too (the
// differential tests feed random bytes, NaN scales included), with one
// exception: a Q2_K block whose d and dmin are both NaN. There ggml's fused
// -(dmin*m) + dl*q meets two NaNs, and which one an FMA returns is up to the
// CPU (AMD Zen 3 returns dmin's); Go returns d's. Both are NaN.

// CanDequantize reports whether Dequantize supports t: F32, F16, BF16 and
// every block type ggml can convert to float (all quantized types except
// Q8_1, which ggml only uses for activations).
func CanDequantize(t Type) bool { return dequantFunc(t) != nil }

// Dequantize decodes src, which must hold exactly len(dst) values of type t
// in ggml's layout, into dst, as ggml's type_traits[t].to_float does.
// len(dst) must be a multiple of t.BlockSize(). It returns an error, and
// writes nothing, when t has no decoder or the lengths do not match.
func Dequantize(t Type, src []byte, dst []float32) error {
	dec := dequantFunc(t)
	if dec == nil {
		return fmt.Errorf("dequantize: no decoder for tensor type %s", t)
	}
	bs, bb := t.BlockSize(), t.BlockBytes()
	if len(dst)%bs != 0 {
		return fmt.Errorf("dequantize %s: %d values are not a multiple of the block size %d", t, len(dst), bs)
	}
	nb := len(dst) / bs
	if len(src) != nb*bb {
		return fmt.Errorf("dequantize %s: %d values need %d bytes (%d blocks of %d values in %d bytes), got %d bytes",
			t, len(dst), nb*bb, nb, bs, bb, len(src))
	}
	dec(src, dst)
	return nil
}

// DequantizeRow decodes row number row of a tensor of type t whose rows hold
// len(dst) values each (a weight with ne = {len(dst), nrows}: row r is the
// weights of output r), stored contiguously in data, into dst.
// data may hold more rows than row+1; it must hold at least that many.
func DequantizeRow(t Type, data []byte, row int, dst []float32) error {
	if !CanDequantize(t) {
		return fmt.Errorf("dequantize row %d: no decoder for tensor type %s", row, t)
	}
	rb, err := t.RowBytes(int64(len(dst)))
	if err != nil {
		return fmt.Errorf("dequantize row %d: %w", row, err)
	}
	if row < 0 {
		return fmt.Errorf("dequantize %s: negative row index %d", t, row)
	}
	if rb == 0 { // empty row
		return nil
	}
	if int64(row) >= int64(len(data))/rb {
		return fmt.Errorf("dequantize %s: row %d of %d bytes ends at byte %d, beyond the %d bytes of data",
			t, row, rb, (int64(row)+1)*rb, len(data))
	}
	off := int64(row) * rb
	if err := Dequantize(t, data[off:off+rb], dst); err != nil {
		return fmt.Errorf("row %d: %w", row, err)
	}
	return nil
}

// dequantFunc returns the whole-block decoder of t, or nil. A decoder is called
// with len(src) == nb*t.BlockBytes() and len(dst) == nb*t.BlockSize().
func dequantFunc(t Type) func(src []byte, dst []float32) {
	switch t {
	case F32:
		return dqF32
	case F16:
		return dqF16
	case BF16:
		return dqBF16
	case Q4_0:
		return dqQ4_0
	case Q4_1:
		return dqQ4_1
	case Q5_0:
		return dqQ5_0
	case Q5_1:
		return dqQ5_1
	case Q8_0:
		return dqQ8_0
	case MXFP4:
		return dqMXFP4
	case Q2_K:
		return dqQ2_K
	case Q3_K:
		return dqQ3_K
	case Q4_K:
		return dqQ4_K
	case Q5_K:
		return dqQ5_K
	case Q6_K:
		return dqQ6_K
	case Q8_K:
		return dqQ8_K
	case TQ1_0:
		return dqTQ1_0
	case TQ2_0:
		return dqTQ2_0
	case IQ2_XXS:
		return dqIQ2_XXS
	case IQ2_XS:
		return dqIQ2_XS
	case IQ2_S:
		return dqIQ2_S
	case IQ3_XXS:
		return dqIQ3_XXS
	case IQ3_S:
		return dqIQ3_S
	case IQ1_S:
		return dqIQ1_S
	case IQ1_M:
		return dqIQ1_M
	case IQ4_NL:
		return dqIQ4_NL
	case IQ4_XS:
		return dqIQ4_XS
	}
	return nil
}

// dqLoadF16 reads a little-endian float16 at b[0:2].
func dqLoadF16(b []byte) float32 { return F16ToF32(binary.LittleEndian.Uint16(b)) }

// dqSigned applies a sign bit: v*(set ? -1.f : 1.f) in ggml's source. GCC
// compiles that multiply to a sign flip (XOR), which differs from a multiply
// only for NaN (a multiply by -1 keeps the NaN's sign); Go's negation is the
// same XOR, so NaN bits match too.
func dqSigned(v float32, set bool) float32 {
	if set {
		return -v
	}
	return v
}

func dqF32(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

// f16Table holds F16ToF32 of every float16, built on first use (256 KiB):
// a lookup is faster than the bit manipulation, and ggml-cpu keeps the same
// table (ggml_table_f32_f16).
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for h := range t {
		t[h] = F16ToF32(uint16(h))
	}
	return &t
})

// dqF16 is ggml_fp16_to_fp32_row.
func dqF16(src []byte, dst []float32) {
	tab := f16Table()
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = tab[uint16(src[2*i])|uint16(src[2*i+1])<<8]
	}
}

// dqBF16 is ggml_bf16_to_fp32_row.
func dqBF16(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

// dqQ4_0 is dequantize_row_q4_0. Block (18 bytes): d f16, qs[16]; value
// j is low nibble of qs[j] (j < 16) or high nibble of qs[j-16], minus 8.
func dqQ4_0(src []byte, dst []float32) {
	for i := 0; i < len(dst)/32; i++ {
		b := src[18*i : 18*i+18]
		y := dst[32*i : 32*i+32]
		d := dqLoadF16(b)
		qs := b[2:18]
		for j := 0; j < 16; j++ {
			x0 := int32(qs[j]&0x0F) - 8
			x1 := int32(qs[j]>>4) - 8
			y[j] = float32(x0) * d
			y[j+16] = float32(x1) * d
		}
	}
}

// dqQ4_1 is dequantize_row_q4_1. Block (20 bytes): d f16, m f16, qs[16].
func dqQ4_1(src []byte, dst []float32) {
	for i := 0; i < len(dst)/32; i++ {
		b := src[20*i : 20*i+20]
		y := dst[32*i : 32*i+32]
		d, m := dqLoadF16(b), dqLoadF16(b[2:])
		qs := b[4:20]
		for j := 0; j < 16; j++ {
			y[j] = float32(qs[j]&0x0F)*d + m
			y[j+16] = float32(qs[j]>>4)*d + m
		}
	}
}

// dqQ5_0 is dequantize_row_q5_0. Block (22 bytes): d f16, qh u32 (the
// fifth bit of each value), qs[16]; values minus 16.
func dqQ5_0(src []byte, dst []float32) {
	for i := 0; i < len(dst)/32; i++ {
		b := src[22*i : 22*i+22]
		y := dst[32*i : 32*i+32]
		d := dqLoadF16(b)
		qh := binary.LittleEndian.Uint32(b[2:])
		qs := b[6:22]
		for j := 0; j < 16; j++ {
			xh0 := uint8((qh>>uint(j))<<4) & 0x10
			xh1 := uint8(qh>>uint(j+12)) & 0x10
			x0 := int32(qs[j]&0x0F|xh0) - 16
			x1 := int32(qs[j]>>4|xh1) - 16
			y[j] = float32(x0) * d
			y[j+16] = float32(x1) * d
		}
	}
}

// dqQ5_1 is dequantize_row_q5_1. Block (24 bytes): d f16, m f16, qh u32,
// qs[16].
func dqQ5_1(src []byte, dst []float32) {
	for i := 0; i < len(dst)/32; i++ {
		b := src[24*i : 24*i+24]
		y := dst[32*i : 32*i+32]
		d, m := dqLoadF16(b), dqLoadF16(b[2:])
		qh := binary.LittleEndian.Uint32(b[4:])
		qs := b[8:24]
		for j := 0; j < 16; j++ {
			xh0 := uint8((qh>>uint(j))<<4) & 0x10
			xh1 := uint8(qh>>uint(j+12)) & 0x10
			x0 := qs[j]&0x0F | xh0
			x1 := qs[j]>>4 | xh1
			y[j] = float32(x0)*d + m
			y[j+16] = float32(x1)*d + m
		}
	}
}

// dqQ8_0 is dequantize_row_q8_0. Block (34 bytes): d f16, int8 qs[32].
func dqQ8_0(src []byte, dst []float32) {
	for i := 0; i < len(dst)/32; i++ {
		b := src[34*i : 34*i+34]
		y := dst[32*i : 32*i+32]
		d := dqLoadF16(b)
		for j, q := range b[2:34] {
			y[j] = float32(int8(q)) * d
		}
	}
}

// dqE8M0Half is ggml_e8m0_to_fp32_half: 2^(x-128) as a float32 (x < 2 gives
// the subnormals 2^-128 and 2^-127).
func dqE8M0Half(x uint8) float32 {
	if x < 2 {
		return math.Float32frombits(0x00200000 << x)
	}
	return math.Float32frombits(uint32(x-1) << 23)
}

// dqMXFP4 is dequantize_row_mxfp4. Block (17 bytes): e (E8M0 exponent),
// qs[16] of E2M1 codes (kvalues_mxfp4 holds them doubled, hence the half
// scale).
func dqMXFP4(src []byte, dst []float32) {
	for i := 0; i < len(dst)/32; i++ {
		b := src[17*i : 17*i+17]
		y := dst[32*i : 32*i+32]
		d := dqE8M0Half(b[0])
		qs := b[1:17]
		for j := 0; j < 16; j++ {
			y[j] = float32(kvaluesMXFP4[qs[j]&0x0F]) * d
			y[j+16] = float32(kvaluesMXFP4[qs[j]>>4]) * d
		}
	}
}

// dqQ2_K is dequantize_row_q2_K. Block (84 bytes): scales[16] (low
// nibble scale, high nibble min), qs[64] (2-bit), d f16, dmin f16.
func dqQ2_K(src []byte, dst []float32) {
	for i := 0; i < len(dst)/256; i++ {
		b := src[84*i : 84*i+84]
		y := dst[256*i : 256*i+256]
		scales := b[0:16]
		d, min := dqLoadF16(b[80:]), dqLoadF16(b[82:])
		is, k := 0, 0
		for n := 0; n < 2; n++ {
			q := b[16+32*n : 16+32*n+32]
			for shift := uint(0); shift < 8; shift += 2 {
				for half := 0; half < 2; half++ {
					sc := scales[is]
					is++
					dl := d * float32(sc&0xF)
					ml := min * float32(sc>>4)
					for l := 0; l < 16; l++ {
						y[k] = dl*float32((q[16*half+l]>>shift)&3) - ml
						k++
					}
				}
			}
		}
	}
}

// dqQ3_K is dequantize_row_q3_K. Block (110 bytes): hmask[32] (high bit,
// set means +0, clear means -4), qs[64] (low 2 bits), scales[12] (sixteen
// 6-bit scales, biased by 32), d f16.
func dqQ3_K(src []byte, dst []float32) {
	const kmask1, kmask2 = 0x03030303, 0x0f0f0f0f
	for i := 0; i < len(dst)/256; i++ {
		b := src[110*i : 110*i+110]
		y := dst[256*i : 256*i+256]
		hm := b[0:32]
		dAll := dqLoadF16(b[108:])
		var aux [4]uint32
		for k := 0; k < 3; k++ {
			aux[k] = binary.LittleEndian.Uint32(b[96+4*k:])
		}
		tmp := aux[2]
		aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4)
		aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4)
		aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4)
		aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4)
		var scales [16]int8
		for k := range scales {
			scales[k] = int8(aux[k/4] >> (8 * uint(k%4)))
		}
		is, k := 0, 0
		m := uint8(1)
		for n := 0; n < 2; n++ {
			q := b[32+32*n : 32+32*n+32]
			for shift := uint(0); shift < 8; shift += 2 {
				for half := 0; half < 2; half++ {
					dl := dAll * float32(int32(scales[is])-32)
					is++
					for l := 0; l < 16; l++ {
						v := int32((q[16*half+l] >> shift) & 3)
						if hm[16*half+l]&m == 0 {
							v -= 4
						}
						y[k] = dl * float32(v)
						k++
					}
				}
				m <<= 1
			}
		}
	}
}

// dqScaleMinK4 is get_scale_min_k4: the 6-bit scale and min of sub-block j of a
// Q4_K/Q5_K block from its 12 packed bytes.
func dqScaleMinK4(j int, q []byte) (d, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return (q[j+4] & 0xF) | ((q[j-4] >> 6) << 4), (q[j+4] >> 4) | ((q[j] >> 6) << 4)
}

// dqQ4_K is dequantize_row_q4_K. Block (144 bytes): d f16, dmin f16,
// scales[12], qs[128] (four pairs of 32-value sub-blocks: low nibbles, then
// high nibbles).
func dqQ4_K(src []byte, dst []float32) {
	for i := 0; i < len(dst)/256; i++ {
		b := src[144*i : 144*i+144]
		y := dst[256*i : 256*i+256]
		d, min := dqLoadF16(b), dqLoadF16(b[2:])
		scales := b[4:16]
		for j := 0; j < 4; j++ {
			q := b[16+32*j : 16+32*j+32]
			sc, m := dqScaleMinK4(2*j, scales)
			d1, m1 := d*float32(sc), min*float32(m)
			sc, m = dqScaleMinK4(2*j+1, scales)
			d2, m2 := d*float32(sc), min*float32(m)
			yy := y[64*j : 64*j+64]
			for l := 0; l < 32; l++ {
				yy[l] = d1*float32(q[l]&0xF) - m1
			}
			for l := 0; l < 32; l++ {
				yy[32+l] = d2*float32(q[l]>>4) - m2
			}
		}
	}
}

// dqQ5_K is dequantize_row_q5_K. Block (176 bytes): d f16, dmin f16,
// scales[12], qh[32] (fifth bits), qs[128].
func dqQ5_K(src []byte, dst []float32) {
	for i := 0; i < len(dst)/256; i++ {
		b := src[176*i : 176*i+176]
		y := dst[256*i : 256*i+256]
		d, min := dqLoadF16(b), dqLoadF16(b[2:])
		scales := b[4:16]
		qh := b[16:48]
		u1, u2 := uint8(1), uint8(2)
		for j := 0; j < 4; j++ {
			ql := b[48+32*j : 48+32*j+32]
			sc, m := dqScaleMinK4(2*j, scales)
			d1, m1 := d*float32(sc), min*float32(m)
			sc, m = dqScaleMinK4(2*j+1, scales)
			d2, m2 := d*float32(sc), min*float32(m)
			yy := y[64*j : 64*j+64]
			for l := 0; l < 32; l++ {
				v := int32(ql[l] & 0xF)
				if qh[l]&u1 != 0 {
					v += 16
				}
				yy[l] = d1*float32(v) - m1
			}
			for l := 0; l < 32; l++ {
				v := int32(ql[l] >> 4)
				if qh[l]&u2 != 0 {
					v += 16
				}
				yy[32+l] = d2*float32(v) - m2
			}
			u1 <<= 2
			u2 <<= 2
		}
	}
}

// dqQ6_K is dequantize_row_q6_K. Block (210 bytes): ql[128] (low 4 bits),
// qh[64] (high 2 bits), int8 scales[16], d f16; values minus 32.
// Each value is (d*scale)*q, two roundings, in that order.
func dqQ6_K(src []byte, dst []float32) {
	for i := 0; i < len(dst)/256; i++ {
		b := src[210*i : 210*i+210]
		d := dqLoadF16(b[208:])
		for n := 0; n < 2; n++ {
			y := dst[256*i+128*n : 256*i+128*n+128]
			ql := b[64*n : 64*n+64]
			qh := b[128+32*n : 128+32*n+32]
			sc := b[192+8*n : 192+8*n+8]
			for l := 0; l < 32; l++ {
				is := l / 16
				q1 := int32(ql[l]&0xF|((qh[l]>>0)&3)<<4) - 32
				q2 := int32(ql[l+32]&0xF|((qh[l]>>2)&3)<<4) - 32
				q3 := int32(ql[l]>>4|((qh[l]>>4)&3)<<4) - 32
				q4 := int32(ql[l+32]>>4|((qh[l]>>6)&3)<<4) - 32
				y[l] = d * float32(int8(sc[is])) * float32(q1)
				y[l+32] = d * float32(int8(sc[is+2])) * float32(q2)
				y[l+64] = d * float32(int8(sc[is+4])) * float32(q3)
				y[l+96] = d * float32(int8(sc[is+6])) * float32(q4)
			}
		}
	}
}

// dqQ8_K is dequantize_row_q8_K. Block (292 bytes): d f32, int8 qs[256],
// int16 bsums[16] (unused here).
func dqQ8_K(src []byte, dst []float32) {
	for i := 0; i < len(dst)/256; i++ {
		b := src[292*i : 292*i+292]
		y := dst[256*i : 256*i+256]
		d := math.Float32frombits(binary.LittleEndian.Uint32(b))
		for j, q := range b[4:260] {
			y[j] = d * float32(int8(q))
		}
	}
}

// dqTQ1Value is one base-3 digit of a TQ1_0 byte as dequantize_row_tq1_0 reads
// it: the byte is a fixed-point fraction, q*3^n keeps the digits from n on,
// and (q*3)>>8 is the leading one.
func dqTQ1Value(b, pow3 uint8, d float32) float32 {
	q := b * pow3 // wraps mod 256, as uint8_t in C
	xi := int16((uint16(q) * 3) >> 8)
	return float32(xi-1) * d
}

// dqTQ1_0 is dequantize_row_tq1_0. Block (54 bytes): qs[48] (five
// ternary digits per byte), qh[4] (four per byte), d f16.
func dqTQ1_0(src []byte, dst []float32) {
	pow3 := [6]uint8{1, 3, 9, 27, 81, 243}
	for i := 0; i < len(dst)/256; i++ {
		b := src[54*i : 54*i+54]
		y := dst[256*i : 256*i+256]
		qs, qh := b[0:48], b[48:52]
		d := dqLoadF16(b[52:])
		k := 0
		for n := 0; n < 5; n++ { // qs[0:32], 32 at a time
			for m := 0; m < 32; m++ {
				y[k] = dqTQ1Value(qs[m], pow3[n], d)
				k++
			}
		}
		for n := 0; n < 5; n++ { // qs[32:48], 16 at a time
			for m := 0; m < 16; m++ {
				y[k] = dqTQ1Value(qs[32+m], pow3[n], d)
				k++
			}
		}
		for n := 0; n < 4; n++ {
			for j := 0; j < 4; j++ {
				y[k] = dqTQ1Value(qh[j], pow3[n], d)
				k++
			}
		}
	}
}

// dqTQ2_0 is dequantize_row_tq2_0. Block (66 bytes): qs[64] (2 bits per
// value, minus 1), d f16.
func dqTQ2_0(src []byte, dst []float32) {
	for i := 0; i < len(dst)/256; i++ {
		b := src[66*i : 66*i+66]
		y := dst[256*i : 256*i+256]
		d := dqLoadF16(b[64:])
		k := 0
		for j := 0; j < 64; j += 32 {
			for l := uint(0); l < 4; l++ {
				for m := 0; m < 32; m++ {
					q := int8((b[j+m] >> (2 * l)) & 3)
					y[k] = float32(q-1) * d
					k++
				}
			}
		}
	}
}

// dqIQ2_XXS is dequantize_row_iq2_xxs. Block (66 bytes): d f16, then per
// 32 values two u32: four 8-bit grid indices, and four 7-bit sign groups plus
// a 4-bit scale in the top bits.
func dqIQ2_XXS(src []byte, dst []float32) {
	for i := 0; i < len(dst)/256; i++ {
		b := src[66*i : 66*i+66]
		y := dst[256*i : 256*i+256]
		d := dqLoadF16(b)
		for ib32 := 0; ib32 < 8; ib32++ {
			aux8 := b[2+8*ib32 : 2+8*ib32+4]
			aux1 := binary.LittleEndian.Uint32(b[2+8*ib32+4:])
			db := d * (0.5 + float32(aux1>>28)) * 0.25
			for l := 0; l < 4; l++ {
				grid := iq2xxsGrid[aux8[l]]
				signs := ksignsIQ2XS[(aux1>>(7*uint(l)))&127]
				yy := y[32*ib32+8*l : 32*ib32+8*l+8]
				for j := 0; j < 8; j++ {
					yy[j] = dqSigned(db*float32(uint8(grid>>(8*uint(j)))), signs&kmaskIQ2XS[j] != 0)
				}
			}
		}
	}
}

// dqIQ2_XS is dequantize_row_iq2_xs. Block (74 bytes): d f16, qs u16[32]
// (9-bit grid index, 7-bit signs), scales[8] (two 4-bit scales each).
func dqIQ2_XS(src []byte, dst []float32) {
	for i := 0; i < len(dst)/256; i++ {
		b := src[74*i : 74*i+74]
		y := dst[256*i : 256*i+256]
		d := dqLoadF16(b)
		scales := b[66:74]
		for ib32 := 0; ib32 < 8; ib32++ {
			db := [2]float32{
				d * (0.5 + float32(scales[ib32]&0xf)) * 0.25,
				d * (0.5 + float32(scales[ib32]>>4)) * 0.25,
			}
			for l := 0; l < 4; l++ {
				q := binary.LittleEndian.Uint16(b[2+2*(4*ib32+l):])
				grid := iq2xsGrid[q&511]
				signs := ksignsIQ2XS[q>>9]
				yy := y[32*ib32+8*l : 32*ib32+8*l+8]
				for j := 0; j < 8; j++ {
					yy[j] = dqSigned(db[l/2]*float32(uint8(grid>>(8*uint(j)))), signs&kmaskIQ2XS[j] != 0)
				}
			}
		}
	}
}

// dqIQ2_S is dequantize_row_iq2_s. Block (82 bytes): d f16, qs[32] (grid
// index low bits), signs[32], qh[8] (grid index high bits), scales[8].
func dqIQ2_S(src []byte, dst []float32) {
	for i := 0; i < len(dst)/256; i++ {
		b := src[82*i : 82*i+82]
		y := dst[256*i : 256*i+256]
		d := dqLoadF16(b)
		qs, signs := b[2:34], b[34:66]
		qh, scales := b[66:74], b[74:82]
		for ib32 := 0; ib32 < 8; ib32++ {
			db := [2]float32{
				d * (0.5 + float32(scales[ib32]&0xf)) * 0.25,
				d * (0.5 + float32(scales[ib32]>>4)) * 0.25,
			}
			for l := 0; l < 4; l++ {
				dl := db[l/2]
				idx := int(qs[4*ib32+l]) | (int(qh[ib32])<<(8-2*uint(l)))&0x300
				grid := iq2sGrid[idx]
				s := signs[4*ib32+l]
				yy := y[32*ib32+8*l : 32*ib32+8*l+8]
				for j := 0; j < 8; j++ {
					yy[j] = dqSigned(dl*float32(uint8(grid>>(8*uint(j)))), s&kmaskIQ2XS[j] != 0)
				}
			}
		}
	}
}

// dqIQ3_XXS is dequantize_row_iq3_xxs. Block (98 bytes): d f16, qs[64]
// (8-bit indices into iq3xxs_grid, two per 8 values), then per 32 values a u32
// of four 7-bit sign groups and a 4-bit scale.
func dqIQ3_XXS(src []byte, dst []float32) {
	for i := 0; i < len(dst)/256; i++ {
		b := src[98*i : 98*i+98]
		y := dst[256*i : 256*i+256]
		d := dqLoadF16(b)
		qs := b[2:66]
		ss := b[66:98]
		for ib32 := 0; ib32 < 8; ib32++ {
			aux := binary.LittleEndian.Uint32(ss[4*ib32:])
			db := d * (0.5 + float32(aux>>28)) * 0.5
			q := qs[8*ib32 : 8*ib32+8]
			for l := 0; l < 4; l++ {
				signs := ksignsIQ2XS[(aux>>(7*uint(l)))&127]
				g1, g2 := iq3xxsGrid[q[2*l]], iq3xxsGrid[q[2*l+1]]
				yy := y[32*ib32+8*l : 32*ib32+8*l+8]
				for j := 0; j < 4; j++ {
					yy[j] = dqSigned(db*float32(uint8(g1>>(8*uint(j)))), signs&kmaskIQ2XS[j] != 0)
					yy[j+4] = dqSigned(db*float32(uint8(g2>>(8*uint(j)))), signs&kmaskIQ2XS[j+4] != 0)
				}
			}
		}
	}
}

// dqIQ3_S is dequantize_row_iq3_s. Block (110 bytes): d f16, qs[64] (grid
// index low bits), qh[8] (ninth bits), signs[32], scales[4] (two 4-bit
// scales each, for 32 values apiece).
func dqIQ3_S(src []byte, dst []float32) {
	for i := 0; i < len(dst)/256; i++ {
		b := src[110*i : 110*i+110]
		y := dst[256*i : 256*i+256]
		d := dqLoadF16(b)
		qs, qh, signs, scales := b[2:66], b[66:74], b[74:106], b[106:110]
		k := 0
		for ib32 := 0; ib32 < 8; ib32 += 2 {
			db := [2]float32{
				d * float32(1+2*int32(scales[ib32/2]&0xf)),
				d * float32(1+2*int32(scales[ib32/2]>>4)),
			}
			for h := 0; h < 2; h++ {
				q := qs[8*(ib32+h) : 8*(ib32+h)+8]
				s := signs[4*(ib32+h) : 4*(ib32+h)+4]
				hb := int(qh[ib32+h])
				for l := 0; l < 4; l++ {
					g1 := iq3sGrid[int(q[2*l])|(hb<<(8-2*uint(l)))&256]
					g2 := iq3sGrid[int(q[2*l+1])|(hb<<(7-2*uint(l)))&256]
					for j := 0; j < 4; j++ {
						y[k+j] = dqSigned(db[h]*float32(uint8(g1>>(8*uint(j)))), s[l]&kmaskIQ2XS[j] != 0)
						y[k+j+4] = dqSigned(db[h]*float32(uint8(g2>>(8*uint(j)))), s[l]&kmaskIQ2XS[j+4] != 0)
					}
					k += 8
				}
			}
		}
	}
}

// dqIQ1Delta is IQ1S_DELTA and IQ1M_DELTA.
const dqIQ1Delta = float32(0.125)

// dqIQ1_S is dequantize_row_iq1_s. Block (50 bytes): d f16, qs[32] (grid
// index low bits), qh u16[8] (3 high index bits per 8 values, a 3-bit scale,
// and the sign of the delta).
func dqIQ1_S(src []byte, dst []float32) {
	for i := 0; i < len(dst)/256; i++ {
		b := src[50*i : 50*i+50]
		y := dst[256*i : 256*i+256]
		d := dqLoadF16(b)
		qs := b[2:34]
		for ib := 0; ib < 8; ib++ {
			qh := binary.LittleEndian.Uint16(b[34+2*ib:])
			dl := d * float32(2*((qh>>12)&7)+1)
			delta := dqIQ1Delta
			if qh&0x8000 != 0 {
				delta = -dqIQ1Delta
			}
			for l := 0; l < 4; l++ {
				grid := iq1sGrid[int(qs[4*ib+l])|int((qh>>(3*uint(l)))&7)<<8]
				yy := y[32*ib+8*l : 32*ib+8*l+8]
				for j := 0; j < 8; j++ {
					yy[j] = dl * (float32(int8(grid>>(8*uint(j)))) + delta)
				}
			}
		}
	}
}

// dqIQ1_M is dequantize_row_iq1_m. Block (56 bytes): qs[32], qh[16] (high
// index bits and delta signs), scales[8] read as u16[4]: 3-bit sub-block
// scales, with the f16 super-block scale spread over their top nibbles.
func dqIQ1_M(src []byte, dst []float32) {
	for i := 0; i < len(dst)/256; i++ {
		b := src[56*i : 56*i+56]
		y := dst[256*i : 256*i+256]
		var sc [4]uint16
		for k := range sc {
			sc[k] = binary.LittleEndian.Uint16(b[48+2*k:])
		}
		d := F16ToF32((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000))
		qs, qhAll := b[0:32], b[32:48]
		for ib := 0; ib < 8; ib++ {
			shift := 6 * uint(ib%2)
			dl1 := d * float32(2*((sc[ib/2]>>shift)&0x7)+1)
			dl2 := d * float32(2*((sc[ib/2]>>(shift+3))&0x7)+1)
			q, qh := qs[4*ib:4*ib+4], qhAll[2*ib:2*ib+2]
			idx := [4]int{
				int(q[0]) | (int(qh[0])<<8)&0x700,
				int(q[1]) | (int(qh[0])<<4)&0x700,
				int(q[2]) | (int(qh[1])<<8)&0x700,
				int(q[3]) | (int(qh[1])<<4)&0x700,
			}
			var delta [4]float32
			for l, bit := range [4]uint8{qh[0] & 0x08, qh[0] & 0x80, qh[1] & 0x08, qh[1] & 0x80} {
				delta[l] = dqIQ1Delta
				if bit != 0 {
					delta[l] = -dqIQ1Delta
				}
			}
			for l := 0; l < 4; l++ {
				dl := dl1
				if l >= 2 {
					dl = dl2
				}
				grid := iq1sGrid[idx[l]]
				yy := y[32*ib+8*l : 32*ib+8*l+8]
				for j := 0; j < 8; j++ {
					yy[j] = dl * (float32(int8(grid>>(8*uint(j)))) + delta[l])
				}
			}
		}
	}
}

// dqIQ4_NL is dequantize_row_iq4_nl. Block (18 bytes): d f16, qs[16] of
// 4-bit indices into kvalues_iq4nl (low nibbles first, as Q4_0).
func dqIQ4_NL(src []byte, dst []float32) {
	for i := 0; i < len(dst)/32; i++ {
		b := src[18*i : 18*i+18]
		y := dst[32*i : 32*i+32]
		d := dqLoadF16(b)
		qs := b[2:18]
		for j := 0; j < 16; j++ {
			y[j] = d * float32(kvaluesIQ4NL[qs[j]&0xf])
			y[j+16] = d * float32(kvaluesIQ4NL[qs[j]>>4])
		}
	}
}

// dqIQ4_XS is dequantize_row_iq4_xs. Block (136 bytes): d f16, scales_h
// u16 (high 2 bits of eight 6-bit scales), scales_l[4] (low 4 bits), qs[128].
func dqIQ4_XS(src []byte, dst []float32) {
	for i := 0; i < len(dst)/256; i++ {
		b := src[136*i : 136*i+136]
		y := dst[256*i : 256*i+256]
		d := dqLoadF16(b)
		scalesH := binary.LittleEndian.Uint16(b[2:])
		scalesL := b[4:8]
		for ib := 0; ib < 8; ib++ {
			ls := int32((scalesL[ib/2]>>(4*uint(ib%2)))&0xf) | int32((scalesH>>(2*uint(ib)))&3)<<4
			dl := d * float32(ls-32)
			qs := b[8+16*ib : 8+16*ib+16]
			yy := y[32*ib : 32*ib+32]
			for j := 0; j < 16; j++ {
				yy[j] = dl * float32(kvaluesIQ4NL[qs[j]&0xf])
				yy[j+16] = dl * float32(kvaluesIQ4NL[qs[j]>>4])
			}
		}
	}
}
