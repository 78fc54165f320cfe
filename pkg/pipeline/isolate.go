package pipeline

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Isolation of any side (compare --model): layerdiff's forward pass runs
// with every node that the side recorded replaced by the side's own value
// once layerdiff's op has computed it, so each op is computed from the
// side's own inputs; the side's tensors are then compared with those
// outputs. An op of the side that layerdiff's op reproduces from its
// inputs is right (it may still have inherited drift); one that is not
// reproduced is wrong where it is. Where the side recorded only some
// tensors, the ops between are layerdiff's own, from the side's last
// recorded tensors: a failing tensor then blames the chain of ops since.

// isolation is the outcome of one isolation run of a side.
type isolation struct {
	rep   *compare.Report
	byKey map[string]*compare.Row // the side's node key -> its row
	// ours is layerdiff's node each of the side's keys was matched with;
	// chain the ops layerdiff computed itself between the side's recorded
	// tensors and that node (graph order).
	ours  map[string]forward.Node
	chain map[string][]forward.Node
	nodes []forward.Node // the run's nodes, graph order
	keys  []string       // their keys (name, name#2, …)
	opts  forward.Options
}

// boundFunc gives the tolerance of the side's node matched with layerdiff's
// node n (nil: the base policy's); lookup finds a source's shape by name
// (shapeLookup).
type boundFunc func(n forward.Node, side reference.NodeInfo, lookup func(at int, name string) ([]int64, quant.Type, bool)) *compare.Override

// isolate runs the isolation of side (see above) with options fo and
// judges every side node by bound over the base policy.
func isolate(side reference.Source, m *forward.Model, toks []int32, fo forward.Options, base *compare.Policy, bound boundFunc) (*isolation, error) {
	fo.Inject = nil
	nodes, err := m.Nodes(len(toks), fo)
	if err != nil {
		return nil, err
	}
	ours := newStreamSide(nodes, nil)
	if len(ours.nodes) != len(nodes) {
		return nil, fmt.Errorf("isolation: %d of %d nodes keyed", len(ours.nodes), len(nodes))
	}
	// Index the nodes across micro-batches (each graph counts its own).
	first := 0
	for i := range nodes {
		if i > 0 && nodes[i].UBatch != nodes[i-1].UBatch {
			first = i
		}
		nodes[i].Index = i
		src := make([]int, len(nodes[i].Src))
		for k, j := range nodes[i].Src {
			src[k] = j + first
		}
		nodes[i].Src = src
	}
	sideNodes := side.Nodes()
	sideCS := SideOf(side)
	sideCN := sideCS.Nodes()
	T := len(toks)
	// One alignment, ours as the reference of it: layerdiff's node
	// layouts are llama.cpp's, which the shape rules know as the
	// reference's, and every row is one of our ops.
	al := compare.Align(ours.nodes, sideCN, compare.DefaultAliases)
	iso := &isolation{byKey: map[string]*compare.Row{}, ours: map[string]forward.Node{}, chain: map[string][]forward.Node{}, nodes: nodes, opts: fo}
	for _, n := range ours.nodes {
		iso.keys = append(iso.keys, n.Key)
	}
	pol := *base
	pol.Keys = map[string]compare.Override{}
	lookup := shapeLookup(m.File, nodes)
	inj := &crossInjector{keys: offerKeys{keys: nodeKeys{}}, ref: SideOf(side), target: map[string]string{}, plans: map[string]compare.Transform{}}
	injected := map[int]bool{}
	for i, mt := range al.Matches {
		if mt.Other < 0 {
			continue
		}
		n, sn := nodes[i], sideNodes[mt.Other]
		if _, dup := iso.ours[sn.Key]; !dup || (iso.ours[sn.Key].View && !n.View) {
			iso.ours[sn.Key] = n
		}
		if bound != nil {
			if o := bound(n, sn, lookup); o != nil {
				pol.Keys[ours.nodes[i].Key] = *o
			}
		}
		if n.View || sn.Data != reference.FullData {
			continue
		}
		plan, err := compare.PlanTransform(ours.nodes[i], sideCN[mt.Other], T)
		if err != nil || !embeddable(plan.Kind) {
			continue
		}
		if _, dup := inj.target[ours.nodes[i].Key]; dup {
			continue
		}
		inj.target[ours.nodes[i].Key] = sn.Key
		if plan.Kind != compare.SameShape {
			inj.plans[ours.nodes[i].Key] = plan
		}
		injected[i] = true
	}
	for key, n := range iso.ours {
		iso.chain[key] = chainOf(nodes, n.Index, injected)
	}
	fo.Inject = inj
	rec := crossRecorder{streamSide: ours, inj: inj}
	done := make(chan error, 1)
	go func() {
		_, err := m.Run(toks, fo, rec)
		ours.finish(err)
		done <- err
	}()
	noBlame := compare.BlamerFunc(func(*compare.Divergence, *compare.BlameEnv) (*compare.Blame, error) { return nil, nil })
	rep, err := compare.Compare(ours, sideCS, compare.Options{Policy: &pol, Tokens: T, Blamer: noBlame})
	if err != nil {
		ours.halt()
	}
	fwdErr := <-done
	if err != nil {
		return nil, err
	}
	if fwdErr != nil {
		return nil, fmt.Errorf("isolation run: %w", fwdErr)
	}
	if inj.err != nil {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("isolation: a tensor could not be read, so its op's successors were computed from layerdiff's value: %v", inj.err))
	}
	iso.rep = rep
	// each of the side's keys to the row of the node it was matched with
	for i := range rep.Tensors {
		r := &rep.Tensors[i]
		if r.Other == nil {
			continue
		}
		if n, ok := iso.ours[r.Other.Key]; ok && n.Name == r.Name && i == n.Index {
			iso.byKey[r.Other.Key] = r
		} else if _, ok := iso.byKey[r.Other.Key]; !ok {
			iso.byKey[r.Other.Key] = r
		}
	}
	return iso, nil
}

