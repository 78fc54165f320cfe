//go:build llamacpp

package forward

import (
	"fmt"
	"testing"
)

// TestPhi3RopeFactorsMatchLlamaCpp runs the phi3 fixture (original context
// 256, long and short RoPE factors) with KV caches of 256 cells (the short
// factors) and 512 (more than the original context: the long ones), as
// llama_model::get_rope_factors chooses, and requires every node
// bit-identical to llama.cpp's.
func TestPhi3RopeFactorsMatchLlamaCpp(t *testing.T) {
	toks := []int32{1, 300, 301, 302, 303, 304, 305, 306}
	for _, typ := range []struct {
		name  string
		ftype int
	}{{"f32", 0}, {"q8_0", 7}} {
		path := fixturePath(t, "phi3", typ.name, typ.ftype)
		for _, nctx := range []int{256, 512} {
			for _, fa := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/nctx=%d/fa=%v", typ.name, nctx, fa), func(t *testing.T) {
					opts := llamaOptions(t)
					opts.FlashAttn = fa
					opts.NCtx = nctx
					opts.Threads = 2
					r := compareRun(t, path, toks, opts)
					if r.same != r.nodes {
						t.Errorf("%d of %d nodes bit-identical; first: %v", r.same, r.nodes, r.diffs[0])
					}
				})
			}
		}
	}
}
