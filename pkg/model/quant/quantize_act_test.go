package quant

import (
	"encoding/binary"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

// q8KNearTies builds nblocks Q8_K blocks in which most values x make
// iscale*x round, in float32, to exactly k+0.5 although the exact product is
// not a tie: there the fused nearest_int (one rounding) and the unfused one
// (ties to even after rounding the product) disagree.
func q8KNearTies(r *rand.Rand, nblocks int) []float32 {
	x := make([]float32, 0, 256*nblocks)
	for b := 0; b < nblocks; b++ {
		blk := make([]float32, 256)
		maxv := float32(1 + 9*r.Float64())
		if r.IntN(2) == 0 {
			maxv = -maxv
		}
		iscale := -127 / maxv
		for i := range blk {
			blk[i] = float32(r.NormFloat64())
			k := float64(r.IntN(200) - 100)
			cand := float32((k + 0.5) / float64(iscale))
			for _, c := range []float32{cand, math.Nextafter32(cand, 0), math.Nextafter32(cand, 100)} {
				exact := new(big.Float).SetPrec(200).Mul(big.NewFloat(float64(iscale)), big.NewFloat(float64(c)))
				tie := big.NewFloat(k + 0.5)
				if iscale*c == float32(k+0.5) && exact.Cmp(tie) != 0 && math.Abs(float64(c)) < math.Abs(float64(maxv)) {
					blk[i] = c
					break
				}
			}
		}
		blk[r.IntN(256)] = maxv
		x = append(x, blk...)
	}
	return x
}

// TestFMA32 compares fma32 with a*b+c computed exactly and rounded once, on
// random operands and on operands built so that the float64 sum lands on a
// float32 midpoint (where a plain float32(math.FMA(...)) rounds twice).
func TestFMA32(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	exact := func(a, b, c float32) float32 {
		p := new(big.Float).SetPrec(300).Mul(big.NewFloat(float64(a)), big.NewFloat(float64(b)))
		p.Add(p, new(big.Float).SetPrec(300).SetFloat64(float64(c)))
		f, _ := p.Float32()
		return f
	}
	doubleRounded := 0
	for i := 0; i < 200000; i++ {
		var a, b, c float32
		if i%2 == 0 {
			a = float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(40)-20)))
			b = float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(40)-20)))
			c = float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(40)-20)))
		} else {
			// a*b = ulp(c)/2 * (1 - k²·2^-46): the float64 sum rounds to
			// the float32 midpoint above c, although the exact value lies
			// just below it. With c's last bit odd, rounding the float64
			// sum again goes up, the single rounding goes down.
			c = float32(1 + r.Float64())
			if r.IntN(2) == 0 {
				c = math.Float32frombits(math.Float32bits(c) | 1)
			}
			ulp := float64(math.Nextafter32(c, 10) - c)
			k := float64(1 + r.IntN(300))
			a = float32(1 + k*0x1p-23)
			b = float32((1 - k*0x1p-23) * ulp / 2)
			if r.IntN(2) == 0 {
				a, c = -a, -c
			}
		}
		got, want := fma32(a, b, c), exact(a, b, c)
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("fma32(%g, %g, %g) = %g, want %g", a, b, c, got, want)
		}
		if float32(math.FMA(float64(a), float64(b), float64(c))) != want {
			doubleRounded++
		}
	}
	t.Logf("%d cases where rounding through float64 alone would be wrong", doubleRounded)
	if doubleRounded == 0 {
		t.Error("the test operands never exercised double rounding")
	}
	inf := float32(math.Inf(1))
	if v := fma32(inf, 1, 1); !math.IsInf(float64(v), 1) {
		t.Errorf("fma32(Inf, 1, 1) = %g", v)
	}
	if v := fma32(0, inf, 1); v == v {
		t.Errorf("fma32(0, Inf, 1) = %g, want NaN", v)
	}
	if v := fma32(3e38, 3e38, -inf); !math.IsInf(float64(v), -1) {
		t.Errorf("fma32(3e38, 3e38, -Inf) = %g", v)
	}
}

