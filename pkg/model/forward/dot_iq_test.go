package forward

import (
	"encoding/binary"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// iqTypes are the IQ2/IQ1 weight types of dot_iq.go.
var iqTypes = []quant.Type{quant.IQ2_XXS, quant.IQ2_XS, quant.IQ2_S, quant.IQ1_S, quant.IQ1_M}

// iqDotTest is dotIQ for t in TestKRowDotsMatchGo's signature.
func iqDotTest(t quant.Type) func(n int, x, y []byte, _ bool) float32 {
	return func(n int, x, y []byte, _ bool) float32 { return dotIQ(t, n, x, y) }
}

// setIQScale sets the super-block scale of the IQ2/IQ1 block b to the f16
// h (IQ1_M spreads it over the top nibbles of its four scale words).
func setIQScale(t quant.Type, b []byte, h uint16) {
	if t != quant.IQ1_M {
		binary.LittleEndian.PutUint16(b, h)
		return
	}
	for k := 0; k < 4; k++ {
		w := binary.LittleEndian.Uint16(b[48+2*k:])&0x0fff | (h>>(4*uint(k))&0xf)<<12
		binary.LittleEndian.PutUint16(b[48+2*k:], w)
	}
}

// q8KBlock writes a block_q8_K of scale d and quants q (bsums from q).
func q8KBlock(dst []byte, d float32, q []int8) {
	binary.LittleEndian.PutUint32(dst, math.Float32bits(d))
	for j, v := range q {
		dst[4+j] = byte(v)
	}
	for k := 0; k < 16; k++ {
		var s int16
		for j := 16 * k; j < 16*k+16; j++ {
			s += int16(q[j])
		}
		binary.LittleEndian.PutUint16(dst[260+2*k:], uint16(s))
	}
}

// iqRowDot is the row kernel of mulMatGGML for one column (false without
// AVX2).
func iqRowDot(t quant.Type, n int, x, y []byte) (float32, bool) {
	var k kRowDots
	out := make([]float32, 1)
	if !k.decode(t, n, x) || !k.dots(t, x, &[4][]byte{y}, 1, out) {
		return 0, false
	}
	return out[0], true
}

// TestDotIQExactIntegers: with the weight and activation scales 1 and
// small quants, every float32 step of the kernels is exact, so the dot must
// be exactly the integer sum the blocks encode: Σ Scale*Q*q8 / 8 for IQ2,
// Σ Scale*Q*q8 + Σ Scale*Delta*q8 / 8 for IQ1 (quant.IQBlock), for the Go
// kernel and the row kernel alike.
func TestDotIQExactIntegers(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for _, typ := range iqTypes {
		bb := typ.BlockBytes()
		for _, nb := range []int{1, 2, 4} {
			for trial := 0; trial < 50; trial++ {
				x := make([]byte, bb*nb)
				r.Read(x)
				y := make([]byte, 292*nb)
				var grid, delta int64
				for b := 0; b < nb; b++ {
					setIQScale(typ, x[b*bb:], 0x3c00) // 1.0
					q := make([]int8, 256)
					for j := range q {
						q[j] = int8(r.Intn(5) - 2)
					}
					q8KBlock(y[292*b:], 1, q)
					var blk quant.IQBlock
					if err := quant.DecodeIQBlock(typ, x[b*bb:], &blk); err != nil {
						t.Fatal(err)
					}
					if blk.D != 1 {
						t.Fatalf("%s: block scale %g, want 1", typ, blk.D)
					}
					for j := 0; j < 256; j++ {
						s := int64(blk.Scale[j/16]) * int64(q[j])
						grid += s * int64(blk.Q[j])
						delta += s * int64(blk.Delta[j])
					}
				}
				want := float32(float64(grid) / 8)
				if typ == quant.IQ1_S || typ == quant.IQ1_M {
					want = float32(float64(grid) + float64(delta)/8)
				}
				if got := dotIQ(typ, 256*nb, x, y); got != want {
					t.Fatalf("%s nb=%d trial %d: dotIQ %g, want %g", typ, nb, trial, got, want)
				}
				if got, ok := iqRowDot(typ, 256*nb, x, y); ok && got != want {
					t.Fatalf("%s nb=%d trial %d: row kernel %g, want %g", typ, nb, trial, got, want)
				}
			}
		}
	}
}

// TestDotIQMatchesDequant: on random blocks and Q8_K activations
// quantized from normal floats, the kernels agree with the float64 dot of
// the dequantized weights (quant.Dequantize) and activations within the
// rounding of their float32 accumulation: |got - want| <= 1e-5 * Σ|x*y|.
func TestDotIQMatchesDequant(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for _, typ := range iqTypes {
		bb := typ.BlockBytes()
		for _, nb := range []int{1, 5, 16} {
			n := 256 * nb
			for trial := 0; trial < 20; trial++ {
				x := make([]byte, bb*nb)
				r.Read(x)
				for b := 0; b < nb; b++ {
					setIQScale(typ, x[b*bb:], quant.F32ToF16(float32(0.01+r.Float64())))
				}
				act := make([]float32, n)
				for i := range act {
					act[i] = float32(r.NormFloat64())
				}
				y := make([]byte, 292*nb)
				if err := quant.QuantizeRow(quant.Q8_K, act, y, quant.QuantCPU); err != nil {
					t.Fatal(err)
				}
				xf := make([]float32, n)
				yf := make([]float32, n)
				if err := quant.Dequantize(typ, x, xf); err != nil {
					t.Fatal(err)
				}
				if err := quant.Dequantize(quant.Q8_K, y, yf); err != nil {
					t.Fatal(err)
				}
				var want, mag float64
				for i := range xf {
					want += float64(xf[i]) * float64(yf[i])
					mag += math.Abs(float64(xf[i]) * float64(yf[i]))
				}
				tol := 1e-5 * mag
				got := dotIQ(typ, n, x, y)
				if math.Abs(float64(got)-want) > tol {
					t.Fatalf("%s nb=%d trial %d: dotIQ %g, dequantized dot %g (tolerance %g)", typ, nb, trial, got, want, tol)
				}
				if rg, ok := iqRowDot(typ, n, x, y); ok && math.Float32bits(rg) != math.Float32bits(got) {
					t.Fatalf("%s nb=%d trial %d: row kernel %g, dotIQ %g", typ, nb, trial, rg, got)
				}
			}
		}
	}
}

// TestDotIQRowDeclines: a short weight row or activation column makes
// the row kernel decline (the caller then runs dotIQ), never read past
// the slices.
func TestDotIQRowDeclines(t *testing.T) {
	for _, typ := range iqTypes {
		var k kRowDots
		if k.decode(typ, 512, make([]byte, 2*typ.BlockBytes()-1)) {
			t.Errorf("%s: decoded a short row", typ)
		}
		if !hasAVX2 {
			continue
		}
		x := make([]byte, typ.BlockBytes())
		if !k.decode(typ, 256, x) {
			t.Fatalf("%s: decode declined", typ)
		}
		if k.dots(typ, x, &[4][]byte{make([]byte, 291)}, 1, make([]float32, 1)) {
			t.Errorf("%s: dots accepted a short activation column", typ)
		}
	}
}

// TestDotIQNEONRefuses: the arm64-neon profile has no emulation of ggml's
// ARM IQ2/IQ1 kernels, and says so instead of computing the x86 bits.
func TestDotIQNEONRefuses(t *testing.T) {
	for _, typ := range iqTypes {
		if _, err := neonDot(typ, kernVecDot); err == nil || !strings.Contains(err.Error(), "has no "+typ.String()+" dot product") {
			t.Errorf("%s: neonDot error %v", typ, err)
		}
	}
}
