package compare

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Node describes one tensor of a graph without its data: enough to align
// two graphs from any sources.
type Node struct {
	Key  string  `json:"key"`          // unique within its side
	Name string  `json:"name"`         // llama.cpp node name, e.g. "Qcur-0 (reshaped)"
	Op   string  `json:"op,omitempty"` // ggml op ("MUL_MAT", "GLU(SWIGLU)"), "" if unknown
	Ne   []int64 `json:"ne"`           // ggml shape
	// NoData marks a reference node that holds no values (a dump's node
	// stored without a file, a log line without printed values): its row
	// is unmeasured and left out of the coverage count.
	NoData bool `json:"no_data,omitempty"`
	// Unreadable says why the node's data cannot be read (its reader
	// refused the file), "" normally. Such a node, matched or not, keeps
	// the verdict from being a pass.
	Unreadable string `json:"unreadable,omitempty"`
	// Derived, when set, says how the node was recomputed from others of
	// its side because the side's graph does not have it (attention
	// scores of a flash-attention reference); the row is noted so.
	Derived string `json:"derived,omitempty"`
}

// NodeOf describes a tensor.
func NodeOf(t *tensor.Tensor) Node {
	return Node{Key: t.Key, Name: t.Name, Op: t.Op, Ne: t.Ne}
}

// Alias makes two llama.cpp base names (the part of a node name before
// "-L") the same for alignment.
type Alias struct {
	// From is the base name as it appears in a graph.
	From string `json:"from"`
	// Op restricts the alias to nodes with this op (compared by OpKey);
	// "" means any op.
	Op string `json:"op,omitempty"`
	// To is the canonical base name. Unnamed nodes (node_N, leaf_N) have the
	// canonical base "#" + OpKey(op), e.g. "#FLASH_ATTN_EXT".
	To string `json:"to"`
	// Why says which llama.cpp versions use which name.
	Why string `json:"why"`
}

// DefaultAliases is the name table of docs/tolerance.md ("Names across
// llama.cpp versions").
var DefaultAliases = []Alias{
	{From: "embd", To: "inp_embd", Why: "token embeddings (GET_ROWS): inp_embd in llama.cpp up to Dec 2025 (the ollama v0.17.4 copy), embd in 2026 builds"},
	{From: "__fattn__", To: "#FLASH_ATTN_EXT", Why: "flash-attention output: __fattn__-L in the ollama copy, an unnamed node_N in 2026 builds"},
	{From: "ffn_out", Op: "ADD", To: "l_out", Why: "the residual ADD that ends a layer is named ffn_out-L by one callback and renamed l_out-L by the next; a graph that missed the rename shows ffn_out on an ADD"},
}

// OpKey normalizes an op description for matching: the innermost name of
// "GLU(SWIGLU)" or "UNARY(GELU)", so that "GLU(SWIGLU)" and "SWIGLU" (what
// ggml_op_desc prints) match.
func OpKey(op string) string {
	if i := strings.IndexByte(op, '('); i > 0 && strings.HasSuffix(op, ")") {
		return op[i+1 : len(op)-1]
	}
	return op
}

// viewOps are ggml ops that only reinterpret their source's data.
var viewOps = map[string]bool{"RESHAPE": true, "VIEW": true, "PERMUTE": true, "TRANSPOSE": true}

// nodeInfo is what alignment derives from a Node.
type nodeInfo struct {
	base     string // canonical base name
	layer    int    // from the name, or inferred for unnamed nodes (−1 outside layers)
	op       string // OpKey(op)
	suffix   string // ggml's view suffixes: "(view) (permuted)"
	view     bool   // shows another node's data
	permuted bool   // shows it in another element order
	unnamed  bool   // node_N / leaf_N
	// occ is the explicit occurrence of a name "X#N" (N ≥ 1), 0 when the
	// name has none; ident is the name without it, the identity occurrences
	// are counted over.
	occ   int
	ident string
}

