package quant

import (
	"math"
	"math/rand"
	"testing"
)

// iqIntTypes are the types DecodeIQBlock decodes, with the largest grid
// magnitude and scale each can hold (4-bit s for IQ2, 3-bit for IQ1).
var iqIntTypes = []struct {
	t          Type
	maxQ, maxS int16
}{
	{IQ2_XXS, 43, 31}, {IQ2_XS, 43, 31}, {IQ2_S, 43, 31}, {IQ1_S, 1, 15}, {IQ1_M, 1, 15},
}

// iqIntValue is element j of blk in float64: D*Scale*Q/8 (IQ2) or
// D*Scale*(Q + Delta/8) (IQ1).
func iqIntValue(t Type, blk *IQBlock, j int) float64 {
	d, s, q := float64(blk.D), float64(blk.Scale[j/16]), float64(blk.Q[j])
	if t == IQ1_S || t == IQ1_M {
		return d * s * (q + float64(blk.Delta[j])/8)
	}
	return d * s * q / 8
}

// TestDecodeIQBlockMatchesDequant: the integer form of random blocks
// (finite scales) is the dequantized block up to the rounding of
// dequantize_row_*'s float32 products (two or three roundings: a few
// ulps), the scales are odd 1..31 (IQ1 1..15), the values within the grids' range and
// the IQ1 delta signs ±1 (IQ2: 0).
func TestDecodeIQBlockMatchesDequant(t *testing.T) {
	r := rand.New(rand.NewSource(16))
	for _, c := range iqIntTypes {
		t.Run(c.t.String(), func(t *testing.T) {
			bb := c.t.BlockBytes()
			b := make([]byte, bb)
			dq := make([]float32, 256)
			var blk IQBlock
			for trial := 0; trial < 300; trial++ {
				r.Read(b)
				if err := Dequantize(c.t, b, dq); err != nil {
					t.Fatal(err)
				}
				if err := DecodeIQBlock(c.t, b, &blk); err != nil {
					t.Fatal(err)
				}
				if math.IsInf(float64(blk.D), 0) || math.IsNaN(float64(blk.D)) {
					continue
				}
				for k, s := range blk.Scale {
					if s < 1 || s > c.maxS || s%2 == 0 {
						t.Fatalf("trial %d: scale %d = %d", trial, k, s)
					}
				}
				for j := 0; j < 256; j++ {
					if int16(blk.Q[j]) > c.maxQ || int16(blk.Q[j]) < -c.maxQ {
						t.Fatalf("trial %d: value %d = %d", trial, j, blk.Q[j])
					}
					iq1 := c.t == IQ1_S || c.t == IQ1_M
					if iq1 && blk.Delta[j] != 1 && blk.Delta[j] != -1 || !iq1 && blk.Delta[j] != 0 {
						t.Fatalf("trial %d: delta %d = %d", trial, j, blk.Delta[j])
					}
					want := iqIntValue(c.t, &blk, j)
					got := float64(dq[j])
					if math.Abs(got-want) > 4*math.Abs(want)*0x1p-24 || (want == 0) != (got == 0) {
						t.Fatalf("trial %d: value %d: integer form %g, dequantized %g", trial, j, want, got)
					}
				}
			}
		})
	}
}

// TestDecodeIQBlockErrors: another type and a short block are errors.
func TestDecodeIQBlockErrors(t *testing.T) {
	var blk IQBlock
	for _, c := range []struct {
		t Type
		n int
	}{
		{Q4_K, 144}, {IQ3_S, 110}, {IQ4_XS, 136}, {F32, 4},
		{IQ2_XXS, 65}, {IQ2_XS, 73}, {IQ2_S, 81}, {IQ1_S, 49}, {IQ1_M, 55}, {IQ1_M, 0},
	} {
		if err := DecodeIQBlock(c.t, make([]byte, c.n), &blk); err == nil {
			t.Errorf("DecodeIQBlock(%s, %d bytes) succeeded", c.t, c.n)
		}
		if IntegerBlock(c.t) != (c.t == IQ2_XXS || c.t == IQ2_XS || c.t == IQ2_S || c.t == IQ1_S || c.t == IQ1_M) {
			t.Errorf("IntegerBlock(%s) = %v", c.t, IntegerBlock(c.t))
		}
		if n := iqBlockBytes(c.t); n != 0 && n != c.t.BlockBytes() {
			t.Errorf("%s: iqBlockBytes %d, BlockBytes %d", c.t, n, c.t.BlockBytes())
		}
	}
}

// FuzzDecodeIQBlock: any type and bytes give an error or a block, never a
// panic, and a decoded block agrees with Dequantize on its zeros.
func FuzzDecodeIQBlock(f *testing.F) {
	for _, c := range iqIntTypes {
		f.Add(uint8(c.t), make([]byte, c.t.BlockBytes()))
	}
	f.Add(uint8(Q4_K), make([]byte, 144))
	f.Fuzz(func(t *testing.T, ty uint8, data []byte) {
		var blk IQBlock
		if err := DecodeIQBlock(Type(ty), data, &blk); err != nil {
			return
		}
		dq := make([]float32, 256)
		if err := Dequantize(Type(ty), data[:Type(ty).BlockBytes()], dq); err != nil {
			t.Fatalf("decoded a block Dequantize refuses: %v", err)
		}
		if blk.D == 0 {
			for j, v := range dq {
				if v != 0 {
					t.Fatalf("zero scale, value %d dequantizes to %g", j, v)
				}
			}
		}
	})
}

// TestIQ2GridsHaveNoZero pins what iqSigned8's carry-free negation
// assumes: every IQ2 grid magnitude is 1..127.
func TestIQ2GridsHaveNoZero(t *testing.T) {
	for name, grid := range map[string][]uint64{"iq2xxs": iq2xxsGrid[:], "iq2xs": iq2xsGrid[:], "iq2s": iq2sGrid[:]} {
		for i, g := range grid {
			for j := 0; j < 8; j++ {
				if b := uint8(g >> (8 * uint(j))); b == 0 || b > 127 {
					t.Fatalf("%s[%d] byte %d = %d", name, i, j, b)
				}
			}
		}
	}
}

// BenchmarkDecodeIQBlock decodes one super-block of each type.
func BenchmarkDecodeIQBlock(b *testing.B) {
	for _, c := range iqIntTypes {
		b.Run(c.t.String(), func(b *testing.B) {
			data := make([]byte, c.t.BlockBytes())
			rand.New(rand.NewSource(1)).Read(data)
			var blk IQBlock
			for i := 0; i < b.N; i++ {
				_ = DecodeIQBlock(c.t, data, &blk)
			}
		})
	}
}