// TestQuantizeRowQ8_0Ties checks the rounding that separates the variants:
// with amax = 127 both scales are exactly 1 and x*id is x itself, so
// half-integers show ties to even (QuantCPU) against ties away from zero
// (QuantRef).
func TestQuantizeRowQ8_0Ties(t *testing.T) {
	x := make([]float32, 32)
	copy(x, []float32{127, 2.5, -2.5, 3.5, -3.5, 0.5, -0.5, 126.5, -127, 1.4999999})
	want := map[QuantVariant][]int8{
		QuantCPU: {127, 2, -2, 4, -4, 0, 0, 126, -127, 1},
		QuantRef: {127, 3, -3, 4, -4, 1, -1, 127, -127, 1},
	}
	for _, ty := range []Type{Q8_0, Q8_1} {
		for v, w := range want {
			dst := make([]byte, ty.BlockBytes())
			if err := QuantizeRow(ty, x, dst, v); err != nil {
				t.Fatal(err)
			}
			if d := binary.LittleEndian.Uint16(dst); d != 0x3c00 {
				t.Errorf("%s/%s: d = %#04x, want 1.0", ty, v, d)
			}
			qs := dst[ty.BlockBytes()-32:]
			sum := 0
			for j := range qs {
				sum += int(int8(qs[j]))
				if j < len(w) && int8(qs[j]) != w[j] {
					t.Errorf("%s/%s: q[%d] = %d for %g, want %d", ty, v, j, int8(qs[j]), x[j], w[j])
				}
			}
			if ty == Q8_1 {
				if s := F16ToF32(binary.LittleEndian.Uint16(dst[2:])); s != float32(sum) {
					t.Errorf("%s/%s: s = %g, want %d", ty, v, s, sum)
				}
			}
		}
	}
	// Q8_K: max = -127 gives iscale = 1; nearest_int rounds ties to even in
	// both variants (the product is exact, so fusing changes nothing).
	xk := make([]float32, 256)
	copy(xk, []float32{-127, 2.5, -2.5, 3.5, 126.5, 127})
	dst := make([]byte, 292)
	for _, v := range []QuantVariant{QuantCPU, QuantRef} {
		if err := QuantizeRowQ8_K(xk, dst, v); err != nil {
			t.Fatal(err)
		}
		for j, w := range []int8{-127, 2, -2, 4, 126, 127} {
			if q := int8(dst[4+j]); q != w {
				t.Errorf("q8_K/%s: q[%d] = %d, want %d", v, j, q, w)
			}
		}
		if d := math.Float32frombits(binary.LittleEndian.Uint32(dst)); d != 1 {
			t.Errorf("q8_K/%s: d = %g", v, d)
		}
		if s := int16(binary.LittleEndian.Uint16(dst[260:])); s != -127+2-2+4+126+127 {
			t.Errorf("q8_K/%s: bsums[0] = %d", v, s)
		}
	}
}

// TestQuantizeRowQ8KSign: the scale takes the sign of the first value of
// largest magnitude, so +9 before -9 and -9 before +9 give opposite scales.
func TestQuantizeRowQ8KSign(t *testing.T) {
	for _, first := range []float32{9, -9} {
		x := make([]float32, 256)
		x[3], x[100] = first, -first
		x[7] = 4.5
		dst := make([]byte, 292)
		if err := QuantizeRowQ8_K(x, dst, QuantCPU); err != nil {
			t.Fatal(err)
		}
		d := math.Float32frombits(binary.LittleEndian.Uint32(dst))
		if (d < 0) != (first > 0) {
			t.Errorf("first max %g: d = %g has the wrong sign", first, d)
		}
		if got := d * float32(int8(dst[4+3])); math.Abs(float64(got-first)) > 1e-5 {
			t.Errorf("first max %g: decodes to %g", first, got)
		}
	}
}

// TestQuantizeRowQ8KFused: on near-ties the two variants disagree, and
// QuantCPU matches the exact rounding of iscale*x+12582912.
func TestQuantizeRowQ8KFused(t *testing.T) {
	x := q8KNearTies(rand.New(rand.NewPCG(2, 2)), 16)
	cpu, ref := make([]byte, 16*292), make([]byte, 16*292)
	if err := QuantizeRowQ8_K(x, cpu, QuantCPU); err != nil {
		t.Fatal(err)
	}
	if err := QuantizeRowQ8_K(x, ref, QuantRef); err != nil {
		t.Fatal(err)
	}
	differ := 0
	for b := 0; b < 16; b++ {
		blk := x[256*b : 256*b+256]
		var maxv, amax float32
		for _, v := range blk {
			if a := float32(math.Abs(float64(v))); a > amax {
				amax, maxv = a, v
			}
		}
		iscale := -127 / maxv
		for j, v := range blk {
			p := new(big.Float).SetPrec(200).Mul(big.NewFloat(float64(iscale)), big.NewFloat(float64(v)))
			p.Add(p, big.NewFloat(12582912))
			f, _ := p.Float32()
			want := min(int8(int32(math.Float32bits(f)&0x7fffff)-0x400000), 127)
			if got := int8(cpu[292*b+4+j]); got != want {
				t.Fatalf("block %d value %d (%g): QuantCPU %d, exact fused rounding %d", b, j, v, got, want)
			}
			if cpu[292*b+4+j] != ref[292*b+4+j] {
				differ++
			}
		}
	}
	if differ == 0 {
		t.Error("no value where fused and unfused rounding differ")
	}
	t.Logf("%d values differ between the fused and unfused Q8_K", differ)
}

