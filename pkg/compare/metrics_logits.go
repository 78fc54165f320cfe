package compare

import (
	"math"

	"gonum.org/v1/gonum/floats"
)

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