// embeddable reports whether a side's tensor planned with this transform
// against layerdiff's node can be written into the node for the isolation
// run: every transform whose Embed fills our layout from theirs (a KV
// cache's first rows, or the last rows of llama.cpp's output subset, are
// not a whole op's output).
func embeddable(kind string) bool {
	switch kind {
	case compare.SameShape, compare.Flat, compare.Permute, compare.FirstCells, compare.GQAHeads, compare.SwapAxes:
		return true
	}
	return false
}

// chainOf lists the ops layerdiff computes itself on the way to node at
// (graph index): its sources, and theirs, back to nodes the side recorded
// (injected) or the graph's inputs; views are passed through unlisted.
func chainOf(nodes []forward.Node, at int, injected map[int]bool) []forward.Node {
	if at < 0 || at >= len(nodes) {
		return nil
	}
	seen := map[int]bool{}
	var out []forward.Node
	var walk func(i int)
	walk = func(i int) {
		if i < 0 || i >= len(nodes) || seen[i] {
			return
		}
		seen[i] = true
		n := nodes[i]
		if injected[i] {
			return
		}
		if !n.View && n.Op != "SET_ROWS" && n.Op != "CPY" {
			out = append(out, n)
		}
		for _, s := range n.Src {
			walk(s)
		}
	}
	for _, s := range nodes[at].Src {
		walk(s)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Index < out[b].Index })
	return out
}

// Unit roundoff of bfloat16.
const unitBF16 = 0x1p-8

// unitOf is the unit roundoff of a side's stored type ("f16", "bf16"; any
// other is float32).
func unitOf(typ string) float64 {
	switch strings.ToLower(typ) {
	case "f16":
		return unitF16
	case "bf16":
		return unitBF16
	}
	return unitF32
}

// shapeLookup finds the shape and type of a source by name: a model
// weight, or the latest node of that name before the node asking.
func shapeLookup(f *gguf.File, nodes []forward.Node) func(at int, name string) ([]int64, quant.Type, bool) {
	return func(at int, name string) ([]int64, quant.Type, bool) {
		for j := min(at, len(nodes)) - 1; j >= 0; j-- {
			if nodes[j].Name == name {
				return nodes[j].Ne[:], nodes[j].Type, true
			}
		}
		if f != nil {
			if ti, ok := f.Tensor(name); ok {
				return ti.Ne, ti.Type, true
			}
		}
		return nil, 0, false
	}
}

