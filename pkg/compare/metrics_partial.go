package compare

import (
	"math"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// known is a partial comparison: elements known on both sides (ref value a
// and other value b at a reference index) and the sums.
type known struct {
	index       []int64
	a, b        []float64
	quantum     float64 // q_ref + q_other
	refSum      float64
	refSumQ     float64
	hasRefSum   bool
	otherSum    float64
	otherSumQ   float64
	hasOtherSum bool
	n           int64     // element count of the whole compared region
	full        []float32 // the full side, nil when both are partial
	// partialAbs is Σ|s_k| over the running sums s_k of the full side's
	// float32 accumulation: 2⁻²⁴·partialAbs bounds that sum's rounding.
	partialAbs float64
}

// MeasurePartial compares a text log's partial reference with a full tensor
// (other, in ggml order, shape ne): the known elements as in Measure but
// with the printed half-quantum added to the elementwise bound, and the sum
// check described on SumCheck. Indices outside other are ignored.
func MeasurePartial(ref *tensor.Partial, other []float32, ne []int64, tol Tolerance) Metrics {
	k := partialVsFull(ref, other)
	return measurePartial(k, Layout{Ne: ne}, tol, 0).Metrics
}

// partialVsFull pairs a partial reference with a full other side.
func partialVsFull(p *tensor.Partial, other []float32) *known {
	k := &known{quantum: p.Quantum, n: int64(len(other)), full: other}
	for j, idx := range p.Index {
		if idx < 0 || idx >= int64(len(other)) || j >= len(p.Values) {
			continue
		}
		k.index = append(k.index, idx)
		k.a = append(k.a, p.Values[j])
		k.b = append(k.b, float64(other[idx]))
	}
	if p.HasSum {
		k.refSum, k.refSumQ, k.hasRefSum = p.Sum, p.SumQuantum, true
		k.otherSum, k.partialAbs = sumF32(other)
		k.hasOtherSum = true
	}
	return k
}

// fullVsPartial pairs a full reference with a partial other side.
func fullVsPartial(ref []float32, p *tensor.Partial) *known {
	k := &known{quantum: p.Quantum, n: int64(len(ref)), full: ref}
	for j, idx := range p.Index {
		if idx < 0 || idx >= int64(len(ref)) || j >= len(p.Values) {
			continue
		}
		k.index = append(k.index, idx)
		k.a = append(k.a, float64(ref[idx]))
		k.b = append(k.b, p.Values[j])
	}
	if p.HasSum {
		k.otherSum, k.otherSumQ, k.hasOtherSum = p.Sum, p.SumQuantum, true
		k.refSum, k.partialAbs = sumF32(ref)
		k.hasRefSum = true
	}
	return k
}

// partialVsPartial pairs two partial tensors on their common indices.
func partialVsPartial(p, q *tensor.Partial, n int64) *known {
	k := &known{quantum: p.Quantum + q.Quantum, n: n}
	at := make(map[int64]float64, len(q.Index))
	for j, idx := range q.Index {
		if j < len(q.Values) {
			at[idx] = q.Values[j]
		}
	}
	for j, idx := range p.Index {
		v, ok := at[idx]
		if !ok || j >= len(p.Values) || idx < 0 || idx >= n {
			continue
		}
		k.index = append(k.index, idx)
		k.a = append(k.a, p.Values[j])
		k.b = append(k.b, v)
	}
	if p.HasSum {
		k.refSum, k.refSumQ, k.hasRefSum = p.Sum, p.SumQuantum, true
	}
	if q.HasSum {
		k.otherSum, k.otherSumQ, k.hasOtherSum = q.Sum, q.SumQuantum, true
	}
	return k
}

// sumF32 is the sum llama.cpp's eval callback prints (common/debug.cpp in
// 2026, ggml_print_tensor of the eval-callback example before): a float32
// accumulator over all elements in ggml order. It also returns Σ|s_k| over
// the partial sums, so that 2⁻²⁴·Σ|s_k| bounds the accumulated rounding.
func sumF32(x []float32) (sum, partialAbs float64) {
	var s float32
	for _, v := range x {
		s += v
		partialAbs += math.Abs(float64(s))
	}
	return float64(s), partialAbs
}

// measurePartial measures the known elements of a partial comparison.
func measurePartial(k *known, lay Layout, tol Tolerance, nWorst int) measurement {
	var m Metrics
	m.N = int64(len(k.index))
	m.Quantum = Float(k.quantum)
	var sse, ssa, ssb, sab float64
	maxAbsJ := -1
	for j := range k.index {
		fa, fb := k.a[j], k.b[j]
		if !isFinite(fa) || !isFinite(fb) {
			classifyNonFinite(&m, fa, fb)
			continue
		}
		m.Finite++
		d := fa - fb
		ad := math.Abs(d)
		sse += d * d
		ssa += fa * fa
		ssb += fb * fb
		sab += fa * fb
		if maxAbsJ < 0 || ad > float64(m.MaxAbs) {
			m.MaxAbs, maxAbsJ = Float(ad), j
		}
		if den := math.Max(math.Abs(fa), math.Abs(fb)); den > 0 {
			if r := ad / den; r > float64(m.MaxRel) {
				m.MaxRel = Float(r)
			}
		}
	}
	finishSums(&m, sse, ssa, ssb, sab)
	elem := func(j int) Element {
		return Element{Index: k.index[j], Coord: Coord(k.index[j], lay.Ne), Ref: Float(k.a[j]), Other: Float(k.b[j]), Diff: Float(math.Abs(k.a[j] - k.b[j])), ULP: -1}
	}
	if maxAbsJ >= 0 {
		e := elem(maxAbsJ)
		m.MaxAbsAt = &e
	}
	rms := 0.0
	if m.Finite > 0 {
		rms = math.Sqrt(ssa / float64(m.Finite))
	}
	bound := float64(tol.ATol) + float64(tol.ATolRMS)*rms
	m.Bound = Float(bound)
	rtol := float64(tol.RTol)
	tok := newTokenAcc(lay)
	w := newWorst(nWorst)
	for j, idx := range k.index {
		fa, fb := k.a[j], k.b[j]
		t := tok.index(idx)
		if !isFinite(fa) || !isFinite(fb) {
			shared := sharedNonFinite(fa, fb)
			if !shared {
				m.Mismatches++
				w.offer(int64(j), math.Inf(1))
			}
			tok.add(t, 0, 0, !shared, !shared, !shared)
			continue
		}
		d := fa - fb
		ad := math.Abs(d)
		slack := k.quantum/2 + 0x1p-50*(math.Abs(fa)+math.Abs(fb))
		if ad <= slack {
			m.WithinQuantum++
		}
		mis := ad > slack+bound+rtol*math.Abs(fa)
		if mis {
			m.Mismatches++
		}
		tok.add(t, d*d, fa*fa, mis, false, ad > slack)
		w.offer(int64(j), ad)
	}
	if k.hasRefSum && k.hasOtherSum {
		m.Sum = sumCheck(k, tol, rms)
	}
	out := measurement{Metrics: m, PerToken: tok.stats(lay.TokenBase)}
	for _, j := range w.sorted() {
		out.Worst = append(out.Worst, elem(int(j)))
	}
	return out
}

// sumCheck implements the SumCheck formula. rms is the known elements' RMS,
// the best available estimate for atol_rms. When both sides are partial,
// Σ|b|, Σb² and the elementwise bound are extrapolated from the known
// elements (scaled by n / known).
func sumCheck(k *known, tol Tolerance, rms float64) *SumCheck {
	sc := &SumCheck{Ref: Float(k.refSum), Other: Float(k.otherSum)}
	ra, rb := k.refSum, k.otherSum
	switch {
	case math.IsNaN(ra) || math.IsNaN(rb):
		sc.Diff = Float(math.NaN())
		sc.OK = math.IsNaN(ra) && math.IsNaN(rb)
		return sc
	case math.IsInf(ra, 0) || math.IsInf(rb, 0):
		sc.OK = ra == rb
		if !sc.OK {
			sc.Diff = Float(math.Inf(1))
		}
		return sc
	}
	bound := float64(tol.ATol) + float64(tol.ATolRMS)*rms
	var sumAbs, sumSq, elemBound float64
	add := func(f float64) {
		if !isFinite(f) {
			return
		}
		sumAbs += math.Abs(f)
		sumSq += f * f
		elemBound += bound + float64(tol.RTol)*math.Abs(f)
	}
	if k.full != nil {
		for _, v := range k.full {
			add(float64(v))
		}
	} else if len(k.b) > 0 {
		for _, v := range k.b {
			add(v)
		}
		scale := float64(k.n) / float64(len(k.b))
		sumAbs, sumSq, elemBound = sumAbs*scale, sumSq*scale, elemBound*scale
	}
	n := float64(k.n)
	// Both float32 accumulations round; their partial sums are close, so
	// each side's rounding is bounded by u·Σ|s_k| of the full side. With two
	// logs the bound is extrapolated: n·Σ|b|.
	rounding := 2 * 0x1p-24 * k.partialAbs
	if k.full == nil {
		rounding = 2 * 0x1p-24 * n * sumAbs
	}
	limit := (k.refSumQ+k.otherSumQ)/2 + rounding
	implied := math.Inf(1)
	if nm := float64(tol.NMSEMax); nm >= 0 && !math.IsInf(nm, 1) {
		implied = math.Sqrt(n * nm * sumSq)
	}
	if float64(tol.MismatchFracMax) == 0 && elemBound < implied {
		implied = elemBound
	}
	limit += implied
	sc.Diff = Float(math.Abs(ra - rb))
	sc.Limit = Float(limit)
	sc.OK = float64(sc.Diff) <= limit
	return sc
}
