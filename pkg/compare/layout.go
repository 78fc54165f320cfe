package compare

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Shape rules for engines that do not share llama.cpp's memory layout
// (docs/tolerance.md, "Shapes"): numpy arrays with the token axis first or
// the head axis outside the token axis, and attention scores over T cells
// instead of llama.cpp's padded KV cache.

// Run is a stretch of consecutive compared elements that are consecutive
// reference elements too (Layout.Runs).
type Run struct {
	// RefStart is the flat reference index (in Layout.Ne) of the run's
	// first element.
	RefStart int64
	// N is the number of elements.
	N int64
	// Token is the run's token slice (0 … TokenCount−1), −1 for none.
	Token int
}

// maskedBelow: a value at or below it (or −Inf) is an attention mask, not a
// score: engines add −Inf, −1e9, float32's lowest or −10000 to masked
// scores.
const maskedBelow = -1000

// squeeze drops every dimension of 1.
func squeeze(ne []int64) []int64 {
	var out []int64
	for _, d := range ne {
		if d != 1 {
			out = append(out, d)
		}
	}
	return out
}

// splitFirst refines a shape by splitting its first axis into {d, s[0]/d}
// (a free reshape in memory); nil when d does not divide it properly.
func splitFirst(s []int64, d int64) []int64 {
	if len(s) == 0 || d <= 1 || s[0] == d || s[0]%d != 0 {
		return nil
	}
	return append([]int64{d, s[0] / d}, s[1:]...)
}

// permutePlan is the outcome of planPermute.
type permutePlan int

const (
	noPermute permutePlan = iota // not a permutation of axes
	isPermute                    // a unique permutation
	ambiguous                    // a permutation, but sizes repeat
)

// planPermute recognizes the other side's shape as the reference's with
// its axes permuted, after dropping dimensions of 1 (a numpy batch of 1)
// and, where needed, splitting one side's first axis into the other's
// first two (llama.cpp's {d·heads, T} against a per-head {d, T, heads}).
// The permutation must be unique: every size distinct. It returns the
// refined reference shape and, for each of its axes, the other side's
// stride.
func planPermute(refNe, otherNe []int64) (shape, stride []int64, plan permutePlan) {
	r, o := squeeze(refNe), squeeze(otherNe)
	cands := [][2][]int64{{r, o}}
	if rs := splitFirst(r, firstOr(o)); rs != nil {
		cands = append(cands, [2][]int64{rs, o})
	}
	if os := splitFirst(o, firstOr(r)); os != nil {
		cands = append(cands, [2][]int64{r, os})
	}
	for _, c := range cands {
		rr, oo := c[0], c[1]
		if len(rr) != len(oo) || len(rr) < 2 {
			continue
		}
		if slices.Equal(rr, oo) {
			return nil, nil, noPermute // the same element order: flat
		}
		a, b := slices.Clone(rr), slices.Clone(oo)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			continue
		}
		if len(slices.Compact(a)) != len(rr) {
			return nil, nil, ambiguous
		}
		ost := make([]int64, len(oo))
		s := int64(1)
		for k, d := range oo {
			ost[k] = s
			s *= d
		}
		stride = make([]int64, len(rr))
		for j, d := range rr {
			stride[j] = ost[slices.Index(oo, d)]
		}
		return rr, stride, isPermute
	}
	return nil, nil, noPermute
}

func firstOr(s []int64) int64 {
	if len(s) == 0 {
		return 0
	}
	return s[0]
}

// permuteNote describes a permutation in numpy terms too.
func permuteNote(ref, other Node) string {
	r, o := tensor.Trim(ref.Ne), tensor.Trim(other.Ne)
	np := make([]string, len(o))
	for i, d := range o {
		np[len(o)-1-i] = fmt.Sprint(d)
	}
	what := "axes permuted"
	if len(squeeze(r)) == 2 && len(squeeze(o)) == 2 {
		what = "transposed"
	}
	return fmt.Sprintf("the other side's axes are the reference's permuted (ne %s, numpy shape (%s), against %s): compared %s", fmtShape(o), strings.Join(np, ", "), fmtShape(r), what)
}

