package reference

import (
	"slices"
	"testing"
)

// TestWithNamesHFPhi3: Phi3ForCausalLM's fused projections map to
// llama.cpp's wqkv-L and ffn_up-L, their data unpermuted.
func TestWithNamesHFPhi3(t *testing.T) {
	hf, err := BuiltinNameMap(NamesHF, "phi3")
	if err != nil {
		t.Fatal(err)
	}
	nodes := []NodeInfo{
		{Name: "model.layers.1.self_attn.qkv_proj", Ne: []int64{32, 3}},
		{Name: "model.layers.1.mlp.gate_up_proj", Ne: []int64{64, 3}},
		{Name: "model.layers.1.self_attn.o_proj", Ne: []int64{16, 3}},
	}
	mem := newNamesSource(nodes...)
	orig := map[string][]float32{}
	for k, v := range mem.data {
		orig[k] = slices.Clone(v)
	}
	src, _, err := WithNames(mem, hf, NameOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, op string }{{"wqkv-1", "MUL_MAT"}, {"ffn_up-1", "MUL_MAT"}, {"attn_out-1", "MUL_MAT"}}
	for i, n := range src.Nodes() {
		if n.Name != want[i].name || n.Op != want[i].op {
			t.Errorf("%s: %s %s, want %s %s", nodes[i].Name, n.Name, n.Op, want[i].name, want[i].op)
		}
		ld, err := src.Load(n.Key)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ld.Data, orig[nodes[i].Name]) {
			t.Errorf("%s: data changed: %v", n.Name, ld.Data[:8])
		}
	}
}
