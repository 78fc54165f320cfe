package forward

import (
	"fmt"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// mulMatIDExact is MUL_MAT_ID in the f64 numerics: every selected
// expert's dequantized rows times the unquantized src1 row, accumulated
// in float64 (dotF64), rounded once.
func (e *executor) mulMatIDExact(dst *node) error {
	a, b, ids := dst.src[0], dst.src[1], dst.src[2]
	if err := checkMulMatID(dst); err != nil {
		return err
	}
	ne00, ne01, ne11 := a.ne[0], a.ne[1], b.ne[1]
	out, off := dst.base()
	nIDs, nTok := ids.ne[0], ids.ne[1]
	errs := make([]error, nIDs*nTok)
	parallelFor(int(nIDs*nTok), e.threads, func(lo, hi int) {
		row := make([]float32, ne00)
		for p := lo; p < hi; p++ {
			s, i12 := int64(p)%nIDs, int64(p)/nIDs
			x := int64(ids.at(s, i12, 0, 0))
			col := b.rowAny(s%ne11, i12, 0, nil)
			for i01 := int64(0); i01 < ne01; i01++ {
				if err := quant.Dequantize(a.typ, a.weightRow(i01, x, 0), row); err != nil {
					errs[p] = fmt.Errorf("%s: row %d of expert %d of %s: %w", dst.name, i01, x, a.name, err)
					break
				}
				out.f32[off+dst.elemOffset(i01, s, i12, 0)] = float32(dotF64(row, col))
			}
		}
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
