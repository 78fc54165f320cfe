package pipeline

import (
	"slices"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

func TestRefInputs(t *testing.T) {
	// the dump of a fixture is not available without llama.cpp: resolve
	// source names against an in-memory source
	src := &hintSource{nodes: []hintNode{
		{key: "Qcur-0", name: "Qcur-0", data: []float32{1, 2}},
		{key: "Qcur-0 (reshaped)", name: "Qcur-0 (reshaped)", src: []string{"Qcur-0"}, data: []float32{1, 2}},
		{key: "Qcur-0#2", name: "Qcur-0", src: []string{"Qcur-0 (reshaped)", "leaf_4"}, data: []float32{3, 4}},
		{key: "x", name: "x", src: []string{"Qcur-0", "blk.0.attn_q.weight"}},
	}}
	names, ts := refInputs(src, "Qcur-0#2")
	if !slices.Equal(names, []string{"Qcur-0 (reshaped)", "leaf_4"}) || ts[0] == nil || ts[0].Key != "Qcur-0 (reshaped)" || ts[1] != nil {
		t.Errorf("names %q tensors %+v", names, ts)
	}
	// the latest earlier node of a repeated name
	_, ts = refInputs(src, "x")
	if ts[0] == nil || ts[0].Data[0] != 3 || ts[1] != nil {
		t.Errorf("tensors %+v", ts)
	}
	if names, ts := refInputs(src, "nope"); names != nil || ts != nil {
		t.Errorf("unknown key: %q %+v", names, ts)
	}
}

// hintSource is an in-memory reference.Source.
type hintSource struct{ nodes []hintNode }

type hintNode struct {
	key, name string
	src       []string
	data      []float32
}

func (m *hintSource) Describe() reference.Info {
	return reference.Info{Kind: reference.KindDump, Path: "mem"}
}

func (m *hintSource) Nodes() []reference.NodeInfo {
	var out []reference.NodeInfo
	for _, n := range m.nodes {
		d := reference.NoData
		if n.data != nil {
			d = reference.FullData
		}
		out = append(out, reference.NodeInfo{Key: n.key, Name: n.name, Src: n.src, Ne: []int64{int64(len(n.data))}, Data: d})
	}
	return out
}

func (m *hintSource) Load(key string) (*tensor.Tensor, error) {
	for _, n := range m.nodes {
		if n.key == key {
			if n.data == nil {
				return nil, reference.ErrNoData
			}
			return &tensor.Tensor{Key: n.key, Name: n.name, Ne: []int64{int64(len(n.data))}, Data: n.data}, nil
		}
	}
	return nil, reference.ErrNotFound
}
