package compare

import (
	"bytes"
	"container/heap"
	"math"
	"sort"
	"unsafe"

	"gonum.org/v1/gonum/floats"

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
		m.MaxAbsAt = fullElement(a, a, firstFinite, lay.Ne)
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
		m.MaxAbsAt = fullElement(a, b, maxAbsIdx, lay.Ne)
	}
	if firstDiff >= 0 {
		m.FirstDiff = fullElement(a, b, firstDiff, lay.Ne)
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
		out.Worst = append(out.Worst, *fullElement(a, b, i, lay.Ne))
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

// tokenAcc accumulates per-token sums.
type tokenAcc struct {
	stride, n int64
	sse, ssa  []float64
	st        []TokenStat
	// next's position: current token, elements left in its slice.
	cur, left int64
	started   bool
}

func newTokenAcc(l Layout) *tokenAcc {
	n := l.TokenCount
	if n <= 0 || l.TokenStride <= 0 {
		return &tokenAcc{}
	}
	return &tokenAcc{stride: l.TokenStride, n: int64(n), sse: make([]float64, n), ssa: make([]float64, n), st: make([]TokenStat, n)}
}

func (t *tokenAcc) index(i int64) int {
	if t.n == 0 {
		return -1
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
	s := int64(start)
	return int((s / t.stride) % t.n), int(min(int64(total), (s/t.stride+1)*t.stride))
}

// countOnly adds elements 0..total-1 to their tokens' counts (N) and
// nothing else: the per-token statistics of an identical pair.
func (t *tokenAcc) countOnly(total int64) {
	if t.n == 0 {
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

// TieRule decides when a token whose argmax differs is a near tie.
type TieRule struct {
	// Gap: the reference's top-2 gap is below Gap.
	Gap float64
	// Explained: also when the gap is at most |Δ| at the reference's top
	// token plus |Δ| at the other side's top token — the flip is fully
	// accounted for by the differences at those two logits, which the
	// elementwise and NMSE criteria judge. Used where the two sides are not
	// expected to agree bit for bit (f64 mode: llama.cpp's quantized
	// arithmetic against exact arithmetic).
	Explained bool
}

// MeasureLogits compares logits laid out {nVocab, T'} (one column of
// nVocab values per token, ggml order) token by token, as documented on
// Logits and TokenLogits. tokenBase is the prompt position of the first
// column; tie says which flips are near ties. It panics if the lengths
// differ or are not a multiple of nVocab (caller errors).
func MeasureLogits(ref, other []float32, nVocab int, tokenBase int, tie TieRule) *Logits {
	if len(ref) != len(other) || nVocab <= 0 || len(ref)%nVocab != 0 {
		panic("compare: MeasureLogits: lengths are not equal multiples of nVocab")
	}
	lg := &Logits{Tokens: []TokenLogits{}}
	nt := len(ref) / nVocab
	if nt == 0 {
		return lg
	}
	pa := make([]float64, nVocab)
	pb := make([]float64, nVocab)
	var sumKL, sumTop5 float64
	maxKL := 0.0
	klNaN := false
	for t := 0; t < nt; t++ {
		// Bit-identical rows (the common case of a passing run) have the
		// same top 5 and a KL of exactly 0: computed only once.
		same := bitsEqual(ref[t*nVocab:(t+1)*nVocab], other[t*nVocab:(t+1)*nVocab])
		finite := true
		for i := 0; i < nVocab; i++ {
			pa[i] = float64(ref[t*nVocab+i])
			pb[i] = float64(other[t*nVocab+i])
			if !isFinite(pa[i]) || !isFinite(pb[i]) {
				finite = false
			}
		}
		tl := TokenLogits{Token: tokenBase + t, RefArgmax: -1, OtherArgmax: -1}
		ta := topK(pa, 5)
		tb := ta
		if !same {
			tb = topK(pb, 5)
		}
		if len(ta) > 0 {
			tl.RefArgmax = ta[0]
		}
		if len(tb) > 0 {
			tl.OtherArgmax = tb[0]
		}
		tl.Top5 = overlap(ta, tb)
		switch {
		case len(ta) >= 2:
			tl.Gap = Float(pa[ta[0]] - pa[ta[1]])
		case len(ta) == 1:
			tl.Gap = Float(math.Inf(1))
		default:
			tl.Gap = Float(math.NaN())
		}
		tl.NearTie = float64(tl.Gap) < tie.Gap
		if tie.Explained && !tl.NearTie && tl.RefArgmax >= 0 && tl.OtherArgmax >= 0 && tl.RefArgmax != tl.OtherArgmax {
			a, b := tl.RefArgmax, tl.OtherArgmax
			tl.NearTie = float64(tl.Gap) <= math.Abs(pa[a]-pb[a])+math.Abs(pa[b]-pb[b])
		}
		switch {
		case finite && same:
			tl.KL = 0 // what klDivergence computes for x = y: Σ p·0
		case finite:
			tl.KL = Float(klDivergence(pa, pb))
		default:
			tl.KL = Float(math.NaN())
			klNaN = true
		}
		if tl.RefArgmax == tl.OtherArgmax && tl.RefArgmax >= 0 {
			lg.ArgmaxAgree++
		} else if tl.NearTie {
			lg.NearTies++
		}
		sumTop5 += float64(tl.Top5) / float64(min(5, nVocab))
		if finite {
			sumKL += float64(tl.KL)
			maxKL = math.Max(maxKL, float64(tl.KL))
		}
		lg.Tokens = append(lg.Tokens, tl)
	}
	lg.MeanTop5 = Float(sumTop5 / float64(nt))
	lg.MeanKL = Float(sumKL / float64(nt))
	lg.MaxKL = Float(maxKL)
	if klNaN {
		lg.MeanKL, lg.MaxKL = Float(math.NaN()), Float(math.NaN())
	}
	return lg
}

// klDivergence is KL(softmax(x) ‖ softmax(y)) for finite x, y, overwriting
// both with their log-softmax.
func klDivergence(x, y []float64) float64 {
	floats.AddConst(-floats.LogSumExp(x), x)
	floats.AddConst(-floats.LogSumExp(y), y)
	kl := 0.0
	for i := range x {
		p := math.Exp(x[i])
		if p == 0 {
			continue
		}
		kl += p * (x[i] - y[i])
	}
	if kl < 0 {
		kl = 0
	}
	return kl
}

// topK returns the indices of the k largest values, largest first, ties to
// the lower index, NaN ignored (an all-NaN column yields none).
func topK(x []float64, k int) []int {
	var idx []int
	for i, v := range x {
		if v != v {
			continue
		}
		// insertion into a short sorted list
		pos := len(idx)
		for pos > 0 && x[idx[pos-1]] < v {
			pos--
		}
		if pos >= k {
			continue
		}
		idx = append(idx, 0)
		copy(idx[pos+1:], idx[pos:])
		idx[pos] = i
		if len(idx) > k {
			idx = idx[:k]
		}
	}
	return idx
}

func overlap(a, b []int) int {
	n := 0
	for _, i := range a {
		for _, j := range b {
			if i == j {
				n++
				break
			}
		}
	}
	return n
}
