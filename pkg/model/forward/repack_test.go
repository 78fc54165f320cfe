package forward

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// TestRepackOf: ggml_repack_get_optimal_repack_type and supports_op on x86
// — which weights the repack profiles send to the repacked kernels.
func TestRepackOf(t *testing.T) {
	act := &node{typ: quant.F32, ne: [4]int64{256, 8, 1, 1}}
	w := func(typ quant.Type, ne1, ne2 int64) *node {
		return &node{typ: typ, ne: [4]int64{256, ne1, ne2, 1}, weight: []byte{0}}
	}
	avx2, _ := kernelsOf(KernelsAVX2Repack)
	avx512, _ := kernelsOf(KernelsAVX512Repack)
	base, _ := kernelsOf(KernelsAVX512)
	for _, c := range []struct {
		ks         kernels
		a          *node
		want       repackKind
		what       string
		b          *node
		notAWeight bool
	}{
		{ks: avx2, a: w(quant.Q4_0, 64, 1), want: repackQ4_0, what: "Q4_0"},
		{ks: avx2, a: w(quant.IQ4_NL, 64, 1), want: repackIQ4NL, what: "IQ4_NL"},
		{ks: avx2, a: w(quant.Q4_K, 64, 1), want: repackQ4_K, what: "Q4_K"},
		{ks: avx2, a: w(quant.Q2_K, 64, 1), want: repackNone, what: "Q2_K without AVX-512"},
		{ks: avx512, a: w(quant.Q2_K, 64, 1), want: repackQ2_K, what: "Q2_K with AVX-512"},
		{ks: avx512, a: w(quant.Q4_K, 64, 1), want: repackQ4_K, what: "Q4_K with AVX-512"},
		{ks: avx512, a: w(quant.Q8_0, 64, 1), want: repackNone, what: "Q8_0 (not repacked in ec98e2002)"},
		{ks: avx512, a: w(quant.Q6_K, 64, 1), want: repackNone, what: "Q6_K"},
		{ks: avx512, a: w(quant.Q4_1, 64, 1), want: repackNone, what: "Q4_1"},
		{ks: avx512, a: w(quant.Q4_0, 500, 1), want: repackNone, what: "ne[1] % 8 != 0"},
		{ks: avx512, a: w(quant.Q4_0, 64, 2), want: repackNone, what: "3-D weight"},
		{ks: base, a: w(quant.Q4_0, 64, 1), want: repackNone, what: "no repack buffers"},
		{ks: avx512, a: w(quant.Q4_0, 64, 1), want: repackNone, what: "src1 not F32", b: &node{typ: quant.F16, ne: [4]int64{256, 8, 1, 1}}},
		{ks: avx512, a: w(quant.Q4_0, 64, 1), want: repackNone, what: "src0 not a weight", notAWeight: true},
	} {
		b := act
		if c.b != nil {
			b = c.b
		}
		if c.notAWeight {
			c.a.weight = nil
		}
		if got := c.ks.repackOf(c.a, b); got != c.want {
			t.Errorf("%s: repackOf = %d, want %d", c.what, got, c.want)
		}
	}
}

