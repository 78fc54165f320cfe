package compare

import (
	"container/heap"
	"sort"
)

// tokenAcc accumulates per-token sums.
type tokenAcc struct {
	stride, n int64
	sse, ssa  []float64
	st        []TokenStat
	// next's position: current token, elements left in its slice.
	cur, left int64
	started   bool
	// With Layout.Runs: the runs, their first compared elements, and
	// run's position (the run of the last start asked for).
	runs   []Run
	starts []int64
	ri     int
}

func newTokenAcc(l Layout) *tokenAcc {
	n := l.TokenCount
	if n > 0 && l.Runs != nil {
		t := &tokenAcc{stride: 1, n: int64(n), sse: make([]float64, n), ssa: make([]float64, n), st: make([]TokenStat, n), runs: l.Runs}
		t.starts = make([]int64, len(l.Runs)+1)
		for k, r := range l.Runs {
			t.starts[k+1] = t.starts[k] + r.N
		}
		return t
	}
	if n <= 0 || l.TokenStride <= 0 {
		return &tokenAcc{}
	}
	return &tokenAcc{stride: l.TokenStride, n: int64(n), sse: make([]float64, n), ssa: make([]float64, n), st: make([]TokenStat, n)}
}

func (t *tokenAcc) index(i int64) int {
	if t.n == 0 {
		return -1
	}
	if t.runs != nil {
		_, tok := runsAt(t.runs, i)
		return tok
	}
	return int((i / t.stride) % t.n)
}

// next is index(i) for i = 0, 1, 2... in turn, without a division per
// element.
func (t *tokenAcc) next() int {
	if t.n == 0 {
		return -1
	}
	if t.left == 0 {
		if t.started {
			t.cur++
			if t.cur == t.n {
				t.cur = 0
			}
		}
		t.started = true
		t.left = t.stride
	}
	t.left--
	return int(t.cur)
}

// run returns the token of element start (-1 without per-token slicing)
// and the end of the run of elements from start on that share it, at most
// total.
func (t *tokenAcc) run(start, total int) (k, end int) {
	if t.n == 0 {
		return -1, total
	}
	if t.runs != nil {
		s := int64(start)
		if t.ri >= len(t.runs) || s < t.starts[t.ri] {
			t.ri = 0
		}
		for t.ri < len(t.runs) && t.starts[t.ri+1] <= s {
			t.ri++
		}
		if t.ri >= len(t.runs) {
			return -1, total
		}
		return t.runs[t.ri].Token, int(min(int64(total), t.starts[t.ri+1]))
	}
	s := int64(start)
	return int((s / t.stride) % t.n), int(min(int64(total), (s/t.stride+1)*t.stride))
}

// countOnly adds elements 0..total-1 to their tokens' counts (N) and
// nothing else: the per-token statistics of an identical pair.
func (t *tokenAcc) countOnly(total int64) {
	if t.n == 0 {
		return
	}
	if t.runs != nil {
		for _, r := range t.runs {
			if r.Token >= 0 {
				t.st[r.Token].N += r.N
			}
		}
		return
	}
	for start, k := int64(0), int64(0); start < total; start, k = start+t.stride, k+1 {
		t.st[k%t.n].N += min(t.stride, total-start)
	}
}

func (t *tokenAcc) add(k int, se, sa float64, mis, nonfinite, bitDiff bool) {
	if k < 0 {
		return
	}
	t.sse[k] += se
	t.ssa[k] += sa
	s := &t.st[k]
	s.N++
	if mis {
		s.Mismatches++
	}
	if nonfinite {
		s.NonFiniteMismatch++
	}
	if bitDiff {
		s.BitDiff++
	}
}

func (t *tokenAcc) stats(base int) []TokenStat {
	if t.n == 0 {
		return nil
	}
	for k := range t.st {
		t.st[k].Token = base + k
		t.st[k].NMSE = Float(nmse(t.sse[k], t.ssa[k]))
	}
	return t.st
}

// worst keeps the k positions with the largest score (|a−b|, +Inf for a
// non-finite mismatch); ties go to the lower index.
type worst struct {
	k int
	h worstHeap
}

type scored struct {
	i int64
	s float64
}

// worstHeap is a min-heap: the root is the entry to evict first (smallest
// score; among equal scores the highest index).
type worstHeap []scored

func (h worstHeap) Len() int { return len(h) }
func (h worstHeap) Less(i, j int) bool {
	if h[i].s != h[j].s {
		return h[i].s < h[j].s
	}
	return h[i].i > h[j].i
}
func (h worstHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *worstHeap) Push(x any)   { *h = append(*h, x.(scored)) }
func (h *worstHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newWorst(k int) *worst { return &worst{k: k} }

func (w *worst) offer(i int64, s float64) {
	if w.k <= 0 || s == 0 {
		return
	}
	if len(w.h) < w.k {
		heap.Push(&w.h, scored{i, s})
		return
	}
	// Indices arrive in increasing order, so an equal score never displaces
	// an earlier index.
	if s > w.h[0].s {
		w.h[0] = scored{i, s}
		heap.Fix(&w.h, 0)
	}
}

// sorted returns the kept indices, largest score first, ties by index.
func (w *worst) sorted() []int64 {
	s := append([]scored(nil), w.h...)
	sort.Slice(s, func(i, j int) bool {
		if s[i].s != s[j].s {
			return s[i].s > s[j].s
		}
		return s[i].i < s[j].i
	})
	out := make([]int64, len(s))
	for i := range s {
		out[i] = s[i].i
	}
	return out
}