// attentionBase reports whether a node is llama.cpp's kq or kq_soft_max.
func attentionBase(name string) (base string, ok bool) {
	base, _ = tensor.SplitName(name)
	return base, base == "kq" || base == "kq_soft_max"
}

// planFirstCells recognizes attention scores over T cells — an engine's
// (heads, T, T) — against llama.cpp's over the KV cache's n_kv cells
// (padded to 256): {T, Tq, h} against {n_kv, Tq, h}. The compared region is
// the reference's first T cells of every row; the cells ≥ T are masked in
// llama.cpp's softmax and empty in its cache.
func planFirstCells(ref, other Node, tokens int) (Transform, bool) {
	if _, ok := attentionBase(ref.Name); !ok {
		return Transform{}, false
	}
	r, o := tensor.Trim(ref.Ne), tensor.Trim(other.Ne)
	if len(r) < 2 || len(r) > 4 || len(o) != len(r) {
		return Transform{}, false
	}
	cells, nkv, tq := o[0], r[0], r[1]
	if cells <= 0 || cells >= nkv || cells < tq || !slices.Equal(r[1:], o[1:]) {
		return Transform{}, false
	}
	rows := tensor.Numel(r[1:])
	t := Transform{Kind: FirstCells, Ne: r, RefCount: cells * rows, refNumel: tensor.Numel(r),
		cells: cells, refRow: nkv, qTokens: tq}
	t.Note = fmt.Sprintf("attention over %d cells against the reference's %d KV cells: compared the first %d of each row (llama.cpp masks the others)", cells, nkv, cells)
	if int64(tokens) == tq {
		t.TokenCount = tokens
	}
	return t, true
}

// causalFor marks a kq plan whose rows may be masked on the other side:
// region rows of t.cells elements, reference rows of refRow, query
// tokens 0 … tq−1 at positions 0 … tq−1 (a single batch from position 0).
func (t *Transform) causalFor(ref Node, tokens int) {
	if base, ok := attentionBase(ref.Name); !ok || base != "kq" || tokens <= 1 {
		return
	}
	r := tensor.Trim(ref.Ne)
	if len(r) < 2 || r[1] != int64(tokens) {
		return
	}
	switch t.Kind {
	case SameShape:
		t.cells, t.refRow, t.qTokens = r[0], r[0], r[1]
	case FirstCells:
	default:
		return
	}
	t.causal = t.cells >= t.qTokens
}

// rows returns the compared rows (query token, head) as runs: the whole
// region's when a row's cells are all compared, the causal part's (cells
// 0 … q for query q) when causal.
func (t Transform) rowRuns(causal bool) []Run {
	nrows := t.RefCount / t.cells
	runs := make([]Run, 0, nrows)
	for row := range nrows {
		q := row % t.qTokens
		n := t.cells
		if causal {
			n = q + 1
		}
		tok := -1
		if t.TokenCount > 0 {
			tok = int(q)
		}
		runs = append(runs, Run{RefStart: row * t.refRow, N: n, Token: tok})
	}
	return runs
}

// RefData returns the reference's compared region, in the order OtherData
// gives the other side's: a prefix of data for most kinds, the first cells
// of every row for FirstCells. It returns nil if data does not have the
// reference's length.
func (t Transform) RefData(data []float32) []float32 {
	if t.Kind != FirstCells {
		if int64(len(data)) < t.RefCount {
			return nil
		}
		return data[:t.RefCount]
	}
	if int64(len(data)) != t.refNumel {
		return nil
	}
	out := make([]float32, 0, t.RefCount)
	for _, r := range t.rowRuns(false) {
		out = append(out, data[r.RefStart:r.RefStart+r.N]...)
	}
	return out
}

// gatherPermuted returns the other side's elements in the reference's
// order: reference element (i0, i1, …) of the refined shape is the other's
// Σ ij·stride[j].
func gatherPermuted(data []float32, shape, stride []int64, n int64) []float32 {
	out := make([]float32, 0, n)
	walkPermuted(shape, stride, n, func(off int64) { out = append(out, data[off]) })
	return out
}