// floatBound is the round-off of a float engine's op, as its stored type's
// unit roundoff u gives it, against layerdiff's exact recomputation (which
// rounds once to float32): a reduction of n terms accumulated with u, plus
// a few units of u per element (exp, sin/cos, and the rounding of the
// result). The formulas are crossBound's (docs/tolerance.md, "Isolation
// bounds"); no Q8 activation or f16 cache rounding is allowed for: the
// exact arithmetic has none, and a float engine has none either.
func floatBound(n forward.Node, lookup func(at int, name string) ([]int64, quant.Type, bool), T int, u float64) crossBound {
	src := func(i int) ([]int64, bool) {
		if i >= len(n.SrcNames) {
			return nil, false
		}
		ne, _, ok := lookup(n.Index, n.SrcNames[i])
		return ne, ok
	}
	u = math.Max(u, unitF32)
	out := func(b crossBound) crossBound {
		// the rounding of the exact result to float32, and of the side's
		// result to its own type
		b.extra += u + unitF32
		return b
	}
	switch n.Op {
	case "MUL_MAT", "MUL_MAT_ID":
		ne, ok := src(0)
		if !ok || len(ne) == 0 {
			return out(crossBound{n: 4096, uacc: u, why: "dot products of unknown length (4096 assumed)"})
		}
		k := float64(ne[0])
		return out(crossBound{n: k, uacc: u, why: fmt.Sprintf("dot products of %d products in float (unit %.2g)", ne[0], u)})
	case "FLASH_ATTN_EXT":
		d := 128.0
		if ne, ok := src(1); ok && len(ne) > 0 {
			d = float64(ne[0])
		}
		score := math.Sqrt(d) * u * 8
		return out(crossBound{n: math.Max(float64(T), 1), uacc: u, extra: 4*u + score, why: fmt.Sprintf("Q·K over %.0f, softmax and V over up to %d cells", d, T)})
	case "SOFT_MAX":
		// exp of a score x is off by |x|·u relative: scores reach ~10s
		if base, _ := tensor.SplitName(n.Name); base == "ffn_moe_probs" {
			return out(crossBound{n: math.Max(float64(n.Ne[0]), 1), uacc: u, extra: 16 * u, why: fmt.Sprintf("exp and a sum over %d experts", n.Ne[0])})
		}
		return out(crossBound{n: math.Max(float64(T), 1), uacc: u, extra: 16 * u, why: "exp and a sum over the cells"})
	case "SUM_ROWS":
		k := 1.0
		if ne, ok := src(0); ok && len(ne) > 0 {
			k = math.Max(float64(ne[0]), 1)
		}
		return out(crossBound{n: k, uacc: u, why: fmt.Sprintf("a sum of %.0f values", k)})
	case "ARGSORT":
		return out(crossBound{n: 1, uacc: u, why: "an expert selection, judged as one (the first k indices per token)"})
	case "RMS_NORM", "NORM", "L2_NORM":
		// The sum's relative error (a random walk of the partial sums'
		// roundings, √k·u, with a safety factor of 2) scales the whole
		// row alike: 4·(k/4)·u² on the mean square (·16 below).
		k := math.Max(float64(n.Ne[0]), 1)
		return out(crossBound{n: k / 4, uacc: u, extra: 2 * u, why: fmt.Sprintf("a sum of %.0f squares, scaling its row", k)})
	case "SWIGLU", "GEGLU", "SILU", "GELU", "GELU_ERF", "GEGLU_ERF", "EXP", "TANH", "SIGMOID", "SWIGLU_OAI":
		return out(crossBound{n: 1, uacc: u, extra: 4 * u, why: "an exp/tanh"})
	case "ROPE":
		// the angle pos·θ_i carries float32 round-off growing with the
		// position (engines compute angles in float32 at least, whatever
		// they store)
		return out(crossBound{n: 1, uacc: u, extra: 2*u + unitF32*(14+4*float64(T)), why: fmt.Sprintf("sin/cos of angles up to %d radians", T)})
	case "ADD_ID": // gpt-oss
		return out(crossBound{n: 1, uacc: u, why: "one addition per element (an expert's bias row)"})
	}
	return out(crossBound{n: 1, uacc: u, why: "correctly rounded elementwise arithmetic"})
}
