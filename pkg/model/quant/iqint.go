package quant

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

// IQBlock is one 256-value super-block of IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S or
// IQ1_M in the integer form ggml's dot products with Q8_K activations use
// (ggml_vec_dot_iq2_xxs_q8_K and its siblings, arch/x86/quants.c): the
// signed grid values, one odd scale 2s+1 per 16 values, and for the IQ1
// types the sign of each value's delta. Element j is
//
//	IQ2_*: D * Scale[j/16] * Q[j] / 8
//	IQ1_*: D * Scale[j/16] * (Q[j] + Delta[j]/8)
//
// which is what dequantize_row_* computes (there d*(0.5+s)*0.25 =
// d*(2s+1)/8, and IQ1S_DELTA = IQ1M_DELTA = 1/8), up to the rounding of
// its float products.
type IQBlock struct {
	Q     [256]int8 // grid values with their signs applied: IQ2 0..43 in magnitude, IQ1 -1, 0, 1
	Scale [16]int16 // 2s+1 for the 16 values 16k..16k+15 (IQ2_XXS, IQ1_S: one s per 32)
	Delta [256]int8 // IQ1_S, IQ1_M: +1 or -1, the sign of IQ1S_DELTA/IQ1M_DELTA; IQ2: 0
	D     float32   // the super-block scale (IQ1_M: the f16 spread over the scales' top nibbles)
}

// IntegerBlock reports whether DecodeIQBlock supports t.
func IntegerBlock(t Type) bool { return iqBlockBytes(t) > 0 }

// iqBlockBytes is t.BlockBytes() for the IQBlock types, 0 for the others
// (a switch: DecodeIQBlock runs once per super-block).
func iqBlockBytes(t Type) int {
	switch t {
	case IQ2_XXS:
		return 66
	case IQ2_XS:
		return 74
	case IQ2_S:
		return 82
	case IQ1_S:
		return 50
	case IQ1_M:
		return 56
	}
	return 0
}

// DecodeIQBlock decodes the first super-block of b (type t, see
// IntegerBlock) into blk. It reads the same bits as dequantize_row_* and
// the x86 vec_dot kernels (the sign and index bit layouts are theirs).
func DecodeIQBlock(t Type, b []byte, blk *IQBlock) error {
	n := iqBlockBytes(t)
	if n == 0 {
		return fmt.Errorf("decode %s: not an IQ2/IQ1 type", t)
	}
	if len(b) < n {
		return fmt.Errorf("decode %s: %d bytes, want a block of %d", t, len(b), n)
	}
	switch t {
	case IQ2_XXS:
		decodeIQ2XXS(b, blk)
	case IQ2_XS:
		decodeIQ2XS(b, blk)
	case IQ2_S:
		decodeIQ2S(b, blk)
	case IQ1_S:
		decodeIQ1S(b, blk)
	default:
		decodeIQ1M(b, blk)
	}
	return nil
}

// iqSignMask[s] has byte j 0xFF where bit j of s is set (kmask_iq2xs[j]).
var iqSignMask = func() (m [256]uint64) {
	for s := range m {
		for j := 0; j < 8; j++ {
			if s&int(kmaskIQ2XS[j]) != 0 {
				m[s] |= 0xFF << (8 * uint(j))
			}
		}
	}
	return m
}()

// qBytes8 is q[0:8] as bytes.
func qBytes8(q []int8) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&q[0])), 8)
}

// iqSigned8 writes the eight grid magnitudes g (little-endian bytes, each
// 1..127) with the signs of the bits of s (kmask_iq2xs) to q: per byte
// (g XOR m) + (m AND 1) is -g where the mask m is 0xFF and g elsewhere,
// with no carry between bytes since no magnitude is 0.
func iqSigned8(q []int8, g uint64, s uint8) {
	m := iqSignMask[s]
	binary.LittleEndian.PutUint64(qBytes8(q), (g^m)+(m&0x0101010101010101))
}

func decodeIQ2XXS(b []byte, blk *IQBlock) {
	blk.D = dqLoadF16(b)
	blk.Delta = [256]int8{}
	for ib32 := 0; ib32 < 8; ib32++ {
		aux8 := b[2+8*ib32 : 2+8*ib32+4]
		aux1 := binary.LittleEndian.Uint32(b[2+8*ib32+4:])
		ls := int16(2*(aux1>>28) + 1)
		blk.Scale[2*ib32], blk.Scale[2*ib32+1] = ls, ls
		for l := 0; l < 4; l++ {
			iqSigned8(blk.Q[32*ib32+8*l:], iq2xxsGrid[aux8[l]], ksignsIQ2XS[(aux1>>(7*uint(l)))&127])
		}
	}
}