// unnamedIndex reports whether name is ggml's default "node_N"/"leaf_N".
func unnamed(name string) bool {
	for _, p := range []string{"node_", "leaf_"} {
		if rest, ok := strings.CutPrefix(name, p); ok && rest != "" {
			if _, err := strconv.Atoi(rest); err == nil {
				return true
			}
		}
	}
	return false
}

// canonicalBase maps a base name through the alias table.
func canonicalBase(base, op string, aliases []Alias) string {
	ok := OpKey(op)
	for _, a := range aliases {
		if a.From == base && (a.Op == "" || OpKey(a.Op) == ok) {
			return a.To
		}
	}
	return base
}

// splitCache recognizes the KV cache names "cache_k_l3"/"cache_v_l3".
func splitCache(base string) (string, int, bool) {
	for _, p := range []string{"cache_k_l", "cache_v_l"} {
		if rest, ok := strings.CutPrefix(base, p); ok {
			if l, err := strconv.Atoi(rest); err == nil && l >= 0 {
				return p[:len(p)-2], l, true
			}
		}
	}
	return base, -1, false
}

// describe derives nodeInfo for a whole graph. Unnamed nodes take the layer
// of the closest preceding node that has one.
func describe(nodes []Node, aliases []Alias) []nodeInfo {
	out := make([]nodeInfo, len(nodes))
	last := -1
	for i, n := range nodes {
		var in nodeInfo
		name, occ := tensor.SplitOccurrence(n.Name)
		in.occ, in.ident = occ, name
		if j := strings.IndexByte(name, ' '); j >= 0 {
			in.suffix = strings.TrimSpace(name[j:])
		}
		in.op = OpKey(n.Op)
		base, layer := tensor.SplitName(name)
		if b, l, ok := splitCache(base); ok {
			base, layer = b, l
		}
		if unnamed(base) {
			in.unnamed = true
			op := in.op
			if op == "" {
				op = "?"
			}
			base, layer = "#"+op, last
		}
		in.base = canonicalBase(base, n.Op, aliases)
		in.layer = layer
		if layer >= 0 && !in.unnamed {
			last = layer
		}
		if in.op != "" {
			in.view = viewOps[in.op]
			in.permuted = in.op == "PERMUTE" || in.op == "TRANSPOSE"
		} else {
			in.view = in.suffix != ""
			in.permuted = strings.Contains(in.suffix, "(permuted)") || strings.Contains(in.suffix, "(transposed)")
		}
		out[i] = in
	}
	return out
}

// Match pairs one reference node with a node of the other side.
type Match struct {
	Ref   int `json:"ref"`   // index into the reference nodes
	Other int `json:"other"` // index into the other nodes, −1 when unmatched
	// How says which rule matched: "name#N", "name+op", "name",
	// "view-of-source", "name-only", "op+layer+shape", or "" when unmatched.
	How  string `json:"how"`
	Note string `json:"note,omitempty"`
}

// Alignment is the result of Align.
type Alignment struct {
	// Matches has one entry per reference node, in graph order.
	Matches []Match
	// UnmatchedOther lists the other side's nodes no reference node uses.
	UnmatchedOther []int
	// RefLayers and OtherLayers are each node's layer (−1 outside layers),
	// inferred for unnamed nodes.
	RefLayers, OtherLayers []int
}