// walkPermuted calls f with the other side's offset of each reference
// element in turn.
func walkPermuted(shape, stride []int64, n int64, f func(off int64)) {
	idx := make([]int64, len(shape))
	off := int64(0)
	for range n {
		f(off)
		for k := range shape {
			idx[k]++
			off += stride[k]
			if idx[k] < shape[k] {
				break
			}
			off -= idx[k] * stride[k]
			idx[k] = 0
		}
	}
}

// Embed writes the other side's values into into, a buffer of the
// reference's shape (all of its elements, not only the compared region),
// at the positions the comparison pairs them with: the inverse of
// OtherData, so that RefData(into) equals OtherData(otherData) afterwards.
// Reference elements the other side lacks — the KV cells ≥ T of FirstRows
// and FirstCells — are left as they are; LastRows writes the other's last
// rows, GQAHeads the other's heads 0, g, 2g, … as the reference's KV heads.
// It returns false, writing nothing, when otherData does not have otherNe's
// length or into the reference's.
func (t Transform) Embed(otherData []float32, otherNe []int64, into []float32) bool {
	if int64(len(otherData)) != tensor.Numel(otherNe) || int64(len(into)) != t.refNumel {
		return false
	}
	if t.Kind == FirstCells {
		k := int64(0)
		for _, r := range t.rowRuns(false) {
			copy(into[r.RefStart:r.RefStart+r.N], otherData[k:k+r.N])
			k += r.N
		}
		return true
	}
	if t.Kind == Permute {
		k := int64(0)
		walkPermuted(t.pshape, t.pstride, t.RefCount, func(off int64) {
			into[k] = otherData[off]
			k++
		})
		return true
	}
	region := t.OtherData(otherData, otherNe)
	if int64(len(region)) != t.RefCount {
		return false
	}
	copy(into[:t.RefCount], region)
	return true
}

// comparedPair returns the two compared slices and their layout; for a kq
// whose other side masks the cells above the diagonal (every one −Inf or
// ≤ −1000, where llama.cpp's unmasked kq has scores) only the causal part,
// with a note.
func (t Transform) comparedPair(ref, other []float32, otherNe []int64) (a, b []float32, lay Layout, note string) {
	a, b, lay = t.RefData(ref), t.OtherData(other, otherNe), t.Layout()
	if !t.causal || a == nil || int64(len(b)) != t.RefCount {
		return a, b, lay, note
	}
	masked := int64(0)
	for row := int64(0); row*t.cells < t.RefCount; row++ {
		q := row % t.qTokens
		for c := q + 1; c < t.cells; c++ {
			v := b[row*t.cells+c]
			if !(v <= maskedBelow) || math.IsNaN(float64(v)) {
				return a, b, lay, note // an unmasked engine kq: compare it all
			}
			if finite32(a[row*t.cells+c]) {
				masked++
			}
		}
	}
	if masked == 0 {
		return a, b, lay, note
	}
	runs := t.rowRuns(true)
	var a2, b2 []float32
	for row, r := range runs {
		start := int64(row) * t.cells
		a2 = append(a2, a[start:start+r.N]...)
		b2 = append(b2, b[start:start+r.N]...)
	}
	lay.Runs = runs
	note = fmt.Sprintf("the other side masks kq above the diagonal (%d elements −Inf or ≤ −1000 where llama.cpp's unmasked kq has scores): compared the causal part only (llama.cpp adds the mask in kq_soft_max)", masked)
	return a2, b2, lay, note
}

// runsAt maps compared element i to its run: the reference index and the
// token slice.
func runsAt(runs []Run, i int64) (ref int64, token int) {
	lo, hi := 0, len(runs)
	starts := make([]int64, len(runs)+1)
	for k, r := range runs {
		starts[k+1] = starts[k] + r.N
	}
	for lo < hi {
		m := (lo + hi) / 2
		if starts[m+1] <= i {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo >= len(runs) {
		return i, -1
	}
	return runs[lo].RefStart + i - starts[lo], runs[lo].Token
}
