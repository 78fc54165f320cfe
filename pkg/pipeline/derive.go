package pipeline

import (
	"fmt"

	"github.com/layerdiff/layerdiff/pkg/attention"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// withDerivedAttention gives a flash-attention reference the attention
// nodes (kq-L, kq_soft_max-L, kqv-L) the other side has and the reference's
// graph lacks, recomputed from its Q and KV cache views (attention.Derive),
// so that an engine computing attention step by step is measured there
// rather than left unmatched. otherNames are the other side's node names.
// It returns the reference unchanged when there is nothing to derive, and
// the warnings of layers that could not be derived.
func withDerivedAttention(ref reference.Source, otherNames []string) (reference.Source, []string) {
	want := map[string]bool{}
	for _, name := range otherNames {
		base, l := tensor.SplitName(name)
		switch base {
		case attention.KQ, attention.KQSoftMax, attention.KQV:
			if l >= 0 {
				want[layerName(base, l)] = true
			}
		}
	}
	if len(want) == 0 {
		return ref, nil
	}
	have := map[string]bool{}
	hasFA := false
	for _, n := range ref.Nodes() {
		base, l := tensor.SplitName(n.Name)
		have[layerName(base, l)] = true
		hasFA = hasFA || n.Op == "FLASH_ATTN_EXT"
	}
	if !hasFA {
		return ref, nil
	}
	return attention.Derive(ref, func(name string) bool { return want[name] && !have[name] })
}

// nodeNames lists the names of a source's nodes.
func nodeNames(src reference.Source) []string {
	var out []string
	for _, n := range src.Nodes() {
		out = append(out, n.Name)
	}
	return out
}

// layerName is llama.cpp's "base-L".
func layerName(base string, l int) string { return fmt.Sprintf("%s-%d", base, l) }