// Align pairs reference nodes with the other side's nodes. The rules, in
// order (docs/tolerance.md, "Alignment"):
//
//  0. A node named with an explicit occurrence, "Qcur-0#2" (a plain .npy
//     directory's Qcur-0#2.npy, a name map's right side), matches the
//     other side's node that is the N-th of that name in graph order (or
//     that names the same occurrence), if their shapes correspond; such
//     nodes take part in no other rule.
//  1. Same canonical base name (aliases applied, view suffixes dropped),
//     layer and, when both graphs carry ops, the same OpKey: the k-th such
//     reference node matches the k-th such other node. When a side lacks
//     ops, view nodes are left out of this rule and the rest match by name
//     and occurrence.
//  2. A reference view (RESHAPE/VIEW, not PERMUTE/TRANSPOSE) still
//     unmatched shows the data of the closest earlier non-view node of the
//     same base name and layer; it matches that node's counterpart and is
//     compared as flat data.
//  3. Still unmatched nodes of the same base name and layer match in order
//     regardless of op, if their shapes correspond (see PlanTransform).
//  4. An unmatched unnamed node (node_N) matches the one unmatched node on
//     the other side with the same layer, op and shape, if there is exactly
//     one (and vice versa for an unnamed node on the other side).
//
// Permuted views without a same-op counterpart stay unmatched: their element
// order is not the order of the data they show.
func Align(ref, other []Node, aliases []Alias) *Alignment {
	ri, oi := describe(ref, aliases), describe(other, aliases)
	al := &Alignment{Matches: make([]Match, len(ref)), RefLayers: make([]int, len(ref)), OtherLayers: make([]int, len(other))}
	for i := range ref {
		al.Matches[i] = Match{Ref: i, Other: -1}
		al.RefLayers[i] = ri[i].layer
	}
	for i := range other {
		al.OtherLayers[i] = oi[i].layer
	}
	used := make([]bool, len(other))
	opsKnown := allOps(ref) && allOps(other)

	alignOccurrences(ref, other, ri, oi, al, used)

	// Rule 1.
	key := func(in nodeInfo) (string, bool) {
		if in.occ > 0 {
			return "", false
		}
		if opsKnown {
			return fmt.Sprintf("%s|%d|%s", in.base, in.layer, in.op), true
		}
		if in.view {
			return fmt.Sprintf("%s|%d|view|%s", in.base, in.layer, in.suffix), in.suffix != ""
		}
		return fmt.Sprintf("%s|%d", in.base, in.layer), true
	}
	queues := map[string][]int{}
	for j, in := range oi {
		if k, ok := key(in); ok {
			queues[k] = append(queues[k], j)
		}
	}
	for i, in := range ri {
		k, ok := key(in)
		if !ok || al.Matches[i].Other >= 0 {
			continue
		}
		if q := queues[k]; len(q) > 0 {
			how := "name"
			if opsKnown {
				how = "name+op"
			}
			al.Matches[i] = Match{Ref: i, Other: q[0], How: how}
			if n := aliasNote(ref[i].Name, other[q[0]].Name, ri[i], oi[q[0]]); n != "" {
				al.Matches[i].Note = n
			}
			used[q[0]] = true
			queues[k] = q[1:]
		}
	}

	// Rule 2.
	for i, in := range ri {
		if al.Matches[i].Other >= 0 || !in.view || in.permuted {
			continue
		}
		for s := i - 1; s >= 0; s-- {
			src := ri[s]
			if src.base != in.base || src.layer != in.layer || src.view {
				continue
			}
			if o := al.Matches[s].Other; o >= 0 && tensor.Numel(other[o].Ne) == tensor.Numel(ref[i].Ne) {
				al.Matches[i] = Match{Ref: i, Other: o, How: "view-of-source",
					Note: fmt.Sprintf("%s view of %s (%s); compared with %s as flat data", nonEmpty(in.op, "view"), ref[s].Name, nonEmpty(ref[s].Op, "?"), other[o].Name)}
			}
			break
		}
	}

	// Rule 3.
	for i, in := range ri {
		if al.Matches[i].Other >= 0 || in.permuted || in.occ > 0 {
			continue
		}
		for j, jn := range oi {
			if used[j] || jn.permuted || jn.occ > 0 || jn.base != in.base || jn.layer != in.layer {
				continue
			}
			if _, err := PlanTransform(ref[i], other[j], 0); err != nil {
				continue
			}
			al.Matches[i] = Match{Ref: i, Other: j, How: "name-only",
				Note: fmt.Sprintf("matched by name; ops differ (%s vs %s)", nonEmpty(ref[i].Op, "?"), nonEmpty(other[j].Op, "?"))}
			used[j] = true
			break
		}
	}

	// Rule 4.
	for i, in := range ri {
		if al.Matches[i].Other >= 0 || in.permuted || in.op == "" || in.occ > 0 {
			continue
		}
		cand := -1
		n := 0
		for j, jn := range oi {
			if used[j] || jn.occ > 0 || jn.op != in.op || jn.layer != in.layer || (!in.unnamed && !jn.unnamed) || !tensor.SameShape(ref[i].Ne, other[j].Ne) {
				continue
			}
			cand = j
			n++
		}
		if n == 1 {
			al.Matches[i] = Match{Ref: i, Other: cand, How: "op+layer+shape",
				Note: fmt.Sprintf("unnamed node matched by op, layer and shape: %s ↔ %s", ref[i].Name, other[cand].Name)}
			used[cand] = true
		}
	}

	for _, m := range al.Matches {
		if m.Other >= 0 {
			used[m.Other] = true
		}
	}
	for j := range other {
		if !used[j] {
			al.UnmatchedOther = append(al.UnmatchedOther, j)
		}
	}
	return al
}

