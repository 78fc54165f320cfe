package forward

import (
	"fmt"
	"slices"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
)

// An architecture is one model family (general.architecture): what
// llama.cpp keeps in llama-arch.cpp, in llama-model.cpp's load_hparams and
// load_tensors cases, and in its own src/models/<arch>.cpp builder. Each
// family lives in one file (arch_<name>.go) and is listed once in
// architectures (archs.go); everything else (the ggml ops, attention, the
// KV cache, the FFN, inputs and outputs) is shared.
type architecture struct {
	name Arch
	// ropeType is the family's RoPE mode (llama_model_rope_type).
	ropeType int
	// hparams reads the family's own metadata after the common keys and
	// checks what its builder assumes; nil when there is nothing more.
	hparams func(m *Model) error
	// tensors lists the tensors of block il, names without "blk.N.".
	// Requests with a nil dst are kept in Layer.Extra.
	tensors func(m *Model, il int) []tensorReq
	// globals loads the family's tensors outside blocks beyond
	// token_embd, output_norm and output (output.bias, rope_freqs); may be
	// nil.
	globals func(m *Model) error
	// experts says the family's blocks may be mixtures of experts
	// ({arch}.expert_count > 0); Load refuses such models otherwise.
	experts bool
	// build adds the family's nodes from the token embeddings to the
	// logits ("result_output") and returns the last node.
	build func(c *buildCtx) *node
}

// tensorReq asks Load for one tensor: its name, shape (ggml order), whether
// it must be F32 (norm weights, biases) and whether it may be absent.
type tensorReq struct {
	dst      **gguf.TensorInfo // where to keep it; nil: Layer.Extra[name]
	name     string
	f32      bool
	required bool
	ne       []int64
}

// lookupArch returns the registered architecture called name.
func lookupArch(name string) (*architecture, bool) {
	for _, a := range architectures {
		if string(a.name) == name {
			return a, true
		}
	}
	return nil, false
}

// Archs lists the architectures the forward pass runs, in registry order.
func Archs() []Arch {
	var out []Arch
	for _, a := range architectures {
		out = append(out, a.name)
	}
	return out
}

// archList is the supported architectures for error messages, in
// registry order ("llama, qwen2, qwen3, ...").
func archList() string {
	var s []string
	for _, a := range Archs() {
		s = append(s, string(a))
	}
	return strings.Join(s, ", ")
}

// Tensor returns block il's tensor name (without "blk.N."), or nil if the
// model has none by that name: the family-specific tensors (Layer.Extra)
// as well as the common ones.
func (L *Layer) Tensor(name string) *gguf.TensorInfo {
	return L.Extra[name]
}

// attnTensors are the separate Q, K, V and output projections of a block
// with q query and kv key/value dimensions and embedding e.
func attnTensors(L *Layer, e, q, kv int64) []tensorReq {
	return []tensorReq{
		{&L.Wq, "attn_q.weight", false, true, []int64{e, q}},
		{&L.Wk, "attn_k.weight", false, true, []int64{e, kv}},
		{&L.Wv, "attn_v.weight", false, true, []int64{e, kv}},
		{&L.Wo, "attn_output.weight", false, true, []int64{q, e}},
	}
}

// gatedFFNTensors are the gate, up and down projections of a gated
// feed-forward of width ff.
func gatedFFNTensors(L *Layer, e, ff int64) []tensorReq {
	return []tensorReq{
		{&L.FFNGate, "ffn_gate.weight", false, true, []int64{e, ff}},
		{&L.FFNUp, "ffn_up.weight", false, true, []int64{e, ff}},
		{&L.FFNDown, "ffn_down.weight", false, true, []int64{ff, e}},
	}
}

// loadLayer loads the tensors reqs of block il.
func (m *Model) loadLayer(il int, reqs []tensorReq) error {
	L := &m.Layers[il]
	p := fmt.Sprintf("blk.%d.", il)
	for _, r := range reqs {
		var ti *gguf.TensorInfo
		var err error
		if r.f32 {
			ti, err = m.f32Tensor(p+r.name, r.required, r.ne...)
		} else {
			ti, err = m.tensor(p+r.name, r.required, r.ne...)
		}
		if err != nil {
			return err
		}
		if r.dst != nil {
			*r.dst = ti
		}
		if ti != nil {
			if L.Extra == nil {
				L.Extra = map[string]*gguf.TensorInfo{}
			}
			L.Extra[r.name] = ti
		}
	}
	return nil
}

// checkNames reports an architecture registry with a duplicate name (a
// programming error caught by the tests).
func checkNames() error {
	var seen []Arch
	for _, a := range architectures {
		if slices.Contains(seen, a.name) {
			return fmt.Errorf("forward: architecture %q registered twice", a.name)
		}
		if a.build == nil || a.tensors == nil {
			return fmt.Errorf("forward: architecture %q has no builder or tensor list", a.name)
		}
		seen = append(seen, a.name)
	}
	return nil
}
