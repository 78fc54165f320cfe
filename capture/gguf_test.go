package capture_test

import (
	"encoding/binary"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// TestNumpyGGUFDequantMatchesGo writes random tensors of every type the
// numpy engine's GGUF reader knows and requires its float32 values to match
// layerdiff's dequantizer (pkg/model/quant) within float32 rounding.
func TestNumpyGGUFDequantMatchesGo(t *testing.T) {
	py := python(t)
	rng := rand.New(rand.NewSource(7))
	// byte offsets of f16 scale fields in a block, made finite and small
	scales := map[quant.Type][]int{
		quant.Q8_0: {0}, quant.Q4_0: {0}, quant.Q4_1: {0, 2},
		quant.Q4_K: {0, 2}, quant.Q5_K: {0, 2}, quant.Q6_K: {208},
	}
	types := []quant.Type{quant.F32, quant.F16, quant.BF16, quant.Q8_0, quant.Q4_0, quant.Q4_1, quant.Q4_K, quant.Q5_K, quant.Q6_K}
	ne := []int64{512, 3}
	var ts []gguf.WriteTensor
	for _, typ := range types {
		n := int(ne[0] * ne[1])
		var b []byte
		switch typ {
		case quant.F32, quant.F16, quant.BF16:
			for i := 0; i < n; i++ {
				v := float32(rng.NormFloat64())
				switch typ {
				case quant.F32:
					b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
				case quant.F16:
					b = binary.LittleEndian.AppendUint16(b, quant.F32ToF16(v))
				default:
					b = binary.LittleEndian.AppendUint16(b, uint16(math.Float32bits(v)>>16))
				}
			}
		default:
			blk := typ.BlockSize()
			size := typ.BlockBytes()
			b = make([]byte, n/blk*size)
			rng.Read(b)
			for off := 0; off < len(b); off += size {
				for _, s := range scales[typ] {
					// sign, exponent 2^-6..2^-2, random mantissa
					h := uint16(rng.Intn(2))<<15 | uint16(9+rng.Intn(5))<<10 | uint16(rng.Intn(1024))
					binary.LittleEndian.PutUint16(b[off+s:], h)
				}
			}
		}
		ts = append(ts, gguf.WriteTensor{Name: typ.String(), Ne: ne, Type: typ, Data: b})
	}
	dir := t.TempDir()
	model := filepath.Join(dir, "types.gguf")
	kvs := []gguf.KV{{Key: "general.architecture", Type: gguf.ValueString, Value: "llama"}}
	if err := gguf.WriteFile(model, kvs, ts, 32); err != nil {
		t.Fatal(err)
	}
	script := `
import sys
sys.path.insert(0, "python/examples")
import numpy_gguf
g = numpy_gguf.GGUF(sys.argv[1])
for name in g.tensors:
    g.tensor(name).astype("<f4").tofile(sys.argv[2] + "/" + name + ".f32")
`
	run(t, ".", false, py, "-c", script, model, dir)
	for _, wt := range ts {
		want := make([]float32, ne[0]*ne[1])
		if err := quant.Dequantize(wt.Type, wt.Data, want); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, wt.Name+".f32"))
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) != 4*len(want) {
			t.Fatalf("%s: %d bytes from numpy, want %d", wt.Name, len(raw), 4*len(want))
		}
		bad := 0
		for i, w := range want {
			g := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			if d := math.Abs(float64(g - w)); d > 1e-6*math.Max(1, math.Abs(float64(w))) {
				if bad++; bad <= 3 {
					t.Errorf("%s[%d]: numpy %g, Go %g", wt.Name, i, g, w)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d values differ", wt.Name, bad, len(want))
		}
	}
}
