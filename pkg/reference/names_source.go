package reference

import (
	"fmt"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// NameOptions configure WithNames.
type NameOptions struct {
	// HeadDim is the attention head size; NHead and NHeadKV the query and
	// KV head counts (0 when unknown). A map that undoes HF's rotate-half
	// order (hf for llama) needs HeadDim; the counts, when known, check the
	// projections' widths.
	HeadDim, NHead, NHeadKV int
	// Ref lists the llama.cpp side's nodes, when known: each mapped node is
	// then checked against the node its new name aligns with, and left
	// unmatched, with a warning, when that node's op or shape rules the
	// pairing out. nil skips the check.
	Ref []NodeInfo
}

// UnmatchedPrefix starts the name WithNames gives an engine node it refuses
// to pair (an op or shape that contradicts its mapped name): no llama.cpp
// node has such a name, so alignment leaves it unmatched.
const UnmatchedPrefix = "unmatched:"

// WithNames presents src's nodes under llama.cpp names: every node whose
// name m maps gets the new name as Name and Key, and the llama.cpp op when
// the map fixes it (source names, NodeInfo.Src, are mapped too); Load returns it under that name, with HF's rotate-half
// head order undone where the map says so. Nodes m does not map keep their
// names. The warnings say which mappings were refused and why; the error
// reports options the map cannot do without (HeadDim for an HF llama map)
// or data that contradicts them.
func WithNames(src Source, m *NameMap, o NameOptions) (Source, []string, error) {
	w := &namedSource{src: src, m: m, orig: map[string]string{}, index: map[string]int{}, permute: map[string]int{}}
	var warn []string
	var refused []string
	taken := map[string]string{} // new name -> engine name
	nodes := src.Nodes()
	kept := map[string]bool{} // keys of the nodes m does not rename
	for _, n := range nodes {
		if m.rule(n.Name) == nil {
			kept[n.Key] = true
		}
	}
	for _, n := range nodes {
		n.Src = mapNames(m, n.Src)
		r := m.rule(n.Name)
		if r == nil {
			w.add(n, n.Key)
			continue
		}
		to, _ := m.Map(n.Name)
		mapped := n
		mapped.Name, mapped.Key = to, to
		if r.op != "" {
			mapped.Op = r.op
		}
		why := ""
		switch {
		case taken[to] != "":
			why = fmt.Sprintf("%s maps it to %s too", taken[to], to)
		case kept[to]:
			why = fmt.Sprintf("the engine has a tensor named %s already", to)
		case r.op != "" && n.Op != "" && compare.OpKey(n.Op) != compare.OpKey(r.op):
			why = fmt.Sprintf("it is a %s, %s is a %s", n.Op, to, r.op)
		default:
			why = checkAgainstRef(mapped, o.Ref)
		}
		if why == "" && r.permute != 0 {
			hd, err := permuteHeadDim(n, r, o, m.Name)
			if err != nil {
				return nil, nil, err
			}
			w.permute[to] = hd
		}
		if why != "" {
			refused = append(refused, fmt.Sprintf("%s → %s: %s", n.Name, to, why))
			mapped = n
			// No op: alignment's rule 4 (an unnamed node's single
			// counterpart of the same op) must not pair it either.
			mapped.Name, mapped.Key, mapped.Op = UnmatchedPrefix+n.Name, UnmatchedPrefix+n.Key, ""
			w.add(mapped, n.Key)
			continue
		}
		taken[to] = n.Name
		w.add(mapped, n.Key)
	}
	if len(refused) > 0 {
		warn = append(warn, fmt.Sprintf("names (%s): %d mapped %s left unmatched, their op or shape ruling the pairing out: %s", m.Name, len(refused), plural(len(refused), "tensor", "tensors"), strings.Join(refused, "; ")))
	}
	return w, warn, nil
}

// mapNames renames the names m maps (a node's sources).
func mapNames(m *NameMap, names []string) []string {
	if len(names) == 0 {
		return names
	}
	out := make([]string, len(names))
	for i, s := range names {
		if to, ok := m.Map(s); ok {
			s = to
		}
		out[i] = s
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// checkAgainstRef returns why the reference rules out pairing mapped with
// the node its name aligns with, "" when nothing does (or the reference has
// no node of that name: alignment then leaves it unmatched by itself).
func checkAgainstRef(mapped NodeInfo, ref []NodeInfo) string {
	if ref == nil {
		return ""
	}
	name, occ := tensor.SplitOccurrence(mapped.Name)
	var same []NodeInfo
	for _, r := range ref {
		if r.Name == name {
			same = append(same, r)
		}
	}
	if len(same) == 0 {
		return ""
	}
	var target *NodeInfo
	switch {
	case occ > 0:
		if occ > len(same) {
			return fmt.Sprintf("the reference has %d %s named %s", len(same), plural(len(same), "node", "nodes"), name)
		}
		target = &same[occ-1]
		if mapped.Op != "" && target.Op != "" && compare.OpKey(mapped.Op) != compare.OpKey(target.Op) {
			return fmt.Sprintf("the reference's %s is a %s, not a %s", mapped.Name, target.Op, mapped.Op)
		}
	case mapped.Op != "":
		var ops []string
		for i := range same {
			if same[i].Op == "" || compare.OpKey(same[i].Op) == compare.OpKey(mapped.Op) {
				target = &same[i]
				break
			}
			ops = append(ops, same[i].Op)
		}
		if target == nil {
			return fmt.Sprintf("the reference's %s is %s, not %s", name, strings.Join(ops, ", "), mapped.Op)
		}
	default:
		target = &same[0]
	}
	rn := compare.Node{Key: target.Key, Name: target.Name, Op: target.Op, Ne: target.Ne}
	on := compare.Node{Key: mapped.Key, Name: mapped.Name, Op: mapped.Op, Ne: mapped.Ne}
	if _, err := compare.PlanTransform(rn, on, 0); err != nil && !otherTokenCount(rn, on) {
		return err.Error()
	}
	return ""
}

// otherTokenCount reports whether on corresponds to rn but for one
// the size of the reference's token dimension (its outermost) — another
// number of tokens (an engine that dropped the BOS has T−1 rows everywhere): the pairing is right, and the comparison
// says the tokens differ.
func otherTokenCount(rn, on compare.Node) bool {
	has := func(ne []int64, v int64) bool {
		for _, d := range ne {
			if d == v {
				return true
			}
		}
		return false
	}
	rt := tensor.Trim(rn.Ne)
	w := rt[len(rt)-1] // the reference's token count: its outermost dimension
	if w <= 1 || has(on.Ne, w) {
		return false
	}
	for _, v := range on.Ne {
		if v <= 1 || has(rn.Ne, v) {
			continue
		}
		{
			ne := make([]int64, len(on.Ne))
			for i, d := range on.Ne {
				if d == v {
					d = w
				}
				ne[i] = d
			}
			if _, err := compare.PlanTransform(rn, compare.Node{Key: on.Key, Name: on.Name, Op: on.Op, Ne: ne}, 0); err == nil {
				return true
			}
		}
	}
	return false
}

// permuteHeadDim checks what undoing HF's head order on node n needs.
func permuteHeadDim(n NodeInfo, r *nameRule, o NameOptions, mapName string) (int, error) {
	hd := o.HeadDim
	if hd <= 0 {
		return 0, fmt.Errorf("names (%s): %s is in Hugging Face's rotate-half order, which only the head size undoes, and the head size is unknown: give the model (--model) or a llama.cpp reference that has Qcur-L (reshaped) or ROPE nodes", mapName, n.Name)
	}
	if hd%2 != 0 {
		return 0, fmt.Errorf("names (%s): head size %d is odd: rotate-half order needs pairs", mapName, hd)
	}
	width := int64(0)
	if t := tensor.Trim(n.Ne); len(t) > 0 {
		width = t[0]
		if len(t) >= 2 && t[0] == int64(hd) {
			width = t[0] * t[1] // {hd, heads, T}
		}
	}
	heads := o.NHead
	if r.permute == 'k' {
		heads = o.NHeadKV
	}
	switch {
	case width%int64(hd) != 0:
		return 0, fmt.Errorf("names (%s): %s has rows of %d values, not a multiple of the head size %d", mapName, n.Name, width, hd)
	case heads > 0 && width != int64(heads*hd):
		return 0, fmt.Errorf("names (%s): %s has rows of %d values, not %d heads of %d", mapName, n.Name, width, heads, hd)
	}
	return hd, nil
}

// namedSource is WithNames' Source.
type namedSource struct {
	src     Source
	m       *NameMap
	nodes   []NodeInfo
	orig    map[string]string // key -> src's key
	index   map[string]int    // key -> index in nodes
	permute map[string]int    // key -> head size of the rotate-half order to undo
}

func (w *namedSource) add(n NodeInfo, srcKey string) {
	w.index[n.Key] = len(w.nodes)
	w.nodes = append(w.nodes, n)
	w.orig[n.Key] = srcKey
}

// Describe implements Source.
func (w *namedSource) Describe() Info {
	info := w.src.Describe()
	info.Format += " (names: " + w.m.Name + ")"
	return info
}

// Nodes implements Source.
func (w *namedSource) Nodes() []NodeInfo { return w.nodes }

// Load implements Source.
func (w *namedSource) Load(key string) (*tensor.Tensor, error) { return w.LoadInto(key, nil) }

// LoadInto implements BufferLoader.
func (w *namedSource) LoadInto(key string, buf []float32) (*tensor.Tensor, error) {
	sk, ok := w.orig[key]
	if !ok {
		return nil, fmt.Errorf("%s: %q: %w", w.src.Describe().Path, key, ErrNotFound)
	}
	hd := w.permute[key]
	var t *tensor.Tensor
	var err error
	if bl, ok := w.src.(BufferLoader); ok && hd == 0 {
		t, err = bl.LoadInto(sk, buf)
	} else {
		t, err = w.src.Load(sk)
	}
	if err != nil {
		return nil, err
	}
	n := &w.nodes[w.index[key]]
	t.Key, t.Name, t.Op = key, n.Name, n.Op
	if hd > 0 {
		if t.Data == nil {
			return nil, fmt.Errorf("%s (%s): cannot undo Hugging Face's head order on printed elements only", key, sk)
		}
		if len(t.Data)%hd != 0 {
			return nil, fmt.Errorf("%s (%s): %d values, not a multiple of the head size %d", key, sk, len(t.Data), hd)
		}
		out := make([]float32, len(t.Data))
		UndoRotateHalf(out, t.Data, hd)
		t.Data = out
	}
	return t, nil
}

// UndoRotateHalf puts projection outputs in Hugging Face's rotate-half
// order back in GGUF (llama.cpp) order, head by head: src holds heads of hd
// values one after the other, and element j·hd/2 + i of a head (j ∈ {0, 1},
// i < hd/2) is element 2i + j in GGUF order. HF llama checkpoints store
// q_proj and k_proj with their rows so permuted; convert_hf_to_gguf.py
// undoes it with w.reshape(n_head, 2, rows/n_head/2, …).swapaxes(1, 2).
// len(dst) must equal len(src), a multiple of hd; hd must be even.
func UndoRotateHalf(dst, src []float32, hd int) {
	if len(dst) != len(src) || hd <= 0 || hd%2 != 0 || len(src)%hd != 0 {
		panic("reference: UndoRotateHalf: bad lengths")
	}
	half := hd / 2
	for b := 0; b < len(src); b += hd {
		for j := 0; j < 2; j++ {
			for i := 0; i < half; i++ {
				dst[b+2*i+j] = src[b+j*half+i]
			}
		}
	}
}

// HeadsFromNodes reads the attention geometry off a llama.cpp graph: the
// head size and query head count from the first Qcur-L RESHAPE or ROPE
// (shape {d, n_head, T}), the KV head count from the first such Kcur-L.
// Without ops, nodes named "Qcur-L (reshaped)" serve. Zeros when the nodes
// are absent.
func HeadsFromNodes(nodes []NodeInfo) (headDim, nHead, nHeadKV int) {
	for _, n := range nodes {
		base, l := tensor.SplitName(n.Name)
		op := compare.OpKey(n.Op)
		headed := op == "ROPE" || op == "RESHAPE" || (op == "" && strings.HasSuffix(n.Name, " (reshaped)"))
		if l < 0 || !headed || len(n.Ne) < 2 || n.Ne[0] <= 0 || n.Ne[1] <= 0 {
			continue
		}
		switch {
		case base == "Qcur" && nHead == 0:
			headDim, nHead = int(n.Ne[0]), int(n.Ne[1])
		case base == "Kcur" && nHeadKV == 0:
			nHeadKV = int(n.Ne[1])
		}
		if nHead > 0 && nHeadKV > 0 {
			break
		}
	}
	return headDim, nHead, nHeadKV
}
