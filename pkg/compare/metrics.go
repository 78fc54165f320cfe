package compare

import (
	"bytes"
	"math"
	"unsafe"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Metrics measures how far one tensor (Other: layerdiff's forward pass or a
// second reference) is from a reference tensor of the same shape.
//
// Population. The numeric metrics (MaxAbs, MaxRel, RMSE, NMSE, Cosine, ULP)
// are computed over the Finite pairs: positions where both values are finite.
// Positions where a side is NaN or ±Inf are classified instead: a NaN on both
// sides, or an infinity of the same sign on both sides, is SharedNonFinite;
// any other combination (NaN against a number, +Inf against -Inf, Inf
// against a number) is a NonFiniteMismatch. All sums are float64 sums of the
// float32 values in ggml order (no compensation: float64 holds a float32
// product exactly and its 53-bit mantissa leaves ≥29 bits of headroom).
//
// Partial references (a text log's printed elements) are measured over the
// known elements only; their values are decimals at a printed Quantum, so ULP
// distances and bit identity are not defined (ULP is nil, BitIdentical is 0)
// and WithinQuantum counts the elements that print alike instead.
type Metrics struct {
	// N is the number of compared elements (known elements for partial
	// tensors).
	N int64 `json:"n"`
	// Finite is the number of positions where both values are finite.
	Finite int64 `json:"finite"`

	// MaxAbs = max |a−b| over finite pairs; 0 when Finite is 0. MaxAbsAt is
	// the first element attaining it (nil when Finite is 0).
	MaxAbs   Float    `json:"max_abs"`
	MaxAbsAt *Element `json:"max_abs_at,omitempty"`
	// MaxRel = max |a−b| / max(|a|,|b|) over finite pairs, taking 0/0 as 0
	// (gonum's EqualWithinRel denominator: symmetric, at most 2, and 1 when
	// exactly one side is zero).
	MaxRel Float `json:"max_rel"`
	// RMSE = sqrt(Σ(a−b)² / Finite); 0 when Finite is 0.
	RMSE Float `json:"rmse"`
	// NMSE = Σ(a−b)² / Σa² over finite pairs, in float64, as llama.cpp's
	// test-backend-ops computes it (a is the reference). When Σa² is 0 it is
	// 0 if Σ(a−b)² is 0 too and +Inf otherwise. Not symmetric.
	NMSE Float `json:"nmse"`
	// Cosine = Σab / sqrt(Σa²·Σb²) over finite pairs, clamped to [−1, 1].
	// Two all-zero vectors have cosine 1 (they are identical); exactly one
	// all-zero vector gives 0. Finite = 0 gives 1 (nothing disagrees).
	Cosine Float `json:"cosine"`

	// Mismatches counts elements outside the elementwise tolerance:
	// finite pairs with |a−b| > atol + atol_rms·rms(a) + rtol·|a| (for
	// partial tensors the printed half-quantum is added to the bound), plus
	// every NonFiniteMismatch. SharedNonFinite positions are not mismatches.
	Mismatches int64 `json:"mismatches"`
	// Bound is the elementwise bound without the rtol·|a| term:
	// atol + atol_rms·rms(a), where rms(a) = sqrt(Σa²/Finite).
	Bound Float `json:"bound"`

	// ULP summarizes float32 ULP distances over finite pairs (see
	// ULPDistance); nil for partial tensors.
	ULP *ULPStats `json:"ulp,omitempty"`
	// BitIdentical counts positions whose float32 bits are equal, counting
	// any NaN as identical to any NaN (payloads are not compared); +0 and −0
	// are not identical. 0 for partial tensors.
	BitIdentical int64 `json:"bit_identical"`
	// FirstDiff is the first position (in ggml order) that is not
	// BitIdentical; nil when every position is, and for partial tensors.
	FirstDiff *Element `json:"first_diff,omitempty"`

	// NaN and ±Inf counts per side, and the classification of non-finite
	// positions described above.
	RefNaN            int64 `json:"ref_nan"`
	RefInf            int64 `json:"ref_inf"`
	OtherNaN          int64 `json:"other_nan"`
	OtherInf          int64 `json:"other_inf"`
	NonFiniteMismatch int64 `json:"nonfinite_mismatch"`
	SharedNonFinite   int64 `json:"shared_nonfinite"`

	// Partial tensors only.

	// Quantum is the sum of both sides' printed resolutions (0 for full
	// tensors): two values agree at printed precision when |a−b| ≤ Quantum/2.
	Quantum Float `json:"quantum,omitempty"`
	// WithinQuantum counts known elements with |a−b| ≤ Quantum/2 (plus a few
	// float64 ulps for the decimal parse).
	WithinQuantum int64 `json:"within_quantum,omitempty"`
	// Sum checks the printed full-tensor sums; nil when neither side is
	// partial or a side has no sum.
	Sum *SumCheck `json:"sum,omitempty"`

	// Logits is set for tensors measured as logits (result_output).
	Logits *Logits `json:"logits,omitempty"`
	// Selection is set for tensors judged as selections (selection.go).
	Selection *Selection `json:"selection,omitempty"`
}

// ULPStats summarizes float32 ULP distances. Percentiles use the
// nearest-rank definition: Pk is the smallest distance d such that at least
// ⌈k/100·n⌉ of the n distances are ≤ d. Computed exactly, without sorting,
// by a two-level 16-bit histogram.
type ULPStats struct {
	P50 uint32 `json:"p50"`
	P99 uint32 `json:"p99"`
	Max uint32 `json:"max"`
}

// SumCheck compares full-tensor sums, the only whole-tensor information a
// text log keeps. Ref and Other are the printed sums, or for a full side the
// sum as llama.cpp's eval callback computes it: a float32 accumulator over
// the elements in ggml order (tensor.SumF32).
//
// The check passes iff |Ref−Other| ≤ Limit, with
//
//	Limit = (q_ref+q_other)/2                         printed precision
//	      + 2·2⁻²⁴·Σ_k|s_k|                          float32 accumulation
//	      + min( sqrt(n·nmse_max·Σb²),               implied by NMSE ≤ nmse_max
//	             Σ(atol + atol_rms·rms + rtol·|b|) ) implied by the elementwise
//	                                                  check (only when
//	                                                  mismatch_frac_max is 0)
//
// where b is the full side and s_k its running float32 sums (each addition
// rounds by at most 2⁻²⁴·|s_k|; the reference's running sums are close to
// ours, hence the factor 2). The NMSE term is Cauchy–Schwarz:
// |Σ(a−b)| ≤ sqrt(n·Σ(a−b)²) ≤ sqrt(n·nmse_max·Σa²), using Σb² for the
// unknown Σa². So a sum outside Limit proves that the hidden elements break
// the tolerance. A NaN sum on exactly one side fails; NaN on both passes.
type SumCheck struct {
	Ref   Float `json:"ref"`
	Other Float `json:"other"`
	Diff  Float `json:"diff"`
	Limit Float `json:"limit"`
	OK    bool  `json:"ok"`
}

// Element is one position of a compared pair.
type Element struct {
	// Index is the flat ggml-order index in the reference tensor, Coord the
	// same position as ggml coordinates (Coord[0] varies fastest).
	Index int64   `json:"index"`
	Coord []int64 `json:"coord"`
	Ref   Float   `json:"ref"`
	Other Float   `json:"other"`
	// Diff is |Ref−Other| (NaN or +Inf for non-finite mismatches).
	Diff Float `json:"diff"`
	// ULP is the float32 ULP distance, −1 when undefined (a non-finite side,
	// or a partial tensor's printed value).
	ULP int64 `json:"ulp"`
}

// TokenStat is the comparison restricted to one token (one slice along the
// token axis).
type TokenStat struct {
	Token             int   `json:"token"` // position in the prompt (0-based)
	N                 int64 `json:"n"`
	NMSE              Float `json:"nmse"` // same formula as Metrics.NMSE
	Mismatches        int64 `json:"mismatches"`
	NonFiniteMismatch int64 `json:"nonfinite_mismatch"`
	BitDiff           int64 `json:"bit_diff"` // positions not BitIdentical
	Fail              bool  `json:"fail"`
}

// Logits compares two logit tensors {n_vocab, T} token by token. For each
// token both columns are turned into probabilities with a float64 softmax
// (log-softmax x − logsumexp(x)).
type Logits struct {
	Tokens []TokenLogits `json:"tokens"`
	// ArgmaxAgree counts tokens whose argmax is the same on both sides.
	ArgmaxAgree int `json:"argmax_agree"`
	// NearTies counts tokens whose argmax differs but whose reference top-2
	// gap is below the near-tie threshold (excused by the policy).
	NearTies int `json:"near_ties"`
	// MeanTop5 is the mean of Top5/min(5, n_vocab) over tokens.
	MeanTop5 Float `json:"mean_top5"`
	MeanKL   Float `json:"mean_kl"`
	MaxKL    Float `json:"max_kl"`
}

// TokenLogits is the logit comparison of one token.
type TokenLogits struct {
	Token       int `json:"token"`
	RefArgmax   int `json:"ref_argmax"`
	OtherArgmax int `json:"other_argmax"`
	// Top5 = |top5(ref) ∩ top5(other)|, top-5 by value with ties to the lower
	// index, NaN ignored.
	Top5 int `json:"top5"`
	// KL = KL(P_ref ‖ P_other) = Σ p_ref·(log p_ref − log p_other), float64,
	// terms with p_ref = 0 contribute 0; rounding below 0 is clamped to 0.
	// NaN when either column has a NaN or ±Inf.
	KL Float `json:"kl"`
	// Gap is the reference's top-1 minus top-2 logit (+Inf for n_vocab 1).
	Gap Float `json:"gap"`
	// NearTie is Gap < the near-tie threshold.
	NearTie bool `json:"near_tie"`
}

// ULPDistance returns the distance between two float32 values in units in
// the last place: the number of representable float32 values between them
// (|ord(a) − ord(b)| where ord maps the bit patterns onto a monotone integer
// line with +0 and −0 both at 0). So ULPDistance(1, Nextafter32(1, 2)) = 1,
// ULPDistance(+0, −0) = 0, and ULPDistance(−min subnormal, +min subnormal) =
// 2. ok is false, and d 0, when either value is NaN or ±Inf.
func ULPDistance(a, b float32) (d uint32, ok bool) {
	fa, fb := float64(a), float64(b)
	if !isFinite(fa) || !isFinite(fb) {
		return 0, false
	}
	return ulp32(a, b), true
}

// ulp32 is ULPDistance for finite values.
func ulp32(a, b float32) uint32 {
	d := ord32(a) - ord32(b)
	m := d >> 63 // |d| without a branch: signs are data
	return uint32((d ^ m) - m)
}

// ord32 maps a float32 to an integer that orders like its value, with
// ord32(-0) = ord32(+0): the magnitude's bits, negated for a negative sign
// (without a branch).
func ord32(x float32) int64 {
	u := int64(math.Float32bits(x))
	s := -(u >> 31) // 0, or -1 for a negative sign
	return ((u & 0x7fffffff) ^ s) - s
}

// b2i is 1 for true, 0 for false.
func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Coord converts a flat ggml-order index into coordinates for shape ne
// (Coord[0] varies fastest). An index outside the shape yields coordinates
// past the last dimension's end rather than a panic.
func Coord(index int64, ne []int64) []int64 {
	ne = tensor.Trim(ne)
	c := make([]int64, len(ne))
	for i, d := range ne {
		if d <= 0 {
			continue
		}
		if i == len(ne)-1 {
			c[i] = index
			break
		}
		c[i] = index % d
		index /= d
	}
	return c
}

// Layout says how a compared region maps onto tokens: element i belongs to
// token TokenBase + (i / TokenStride) % TokenCount. TokenCount 0 means the
// tensor has no token axis.
type Layout struct {
	// Ne is the shape of the compared region, for coordinates.
	Ne          []int64
	TokenStride int64
	TokenCount  int
	// TokenBase is the prompt position of the first token slice (T−1 when
	// only the last token's rows are compared).
	TokenBase int
	// Runs, when set, says where the compared elements are in the
	// reference (flat indices in Ne) and replaces TokenStride: the
	// elements are consecutive runs, each of consecutive reference
	// elements of one token slice (Run.Token, of TokenCount; −1 none), as
	// when only the first cells or the causal part of attention rows are
	// compared.
	Runs []Run
}

// element is fullElement at compared position i, with the reference's
// index and coordinates.
func (l Layout) element(a, b []float32, i int64) *Element {
	e := fullElement(a, b, i, l.Ne)
	if l.Runs != nil {
		e.Index, _ = runsAt(l.Runs, i)
		e.Coord = Coord(e.Index, l.Ne)
	}
	return e
}

// measurement is everything measure computes: the metrics, per-token
// statistics and the worst elements.
type measurement struct {
	Metrics  Metrics
	PerToken []TokenStat
	Worst    []Element
}

// Measure compares two full tensors of the same length (ref is the
// reference) and returns the metrics documented on Metrics. ne is the
// shape used for coordinates; tol supplies the elementwise bound (ATol,
// ATolRMS, RTol) that Mismatches counts against. It panics if the lengths
// differ (a caller error: align shapes first).
func Measure(ref, other []float32, ne []int64, tol Tolerance) Metrics {
	if len(ref) != len(other) {
		panic("compare: Measure: length mismatch")
	}
	return measureFull(ref, other, Layout{Ne: ne}, tol, 0).Metrics
}

// measureFull measures a full pair. Bit-identical pairs, the common case
// of a faithful forward pass, take measureIdentical's single pass; all
// others measureGeneral's two or three. Both give the same measurement
// (TestMeasureIdenticalMatchesGeneral).
func measureFull(a, b []float32, lay Layout, tol Tolerance, nWorst int) measurement {
	if bitsEqual(a, b) {
		if m, ok := measureIdentical(a, lay, tol); ok {
			return m
		}
	}
	return measureGeneral(a, b, lay, tol, nWorst)
}

// bitsEqual reports whether two float32 slices hold the same bit patterns
// (memequal speed, NaN payloads included).
func bitsEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 {
		return true
	}
	ab := unsafe.Slice((*byte)(unsafe.Pointer(&a[0])), 4*len(a))
	bb := unsafe.Slice((*byte)(unsafe.Pointer(&b[0])), 4*len(b))
	return bytes.Equal(ab, bb)
}

// measureIdentical is measureGeneral(a, a): every difference, ULP distance
// and per-token error is zero, no element is among the worst, and what
// remains is the population (finite and non-finite counts), the reference's
// sum of squares (in the same order, so Cosine and Bound round the same way)
// and the per-token element counts. It declines (ok false) when the bound
// could be negative, the only way an identical element could mismatch.
func measureIdentical(a []float32, lay Layout, tol Tolerance) (measurement, bool) {
	var m Metrics
	m.N = int64(len(a))
	m.BitIdentical = m.N
	// Counters in locals, not in m (whose address escapes): the loop's
	// only dependency chain is then the sum, kept serial so that it equals
	// measureGeneral's to the bit.
	var ssa float64
	var finite int64
	firstFinite := int64(-1)
	for i, v := range a {
		if !finite32(v) {
			classifyNonFinite(&m, float64(v), float64(v))
			continue
		}
		if firstFinite < 0 {
			firstFinite = int64(i)
		}
		finite++
		fa := float64(v)
		ssa += fa * fa
	}
	m.Finite = finite
	rms := 0.0
	if m.Finite > 0 {
		rms = math.Sqrt(ssa / float64(m.Finite))
	}
	bound := float64(tol.ATol) + float64(tol.ATolRMS)*rms
	if !(bound >= 0 && float64(tol.RTol) >= 0) {
		return measurement{}, false
	}
	finishSums(&m, 0, ssa, ssa, ssa)
	if firstFinite >= 0 {
		m.MaxAbsAt = lay.element(a, a, firstFinite)
	}
	m.Bound = Float(bound)
	m.ULP = &ULPStats{}
	tok := newTokenAcc(lay)
	tok.countOnly(int64(len(a)))
	return measurement{Metrics: m, PerToken: tok.stats(lay.TokenBase)}, true
}

// measureGeneral runs two or three passes over a full pair: sums and
// classification; the elementwise check, per-token sums, the worst
// elements, the high ULP histogram and the low one of bucket 0; and, only
// when a percentile lies above bucket 0 (≥ 65,536 ULP), the low histogram
// of its bucket.
func measureGeneral(a, b []float32, lay Layout, tol Tolerance, nWorst int) measurement {
	var m Metrics
	m.N = int64(len(a))
	// Counters and maxima in locals, not in m (whose address escapes, so
	// each update would be a store and a load).
	var sse, ssa, ssb, sab, maxAbs, maxRel float64
	var identical, finite int64
	maxAbsIdx := int64(-1)
	firstDiff := int64(-1)
	for i := range a {
		fa, fb := float64(a[i]), float64(b[i])
		if math.Float32bits(a[i]) == math.Float32bits(b[i]) || (fa != fa && fb != fb) {
			identical++
		} else if firstDiff < 0 {
			firstDiff = int64(i)
		}
		if !finite32(a[i]) || !finite32(b[i]) {
			classifyNonFinite(&m, fa, fb)
			continue
		}
		finite++
		d := fa - fb
		ad := math.Abs(d)
		sse += d * d
		ssa += fa * fa
		ssb += fb * fb
		sab += fa * fb
		if ad > maxAbs || maxAbsIdx < 0 {
			maxAbs = ad
			maxAbsIdx = int64(i)
		}
		// max(|fa|, |fb|) (finite here; math.Max is a call), and the
		// division only when it can raise maxRel: below 0.999·maxRel·den,
		// ad/den < maxRel exactly, so its rounding cannot exceed maxRel
		// (|Δ|/den ≤ 2: no overflow).
		den := math.Abs(fa)
		if x := math.Abs(fb); x > den {
			den = x
		}
		if den > 0 && ad >= maxRel*den*0.999 {
			if r := ad / den; r > maxRel {
				maxRel = r
			}
		}
	}
	m.BitIdentical, m.Finite, m.MaxAbs, m.MaxRel = identical, finite, Float(maxAbs), Float(maxRel)
	finishSums(&m, sse, ssa, ssb, sab)
	if maxAbsIdx >= 0 {
		m.MaxAbsAt = lay.element(a, b, maxAbsIdx)
	}
	if firstDiff >= 0 {
		m.FirstDiff = lay.element(a, b, firstDiff)
	}

	// Pass 2.
	rms := 0.0
	if m.Finite > 0 {
		rms = math.Sqrt(ssa / float64(m.Finite))
	}
	bound := float64(tol.ATol) + float64(tol.ATolRMS)*rms
	m.Bound = Float(bound)
	rtol := float64(tol.RTol)
	tok := newTokenAcc(lay)
	w := newWorst(nWorst)
	// The ULP histogram of the high 16 bits (hi; bucket 0, the usual one,
	// counted in a register) and the low 16 bits within bucket 0 (lo0):
	// ulpPercentiles reads the data a third time only when a percentile
	// lies above bucket 0.
	var hi, lo0 []uint32
	if m.Finite > 0 {
		hi = make([]uint32, 1<<16)
		lo0 = make([]uint32, 1<<16)
	}
	var ulpMax uint32
	var mismatches, hi0 int64
	// Element by element in runs of one token, whose sums are kept in
	// registers: the same additions in the same order as one element at a
	// time into the token's accumulators.
	for start := 0; start < len(a); {
		k, end := tok.run(start, len(a))
		var se, sa float64
		var st TokenStat
		if k >= 0 {
			se, sa = tok.sse[k], tok.ssa[k]
		}
		for i := start; i < end; i++ {
			fa, fb := float64(a[i]), float64(b[i])
			bitDiff := b2i(math.Float32bits(a[i]) != math.Float32bits(b[i])) & (1 - b2i(fa != fa && fb != fb))
			st.N++
			st.BitDiff += bitDiff
			if !finite32(a[i]) || !finite32(b[i]) {
				if !sharedNonFinite(fa, fb) {
					mismatches++
					w.offer(int64(i), math.Inf(1))
					st.Mismatches++
					st.NonFiniteMismatch++
				}
				continue
			}
			d := fa - fb
			ad := math.Abs(d)
			mis := b2i(ad > bound+rtol*math.Abs(fa))
			mismatches += mis
			st.Mismatches += mis
			se += d * d
			sa += fa * fa
			w.offer(int64(i), ad)
			u := ulp32(a[i], b[i])
			if u>>16 == 0 {
				hi0++
				lo0[u]++
			} else {
				hi[u>>16]++
			}
			ulpMax = max(ulpMax, u)
		}
		if k >= 0 {
			tok.sse[k], tok.ssa[k] = se, sa
			t := &tok.st[k]
			t.N += st.N
			t.Mismatches += st.Mismatches
			t.NonFiniteMismatch += st.NonFiniteMismatch
			t.BitDiff += st.BitDiff
		}
		start = end
	}
	m.Mismatches = mismatches
	if m.Finite > 0 {
		hi[0] = uint32(hi0)
		m.ULP = ulpPercentiles(a, b, hi, lo0, uint64(m.Finite), ulpMax)
	} else {
		m.ULP = &ULPStats{}
	}
	out := measurement{Metrics: m, PerToken: tok.stats(lay.TokenBase)}
	for _, i := range w.sorted() {
		out.Worst = append(out.Worst, *lay.element(a, b, i))
	}
	return out
}

// ulpPercentiles finds the exact nearest-rank P50 and P99 from the
// histogram of the high 16 bits, then a histogram of the low 16 bits
// within the bucket holding each rank: lo0 for bucket 0, else counted
// here.
func ulpPercentiles(a, b []float32, hi, lo0 []uint32, n uint64, max uint32) *ULPStats {
	ranks := [2]uint64{nearestRank(50, n), nearestRank(99, n)}
	var bucket [2]int
	var before [2]uint64
	for k, r := range ranks {
		var cum uint64
		for h, c := range hi {
			if cum+uint64(c) >= r {
				bucket[k], before[k] = h, cum
				break
			}
			cum += uint64(c)
		}
	}
	var lo [2][]uint32
	var count [2]bool // lo[k] must be counted from the data
	for k := range lo {
		switch {
		case bucket[k] == 0:
			lo[k] = lo0
		case k == 1 && bucket[1] == bucket[0]:
			lo[1] = lo[0]
		default:
			lo[k], count[k] = make([]uint32, 1<<16), true
		}
	}
	if count[0] || count[1] {
		for i := range a {
			if !finite32(a[i]) || !finite32(b[i]) {
				continue
			}
			u := ulp32(a[i], b[i])
			h := int(u >> 16)
			if h == bucket[0] && count[0] {
				lo[0][u&0xffff]++
			} else if h == bucket[1] && count[1] {
				lo[1][u&0xffff]++
			}
		}
	}
	var res [2]uint32
	for k := range ranks {
		cum := before[k]
		for l, c := range lo[k] {
			cum += uint64(c)
			if cum >= ranks[k] {
				res[k] = uint32(bucket[k])<<16 | uint32(l)
				break
			}
		}
	}
	return &ULPStats{P50: res[0], P99: res[1], Max: max}
}

// nearestRank is ⌈p/100·n⌉ clamped to [1, n], in integers.
func nearestRank(p, n uint64) uint64 {
	r := (p*n + 99) / 100
	if r < 1 {
		r = 1
	}
	if r > n {
		r = n
	}
	return r
}

func classifyNonFinite(m *Metrics, fa, fb float64) {
	switch {
	case math.IsNaN(fa):
		m.RefNaN++
	case math.IsInf(fa, 0):
		m.RefInf++
	}
	switch {
	case math.IsNaN(fb):
		m.OtherNaN++
	case math.IsInf(fb, 0):
		m.OtherInf++
	}
	if sharedNonFinite(fa, fb) {
		m.SharedNonFinite++
	} else {
		m.NonFiniteMismatch++
	}
}

// sharedNonFinite reports NaN on both sides or the same infinity on both.
func sharedNonFinite(fa, fb float64) bool {
	if fa != fa && fb != fb {
		return true
	}
	return math.IsInf(fa, 0) && fa == fb
}

func finishSums(m *Metrics, sse, ssa, ssb, sab float64) {
	if m.Finite > 0 {
		m.RMSE = Float(math.Sqrt(sse / float64(m.Finite)))
	}
	m.NMSE = Float(nmse(sse, ssa))
	switch {
	case ssa == 0 && ssb == 0:
		m.Cosine = 1
	case ssa == 0 || ssb == 0:
		m.Cosine = 0
	default:
		c := sab / (math.Sqrt(ssa) * math.Sqrt(ssb))
		m.Cosine = Float(math.Max(-1, math.Min(1, c)))
	}
}

// nmse is sse/ssa with 0/0 = 0 and x/0 = +Inf.
func nmse(sse, ssa float64) float64 {
	if ssa == 0 {
		if sse == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return sse / ssa
}

func fullElement(a, b []float32, i int64, ne []int64) *Element {
	fa, fb := float64(a[i]), float64(b[i])
	e := &Element{Index: i, Coord: Coord(i, ne), Ref: Float(fa), Other: Float(fb), Diff: Float(math.Abs(fa - fb)), ULP: -1}
	if d, ok := ULPDistance(a[i], b[i]); ok {
		e.ULP = int64(d)
	}
	return e
}