// TestQuantizeRowRoundTrip: quantize then dequantize is within half a step.
func TestQuantizeRowRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	x := make([]float32, 1024)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 3)
	}
	for _, ty := range []Type{Q8_0, Q8_K, F16, BF16, F32} {
		for _, v := range []QuantVariant{QuantCPU, QuantRef} {
			q := make([]byte, len(x)/ty.BlockSize()*ty.BlockBytes())
			if err := QuantizeRow(ty, x, q, v); err != nil {
				t.Fatal(err)
			}
			y := make([]float32, len(x))
			if err := Dequantize(ty, q, y); err != nil {
				t.Fatal(err)
			}
			for i := range x {
				bs := max(ty.BlockSize(), 32)
				amax := 0.0
				for _, xv := range x[i/bs*bs : i/bs*bs+bs] {
					amax = math.Max(amax, math.Abs(float64(xv)))
				}
				tol := amax / 127 * 0.57 // half a step, plus the float16 rounding of d
				switch ty {
				case F16:
					tol = math.Abs(float64(x[i])) * 0x1p-11
				case BF16:
					tol = math.Abs(float64(x[i])) * 0x1p-8
				case F32:
					tol = 0
				}
				if d := math.Abs(float64(y[i] - x[i])); d > tol*1.01 {
					t.Fatalf("%s/%s: value %d: %g -> %g (error %g > %g)", ty, v, i, x[i], y[i], d, tol)
				}
			}
		}
	}
}

// TestQuantizeRowZero: all-zero input gives all-zero blocks.
func TestQuantizeRowZero(t *testing.T) {
	for _, ty := range []Type{F32, F16, BF16, Q8_0, Q8_1, Q8_K} {
		for _, v := range []QuantVariant{QuantCPU, QuantRef} {
			dst := make([]byte, 2*ty.BlockBytes()*256/ty.BlockSize())
			for i := range dst {
				dst[i] = 0xaa
			}
			if err := QuantizeRow(ty, make([]float32, 512), dst, v); err != nil {
				t.Fatal(err)
			}
			for i, b := range dst {
				if b != 0 {
					t.Fatalf("%s/%s: byte %d = %#x", ty, v, i, b)
				}
			}
		}
	}
}

// TestQuantizeRowErrors: bad types, lengths and variants are errors.
func TestQuantizeRowErrors(t *testing.T) {
	cases := []struct {
		t    Type
		n    int
		dst  int
		v    QuantVariant
		want string
	}{
		{Q4_0, 32, 18, QuantCPU, "no activation quantizer for type q4_0"},
		{Q8_0, 31, 34, QuantCPU, "31 values are not a multiple of the block size 32"},
		{Q8_0, 32, 35, QuantCPU, "32 values need 34 bytes (1 blocks of 32 values in 34 bytes), got a buffer of 35"},
		{Q8_K, 256, 291, QuantRef, "q8_K: 256 values need 292 bytes"},
		{F16, 3, 5, QuantCPU, "f16: 3 values need 6 bytes"},
		{Q8_0, 32, 34, QuantVariant(7), "unknown variant 7"},
	}
	for _, c := range cases {
		err := QuantizeRow(c.t, make([]float32, c.n), make([]byte, c.dst), c.v)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("QuantizeRow(%s, %d values, %d bytes, %s) = %v, want %q", c.t, c.n, c.dst, c.v, err, c.want)
		}
	}
	if err := QuantizeRowQ8_1(make([]float32, 64), make([]byte, 72), QuantCPU); err != nil {
		t.Error(err)
	}
	if QuantCPU.String() != "cpu" || QuantRef.String() != "ref" || QuantVariant(5).String() != "QuantVariant(5)" {
		t.Error("QuantVariant.String")
	}
}

// TestVecDotType spot-checks the table (the llamacpp build checks all of it
// against ggml-cpu).
func TestVecDotType(t *testing.T) {
	for ty, want := range map[Type]Type{
		F32: F32, F16: F16, BF16: BF16, Q4_0: Q8_0, Q8_0: Q8_0, IQ4_NL: Q8_0, MXFP4: Q8_0,
		Q4_1: Q8_1, Q5_1: Q8_1, Q4_K: Q8_K, Q6_K: Q8_K, IQ4_XS: Q8_K, TQ2_0: Q8_K, IQ1_M: Q8_K,
		Q8_K: F32, I32: F32,
	} {
		if got := VecDotType(ty); got != want {
			t.Errorf("VecDotType(%s) = %s, want %s", ty, got, want)
		}
	}
}
