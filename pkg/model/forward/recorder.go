package forward

import (
	"fmt"
	"regexp"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Filter is a Recorder that passes the nodes it selects to Next. A zero
// field selects everything; set fields must all match.
type Filter struct {
	// Names selects nodes whose llama.cpp name matches.
	Names *regexp.Regexp
	// Layers selects nodes of these layers; nodes outside the layers
	// (inp_embd, result_norm, result_output) pass when OutsideLayers is
	// set.
	Layers        []int
	OutsideLayers bool
	// SkipViews drops RESHAPE, VIEW, PERMUTE and TRANSPOSE nodes.
	SkipViews bool
	// Tokens keeps only these token positions of each recorded tensor
	// (see SelectTokens); nil keeps all.
	Tokens []int
	// Next receives the selected nodes.
	Next Recorder
}

// Want reports whether n is selected and Next wants it.
func (f *Filter) Want(n *Node) bool {
	if f.SkipViews && n.View {
		return false
	}
	if f.Names != nil && !f.Names.MatchString(n.Name) {
		return false
	}
	if f.Layers != nil {
		ok := n.Layer < 0 && f.OutsideLayers
		for _, l := range f.Layers {
			if n.Layer == l {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return f.Next == nil || f.Next.Want(n)
}

// Record passes t (cut to Tokens) to Next.
func (f *Filter) Record(n *Node, t *tensor.Tensor) error {
	if f.Next == nil {
		return nil
	}
	if f.Tokens != nil {
		var err error
		if t, err = SelectTokens(n, t, f.Tokens); err != nil {
			return err
		}
	}
	return f.Next.Record(n, t)
}

// SelectTokens returns a copy of t with only the given token positions
// along n.TokenDim (a tensor without a token dimension is returned as is).
func SelectTokens(n *Node, t *tensor.Tensor, tokens []int) (*tensor.Tensor, error) {
	dim := n.TokenDim
	if dim < 0 {
		return t, nil
	}
	ne := [4]int64{1, 1, 1, 1}
	copy(ne[:], t.Ne)
	T := int(ne[dim])
	for _, p := range tokens {
		if p < 0 || p >= T {
			return nil, fmt.Errorf("forward: token %d outside the %d positions of %q", p, T, n.Name)
		}
	}
	inner := int64(1)
	for d := 0; d < dim; d++ {
		inner *= ne[d]
	}
	outer := int64(1)
	for d := dim + 1; d < 4; d++ {
		outer *= ne[d]
	}
	out := &tensor.Tensor{Key: t.Key, Name: t.Name, Op: t.Op}
	nne := ne
	nne[dim] = int64(len(tokens))
	out.Ne = tensor.Trim(nne[:])
	out.Data = make([]float32, 0, inner*int64(len(tokens))*outer)
	for o := int64(0); o < outer; o++ {
		for _, p := range tokens {
			base := (o*int64(T) + int64(p)) * inner
			out.Data = append(out.Data, t.Data[base:base+inner]...)
		}
	}
	return out, nil
}

// Collector is a Recorder that keeps every tensor it is offered, keyed
// like reference dumps: the name, plus "#N" (N = 1, 2, ...) for the N-th
// repetition of a name.
type Collector struct {
	Nodes   []Node
	Tensors []*tensor.Tensor
	seen    map[string]int
}

// Want accepts every node.
func (c *Collector) Want(*Node) bool { return true }

// Record stores t with its key.
func (c *Collector) Record(n *Node, t *tensor.Tensor) error {
	if c.seen == nil {
		c.seen = map[string]int{}
	}
	k := c.seen[n.Name]
	c.seen[n.Name] = k + 1
	t.Key = n.Name
	if k > 0 {
		t.Key = fmt.Sprintf("%s#%d", n.Name, k)
	}
	c.Nodes = append(c.Nodes, *n)
	c.Tensors = append(c.Tensors, t)
	return nil
}

// Get returns the tensor with the given key, or nil.
func (c *Collector) Get(key string) *tensor.Tensor {
	for _, t := range c.Tensors {
		if t.Key == key {
			return t
		}
	}
	return nil
}

// RecorderFunc adapts a function to a Recorder that wants every node.
type RecorderFunc func(n *Node, t *tensor.Tensor) error

// Want accepts every node.
func (f RecorderFunc) Want(*Node) bool { return true }

// Record calls f.
func (f RecorderFunc) Record(n *Node, t *tensor.Tensor) error { return f(n, t) }
