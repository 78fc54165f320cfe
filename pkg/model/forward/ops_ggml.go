package forward

import (
	"fmt"
	"math"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// The ggml numerics: each op as ggml-cpu computes it on x86-64 with AVX2,
// FMA and F16C (see docs/numerics.md for the sources and the evidence).

// getRowsGGML is ggml_compute_forward_get_rows: rows of src0 (a model
// tensor, dequantized with ggml's to_float, or an activation) picked by the
// int32 indices of src1.
func (e *executor) getRowsGGML(dst *node) error {
	a, ids := dst.src[0], dst.src[1]
	b, off := dst.base()
	nc := a.ne[0]
	for i12 := int64(0); i12 < ids.ne[2]; i12++ {
		for i11 := int64(0); i11 < ids.ne[1]; i11++ {
			for i10 := int64(0); i10 < ids.ne[0]; i10++ {
				r := int64(ids.at(i10, i11, i12, 0))
				if r < 0 || r >= a.ne[1] {
					return fmt.Errorf("%s: row index %d out of range [0, %d) of %s", dst.name, r, a.ne[1], a.name)
				}
				o := off + dst.elemOffset(0, i10, i11, i12)
				out := b.f32[o : o+nc]
				if a.weight != nil {
					i02, i03 := i11%a.ne[2], i12%a.ne[3]
					if err := quant.Dequantize(a.typ, a.weightRow(r, i02, i03), out); err != nil {
						return fmt.Errorf("%s: row %d of %s: %w", dst.name, r, a.name, err)
					}
					continue
				}
				for i := int64(0); i < nc; i++ {
					out[i] = a.at(i, r, i11, i12)
				}
			}
		}
	}
	return nil
}

// rmsNormGGML is ggml_compute_forward_rms_norm_f32: the squares (rounded
// to float) summed in double, mean = (float)(sum/n), scale =
// 1.0f/sqrtf(mean + eps), y = x*scale.
func (e *executor) rmsNormGGML(dst *node) {
	a := dst.src[0]
	eps := dst.fp[0]
	e.forRows(dst, func() func(i1, i2, i3 int64) {
		return func(i1, i2, i3 int64) {
			x := a.rowF32(i1, i2, i3, nil)
			y := dst.rowF32(i1, i2, i3, nil)
			var sum float64
			for _, v := range x {
				sum += float64(float32(v * v))
			}
			mean := float32(sum / float64(len(x)))
			scale := 1 / float32(math.Sqrt(float64(mean+eps)))
			for i, v := range x {
				y[i] = v * scale
			}
		}
	})
}

// forRows calls a row function for every row of n, the rows split over
// e.threads goroutines; each goroutine gets its own row function from mk,
// so scratch buffers made in mk are not shared. Row functions must write
// only their own row of the destination.
func (e *executor) forRows(n *node, mk func() func(i1, i2, i3 int64)) {
	ne1, ne2 := n.ne[1], n.ne[2]
	rows := ne1 * ne2 * n.ne[3]
	threads := e.threads
	if n.nelements() < 1<<14 { // not worth a goroutine
		threads = 1
	}
	// base() converts an F32 weight on first use: do it here, not in the
	// goroutines.
	for _, s := range n.src {
		if s != nil {
			s.base()
		}
	}
	parallelFor(int(rows), threads, func(lo, hi int) {
		f := mk()
		for r := int64(lo); r < int64(hi); r++ {
			f(r%ne1, (r/ne1)%ne2, r/(ne1*ne2))
		}
	})
}

// forEachRow calls f for every row of n, in order, on this goroutine.
func forEachRow(n *node, f func(i1, i2, i3 int64)) {
	for i3 := int64(0); i3 < n.ne[3]; i3++ {
		for i2 := int64(0); i2 < n.ne[2]; i2++ {
			for i1 := int64(0); i1 < n.ne[1]; i1++ {
				f(i1, i2, i3)
			}
		}
	}
}

// binaryGGML is ggml's ADD and MUL with src1 broadcast (binary-ops.cpp):
// one rounding per element in any implementation.
func (e *executor) binaryGGML(dst *node) {
	a, b := dst.src[0], dst.src[1]
	mul := dst.op == opMul
	e.forRows(dst, func() func(i1, i2, i3 int64) {
		tmp := make([]float32, b.ne[0])
		return func(i1, i2, i3 int64) {
			x := a.rowF32(i1, i2, i3, nil)
			y := b.rowF32(i1%b.ne[1], i2%b.ne[2], i3%b.ne[3], tmp)
			z := dst.rowF32(i1, i2, i3, nil)
			nb := int64(len(y))
			for i := range z {
				w := y[int64(i)%nb]
				if mul {
					z[i] = x[i] * w
				} else {
					z[i] = x[i] + w
				}
			}
		}
	})
}

// scaleGGML is ggml_scale: y = x*s.
func (e *executor) scaleGGML(dst *node) {
	a := dst.src[0]
	s := dst.fp[0]
	e.forRows(dst, func() func(i1, i2, i3 int64) {
		return func(i1, i2, i3 int64) {
			x := a.rowF32(i1, i2, i3, nil)
			y := dst.rowF32(i1, i2, i3, nil)
			for i, v := range x {
				y[i] = v * s
			}
		}
	})
}

// contGGML copies a (possibly strided) tensor into contiguous memory.
func (e *executor) contGGML(dst *node) {
	src := dst.src[0].toF32()
	b, off := dst.base()
	copy(b.f32[off:off+int64(len(src))], src)
}

// cpyGGML is ggml_cpy/ggml_cast between F32 and F16 (ggml_cpu_fp32_to_fp16:
// round to nearest even).
func (e *executor) cpyGGML(dst *node) {
	src := dst.src[0].toF32()
	b, off := dst.base()
	switch dst.typ {
	case quant.F16:
		for i, v := range src {
			b.f16[off+int64(i)] = toF16(v)
		}
	case quant.F32:
		copy(b.f32[off:], src)
	}
}

// setRowsGGML is ggml_set_rows: row i of src0 is converted to the
// destination type and stored at row src1[i].
func (e *executor) setRowsGGML(dst *node) error {
	src, idx := dst.src[0], dst.src[1]
	for i3 := int64(0); i3 < src.ne[3]; i3++ {
		for i2 := int64(0); i2 < src.ne[2]; i2++ {
			for i1 := int64(0); i1 < src.ne[1]; i1++ {
				r := int64(idx.at(i1, i2%idx.ne[1], i3%idx.ne[2], 0))
				if r < 0 || r >= dst.ne[1] {
					return fmt.Errorf("%s: row index %d out of range [0, %d)", dst.name, r, dst.ne[1])
				}
				x := src.rowF32(i1, i2, i3, nil)
				b, off := dst.base()
				o := off + dst.elemOffset(0, r, i2, i3)
				switch dst.typ {
				case quant.F16:
					for i, v := range x {
						b.f16[o+int64(i)] = toF16(v)
					}
				case quant.F32:
					copy(b.f32[o:o+int64(len(x))], x)
				default:
					return fmt.Errorf("%s: set_rows into %s is not supported", dst.name, dst.typ)
				}
			}
		}
	}
	return nil
}

// swigluGGML is ggml_vec_swiglu_f32 (AVX2): silu(x)*g with ggml_v_silu on
// chunks of 8 and ggml_silu_f32 (libm expf) on the tail.
func (e *executor) swigluGGML(dst *node) {
	e.forRows(dst, func() func(i1, i2, i3 int64) {
		return func(i1, i2, i3 int64) {
			x, gv := gluRows(dst, i1, i2, i3)
			y := dst.rowF32(i1, i2, i3, nil)
			if e.k.neon {
				swigluNEON(y, x, gv)
				return
			}
			if e.k.lanes16 {
				i := 0
				for ; i+15 < len(x); i += 16 {
					for k := i; k < i+16; k++ {
						y[k] = vSilu512(x[k]) * gv[k]
					}
				}
				for ; i < len(x); i++ {
					y[i] = siluF32(x[i]) * gv[i]
				}
				return
			}
			i := swigluPrefix(y, x, gv)
			for ; i+7 < len(x); i += 8 {
				for k := i; k < i+8; k++ {
					y[k] = vSilu(x[k]) * gv[k]
				}
			}
			for ; i < len(x); i++ {
				y[i] = siluF32(x[i]) * gv[i]
			}
		}
	})
}

// softMaxGGML is ggml_compute_forward_soft_max_f32 with an F32 mask: wp =
// x*scale (+ slope*mask), max, ggml_vec_soft_max_f32 (ggml_v_expf on chunks
// of 8, each chunk's hsum added to a double; libm expf on the tail), then
// y *= (float)(1.0/sum).
func (e *executor) softMaxGGML(dst *node) {
	a, mask := dst.src[0], dst.src[1]
	scale, maxBias := dst.fp[0], dst.fp[1]
	nHead := uint32(a.ne[2])
	nHeadLog2 := uint32(1) << uint32(math.Floor(math.Log2(float64(nHead))))
	m0 := Powf(2, -maxBias/float32(nHeadLog2))
	m1 := Powf(2, -(maxBias/2)/float32(nHeadLog2))
	ne00 := a.ne[0]
	sk := sinkValues(dst) // gpt-oss
	e.forRows(dst, func() func(i1, i2, i3 int64) {
		wp := make([]float32, ne00)
		var mtmp []float32
		return func(i1, i2, i3 int64) {
			h := uint32(i2)
			slope := float32(1)
			if maxBias > 0 {
				if h < nHeadLog2 {
					slope = Powf(m0, float32(h+1))
				} else {
					slope = Powf(m1, float32(2*(h-nHeadLog2)+1))
				}
			}
			x := a.rowF32(i1, i2, i3, nil)
			for i, v := range x {
				wp[i] = v * scale
			}
			if mask != nil {
				mrow := mask.rowF32(i1, i2%mask.ne[2], i3%mask.ne[3], mtmp)
				for i := range wp {
					wp[i] = fma32(slope, mrow[i], wp[i])
				}
			}
			max := float32(math.Inf(-1))
			for _, v := range wp {
				if v > max {
					max = v
				}
			}
			if sk != nil { // the sink joins the max
				max = softMaxSinkMax(max, sk[i2])
			}
			y := dst.rowF32(i1, i2, i3, nil)
			var sum float64
			i := 0
			for ; e.k.neon && i+3 < len(wp); i += 4 {
				var v [4]float32
				for k := 0; k < 4; k++ {
					v[k] = vExpf(wp[i+k] - max)
					y[i+k] = v[k]
				}
				sum += float64(vaddvq(&v))
			}
			for ; e.k.lanes16 && i+15 < len(wp); i += 16 {
				var v [16]float32
				for k := 0; k < 16; k++ {
					v[k] = vExpf512(wp[i+k] - max)
					y[i+k] = v[k]
				}
				sum += float64(reduce16(&v))
			}
			for ; !e.k.lanes16 && !e.k.neon && i+7 < len(wp); i += 8 {
				var v [8]float32
				for k := 0; k < 8; k++ {
					v[k] = vExpf(wp[i+k] - max)
					y[i+k] = v[k]
				}
				sum += float64(hsum8(&v))
			}
			for ; i < len(wp); i++ {
				v := Expf(wp[i] - max)
				sum += float64(v)
				y[i] = v
			}
			if sk != nil { // and the sum
				sum += float64(Expf(sk[i2] - max))
			}
			sum = 1.0 / sum
			s := float32(sum)
			for k := range y {
				y[k] *= s
			}
		}
	})
}

// ropeGGML is ggml_compute_forward_rope_flt<float> for the NORMAL and NEOX
// modes: theta starts at the position and is multiplied by theta_scale =
// powf(base, -2/n_dims) per pair (ggml_rope_cache_init), divided by the
// frequency factor, scaled by freq_scale and, with YaRN (ext_factor ≠ 0),
// mixed with the unscaled angle along the ramp (rope_yarn); cos and sin come
// from libm's sincosf times the magnitude. The rotation is the one GCC
// generates for rotate_pairs (see ropeRotate).
func (e *executor) ropeGGML(dst *node) error {
	a, pos, ff := dst.src[0], dst.src[1], dst.src[2]
	nDims := int64(dst.ip[1])
	mode := dst.ip[2]
	freqBase, freqScale, extFactor, attnFactor := dst.fp[0], dst.fp[1], dst.fp[2], dst.fp[3]
	if mode != RopeNorm && mode != RopeNeox {
		return fmt.Errorf("%s: rope mode %d is not supported", dst.name, mode)
	}
	ne0 := a.ne[0]
	thetaScale := Powf(freqBase, -2.0/float32(nDims))
	corr := yarnCorrDims(int32(nDims), dst.ip[4], freqBase, dst.fp[4], dst.fp[5])
	mscale := yarnMscale(attnFactor, freqScale, extFactor)
	var freqs []float32
	if ff != nil {
		freqs = ff.rowF32(0, 0, 0, nil)
	}
	cache := make([]float32, ne0)
	for i3 := int64(0); i3 < a.ne[3]; i3++ {
		for i2 := int64(0); i2 < a.ne[2]; i2++ {
			p := pos.at(i2, 0, 0, 0)
			theta := p
			for i0 := int64(0); i0 < ne0; i0 += 2 {
				f := float32(1)
				if freqs != nil {
					f = freqs[i0/2]
				}
				th := yarnTheta(theta/f, freqScale, corr, i0, extFactor)
				s, c := Sincosf(th)
				cache[i0] = c * mscale
				cache[i0+1] = s * mscale
				theta *= thetaScale
			}
			for i1 := int64(0); i1 < a.ne[1]; i1++ {
				src := a.rowF32(i1, i2, i3, nil)
				out := dst.rowF32(i1, i2, i3, nil)
				if mode == RopeNorm && e.k.neon {
					ropeRotateNormNEON(nDims, cache, src, out)
				} else if mode == RopeNorm {
					ropeRotateNorm(nDims, cache, src, out)
				} else {
					ropeRotateNeox(nDims, cache, src, out)
				}
				copy(out[nDims:], src[nDims:])
			}
		}
	}
	return nil
}

// ropeRotateNorm is rotate_pairs(n_dims, 1, cache, src, dst, 1) as GCC
// vectorises it: pairs in blocks of 4 and then 2 (AVX fmaddsub, the first
// product of each expression fused: fma(x0, cos, -(x1*sin)) and fma(x0,
// sin, x1*cos)), a last single pair with both products rounded (vaddsubps).
func ropeRotateNorm(nDims int64, cache, src, dst []float32) {
	np := nDims / 2
	i := int64(0)
	vec := np - np%2 // pairs handled by the 256- and 128-bit loops
	for ; i < vec; i++ {
		c, s := cache[2*i], cache[2*i+1]
		x0, x1 := src[2*i], src[2*i+1]
		dst[2*i] = fma32(c, x0, -float32(x1*s))
		dst[2*i+1] = fma32(x0, s, float32(x1*c))
	}
	for ; i < np; i++ {
		c, s := cache[2*i], cache[2*i+1]
		x0, x1 := src[2*i], src[2*i+1]
		dst[2*i] = float32(x0*c) - float32(x1*s)
		dst[2*i+1] = float32(x0*s) + float32(x1*c)
	}
}

// ropeRotateNeox is rotate_pairs(n_dims, n_dims/2, cache, src, dst): pairs
// (x[i], x[i+n_dims/2]) with cos/sin of pair i. As in every rotation GCC
// compiles here, the first product of each expression is fused:
// x0*cos - x1*sin = fma(x0, cos, -(x1*sin)), x0*sin + x1*cos = fma(x0, sin,
// x1*cos).
func ropeRotateNeox(nDims int64, cache, src, dst []float32) {
	half := nDims / 2
	for i0 := int64(0); i0 < nDims; i0 += 2 {
		ic := i0 / 2
		c, s := cache[i0], cache[i0+1]
		x0, x1 := src[ic], src[ic+half]
		dst[ic] = fma32(x0, c, -float32(x1*s))
		dst[ic+half] = fma32(x0, s, float32(x1*c))
	}
}

// flashAttnGGML is ggml_compute_forward_flash_attn_ext_f16 for F16 K and V
// (the default KV cache): Q is converted to F16; for each KV position not
// masked by -INF, s = ggml_vec_dot_f16(k, q)*scale + mask; the online
// softmax keeps the maximum M and the sum S = fma(S, ms, vs), with ms and vs
// from libm expf; the V accumulator is F16, rescaled by vec_scale_f16 and
// updated by vec_mad_f16 (each element rounded to F16 after a fused
// multiply-add); the output is f32(acc) * (1/S).
func (e *executor) flashAttnGGML(dst *node) error {
	q, k, v, mask := dst.src[0], dst.src[1], dst.src[2], dst.src[3]
	if k.typ != quant.F16 || v.typ != quant.F16 {
		return fmt.Errorf("%s: flash attention with %s K and %s V is not supported", dst.name, k.typ, v.typ)
	}
	scale, maxBias, softcap := dst.fp[0], dst.fp[1], dst.fp[2]
	if maxBias != 0 {
		return fmt.Errorf("%s: ALiBi is not supported", dst.name)
	}
	if softcap != 0 { // gemma2: s = softcap*tanhf(s*(scale/softcap))
		scale /= softcap
	}
	DK, DV := k.ne[0], v.ne[0]
	N := q.ne[1]
	nHead := q.ne[2]
	rk2, rv2 := q.ne[2]/k.ne[2], q.ne[2]/v.ne[2]
	nkv := k.ne[1]
	rows := N * nHead * q.ne[3]
	if mask != nil {
		mask.base() // not first in the goroutines
	}
	sinks := sinkValues(dst) // gpt-oss
	parallelFor(int(rows), e.threads, func(lo, hi int) {
		qq := make([]uint16, DK)
		acc := make([]uint16, DV)
		var mtmp []float32
		for ir := int64(lo); ir < int64(hi); ir++ {
			iq3 := ir / (nHead * N)
			iq2 := (ir - iq3*nHead*N) / N
			iq1 := ir - iq3*nHead*N - iq2*N
			S := float32(0)
			M := float32(math.Inf(-1))
			for i := range acc {
				acc[i] = 0
			}
			pq := q.rowF32(iq1, iq2, iq3, nil)
			toF16Slice(qq, pq)
			ik2, iv2 := iq2/rk2, iq2/rv2
			// This query row's mask row, read once.
			var m16 []uint16
			var m32 []float32
			if mask != nil {
				mi1, mi2, mi3 := iq1, iq2%mask.ne[2], iq3%mask.ne[3]
				if mb, _ := mask.base(); mask.typ == quant.F16 && mask.nb[0] == 2 && mb.f32 == nil && mb.f16 != nil {
					m16 = mask.rowF16(mi1, mi2, mi3)
				} else {
					if cap(mtmp) < int(nkv) {
						mtmp = make([]float32, nkv)
					}
					m32 = mtmp[:nkv]
					for ic := range m32 {
						m32[ic] = mask.at(int64(ic), mi1, mi2, mi3)
					}
				}
			}
			for ic := int64(0); ic < nkv; ic++ {
				mv := float32(0)
				switch {
				case m16 != nil:
					mv = f16Table[m16[ic]]
				case m32 != nil:
					mv = m32[ic]
				}
				if math.IsInf(float64(mv), -1) {
					continue
				}
				s := e.k.vecDotF16(k.rowF16(ic, ik2, iq3), qq)
				s = s * scale
				if softcap != 0 {
					s = softcap * Tanhf(s)
				}
				s += mv
				Mold := M
				ms, vs := float32(1), float32(1)
				if s > M {
					M = s
					ms = Expf(Mold - M)
					e.k.scaleF16(acc, ms)
				} else {
					vs = Expf(s - M)
				}
				e.k.madF16(acc, v.rowF16(ic, iv2, iq3), vs)
				S = fma32(S, ms, vs)
			}
			b, off := dst.base()
			// permute(0, 2, 1, 3): output row (iq2, iq1).
			o := off + dst.elemOffset(0, iq2, iq1, iq3)
			out := b.f32[o : o+DV]
			for i := range out {
				out[i] = f16Table[acc[i]]
			}
			if sinks != nil {
				S = flashAttnSink(out, S, M, sinks[iq2])
			}
			sInv := float32(0)
			if S != 0 {
				sInv = 1 / S
			}
			for i := range out {
				out[i] *= sInv
			}
		}
	})
	return nil
}
