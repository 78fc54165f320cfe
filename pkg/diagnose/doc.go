// Package diagnose is the stage after blame: once the blamer has named the
// op whose output differs from the reference even when fed the
// reference's inputs, each hint here tests one hypothesis about why — a
// sign flip, a constant factor, a swapped or transposed layout, an
// off-by-one position, f16 rounding, a RoPE mode, base, frequency scale or
// factors, an RMS epsilon, a transposed weight, a missing BOS or shifted
// token ids — by predicting one side from the other, or by recomputing the
// op under the hypothesis, and reports those that explain the difference
// (compare.Hint, rendered with the blame).
//
//	model/reference → compare (align, measure, judge) → blame → diagnose → report
//
// One file per hint family: generic.go, rmsnorm.go, rope.go, matmul.go,
// tokens.go; hints.go holds the input, the dispatch and the shared
// measures.
package diagnose
