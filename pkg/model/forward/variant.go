package forward

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// Variant changes one piece of the model's arithmetic the way a buggy
// engine might have it: an RMS epsilon, the RoPE rotation, base or
// positions, the attention scale, the GQA head mapping, the FFN activation,
// a weight used transposed. The zero value changes nothing. Only the f64
// numerics honour a Variant: it is a diagnosis hypothesis ("does the
// engine's output follow from its inputs with RoPE halves instead of
// pairs?"), not a kernel.
type Variant struct {
	// RMSEps, when not 0, is the epsilon of every RMS norm.
	RMSEps float32
	// RopeOtherMode rotates NEOX-style (halves) where the model rotates
	// pairs, and pairs where it rotates halves.
	RopeOtherMode bool
	// RopeBase, when not 0, is the RoPE frequency base.
	RopeBase float32
	// PosOffset is added to every RoPE position (not to the KV cells).
	PosOffset int
	// AttnScale, when not 0, scales Q·K instead of 1/√head_dim (gemma2,
	// gemma3: replaces the Q scale f_attention_scale).
	AttnScale float32
	// GQATile maps query head h to KV head h mod n_kv (numpy's tile)
	// instead of ggml's h / (n_head/n_kv) (repeat_interleave).
	GQATile bool
	// Act is the FFN activation: "" (the model's SiLU), "gelu" (tanh
	// approximation) or "gelu-erf".
	Act string
	// TransposedWeight names a square weight (its GGUF name) that is
	// multiplied transposed.
	TransposedWeight string
}

// IsZero reports whether v changes nothing.
func (v *Variant) IsZero() bool { return v == nil || *v == Variant{} }

// String describes the variant for reports: "rms eps 1e-06", "RoPE halves
// (NEOX) instead of pairs (NORM)".
func (v *Variant) String() string {
	if v.IsZero() {
		return "the model as it is"
	}
	var parts []string
	if v.RMSEps != 0 {
		parts = append(parts, fmt.Sprintf("RMS norm eps %g", v.RMSEps))
	}
	if v.RopeOtherMode {
		parts = append(parts, "RoPE in the other mode (pairs ↔ halves)")
	}
	if v.RopeBase != 0 {
		parts = append(parts, fmt.Sprintf("RoPE base %g", v.RopeBase))
	}
	if v.PosOffset != 0 {
		parts = append(parts, fmt.Sprintf("RoPE positions %+d", v.PosOffset))
	}
	if v.AttnScale != 0 {
		parts = append(parts, fmt.Sprintf("attention scale %g", v.AttnScale))
	}
	if v.GQATile {
		parts = append(parts, "query head h reads KV head h mod n_kv (tile)")
	}
	if v.Act != "" {
		parts = append(parts, "FFN activation "+v.Act)
	}
	if v.TransposedWeight != "" {
		parts = append(parts, v.TransposedWeight+" transposed")
	}
	return strings.Join(parts, ", ")
}

// ErrVariantNumerics is returned when a Variant is given with the ggml
// numerics.
var ErrVariantNumerics = errors.New("forward: a Variant needs the f64 numerics")

// check validates v against the model.
func (v *Variant) check(m *Model) error {
	if v.IsZero() {
		return nil
	}
	switch v.Act {
	case "", "gelu", "gelu-erf":
	default:
		return fmt.Errorf("forward: variant activation %q (want gelu or gelu-erf)", v.Act)
	}
	if v.Act != "" && (m.arch == gemma2 || m.arch == gemma3) {
		return fmt.Errorf("forward: variant activation %q: %s's FFN is GELU-gated already", v.Act, m.arch.name)
	}
	for _, f := range []float32{v.RMSEps, v.RopeBase, v.AttnScale} {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) || f < 0 {
			return fmt.Errorf("forward: variant value %g is not a finite non-negative number", f)
		}
	}
	if w := v.TransposedWeight; w != "" {
		ti, ok := m.File.Tensor(w)
		if !ok {
			return fmt.Errorf("forward: variant: no weight %q", w)
		}
		if len(ti.Ne) < 2 || ti.Ne[0] != ti.Ne[1] {
			return fmt.Errorf("forward: variant: weight %q %v is not square", w, ti.Ne)
		}
	}
	return nil
}

// withVariant returns the model whose hyperparameters the variant changes
// (a shallow copy), or m itself.
func (m *Model) withVariant(v *Variant) *Model {
	if v.IsZero() {
		return m
	}
	c := *m
	if v.RMSEps != 0 {
		c.Hparams.NormRMSEps = v.RMSEps
	}
	if v.RopeOtherMode {
		if c.Hparams.RopeType == RopeNorm {
			c.Hparams.RopeType = RopeNeox
		} else {
			c.Hparams.RopeType = RopeNorm
		}
	}
	if v.RopeBase != 0 {
		c.Hparams.RopeBase = v.RopeBase
	}
	c.variant = v
	return &c
}

// headKV is the KV head that query head h (of nq) reads among nk: ggml's
// broadcast h / (nq/nk), or h mod nk under Variant.GQATile.
func (e *executor) headKV(h, nq, nk int64) int64 {
	if e.variant != nil && e.variant.GQATile {
		return h % nk
	}
	return h / (nq / nk)
}

// geluF64 is the FFN activation of Variant.Act.
func geluF64(act string, x float64) float64 {
	if act == "gelu-erf" {
		return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
	}
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

// transposedRow fills row with row i of the transpose of the square
// weight a (column i of a), dequantizing the whole weight once.
func (e *executor) transposedRow(a *node, i int64, row []float32) error {
	e.tmu.Lock()
	defer e.tmu.Unlock()
	if e.transposed == nil {
		n := a.ne[0]
		full := make([]float32, n*a.ne[1])
		for r := int64(0); r < a.ne[1]; r++ {
			if err := quant.Dequantize(a.typ, a.weightRow(r, 0, 0), full[r*n:(r+1)*n]); err != nil {
				return err
			}
		}
		e.transposed = full
	}
	n := a.ne[0]
	for k := int64(0); k < n; k++ {
		row[k] = e.transposed[k*n+i]
	}
	return nil
}