func decodeIQ2XS(b []byte, blk *IQBlock) {
	blk.D = dqLoadF16(b)
	blk.Delta = [256]int8{}
	scales := b[66:74]
	for ib32 := 0; ib32 < 8; ib32++ {
		blk.Scale[2*ib32] = int16(2*(scales[ib32]&0xf) + 1)
		blk.Scale[2*ib32+1] = int16(2*(scales[ib32]>>4) + 1)
		for l := 0; l < 4; l++ {
			q := binary.LittleEndian.Uint16(b[2+2*(4*ib32+l):])
			iqSigned8(blk.Q[32*ib32+8*l:], iq2xsGrid[q&511], ksignsIQ2XS[q>>9])
		}
	}
}

func decodeIQ2S(b []byte, blk *IQBlock) {
	blk.D = dqLoadF16(b)
	blk.Delta = [256]int8{}
	qs, signs := b[2:34], b[34:66]
	qh, scales := b[66:74], b[74:82]
	for ib32 := 0; ib32 < 8; ib32++ {
		blk.Scale[2*ib32] = int16(2*(scales[ib32]&0xf) + 1)
		blk.Scale[2*ib32+1] = int16(2*(scales[ib32]>>4) + 1)
		for l := 0; l < 4; l++ {
			idx := int(qs[4*ib32+l]) | (int(qh[ib32])<<(8-2*uint(l)))&0x300
			iqSigned8(blk.Q[32*ib32+8*l:], iq2sGrid[idx], signs[4*ib32+l])
		}
	}
}

// iqGrid8 writes the eight int8 values of an iq1s_grid entry to q.
func iqGrid8(q []int8, g uint64) {
	binary.LittleEndian.PutUint64(qBytes8(q), g)
}

// iqDelta8 writes eight delta signs (+1, or -1 when neg) to q.
func iqDelta8(q []int8, neg bool) {
	v := uint64(0x0101010101010101)
	if neg {
		v = 0xFFFFFFFFFFFFFFFF
	}
	binary.LittleEndian.PutUint64(qBytes8(q), v)
}

func decodeIQ1S(b []byte, blk *IQBlock) {
	blk.D = dqLoadF16(b)
	qs := b[2:34]
	for ib := 0; ib < 8; ib++ {
		qh := binary.LittleEndian.Uint16(b[34+2*ib:])
		ls := int16(2*((qh>>12)&7) + 1)
		blk.Scale[2*ib], blk.Scale[2*ib+1] = ls, ls
		for l := 0; l < 4; l++ {
			iqGrid8(blk.Q[32*ib+8*l:], iq1sGrid[int(qs[4*ib+l])|int((qh>>(3*uint(l)))&7)<<8])
			iqDelta8(blk.Delta[32*ib+8*l:], qh&0x8000 != 0)
		}
	}
}

func decodeIQ1M(b []byte, blk *IQBlock) {
	var sc [4]uint16
	for k := range sc {
		sc[k] = binary.LittleEndian.Uint16(b[48+2*k:])
	}
	blk.D = F16ToF32((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000))
	qs, qhAll := b[0:32], b[32:48]
	for ib := 0; ib < 8; ib++ {
		shift := 6 * uint(ib%2)
		blk.Scale[2*ib] = int16(2*((sc[ib/2]>>shift)&0x7) + 1)
		blk.Scale[2*ib+1] = int16(2*((sc[ib/2]>>(shift+3))&0x7) + 1)
		q, qh := qs[4*ib:4*ib+4], qhAll[2*ib:2*ib+2]
		idx := [4]int{
			int(q[0]) | (int(qh[0])<<8)&0x700,
			int(q[1]) | (int(qh[0])<<4)&0x700,
			int(q[2]) | (int(qh[1])<<8)&0x700,
			int(q[3]) | (int(qh[1])<<4)&0x700,
		}
		for l, bit := range [4]uint8{qh[0] & 0x08, qh[0] & 0x80, qh[1] & 0x08, qh[1] & 0x80} {
			iqGrid8(blk.Q[32*ib+8*l:], iq1sGrid[idx[l]])
			iqDelta8(blk.Delta[32*ib+8*l:], bit != 0)
		}
	}
}