func allOps(nodes []Node) bool {
	for _, n := range nodes {
		if n.Op == "" {
			return false
		}
	}
	return true
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// aliasNote explains a match whose names differ.
func aliasNote(rn, on string, ri, oi nodeInfo) string {
	rb, _ := tensor.SplitName(rn)
	ob, _ := tensor.SplitName(on)
	if rb == ob && ri.suffix == oi.suffix {
		return ""
	}
	return fmt.Sprintf("names differ: %s ↔ %s (canonical %s)", rn, on, ri.base)
}

// Transform kinds (Transform.Kind).
const (
	SameShape = "same"       // identical shapes (up to trailing 1s)
	Flat      = "flat"       // same element count, different shape: compared flat
	LastRows  = "last-rows"  // the reference kept only the last k tokens' rows
	FirstRows = "first-rows" // a KV cache: the reference's first T rows
	GQAHeads  = "gqa-heads"  // the other side expanded K/V heads for GQA
	SwapAxes  = "swap-axes"  // the V cache, transposed on one side (flash attention off)
	// Permute: the other side's axes are the reference's permuted (a numpy
	// (hidden, tokens) array, a per-head (heads, T, d)); see layout.go.
	Permute = "permute"
	// FirstCells: attention scores over T cells against llama.cpp's n_kv.
	FirstCells = "first-cells"
)

// Transform says how a reference tensor and its counterpart correspond,
// element by element. The compared region is always the reference's first
// RefCount elements (in the reference's ggml order, with the reference's
// coordinates); the other side's data is mapped onto it by OtherData.
type Transform struct {
	Kind string  `json:"kind"`
	Ne   []int64 `json:"ne"` // reference shape (coordinates of the compared region)
	// RefCount is the number of reference elements compared (all of them
	// except for FirstRows).
	RefCount int64 `json:"ref_count"`
	// Layout maps the compared region onto tokens.
	TokenStride int64  `json:"token_stride"`
	TokenCount  int    `json:"token_count"`
	TokenBase   int    `json:"token_base"`
	Note        string `json:"note,omitempty"`

	otherOffset int64 // LastRows: first other element used
	headDim     int64 // GQA
	refHeads    int64
	otherHeads  int64
	swapAxis    int      // SwapAxes: the axis exchanged with axis 0
	otherNe     [4]int64 // SwapAxes: the other side's shape
	refNumel    int64    // the reference's element count (Embed)
	// Permute: the refined reference shape and the other side's stride
	// along each of its axes.
	pshape, pstride []int64
	// FirstCells and causal kq: region rows of cells elements, reference
	// rows of refRow, qTokens query tokens per head.
	cells, refRow, qTokens int64
	causal                 bool // kq rows the other side may mask above the diagonal
}

// Layout returns the measuring layout of the compared region.
func (t Transform) Layout() Layout {
	l := Layout{Ne: t.Ne, TokenStride: t.TokenStride, TokenCount: t.TokenCount, TokenBase: t.TokenBase}
	if t.Kind == FirstCells {
		l.Runs = t.rowRuns(false)
	}
	return l
}

// OtherData returns the other side's elements in the order of the compared
// region (a sub-slice or a gathered copy). It returns nil if data does not
// have the length the transform was planned for.
func (t Transform) OtherData(data []float32, otherNe []int64) []float32 {
	if int64(len(data)) != tensor.Numel(otherNe) {
		return nil
	}
	switch t.Kind {
	case LastRows:
		return data[t.otherOffset : t.otherOffset+t.RefCount]
	case Permute:
		return gatherPermuted(data, t.pshape, t.pstride, t.RefCount)
	case FirstCells:
		return data
	case SwapAxes:
		// Reference element (i0, i1, i2, i3) is the other side's element
		// with i0 and i_j exchanged.
		var rne [4]int64
		for k := range rne {
			rne[k] = 1
		}
		copy(rne[:], t.Ne)
		ost := [4]int64{1, t.otherNe[0], t.otherNe[0] * t.otherNe[1], t.otherNe[0] * t.otherNe[1] * t.otherNe[2]}
		ost[0], ost[t.swapAxis] = ost[t.swapAxis], ost[0]
		out := make([]float32, 0, t.RefCount)
		for i3 := int64(0); i3 < rne[3]; i3++ {
			for i2 := int64(0); i2 < rne[2]; i2++ {
				for i1 := int64(0); i1 < rne[1]; i1++ {
					base := i1*ost[1] + i2*ost[2] + i3*ost[3]
					for i0 := int64(0); i0 < rne[0]; i0++ {
						out = append(out, data[base+i0*ost[0]])
					}
				}
			}
		}
		return out
	case GQAHeads:
		out := make([]float32, 0, t.RefCount)
		g := t.otherHeads / t.refHeads
		nt := int64(len(data)) / (t.headDim * t.otherHeads)
		for tok := int64(0); tok < nt; tok++ {
			for h := int64(0); h < t.refHeads; h++ {
				start := (tok*t.otherHeads + h*g) * t.headDim
				out = append(out, data[start:start+t.headDim]...)
			}
		}
		return out
	}
	return data[:t.RefCount]
}

// tokenLayout finds the token axis of a shape: the outermost non-1
// dimension when it equals tokens, else dimension 1 for llama.cpp's
// attention-score tensors kq/kq_soft_max/kqv ({n_kv, T, n_head}).
func tokenLayout(name string, ne []int64, tokens int) (stride int64, count int) {
	if tokens <= 0 {
		return 0, 0
	}
	tr := tensor.Trim(ne)
	n := tensor.Numel(tr)
	if last := tr[len(tr)-1]; last == int64(tokens) && n > 0 {
		return n / last, tokens
	}
	base, _ := tensor.SplitName(name)
	if (base == "kq" || base == "kq_soft_max" || base == "kqv") && len(tr) >= 2 && tr[1] == int64(tokens) {
		return tr[0], tokens
	}
	if tokens == 1 && n > 0 {
		return n, 1
	}
	return 0, 0
}

// planSwapAxes recognizes llama.cpp's V cache stored transposed on one
// side (flash attention off, v_trans) against the same cache untransposed:
// the SET_ROWS destination {n_embd_v, C} against {1, n_embd_v·C} (the
// transposed cache reshaped for row setting), and the views read by
// attention — {d, h, C} against {C, h, d}, {d, C, h} against {C, d, h} —
// where the other shape is the reference's with axis 0 and exactly one
// other axis exchanged. Only nodes of cache_v_lL on both sides qualify.
func planSwapAxes(ref, other Node) (Transform, bool) {
	rb, _ := tensor.SplitName(ref.Name)
	ob, _ := tensor.SplitName(other.Name)
	if rk, rl, ok := splitCache(rb); !ok || rk != "cache_v" {
		return Transform{}, false
	} else if ok, ol, okO := splitCache(ob); !okO || ok != "cache_v" || ol != rl {
		return Transform{}, false
	}
	pad := func(ne []int64) (p [4]int64, ok bool) {
		tr := tensor.Trim(ne)
		if len(tr) > 4 {
			return p, false
		}
		for k := range p {
			p[k] = 1
		}
		copy(p[:], tr)
		return p, true
	}
	r, okR := pad(ref.Ne)
	o, okO := pad(other.Ne)
	if !okR || !okO {
		return Transform{}, false
	}
	flat := func(p [4]int64) bool { return p[0] == 1 && p[2] == 1 && p[3] == 1 }
	refNe := tensor.Trim(ref.Ne)
	transposed := func(o [4]int64, refNe []int64) (Transform, bool) {
		return Transform{
			Kind: SwapAxes, Ne: refNe, RefCount: tensor.Numel(ref.Ne), swapAxis: 1, otherNe: o,
			Note: "V cache transposed on one side (flash attention off stores V transposed): compared transposed",
		}, true
	}
	switch {
	case flat(o) && r[2] == 1 && r[3] == 1 && r[0] > 1 && r[1] > 1:
		// {E, C} against the transposed cache flattened: read it as {C, E}.
		return transposed([4]int64{r[1], r[0], 1, 1}, refNe)
	case flat(r) && o[2] == 1 && o[3] == 1 && o[0] > 1 && o[1] > 1:
		// The reverse: the reference is the flattened transposed cache,
		// read as {C, E}.
		return transposed(o, []int64{o[1], o[0]})
	}
	axis := -1
	for j := 1; j < 4; j++ {
		s := r
		s[0], s[j] = s[j], s[0]
		if s == o && r[0] != r[j] {
			if axis >= 0 {
				return Transform{}, false // ambiguous
			}
			axis = j
		}
	}
	if axis < 0 {
		return Transform{}, false
	}
	return Transform{
		Kind: SwapAxes, Ne: refNe, RefCount: tensor.Numel(ref.Ne), swapAxis: axis, otherNe: o,
		Note: fmt.Sprintf("V cache transposed on one side (flash attention off stores V transposed): compared with axes 0 and %d exchanged", axis),
	}, true
}

// PlanTransform decides how ref and other correspond (docs/tolerance.md,
// "Shapes"). tokens is the prompt length T (0 when unknown: then the other
// side's outermost dimension is taken as T for LastRows/FirstRows). It
// returns an error when no rule applies.
func PlanTransform(ref, other Node, tokens int) (Transform, error) {
	rn, on := tensor.Numel(ref.Ne), tensor.Numel(other.Ne)
	if rn < 0 || on < 0 {
		return Transform{}, fmt.Errorf("negative dimension in %s or %s", fmtShape(ref.Ne), fmtShape(other.Ne))
	}
	t, err := planTransform(ref, other, tokens)
	if err == nil {
		t.refNumel = rn
		t.causalFor(ref, tokens)
	}
	return t, err
}

func planTransform(ref, other Node, tokens int) (Transform, error) {
	rn, on := tensor.Numel(ref.Ne), tensor.Numel(other.Ne)
	t := Transform{Ne: tensor.Trim(ref.Ne), RefCount: rn}
	perm := noPermute
	if rn == on && !tensor.SameShape(ref.Ne, other.Ne) {
		if sw, ok := planSwapAxes(ref, other); ok {
			return sw, nil
		}
		var shape, stride []int64
		if shape, stride, perm = planPermute(ref.Ne, other.Ne); perm == isPermute {
			t.Kind, t.pshape, t.pstride = Permute, shape, stride
			t.Note = permuteNote(ref, other)
			t.TokenStride, t.TokenCount = tokenLayout(ref.Name, ref.Ne, tokens)
			return t, nil
		}
	}
	if tensor.SameShape(ref.Ne, other.Ne) || rn == on {
		t.Kind = SameShape
		if !tensor.SameShape(ref.Ne, other.Ne) {
			t.Kind = Flat
			t.Note = fmt.Sprintf("shapes %s and %s differ; compared as flat data", fmtShape(tensor.Trim(ref.Ne)), fmtShape(tensor.Trim(other.Ne)))
			if perm == ambiguous {
				t.Note = fmt.Sprintf("shapes %s and %s are a permutation of each other's axes, but sizes repeat, so which one cannot be told: compared as is (flat data)", fmtShape(tensor.Trim(ref.Ne)), fmtShape(tensor.Trim(other.Ne)))
			}
		} else if r := tensor.Trim(ref.Ne); tokens > 1 && len(r) == 2 && r[0] == int64(tokens) && r[1] == int64(tokens) {
			t.Note = fmt.Sprintf("square %s with T = %d: whether the other side has the token axis first (a numpy (hidden, tokens) array) cannot be told from the shape; compared as is", fmtShape(r), tokens)
		}
		t.TokenStride, t.TokenCount = tokenLayout(ref.Name, ref.Ne, tokens)
		if t.TokenCount == 0 && t.Kind == Flat {
			t.TokenStride, t.TokenCount = tokenLayout(other.Name, other.Ne, tokens)
		}
		return t, nil
	}
	if fc, ok := planFirstCells(ref, other, tokens); ok {
		return fc, nil
	}
	ot := tensor.Trim(other.Ne)
	T := int64(tokens)
	if T <= 0 {
		T = ot[len(ot)-1]
	}
	if T > 0 && len(ot) >= 2 && ot[len(ot)-1] == T && on%T == 0 {
		row := on / T
		rt := tensor.Trim(ref.Ne)
		if row > 0 && rn%row == 0 {
			k := rn / row
			// k = 1 is llama.cpp's usual last-layer subset (any reference
			// shape); more rows need the reference's own token dimension.
			ownTokens := len(rt) >= 2 && rt[len(rt)-1] == T // the reference has every token
			if k >= 1 && k < T && !ownTokens && (k == 1 || (len(rt) == len(ot) && rt[len(rt)-1] == k)) {
				t.Kind = LastRows
				t.otherOffset = (T - k) * row
				t.TokenStride, t.TokenCount, t.TokenBase = row, int(k), int(T-k)
				t.Note = fmt.Sprintf("the reference kept only the last %d of %d tokens' rows; compared with the other side's last %d", k, T, k)
				return t, nil
			}
			base, _ := tensor.SplitName(ref.Name)
			if _, _, ok := splitCache(base); ok && k > T {
				t.Kind = FirstRows
				t.RefCount = on
				t.TokenStride, t.TokenCount = row, int(T)
				t.Note = fmt.Sprintf("KV cache: compared the reference's first %d of %d cells", T, k)
				return t, nil
			}
		}
	}
	rt := tensor.Trim(ref.Ne)
	if len(rt) == 3 && rt[2] == ot[len(ot)-1] {
		d, hk, nt := rt[0], rt[1], rt[2]
		if d > 0 && hk > 0 && nt > 0 && on%(nt*d) == 0 {
			h := on / (nt * d)
			if h > hk && h%hk == 0 {
				t.Kind = GQAHeads
				t.headDim, t.refHeads, t.otherHeads = d, hk, h
				t.TokenStride, t.TokenCount = d*hk, int(nt)
				if int64(tokens) != nt {
					t.TokenCount, t.TokenStride = 0, 0
				}
				t.Note = fmt.Sprintf("the other side repeats %d KV heads to %d; compared its heads 0, %d, %d, …", hk, h, h/hk, 2*h/hk)
				return t, nil
			}
		}
	}
	return Transform{}, fmt.Errorf("shapes %s and %s have no element correspondence", fmtShape(tensor.Trim(ref.Ne)), fmtShape(ot))
}
