package forward

import (
	"encoding/binary"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// randIQ3TQRow returns a row of n values of type t made of random bytes
// with sane block scales (MXFP4 exponents 110..140).
func randIQ3TQRow(r *rand.Rand, t quant.Type, n int) []byte {
	bs := t.BlockBytes()
	x := make([]byte, n/t.BlockSize()*bs)
	for i := range x {
		x[i] = byte(r.Intn(256))
	}
	for b := 0; b < len(x)/bs; b++ {
		xb := x[b*bs : (b+1)*bs]
		d := toF16(float32(r.Float64()*0.01 + 1e-4))
		switch t {
		case quant.IQ3_XXS, quant.IQ3_S:
			binary.LittleEndian.PutUint16(xb, d)
		case quant.TQ1_0:
			binary.LittleEndian.PutUint16(xb[52:], d)
		case quant.TQ2_0:
			binary.LittleEndian.PutUint16(xb[64:], d)
		case quant.MXFP4:
			xb[0] = byte(110 + r.Intn(31))
		}
	}
	return x
}

// dequantAct is the value of the Q8_K or Q8_0 activation row y.
func dequantAct(t quant.Type, y []byte, n int) []float64 {
	v := make([]float64, n)
	if t == quant.Q8_K {
		for b := 0; b < n/256; b++ {
			d := float64(math.Float32frombits(binary.LittleEndian.Uint32(y[292*b:])))
			for i := 0; i < 256; i++ {
				v[256*b+i] = d * float64(int8(y[292*b+4+i]))
			}
		}
		return v
	}
	for b := 0; b < n/32; b++ {
		d := float64(ldF16(y[34*b:]))
		for i := 0; i < 32; i++ {
			v[32*b+i] = d * float64(int8(y[34*b+2+i]))
		}
	}
	return v
}

// TestIQ3TQDotsMatchFloat checks each IQ3_XXS, IQ3_S, TQ1_0, TQ2_0 and
// MXFP4 dot product against the float reference: the dequantized weights
// (pkg/model/quant, checked against ggml's to_float) times the
// dequantized activations, summed in float64, within float32 rounding of
// the sum of |products|; and every fast path (the int8 row kernel, MXFP4's
// even/odd Q8_0 path) against the portable kernel, bit for bit.
func TestIQ3TQDotsMatchFloat(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for _, typ := range []quant.Type{quant.IQ3_XXS, quant.IQ3_S, quant.TQ1_0, quant.TQ2_0, quant.MXFP4} {
		vdt := quant.VecDotType(typ)
		qdot, err := quantDot(typ, kernVecDot)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{256, 768, 4096} {
			const ncol = 4
			ys := make([][]byte, ncol)
			for c := range ys {
				src := make([]float32, n)
				for i := range src {
					src[i] = float32(r.NormFloat64())
				}
				rb, _ := vdt.RowBytes(int64(n))
				ys[c] = make([]byte, rb)
				if err := quant.QuantizeRow(vdt, src, ys[c], quant.QuantCPU); err != nil {
					t.Fatal(err)
				}
			}
			for trial := 0; trial < 4; trial++ {
				x := randIQ3TQRow(r, typ, n)
				w := make([]float32, n)
				if err := quant.Dequantize(typ, x, w); err != nil {
					t.Fatal(err)
				}
				var krow kRowDots
				var mxr mxfp4Row
				useK := krow.decode(typ, n, x)
				mxCols := splitMXFP4Cols(ys, n/32)
				useMX := typ == quant.MXFP4 && mxCols != nil && mxr.decode(x, n/32)
				if hasAVX2 && !useK && !useMX {
					t.Fatalf("%s: no fast path on an AVX2 CPU", typ)
				}
				var fast [4]float32
				var ysc [4][]byte
				copy(ysc[:], ys)
				switch {
				case useK && !krow.dots(typ, x, &ysc, ncol, fast[:]):
					t.Fatalf("%s: row kernel declined", typ)
				case useMX && !mxr.dots(mxCols, ys, 0, ncol, fast[:]):
					t.Fatalf("%s: even/odd path declined", typ)
				}
				for c := 0; c < ncol; c++ {
					a := dequantAct(vdt, ys[c], n)
					var ref, mag float64
					for i := range a {
						ref += float64(w[i]) * a[i]
						mag += math.Abs(float64(w[i]) * a[i])
					}
					got := qdot(n, x, ys[c])
					if math.Abs(float64(got)-ref) > 2e-6*mag+1e-30 {
						t.Errorf("%s n=%d trial %d col %d: %v, float reference %v (Σ|xy| %v)", typ, n, trial, c, got, ref, mag)
					}
					if (useK || useMX) && math.Float32bits(fast[c]) != math.Float32bits(got) {
						t.Errorf("%s n=%d trial %d col %d: fast path %v, portable %v", typ, n, trial, c, fast[c], got)
					}
				}
			}
		}
	}
}

// TestIQ3TQNEONRefused: under the arm64-neon profile (no emulation of
// ggml's ARM kernels for these types) a model with such a weight is
// refused with an error naming the profile and the type; under the x86
// profiles it runs.
func TestIQ3TQNEONRefused(t *testing.T) {
	b := tinyGGUF(t, defaultTiny("llama"))
	f := parseTiny(t, b)
	r := rand.New(rand.NewSource(1))
	for _, typ := range []quant.Type{quant.IQ3_XXS, quant.IQ3_S, quant.TQ1_0, quant.TQ2_0, quant.MXFP4} {
		var ts []gguf.WriteTensor
		for i := range f.Tensors {
			ti := &f.Tensors[i]
			data, err := f.TensorData(ti)
			if err != nil {
				t.Fatal(err)
			}
			w := gguf.WriteTensor{Name: ti.Name, Ne: ti.Ne, Type: ti.Type, Data: data}
			if ti.Name == "blk.0.ffn_up.weight" {
				w.Type, w.Data = typ, randIQ3TQRow(r, typ, int(ti.Ne[0]*ti.Ne[1]))
			}
			ts = append(ts, w)
		}
		m, err := Load(writeGGUF(t, f.KVs, ts))
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		opts := DefaultOptions()
		opts.Kernels = KernelsARM64NEON
		if _, err := m.Run([]int32{1, 2}, opts, nil); err == nil || !strings.Contains(err.Error(), KernelsARM64NEON) || !strings.Contains(err.Error(), typ.String()) {
			t.Errorf("%s under %s: %v", typ, KernelsARM64NEON, err)
		}
		for _, k := range []string{KernelsAVX2, KernelsAVX512} {
			opts.Kernels = k
			if _, err := m.Run([]int32{1, 2}, opts, nil); err != nil {
				t.Errorf("%s under %s: %v", typ, k, err)
			}
		}
		opts = DefaultOptions()
		opts.Numerics = NumericsF64
		if _, err := m.Run([]int32{1, 2}, opts, nil); err != nil {
			t.Errorf("%s in f64: %v", typ, err)
		}
	}
}

// TestIQ3GridsNonZero: applySigns negates bytes without carries only
// because no grid magnitude is 0.
func TestIQ3GridsNonZero(t *testing.T) {
	for i := 0; i < 256; i++ {
		for j := 0; j < 4; j++ {
			if quant.IQ3XXSGrid(uint8(i))>>(8*uint(j))&0xFF == 0 {
				t.Errorf("iq3xxs_grid[%d] byte %d is 0", i, j)
			}
		}
	}
	for i := 0; i < 512; i++ {
		for j := 0; j < 4; j++ {
			if quant.IQ3SGrid(i)>>(8*uint(j))&0xFF == 0 {
				t.Errorf("iq3s_grid[%d] byte %d is 0", i, j)
			}
		}
	}
	// bytes 0, 2 and 7 negated: 03 → fd, 01 → ff, 3e → c2
	if got, want := applySigns(0x3e0c0401_0f010203, signMask8[0b10000101]), uint64(0xc20c0401_0fff02fd); got != want {
		t.Errorf("applySigns = %#x, want %#x", got, want)
	}
}
