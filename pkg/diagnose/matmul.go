package diagnose

import (
	"fmt"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// ---- MUL_MAT ----

// matmulHints recomputes a MUL_MAT with a square model weight W from the
// reference's activation as W·x and Wᵀ·x (for at most four tokens) and
// reports which side matches the transposed weight.
func matmulHints(in *Input, x []float32) []compare.Hint {
	if in.Weights == nil || len(in.InputNames) < 2 || len(in.Inputs) < 2 || in.Inputs[1] == nil {
		return nil
	}
	wname := in.InputNames[0]
	wne, ok := in.Weights.Shape(wname)
	if !ok || len(wne) < 2 || tensor.Numel(wne) != wne[0]*wne[1] {
		return nil
	}
	k, n := wne[0], wne[1]
	if k != n || k <= 1 || k > maxMatmulDim || in.Ne[0] != n {
		return nil
	}
	act := in.Inputs[1].Data
	if int64(len(act))%k != 0 {
		return nil
	}
	cols := int64(len(act)) / k
	if cols*n != int64(len(in.Ref)) {
		return nil
	}
	use := min(cols, 4)
	y1 := make([]float64, use*n) // W·x
	y2 := make([]float64, use*n) // Wᵀ·x
	row := make([]float32, k)
	for r := int64(0); r < n; r++ {
		if err := in.Weights.Row(wname, int(r), row); err != nil {
			return nil
		}
		for t := int64(0); t < use; t++ {
			xt := act[t*k : (t+1)*k]
			var s float64
			for c, w := range row {
				s += float64(w) * float64(xt[c])
			}
			y1[t*n+r] = s
			xr := float64(xt[r])
			yt := y2[t*n : (t+1)*n]
			for c, w := range row {
				yt[c] += float64(w) * xr
			}
		}
	}
	refSub := in.Ref[:use*n]
	rR1, rR2 := nmseOf(y1, refSub), nmseOf(y2, refSub)
	var rX1, rX2 float64
	if x != nil {
		rX1, rX2 = nmseOf(y1, x[:use*n]), nmseOf(y2, x[:use*n])
	}
	var text string
	var res, base float64
	switch {
	case x != nil && explains(rX2, rX1, matmulExplainMax) && explains(rR1, rR2, matmulExplainMax):
		text = fmt.Sprintf("layerdiff's output matches the transposed weight: Wᵀ·x from the reference's input gives nmse %s (W·x: %s) while the reference's matches W·x (nmse %s), W = %s {%d, %d}, %d tokens: layerdiff reads the square weight with its ne order swapped", fnmse(rX2), fnmse(rX1), fnmse(rR1), wname, k, n, use)
		res, base = rX2, rX1
	case explains(rR2, rR1, matmulExplainMax) && (x == nil || explains(rX1, rX2, matmulExplainMax)):
		text = fmt.Sprintf("the reference's output matches the transposed weight: Wᵀ·x from its input gives nmse %s (W·x: %s), W = %s {%d, %d}, %d tokens: the model file holds the transpose of the weight the reference used", fnmse(rR2), fnmse(rR1), wname, k, n, use)
		if x != nil {
			text += fmt.Sprintf(" (layerdiff's matches W·x: nmse %s)", fnmse(rX1))
		}
		res, base = rR2, rR1
	default:
		return nil
	}
	return []compare.Hint{{Kind: HintWeightTransposed, Text: text, NMSE: compare.Float(res), Baseline: compare.Float(base)}}
}