// TestQuantQ8KMat: ggml_quantize_mat_q8_K_4x8 writes quantize_row_q8_K's
// blocks except where (a) both +amax and −amax occur with −amax first (the
// reference takes the first one's sign, the AVX2 quantizer the positive),
// and (b) the product iscale·x rounded to float32 lands on a .5 the exact
// product is not on (from_float rounds the exact product: its nearest_int
// is contracted into one FMA).
func TestQuantQ8KMat(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 256*64)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	mat := make([]byte, 292*64)
	row := make([]byte, 292*64)
	quantQ8KMat(x, mat)
	if err := quant.QuantizeRow(quant.Q8_K, x, row, quant.QuantCPU); err != nil {
		t.Fatal(err)
	}
	// (b): count the quants that differ, and check each is a double-rounding
	// case.
	nq := 0
	for b := 0; b < 64; b++ {
		if binary.LittleEndian.Uint32(mat[292*b:]) != binary.LittleEndian.Uint32(row[292*b:]) {
			t.Fatalf("block %d: d differs", b)
		}
		d := math.Float32frombits(binary.LittleEndian.Uint32(mat[292*b:]))
		iscale := 1 / d
		for j := 0; j < 256; j++ {
			qm, qr := int8(mat[292*b+4+j]), int8(row[292*b+4+j])
			if qm == qr {
				continue
			}
			nq++
			v := x[256*b+j]
			p := float32(v * iscale)
			if p-float32(math.Floor(float64(p))) != 0.5 {
				t.Errorf("block %d value %d: quants %d and %d, product %v is no tie", b, j, qm, qr, p)
			}
		}
		if string(mat[292*b+260:292*b+292]) != string(row[292*b+260:292*b+292]) && nq == 0 {
			t.Errorf("block %d: sums differ with the same quants", b)
		}
	}
	t.Logf("%d of %d quants differ from quantize_row_q8_K (double rounding)", nq, len(x))

	// (a): −amax before +amax.
	blk := make([]float32, 256)
	for i := range blk {
		blk[i] = float32(i%7) / 10
	}
	blk[3], blk[200] = -2, 2
	quantQ8KMat(blk, mat[:292])
	if err := quant.QuantizeRow(quant.Q8_K, blk, row[:292], quant.QuantCPU); err != nil {
		t.Fatal(err)
	}
	dm := math.Float32frombits(binary.LittleEndian.Uint32(mat))
	dr := math.Float32frombits(binary.LittleEndian.Uint32(row))
	if !(dm < 0 && dr > 0) || dm != -dr {
		t.Errorf("tie of ±amax: d %v (mat), %v (row); want the mat's negative (+amax wins), the row's positive", dm, dr)
	}
	if q := int8(mat[4+200]); q != -127 {
		t.Errorf("tie of ±amax: +amax quantized to %d, want -127", q)
	}

	// (b) made to happen: a value whose float32 product is k + 0.5 while
	// the exact one is not.
	for i := range blk {
		blk[i] = 0
	}
	blk[0] = -3 // amax 3, negative: iscale = 127/3
	iscale := float32(127) / 3
	found := false
	for k := 1; k < 126 && !found; k++ {
		v := float32((float64(k) + 0.5) / float64(iscale))
		for step := 0; step < 64 && !found; step++ {
			p := float32(v * iscale)
			exact := float64(v) * float64(iscale)
			if float64(p) == float64(k)+0.5 && math.RoundToEven(exact) != math.RoundToEven(float64(p)) {
				blk[1] = v
				found = true
			}
			v = math.Nextafter32(v, 0)
		}
	}
	if !found {
		t.Fatal("no double-rounding case found")
	}
	quantQ8KMat(blk, mat[:292])
	if err := quant.QuantizeRow(quant.Q8_K, blk, row[:292], quant.QuantCPU); err != nil {
		t.Fatal(err)
	}
	p := float32(blk[1] * iscale)
	want := int8(math.RoundToEven(float64(p)))
	if qm, qr := int8(mat[5]), int8(row[5]); qm != want || qm == qr {
		t.Errorf("x = %v (iscale·x = %v rounded, %v exact): quants %d (mat) and %d (row), want %d and another", blk[1], p, float64(blk[1])*float64(iscale), qm, qr, want)
	}
}

