package diagnose

import (
	"fmt"
	"math"
	"slices"

	"github.com/layerdiff/layerdiff/pkg/compare"
)

// ---- RMS_NORM ----

// fitRMSEps estimates the epsilon of y = x/sqrt(mean(x²)+eps) row by row
// (rows of n values): eps = Σx²/Σy² − Σx²/n, the median over rows.
func fitRMSEps(x, y []float32, n int) (float64, bool) {
	if n <= 0 || len(x) != len(y) || len(x)%n != 0 {
		return 0, false
	}
	var eps []float64
	for r := 0; r+n <= len(x); r += n {
		var sx, sy float64
		for i := r; i < r+n; i++ {
			a, b := float64(x[i]), float64(y[i])
			sx += a * a
			sy += b * b
		}
		if sx == 0 || sy == 0 || !finite(sx) || !finite(sy) {
			continue
		}
		eps = append(eps, sx/sy-sx/float64(n))
	}
	if len(eps) == 0 {
		return 0, false
	}
	slices.Sort(eps)
	m := eps[len(eps)/2]
	if len(eps)%2 == 0 {
		m = (eps[len(eps)/2-1] + m) / 2
	}
	return m, true
}

// rmsPredict computes x/sqrt(mean(x²)+eps) per row of n values in float64;
// nil when a row's mean(x²)+eps is not positive.
func rmsPredict(x []float32, n int, eps float64) []float64 {
	out := make([]float64, len(x))
	for r := 0; r+n <= len(x); r += n {
		var sx float64
		for i := r; i < r+n; i++ {
			sx += float64(x[i]) * float64(x[i])
		}
		d := sx/float64(n) + eps
		if !(d > 0) {
			if sx == 0 {
				continue
			}
			return nil
		}
		s := 1 / math.Sqrt(d)
		for i := r; i < r+n; i++ {
			out[i] = float64(x[i]) * s
		}
	}
	return out
}

// rmsHints estimates the epsilon each side's RMS_NORM used from the
// reference's input and reports it when the reference's is not the one
// layerdiff used (or, without layerdiff's output, not the model's).
func rmsHints(in *Input, x []float32) []compare.Hint {
	if len(in.Inputs) < 1 || in.Inputs[0] == nil || len(in.Inputs[0].Data) != len(in.Ref) {
		return nil
	}
	src, n := in.Inputs[0].Data, int(in.Ne[0])
	eR, ok := fitRMSEps(src, in.Ref, n)
	if !ok {
		return nil
	}
	modelEps := math.NaN()
	if in.Hparams != nil {
		modelEps = float64(in.Hparams.NormRMSEps)
	}
	pR := rmsPredict(src, n, eR)
	if pR == nil {
		return nil
	}
	// layerdiff's fitted eps counts only when it reproduces layerdiff's
	// output better than the reference's eps does
	eO, okO := fitRMSEps(src, x, n)
	if okO {
		pO := rmsPredict(src, n, eO)
		okO = pO != nil && explains(nmseOf(pO, x), nmseOf(pR, x), explainMax)
	}
	alt, altName := modelEps, "the model's"
	if okO {
		alt, altName = eO, "layerdiff's fit"
	}
	if math.IsNaN(alt) {
		return nil
	}
	pA := rmsPredict(src, n, alt)
	res := nmseOf(pR, in.Ref)
	base := math.Inf(1)
	if pA != nil {
		base = nmseOf(pA, in.Ref)
	}
	if !explains(res, base, explainMax) {
		return nil
	}
	h := compare.Hint{Kind: HintRMSEps, Value: compare.Float(eR), NMSE: compare.Float(res), Baseline: compare.Float(base)}
	text := fmt.Sprintf("RMS norm epsilon: the reference's output fits eps %s (Σx²/Σy² − mean(x²) per row, median of %d rows; recomputed with it: nmse %s, with %s %s: %s)", fnum(eR, 3), len(src)/n, fnmse(res), altName, fnum(alt, 3), fnmse(base))
	if okO {
		h.Ours = fptr(eO)
		text += fmt.Sprintf("; layerdiff's fits %s", fnum(eO, 3))
	}
	if !math.IsNaN(modelEps) {
		h.Model = fptr(modelEps)
		text += fmt.Sprintf("; the model says %s", fnum(modelEps, 3))
	}
	h.Text = text
	return []compare.Hint{h}
}
