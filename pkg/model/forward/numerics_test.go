package forward

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// exactFMA32 is a*b+c rounded once to float32, with math/big.
func exactFMA32(a, b, c float32) float32 {
	x := new(big.Float).SetPrec(200).SetFloat64(float64(a))
	x.Mul(x, new(big.Float).SetPrec(200).SetFloat64(float64(b)))
	x.Add(x, new(big.Float).SetPrec(200).SetFloat64(float64(c)))
	f, _ := x.Float32()
	return f
}

func TestFMA32(t *testing.T) {
	cases := [][3]float32{
		{1, 1, 0},
		{0x1.000002p0, 0x1.000002p0, -1},                     // exact product needs more than 24 bits
		{0x1.fffffep127, 2, float32(math.Inf(-1))},           // overflowing product, infinite addend
		{0x1p-149, 0x1p-1, 0},                                // underflow to zero, ties to even
		{0x1p-149, 0x1.8p-1, 0},                              // rounds up to the smallest subnormal
		{3, float32(math.Copysign(0, -1)), 0},                // signed zeros
		{0x1.000002p0, 0x1.fffffep-1, -0x1.000000p0},         // cancellation
		{1 + 0x1p-23, 1 - 0x1p-24, -(1 + 0x1p-23 - 0x1p-24)}, // double rounding trap
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000; i++ {
		a := math.Float32frombits(rng.Uint32())
		b := math.Float32frombits(rng.Uint32())
		c := math.Float32frombits(rng.Uint32())
		if i%2 == 0 { // products near c, where double rounding bites
			a = float32(rng.NormFloat64())
			b = float32(rng.NormFloat64())
			c = -float32(float64(a) * float64(b) * (1 + rng.NormFloat64()*1e-7))
		}
		cases = append(cases, [3]float32{a, b, c})
	}
	for _, k := range cases {
		a, b, c := k[0], k[1], k[2]
		got := fma32(a, b, c)
		p := float64(a) * float64(b)
		if math.IsNaN(p) || math.IsInf(p, 0) || math.IsInf(float64(c), 0) || math.IsNaN(float64(c)) {
			continue // big.Float has no NaN; checked by the special cases above
		}
		want := exactFMA32(a, b, c)
		if math.Float32bits(got) != math.Float32bits(want) && !(got == 0 && want == 0) {
			t.Fatalf("fma32(%g, %g, %g) = %g, want %g", a, b, c, got, want)
		}
	}
	if v := fma32(0x1.fffffep127, 2, float32(math.Inf(-1))); !math.IsInf(float64(v), -1) {
		t.Errorf("fma32 with an infinite addend = %g", v)
	}
}

// ulps is the distance in float32 ulps between two finite floats of the
// same sign.
func ulps(a, b float32) int64 {
	d := int64(math.Float32bits(a)) - int64(math.Float32bits(b))
	if d < 0 {
		d = -d
	}
	return d
}

func TestLibmPortsAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 100000; i++ {
		x := float32(rng.Float64()*190 - 100)
		if e, w := Expf(x), float32(math.Exp(float64(x))); w != 0 && ulps(e, w) > 1 {
			t.Fatalf("Expf(%g) = %g, exp %g", x, e, w)
		}
		y := float32(rng.Float64() * 4096)
		s, c := Sincosf(y)
		ws, wc := math.Sincos(float64(y))
		if math.Abs(float64(s)-ws) > 0x1p-24 || math.Abs(float64(c)-wc) > 0x1p-24 {
			t.Fatalf("Sincosf(%g) = %g, %g; want %g, %g", y, s, c, ws, wc)
		}
		b := float32(rng.Float64()*1e6 + 1)
		p := float32(-rng.Float64())
		if g, w := Powf(b, p), float32(math.Pow(float64(b), float64(p))); ulps(g, w) > 1 {
			t.Fatalf("Powf(%g, %g) = %g, pow %g", b, p, g, w)
		}
	}
	// special values
	for _, c := range []struct {
		got, want float32
	}{
		{Expf(0), 1}, {Expf(float32(math.Inf(-1))), 0}, {Expf(-200), 0},
		{Powf(2, 10), 1024}, {Powf(10000, 0), 1}, {Powf(1, 123), 1},
	} {
		if c.got != c.want {
			t.Errorf("got %g, want %g", c.got, c.want)
		}
	}
	if v := Expf(100); !math.IsInf(float64(v), 1) {
		t.Errorf("Expf(100) = %g", v)
	}
	if v := Expf(float32(math.NaN())); !math.IsNaN(float64(v)) {
		t.Errorf("Expf(NaN) = %g", v)
	}
	if s, c := Sincosf(0); s != 0 || c != 1 {
		t.Errorf("Sincosf(0) = %g, %g", s, c)
	}
	if s, _ := Sincosf(float32(math.Inf(1))); !math.IsNaN(float64(s)) {
		t.Errorf("Sincosf(Inf) = %g", s)
	}
}