// TestRepackDotsSane: the repacked kernels' outputs are close to the exact
// products of the dequantized weights and activations, and gemm and gemv
// (different accumulation) agree to float32 rounding.
func TestRepackDotsSane(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n = 512
	y := make([]float32, n)
	for i := range y {
		y[i] = float32(r.NormFloat64())
	}
	for _, c := range []struct {
		kind repackKind
		wt   quant.Type
		at   quant.Type
		nb   int
	}{
		{repackQ4_0, quant.Q4_0, quant.Q8_0, n / 32},
		{repackIQ4NL, quant.IQ4_NL, quant.Q8_0, n / 32},
		{repackQ4_K, quant.Q4_K, quant.Q8_K, n / 256},
		{repackQ2_K, quant.Q2_K, quant.Q8_K, n / 256},
	} {
		wb := randomBlocks(r, c.wt, n)
		xd := make([]float32, n)
		if err := quant.Dequantize(c.wt, wb, xd); err != nil {
			t.Fatal(err)
		}
		rb, _ := c.at.RowBytes(n)
		ya, yb := make([]byte, rb), make([]byte, rb)
		if err := quant.QuantizeRow(c.at, y, ya, quant.QuantCPU); err != nil {
			t.Fatal(err)
		}
		if c.at == quant.Q8_K {
			quantQ8KMat(y, yb)
		} else {
			copy(yb, ya)
		}
		yd := make([]float32, n)
		if err := quant.Dequantize(c.at, ya, yd); err != nil {
			t.Fatal(err)
		}
		exact := 0.0
		for i := range xd {
			exact += float64(xd[i]) * float64(yd[i])
		}
		var w repackRow
		w.init(c.kind, c.nb)
		w.decode(c.kind, wb)
		av, am := newRepackAct(c.at, ya), newRepackAct(c.at, yb)
		tmp := make([]int32, n/16)
		gv, gm := w.dot(c.kind, &av, false, tmp), w.dot(c.kind, &am, true, tmp)
		// the portable integer sums give the same bits
		av.clean = false
		if g := w.dot(c.kind, &av, false, tmp); math.Float32bits(g) != math.Float32bits(gv) {
			t.Errorf("%s: portable sums give %v, assembly %v", c.wt, g, gv)
		}
		if e := math.Abs(float64(gv)-exact) / (1 + math.Abs(exact)); e > 1e-5 {
			t.Errorf("%s gemv: %v, exact %v", c.wt, gv, exact)
		}
		if e := math.Abs(float64(gm)-float64(gv)) / (1 + math.Abs(exact)); e > 1e-2 {
			t.Errorf("%s gemm: %v, gemv %v", c.wt, gm, gv)
		}
	}
}

// randomBlocks returns n values of weight type t as random blocks: random
// quant bytes and scales, fp16 d (and dmin) of a moderate size.
func randomBlocks(r *rand.Rand, t quant.Type, n int) []byte {
	nb := n / t.BlockSize()
	bb := t.BlockBytes()
	out := make([]byte, nb*bb)
	for i := range out {
		out[i] = byte(r.Uint32())
	}
	f16 := func(b []byte) {
		binary.LittleEndian.PutUint16(b, quant.F32ToF16(float32(0.001+0.05*r.Float64())))
	}
	for b := 0; b < nb; b++ {
		blk := out[b*bb : (b+1)*bb]
		switch t {
		case quant.Q4_0, quant.IQ4_NL:
			f16(blk)
		case quant.Q4_K:
			f16(blk)
			f16(blk[2:])
		case quant.Q2_K:
			f16(blk[80:])
			f16(blk[82:])
		}
	}
	return out
}

// TestSums16SIMD: the assembly sums of 16 products equal the portable ones,
// extremes included (weights and activations ±127).
func TestSums16SIMD(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{64, 256, 2048, 5632} {
		w, y := make([]int8, n), make([]int8, n)
		for i := range w {
			w[i], y[i] = int8(r.IntN(255)-127), int8(r.IntN(255)-127)
			if i%97 < 16 {
				w[i], y[i] = -127, 127
			}
		}
		got, want := make([]int32, n/16), make([]int32, n/16)
		if !sums16SIMD(w, y, got) {
			t.Skip("no assembly kernel")
		}
		sums16(w, y, false, want)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("n %d: sum %d = %d, want %d", n, i, got[i], want[i])
			}
		}
	}
}
