//go:build llamacpp

package forward

import (
	"math"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

type collect struct {
	nodes []Node
	ts    []*tensor.Tensor
}

func (c *collect) Want(*Node) bool { return true }
func (c *collect) Record(n *Node, t *tensor.Tensor) error {
	c.nodes = append(c.nodes, *n)
	c.ts = append(c.ts, t)
	return nil
}

func TestThinPath(t *testing.T) {
	path := sharedModel(t, "S-Q8_0.gguf")
	toks := []int32{1, 15043, 3186, 29892, 445, 338, 263, 1243}
	for _, fa := range []bool{true, false} {
		ref := llamaNodes(t, refConfig{Path: path, Tokens: toks, FA: fa, KVType: quant.F16})
		f, err := gguf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		opts := llamaOptions(t)
		opts.FlashAttn = fa
		var c collect
		if _, err := m.Run(toks, opts, &c); err != nil {
			t.Fatal(err)
		}
		if len(c.nodes) != len(ref) {
			t.Errorf("fa=%v: %d nodes, llama.cpp %d", fa, len(c.nodes), len(ref))
		}
		same := 0
		for i := 0; i < min(len(ref), len(c.nodes)); i++ {
			r, g := ref[i], c.nodes[i]
			if r.Name != g.Name || r.Op != g.Op || r.Ne != g.Ne {
				t.Errorf("fa=%v node %d: %q %s %v, llama.cpp %q %s %v", fa, i, g.Name, g.Op, g.Ne, r.Name, r.Op, r.Ne)
				continue
			}
			d := c.ts[i].Data
			if r.Data == nil || len(r.Data) != len(d) {
				t.Errorf("fa=%v node %d %q: no comparable data", fa, i, r.Name)
				continue
			}
			diff, num, den := 0, 0.0, 0.0
			for k := range d {
				if math.Float32bits(d[k]) != math.Float32bits(r.Data[k]) && !(d[k] == 0 && r.Data[k] == 0) {
					diff++
				}
				if !math.IsInf(float64(r.Data[k]), 0) {
					e := float64(d[k]) - float64(r.Data[k])
					num += e * e
					den += float64(r.Data[k]) * float64(r.Data[k])
				}
			}
			if diff == 0 {
				same++
			} else {
				nmse := num / den
				t.Logf("fa=%v node %d %-28s %-14s %d/%d differ, nmse %.3g", fa, i, r.Name, r.Op, diff, len(d), nmse)
			}
		}
		t.Logf("fa=%v: %d of %d nodes bit-identical", fa, same, len(ref))
	}
}
