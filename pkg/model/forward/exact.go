package forward

import (
	"fmt"
	"math"
	"sync"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// The f64 numerics: every op computed from its float32 inputs in float64
// (the dequantized weights are the model's true weights; the activations
// are not quantized; exp, sin, cos and pow are Go's float64 functions), the
// result rounded once to float32. The KV cache keeps float32 values even
// where the graph declares F16.

// computeExact runs one node with the f64 numerics.
func (e *executor) computeExact(n *node) error {
	switch n.op {
	case opReshape, opView, opPermute, opTranspose:
		return nil
	case opGetRows:
		return e.getRowsGGML(n) // dequantization is exact
	case opRMSNorm:
		e.rmsNormExact(n)
	case opMul, opAdd:
		e.binaryGGML(n) // one correctly rounded operation per element
	case opScale:
		e.scaleGGML(n)
	case opMulMat:
		return e.mulMatExact(n)
	case opRope:
		return e.ropeExact(n)
	case opSetRows, opCpy, opCont:
		return e.copyExact(n)
	case opFlashAttnExt:
		return e.flashAttnExact(n)
	case opSoftMax:
		e.softMaxExact(n)
	case opSwiglu:
		e.swigluExact(n)
	case opTanh: // gemma
		e.tanhExact(n)
	case opGeglu:
		e.gegluExact(n)
	// mixtures of experts (exact_moe.go; the selection, sums in double,
	// clamp and division are the ggml ones: exact up to their one rounding)
	case opMulMatID:
		return e.mulMatIDExact(n)
	case opArgsort:
		return e.argsort(n)
	case opSumRows:
		e.sumRows(n)
	case opClamp:
		e.clamp(n)
	case opSwigluOAI: // gpt-oss (exact_gptoss.go)
		e.swigluOAIExact(n)
	case opAddID: // one rounding per element
		return e.addID(n)
	case opDiv:
		e.div(n)
	default:
		return fmt.Errorf("op %s is not implemented", n.op)
	}
	return nil
}

// rowAny reads row (i1, i2, i3) of an F32 tensor or an f32-backed F16 one.
func (n *node) rowAny(i1, i2, i3 int64, tmp []float32) []float32 {
	if n.typ == quant.F32 {
		return n.rowF32(i1, i2, i3, tmp)
	}
	if int64(cap(tmp)) < n.ne[0] {
		tmp = make([]float32, n.ne[0])
	}
	tmp = tmp[:n.ne[0]]
	for i := range tmp {
		tmp[i] = n.at(int64(i), i1, i2, i3)
	}
	return tmp
}

// setAny writes element (i0, i1, i2, i3) of an f32-backed tensor.
func (n *node) setAny(i0, i1, i2, i3 int64, v float32) {
	b, off := n.base()
	b.f32[off+n.elemOffset(i0, i1, i2, i3)] = v
}

func (e *executor) rmsNormExact(dst *node) {
	a := dst.src[0]
	eps := float64(dst.fp[0])
	forEachRow(dst, func(i1, i2, i3 int64) {
		x := a.rowF32(i1, i2, i3, nil)
		y := dst.rowF32(i1, i2, i3, nil)
		var sum float64
		for _, v := range x {
			sum += float64(v) * float64(v)
		}
		scale := 1 / math.Sqrt(sum/float64(len(x))+eps)
		for i, v := range x {
			y[i] = float32(float64(v) * scale)
		}
	})
}

// dotF64 is the float64 dot product of two float32 vectors: each product
// is exact in float64; four partial sums (element i into sum i%4) keep the
// adds independent, then (s0+s1)+(s2+s3) and the tail in order.
func dotF64(a, b []float32) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += float64(a[i]) * float64(b[i])
		s1 += float64(a[i+1]) * float64(b[i+1])
		s2 += float64(a[i+2]) * float64(b[i+2])
		s3 += float64(a[i+3]) * float64(b[i+3])
	}
	s := (s0 + s1) + (s2 + s3)
	for ; i < len(a); i++ {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func (e *executor) mulMatExact(dst *node) error {
	a, b := dst.src[0], dst.src[1]
	ne00, ne01 := a.ne[0], a.ne[1]
	ne11, ne12, ne13 := b.ne[1], b.ne[2], b.ne[3]
	if b.ne[0] != ne00 {
		return fmt.Errorf("%s: inner dimensions differ: %d and %d", dst.name, ne00, b.ne[0])
	}
	r3 := ne13 / a.ne[3]
	transposed := e.variant != nil && a.weight != nil && a.name == e.variant.TransposedWeight && ne00 == ne01
	cols := make([][]float32, ne11*ne12*ne13)
	for i13 := int64(0); i13 < ne13; i13++ {
		for i12 := int64(0); i12 < ne12; i12++ {
			for i11 := int64(0); i11 < ne11; i11++ {
				cols[i11+ne11*(i12+ne12*i13)] = append([]float32(nil), b.rowAny(i11, i12, i13, nil)...)
			}
		}
	}
	out, off := dst.base()
	var (
		mu       sync.Mutex
		firstErr error
	)
	parallelFor(int(ne01*a.ne[2]*a.ne[3]), e.threads, func(lo, hi int) {
		row := make([]float32, ne00)
		for r := lo; r < hi; r++ {
			i01 := int64(r) % ne01
			i02 := (int64(r) / ne01) % a.ne[2]
			i03 := int64(r) / ne01 / a.ne[2]
			var x []float32
			if transposed {
				if err := e.transposedRow(a, i01, row); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				x = row
			} else if a.weight != nil {
				if err := quant.Dequantize(a.typ, a.weightRow(i01, i02, i03), row); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				x = row
			} else {
				x = a.rowAny(i01, i02, i03, row)
			}
			for i13 := i03 * r3; i13 < (i03+1)*r3; i13++ {
				for i12 := int64(0); i12 < ne12; i12++ {
					if e.headKV(i12, ne12, a.ne[2]) != i02 {
						continue
					}
					for i11 := int64(0); i11 < ne11; i11++ {
						v := dotF64(x, cols[i11+ne11*(i12+ne12*i13)])
						out.f32[off+dst.elemOffset(i01, i11, i12, i13)] = float32(v)
					}
				}
			}
		}
	})
	if firstErr != nil {
		return fmt.Errorf("%s: %w", dst.name, firstErr)
	}
	return nil
}

// ropeExact rotates with theta = freq_scale * pos * base^(-2i/n_dims) /
// freq_factor[i] in float64 (with YaRN: mixed with the unscaled angle by
// the ramp, magnitude attn_factor·(1 + 0.1·ln(1/freq_scale))).
func (e *executor) ropeExact(dst *node) error {
	a, pos, ff := dst.src[0], dst.src[1], dst.src[2]
	nDims := int64(dst.ip[1])
	mode := dst.ip[2]
	freqBase, freqScale, extFactor, attnFactor := float64(dst.fp[0]), float64(dst.fp[1]), float64(dst.fp[2]), float64(dst.fp[3])
	var corr [2]float64
	if extFactor != 0 {
		// the ramp's ends are whole dimensions (floor, ceil): float32's
		// rounding of the logs moves them only at exact integers
		c := yarnCorrDims(int32(nDims), dst.ip[4], dst.fp[0], dst.fp[4], dst.fp[5])
		corr = [2]float64{float64(c[0]), float64(c[1])}
		attnFactor *= 1 + 0.1*math.Log(1/freqScale)
	}
	if mode != RopeNorm && mode != RopeNeox {
		return fmt.Errorf("%s: rope mode %d is not supported", dst.name, mode)
	}
	var freqs []float32
	if ff != nil {
		freqs = ff.rowF32(0, 0, 0, nil)
	}
	for i3 := int64(0); i3 < a.ne[3]; i3++ {
		for i2 := int64(0); i2 < a.ne[2]; i2++ {
			p := float64(pos.at(i2, 0, 0, 0))
			for i1 := int64(0); i1 < a.ne[1]; i1++ {
				src := a.rowF32(i1, i2, i3, nil)
				out := dst.rowF32(i1, i2, i3, nil)
				copy(out, src)
				for i := int64(0); i < nDims/2; i++ {
					theta := p * math.Pow(freqBase, -2*float64(i)/float64(nDims))
					if freqs != nil {
						theta /= float64(freqs[i])
					}
					th := freqScale * theta
					if extFactor != 0 {
						y := (float64(i) - corr[0]) / math.Max(0.001, corr[1]-corr[0])
						mix := (1 - math.Min(1, math.Max(0, y))) * extFactor
						th = th*(1-mix) + theta*mix
					}
					s, c := math.Sincos(th)
					c *= attnFactor
					s *= attnFactor
					var j0, j1 int64
					if mode == RopeNorm {
						j0, j1 = 2*i, 2*i+1
					} else {
						j0, j1 = i, i+nDims/2
					}
					x0, x1 := float64(src[j0]), float64(src[j1])
					out[j0] = float32(x0*c - x1*s)
					out[j1] = float32(x0*s + x1*c)
				}
			}
		}
	}
	return nil
}

// copyExact is SET_ROWS, CPY and CONT without any rounding.
func (e *executor) copyExact(dst *node) error {
	switch dst.op {
	case opSetRows:
		src, idx := dst.src[0], dst.src[1]
		for i3 := int64(0); i3 < src.ne[3]; i3++ {
			for i2 := int64(0); i2 < src.ne[2]; i2++ {
				for i1 := int64(0); i1 < src.ne[1]; i1++ {
					r := int64(idx.at(i1, i2%idx.ne[1], i3%idx.ne[2], 0))
					if r < 0 || r >= dst.ne[1] {
						return fmt.Errorf("%s: row index %d out of range [0, %d)", dst.name, r, dst.ne[1])
					}
					x := src.rowF32(i1, i2, i3, nil)
					for i, v := range x {
						dst.setAny(int64(i), r, i2, i3, v)
					}
				}
			}
		}
	default:
		src := dst.src[0].toF32()
		b, off := dst.base()
		copy(b.f32[off:off+int64(len(src))], src)
	}
	return nil
}

// flashAttnExact is softmax(q·k*scale + mask)·v in float64.
func (e *executor) flashAttnExact(dst *node) error {
	q, k, v, mask := dst.src[0], dst.src[1], dst.src[2], dst.src[3]
	scale, softcap := float64(dst.fp[0]), float64(dst.fp[2])
	if dst.fp[1] != 0 {
		return fmt.Errorf("%s: ALiBi is not supported", dst.name)
	}
	DV := v.ne[0]
	N, nHead := q.ne[1], q.ne[2]
	nkv := k.ne[1]
	sinks := sinkValues(dst) // gpt-oss
	parallelFor(int(N*nHead*q.ne[3]), e.threads, func(lo, hi int) {
		s := make([]float64, nkv)
		acc := make([]float64, DV)
		krow := make([]float32, k.ne[0])
		vrow := make([]float32, DV)
		for ir := int64(lo); ir < int64(hi); ir++ {
			iq3 := ir / (nHead * N)
			iq2 := (ir - iq3*nHead*N) / N
			iq1 := ir - iq3*nHead*N - iq2*N
			pq := q.rowF32(iq1, iq2, iq3, nil)
			max := math.Inf(-1)
			for ic := int64(0); ic < nkv; ic++ {
				mv := 0.0
				if mask != nil {
					mv = float64(mask.at(ic, iq1, iq2%mask.ne[2], iq3%mask.ne[3]))
				}
				if math.IsInf(mv, -1) {
					s[ic] = math.Inf(-1)
					continue
				}
				s[ic] = softcapF64(dotF64(pq, k.rowAny(ic, e.headKV(iq2, nHead, k.ne[2]), iq3, krow))*scale, softcap) + mv
				max = math.Max(max, s[ic])
			}
			for i := range acc {
				acc[i] = 0
			}
			var sum float64
			if sinks != nil { // a score without a value
				max = math.Max(max, float64(sinks[iq2]))
				sum = math.Exp(float64(sinks[iq2]) - max)
			}
			for ic := int64(0); ic < nkv; ic++ {
				if math.IsInf(s[ic], -1) {
					continue
				}
				w := math.Exp(s[ic] - max)
				sum += w
				vr := v.rowAny(ic, e.headKV(iq2, nHead, v.ne[2]), iq3, vrow)
				for i := range acc {
					acc[i] += w * float64(vr[i])
				}
			}
			b, off := dst.base()
			o := off + dst.elemOffset(0, iq2, iq1, iq3)
			for i := range acc {
				r := 0.0
				if sum != 0 {
					r = acc[i] / sum
				}
				b.f32[o+int64(i)] = float32(r)
			}
		}
	})
	return nil
}

func (e *executor) softMaxExact(dst *node) {
	a, mask := dst.src[0], dst.src[1]
	scale := float64(dst.fp[0])
	w := make([]float64, a.ne[0])
	sk := sinkValues(dst)
	forEachRow(dst, func(i1, i2, i3 int64) {
		x := a.rowF32(i1, i2, i3, nil)
		var m []float32
		if mask != nil {
			m = mask.rowAny(i1, i2%mask.ne[2], i3%mask.ne[3], nil)
		}
		max := math.Inf(-1)
		for i, v := range x {
			w[i] = float64(v) * scale
			if m != nil {
				w[i] += float64(m[i])
			}
			max = math.Max(max, w[i])
		}
		var sum float64
		if sk != nil { // gpt-oss: the sink's logit joins the softmax
			max = math.Max(max, float64(sk[i2]))
			sum = math.Exp(float64(sk[i2]) - max)
		}
		for i := range w {
			w[i] = math.Exp(w[i] - max)
			sum += w[i]
		}
		y := dst.rowF32(i1, i2, i3, nil)
		for i := range y {
			y[i] = float32(w[i] / sum)
		}
	})
}

func (e *executor) swigluExact(dst *node) {
	forEachRow(dst, func(i1, i2, i3 int64) {
		x, gv := gluRows(dst, i1, i2, i3)
		y := dst.rowF32(i1, i2, i3, nil)
		for i, v := range x {
			xv := float64(v)
			if e.variant != nil && e.variant.Act != "" {
				y[i] = float32(geluF64(e.variant.Act, xv) * float64(gv[i]))
				continue
			}
			y[i] = float32(xv / (1 + math.Exp(-xv)) * float64(gv[i]))
		}
	})
}