// TestLibmGolden pins a few results of this machine's glibc (2.36, FMA
// variants) where they differ from the correctly rounded value, so the
// ports cannot silently drift toward math.Exp/Sin/Cos.
func TestLibmGolden(t *testing.T) {
	for _, c := range libmGolden {
		var got uint32
		switch c.fn {
		case "expf":
			got = math.Float32bits(Expf(math.Float32frombits(c.x)))
		case "sinf":
			s, _ := Sincosf(math.Float32frombits(c.x))
			got = math.Float32bits(s)
		case "cosf":
			_, co := Sincosf(math.Float32frombits(c.x))
			got = math.Float32bits(co)
		}
		if got != c.want {
			t.Errorf("%s(%g) = %08x, glibc %08x", c.fn, math.Float32frombits(c.x), got, c.want)
		}
	}
}

func TestVExpf(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 100000; i++ {
		x := float32(rng.Float64()*180 - 100)
		got, want := vExpf(x), float32(math.Exp(float64(x)))
		if want > 0x1p-126 && ulps(got, want) > 3 {
			t.Fatalf("vExpf(%g) = %g, exp %g", x, got, want)
		}
	}
	for _, c := range []struct{ x, want float32 }{
		{0, 1}, {float32(math.Inf(-1)), 0}, {-200, 0},
	} {
		if got := vExpf(c.x); got != c.want {
			t.Errorf("vExpf(%g) = %g, want %g", c.x, got, c.want)
		}
	}
	if v := vExpf(100); !math.IsInf(float64(v), 1) {
		t.Errorf("vExpf(100) = %g, want +Inf", v)
	}
	if v := vSilu(-200); v != 0 || math.Signbit(float64(v)) != true {
		// -200/(1+inf) = -0
		t.Errorf("vSilu(-200) = %g", v)
	}
}

func TestHorizontalSums(t *testing.T) {
	// Orders are visible with values whose sums round differently.
	v := [8]float32{1, 0x1p-24, 0x1p-24, 0x1p-24, 0x1p-24, 0x1p-24, 0x1p-24, 0x1p-24}
	// ((1+2^-24) + (2^-24+2^-24)) + ((2^-24+2^-24) + (2^-24+2^-24))
	a0 := float32(1) + 0x1p-24
	want := (a0 + (float32(0x1p-24) + 0x1p-24)) + ((float32(0x1p-24) + 0x1p-24) + (float32(0x1p-24) + 0x1p-24))
	if got := hsum8(&v); got != want {
		t.Errorf("hsum8 = %g, want %g", got, want)
	}
	var x [4][8]float32
	x[0][0] = 1
	for i := 1; i < 8; i++ {
		x[0][i] = 0x1p-24
	}
	got := reduceF32x8(&x)
	want = ((float32(1) + 0x1p-24) + (float32(0x1p-24) + 0x1p-24)) + ((float32(0x1p-24) + 0x1p-24) + (float32(0x1p-24) + 0x1p-24))
	if got != want {
		t.Errorf("reduceF32x8 = %g, want %g", got, want)
	}
}

