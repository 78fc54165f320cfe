package forward

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// TestPhi3RopeFactorChoice checks that the ROPE nodes read
// rope_factors_short.weight while the KV cache is no larger than the
// original context (256 for the fixture) and rope_factors_long.weight
// beyond it, and neither when the model has none.
func TestPhi3RopeFactorChoice(t *testing.T) {
	m := fixtureModel(t, fixture.Default("phi3"))
	noFactors := phi3Without(t, "rope_factors_long.weight", "rope_factors_short.weight")
	for _, tc := range []struct {
		m    *Model
		nctx int
		want string
	}{
		{m, 0, "rope_factors_short.weight"},
		{m, 256, "rope_factors_short.weight"},
		{m, 512, "rope_factors_long.weight"},
		{noFactors, 512, ""},
		// original_context_length 0: get_rope_factors compares with 0
		{phi3WithOrigCtx(t, 0), 256, "rope_factors_long.weight"},
		{phi3WithOrigCtx(t, 1024), 512, "rope_factors_short.weight"},
	} {
		opts := DefaultOptions()
		opts.NCtx = tc.nctx
		var c Collector
		if _, err := tc.m.Run([]int32{1, 300, 301}, opts, &c); err != nil {
			t.Fatal(err)
		}
		ropes := 0
		for _, n := range c.Nodes {
			if n.Op != "ROPE" {
				continue
			}
			ropes++
			var got string
			if len(n.SrcNames) > 2 {
				got = n.SrcNames[2]
			}
			if got != tc.want {
				t.Errorf("n_ctx %d: %s reads factors %q, want %q", tc.nctx, n.Name, got, tc.want)
			}
		}
		if ropes != 4 {
			t.Errorf("n_ctx %d: %d ROPE nodes, want 4", tc.nctx, ropes)
		}
	}
}

// phi3WithOrigCtx loads the phi3 fixture with
// rope.scaling.original_context_length n.
func phi3WithOrigCtx(t *testing.T, n uint32) *Model {
	t.Helper()
	m, err := loadEdited(t, "phi3", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
		return setKV(kvs, "phi3.rope.scaling.original_context_length", n), ts
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// setKV replaces the value of key in kvs.
func setKV(kvs []gguf.KV, key string, v any) []gguf.KV {
	for i := range kvs {
		if kvs[i].Key == key {
			kvs[i] = gguf.NewKV(key, v)
		}
	}
	return kvs
}

// phi3Without loads the phi3 fixture without the tensors or keys drop.
func phi3Without(t *testing.T, drop ...string) *Model {
	t.Helper()
	m, err := loadEdited(t, "phi3", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
		kvs = slices.DeleteFunc(kvs, func(kv gguf.KV) bool { return slices.Contains(drop, kv.Key) })
		ts = slices.DeleteFunc(ts, func(w gguf.WriteTensor) bool { return slices.Contains(drop, w.Name) })
		return kvs, ts
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPhi3LoadErrors checks the models Load refuses: without the fused
// QKV (llama.cpp's phi3 has no separate Q, K, V), a fused up projection
// of n_ff rows instead of 2·n_ff, rope factors of the wrong length, and
// a head dimension the fused views cannot split.
func TestPhi3LoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name        string
		edit        func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor)
		want        string
		unsupported bool
	}{
		{"no attn_qkv", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			return kvs, slices.DeleteFunc(ts, func(w gguf.WriteTensor) bool { return w.Name == "blk.1.attn_qkv.weight" })
		}, `missing tensor "blk.1.attn_qkv.weight"`, false},
		{"ffn_up of n_ff", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			for i := range ts {
				if ts[i].Name == "blk.0.ffn_up.weight" {
					ts[i].Ne = []int64{ts[i].Ne[0] * 2, ts[i].Ne[1] / 2}
				}
			}
			return kvs, ts
		}, `"blk.0.ffn_up.weight" has shape [512 512], want [256 1024]`, false},
		{"short factors", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			for i := range ts {
				if ts[i].Name == "rope_factors_short.weight" {
					ts[i].Ne = []int64{16}
					ts[i].Data = ts[i].Data[:64]
				}
			}
			return kvs, ts
		}, `"rope_factors_short.weight" has shape [16], want [32]`, false},
		{"no feed_forward_length", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			return slices.DeleteFunc(kvs, func(kv gguf.KV) bool { return kv.Key == "phi3.feed_forward_length" }), ts
		}, "missing metadata key phi3.feed_forward_length", false},
		{"head dim", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			kvs = setKV(kvs, "phi3.attention.head_count", uint32(8))
			return append(kvs, gguf.NewKV("phi3.attention.key_length", uint32(64)), gguf.NewKV("phi3.attention.value_length", uint32(64))), ts
		}, "phi3 head dimension 64 * 8 heads != embedding length 256", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadEdited(t, "phi3", tc.edit)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want an error containing %q", err, tc.want)
			}
			if errors.Is(err, ErrUnsupported) != tc.unsupported {
				t.Errorf("Load: %v: errors.Is(ErrUnsupported) = %v, want %v", err, !tc.unsupported, tc.unsupported)
			}
		})
	}
}

// TestPhi3KernelProfiles runs the phi3 fixture with F32, F16 and Q8_0
// matrices in every kernel profile: each runs (none refuses a phi3 op) and
// its logits stay within a last-bits distance of the f64 numerics'.
func TestPhi3KernelProfiles(t *testing.T) {
	toks := []int32{1, 300, 301, 302, 303}
	for _, typ := range []quant.Type{quant.F32, quant.F16, quant.Q8_0} {
		m, err := loadEdited(t, "phi3", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			for i := range ts {
				if len(ts[i].Ne) != 2 || typ == quant.F32 {
					continue
				}
				v := make([]float32, len(ts[i].Data)/4)
				for k := range v {
					v[k] = math.Float32frombits(binary.LittleEndian.Uint32(ts[i].Data[4*k:]))
				}
				dst := make([]byte, len(v)/typ.BlockSize()*typ.BlockBytes())
				if err := quant.QuantizeRow(typ, v, dst, quant.QuantRef); err != nil {
					t.Fatal(err)
				}
				ts[i].Type, ts[i].Data = typ, dst
			}
			return kvs, ts
		})
		if err != nil {
			t.Fatal(err)
		}
		opts := DefaultOptions()
		opts.Numerics = NumericsF64
		want, err := m.Run(toks, opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range KernelProfiles() {
			for _, fa := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/%s/fa=%v", typ, p, fa), func(t *testing.T) {
					opts := DefaultOptions()
					opts.Kernels = p
					opts.FlashAttn = fa
					got, err := m.Run(toks, opts, nil)
					if err != nil {
						t.Fatal(err)
					}
					var num, den float64
					for i, w := range want.Data {
						d := float64(got.Data[i]) - float64(w)
						num += d * d
						den += float64(w) * float64(w)
					}
					// the F16 KV cache (and F16 activations): ~1e-6; Q8_0
					// activations: ~2e-4
					bound := 1e-4
					if typ == quant.Q8_0 {
						bound = 1e-3
					}
					if nmse := num / den; !(nmse < bound) {
						t.Errorf("logits NMSE %.3g from the f64 numerics", nmse)
					}
				})
			}
		}
	}
}
