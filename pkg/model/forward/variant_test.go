package forward

import (
	"errors"
	"slices"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// runVariant runs the tiny llama model with the f64 numerics, flash
// attention off, and returns every node's data by key.
func runVariant(t *testing.T, m *Model, v *Variant) ([]string, map[string][]float32) {
	t.Helper()
	opts := DefaultOptions()
	opts.Numerics, opts.FlashAttn, opts.KVType, opts.Variant = NumericsF64, false, quant.F32, v
	var keys []string
	data := map[string][]float32{}
	seen := map[string]int{}
	_, err := m.Run(goldenTokens[:6], opts, RecorderFunc(func(n *Node, x *tensor.Tensor) error {
		seen[n.Name]++
		key := n.Name + "#" + string(rune('0'+seen[n.Name]))
		keys = append(keys, key)
		data[key] = append([]float32(nil), x.Data...)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return keys, data
}

// TestVariantFirstChange checks that every Variant changes the graph first
// at the op it is about, and that the zero Variant changes nothing.
func TestVariantFirstChange(t *testing.T) {
	m := tinyModel(t, defaultTiny("llama"))
	keys, base := runVariant(t, m, nil)
	for _, tc := range []struct {
		name string
		v    Variant
		want string // first node (name#occurrence) whose data changes
	}{
		{"zero", Variant{}, ""},
		{"eps", Variant{RMSEps: m.Hparams.NormRMSEps / 10}, "norm-0#1"},
		{"rope-mode", Variant{RopeOtherMode: true}, "Qcur-0#2"},
		{"rope-base", Variant{RopeBase: 500000}, "Qcur-0#2"},
		{"pos", Variant{PosOffset: 1}, "Qcur-0#2"},
		{"scale", Variant{AttnScale: 1.0 / 64}, "kq_soft_max-0#1"},
		{"gqa", Variant{GQATile: true}, "kq-0#1"},
		{"gelu", Variant{Act: "gelu"}, "ffn_swiglu-0#1"},
		{"gelu-erf", Variant{Act: "gelu-erf"}, "ffn_swiglu-0#1"},
		{"wo", Variant{TransposedWeight: "blk.0.attn_output.weight"}, "attn_out-0#1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got := runVariant(t, m, &tc.v)
			first := ""
			for _, k := range keys {
				if !slices.Equal(got[k], base[k]) {
					first = k
					break
				}
			}
			if first != tc.want {
				t.Errorf("%s: first changed node %q, want %q", tc.v.String(), first, tc.want)
			}
		})
	}
}

func TestVariantErrors(t *testing.T) {
	m := tinyModel(t, defaultTiny("llama"))
	opts := DefaultOptions()
	opts.Variant = &Variant{RMSEps: 1e-6}
	if _, err := m.Run(goldenTokens[:3], opts, nil); !errors.Is(err, ErrVariantNumerics) {
		t.Errorf("ggml numerics with a variant: %v, want ErrVariantNumerics", err)
	}
	opts.Numerics = NumericsF64
	for _, v := range []Variant{{Act: "relu"}, {TransposedWeight: "nope.weight"}, {TransposedWeight: "blk.0.ffn_up.weight"}, {RMSEps: -1}} {
		opts.Variant = &v
		if _, err := m.Run(goldenTokens[:3], opts, nil); err == nil {
			t.Errorf("variant %+v: no error", v)
		}
	}
}