// TestDotKernelsAgainstFloat64 checks every dot kernel against the float64
// dot product of the dequantized operands.
func TestDotKernelsAgainstFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	n := 512
	x := make([]float32, n)
	y := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
		y[i] = float32(rng.NormFloat64())
	}
	exact := dotF64(x, y)
	// float kernels
	xh, yh := make([]uint16, n), make([]uint16, n)
	for i := range x {
		xh[i], yh[i] = quant.F32ToF16(x[i]), quant.F32ToF16(y[i])
	}
	for name, got := range map[string]float32{
		"dotF32Tiny": dotF32Tiny(x, y), "vecDotF32": vecDotF32(x, y),
		"dotF16Tiny": dotF16Tiny(xh, yh), "vecDotF16": vecDotF16(xh, yh),
		"vecDotF32/odd": vecDotF32(x[:n-5], y[:n-5]) + float32(dotF64(x[n-5:], y[n-5:])),
	} {
		if math.Abs(float64(got)-exact) > 0.05 {
			t.Errorf("%s = %g, exact %g", name, got, exact)
		}
	}
	// quantized kernels: quantize x as weights (reference quantizer) and y
	// as activations
	for _, wt := range []quant.Type{quant.Q8_0, quant.Q4_0, quant.Q5_0, quant.Q4_1, quant.Q5_1} {
		qt := wt
		xb := make([]byte, n/32*wt.BlockBytes())
		// the activation quantizer covers the Q8 types; other weight types
		// are built bit by bit below
		switch wt {
		case quant.Q8_0:
			if err := quant.QuantizeRow(quant.Q8_0, x, xb, quant.QuantRef); err != nil {
				t.Fatal(err)
			}
		default:
			for i := range xb {
				xb[i] = byte(rng.Uint32())
			}
			for b := 0; b < n/32; b++ { // sane scales
				o := b * wt.BlockBytes()
				xb[o], xb[o+1] = 0x00, 0x2c // 0.0625
				if wt == quant.Q4_1 || wt == quant.Q5_1 {
					xb[o+2], xb[o+3] = 0x00, 0xb0 // -0.125
				}
			}
		}
		xd := make([]float32, n)
		if err := quant.Dequantize(qt, xb, xd); err != nil {
			t.Fatal(err)
		}
		vdt := quant.VecDotType(wt)
		yb := make([]byte, n/vdt.BlockSize()*vdt.BlockBytes())
		if err := quant.QuantizeRow(vdt, y, yb, quant.QuantCPU); err != nil {
			t.Fatal(err)
		}
		yd := make([]float32, n)
		if err := quant.Dequantize(vdt, yb, yd); err != nil && vdt != quant.Q8_1 {
			t.Fatal(err)
		}
		if vdt == quant.Q8_1 { // no to_float for Q8_1: decode d*q
			for b := 0; b < n/32; b++ {
				d := quant.F16ToF32(uint16(yb[b*36]) | uint16(yb[b*36+1])<<8)
				for j := 0; j < 32; j++ {
					yd[b*32+j] = d * float32(int8(yb[b*36+4+j]))
				}
			}
		}
		f, err := quantDot(wt, kernVecDot)
		if err != nil {
			t.Fatal(err)
		}
		got := f(n, xb, yb)
		want := dotF64(xd, yd)
		if math.Abs(float64(got)-want) > 1e-3*(1+math.Abs(want)) {
			t.Errorf("%s: dot = %g, float64 of the dequantized operands %g", wt, got, want)
		}
	}
}

func TestChooseKernel(t *testing.T) {
	for _, c := range []struct {
		t       quant.Type
		m, n, k int64
		cont    bool
		want    matKernel
	}{
		{quant.F32, 64, 8, 64, true, kernTinyBLAS},
		{quant.F32, 64, 1, 64, true, kernVecDot},     // one column: never sgemm
		{quant.F32, 64, 8, 64, false, kernVecDot},    // strided src1
		{quant.F32, 66, 8, 64, true, kernVecDot},     // m % 4
		{quant.F32, 64, 8, 60, true, kernVecDot},     // k % 8
		{quant.F16, 256, 8, 16, false, kernTinyBLAS}, // kq with head size 16
		{quant.F16, 64, 8, 12, true, kernVecDot},
		{quant.Q8_0, 3, 2, 32, true, kernTinyBLAS},
		{quant.Q4_K, 256, 8, 256, true, kernVecDot},
		{quant.Q4_1, 256, 8, 256, true, kernVecDot},
	} {
		if got := chooseKernel(kernels{}, c.t, c.m, c.n, c.k, c.cont); got != c.want {
			t.Errorf("chooseKernel(%s, m=%d, n=%d, k=%d, contiguous=%v) = %d, want %d", c.t, c.m, c.n, c.k, c.cont, got, c.want)
		}
	}
}

// TestSpecializedQ0Kernels checks the written-out Q8_0 and Q4_0 kernels
// against the generic dotQ0 on random blocks, bit for bit.
func TestSpecializedQ0Kernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for iter := 0; iter < 200; iter++ {
		n := 32 * (1 + rng.IntN(16))
		y := make([]byte, n/32*34)
		for i := range y {
			y[i] = byte(rng.Uint32())
		}
		for b := 0; b < n/32; b++ { // finite scales
			y[b*34+1] = byte(rng.IntN(0x7c))
		}
		x8 := append([]byte(nil), y...)
		for i := range x8 {
			x8[i] ^= byte(rng.Uint32())
		}
		for b := 0; b < n/32; b++ {
			x8[b*34+1] = byte(rng.IntN(0x7c))
		}
		x4 := make([]byte, n/32*18)
		for i := range x4 {
			x4[i] = byte(rng.Uint32())
		}
		for b := 0; b < n/32; b++ {
			x4[b*18+1] = byte(rng.IntN(0x7c))
		}
		if a, b := dotQ8_0(n, x8, y), dotQ0(n, x8, y, 34, unpackQ8_0); math.Float32bits(a) != math.Float32bits(b) {
			t.Fatalf("dotQ8_0 = %g, dotQ0 %g", a, b)
		}
		if a, b := dotQ4_0(n, x4, y), dotQ0(n, x4, y, 18, unpackQ4_0); math.Float32bits(a) != math.Float32bits(b) {
			t.Fatalf("dotQ4_0 = %g, dotQ0 %g", a, b)
		}
	}
}
