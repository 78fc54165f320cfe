package forward

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/layerdiff/layerdiff/pkg/model"
)

// The CPU repack buffers (profiles KernelsAVX2Repack, KernelsAVX512Repack):
// ggml-cpu built with GGML_USE_CPU_REPACK, as stock CMake builds of
// llama.cpp are, loads some weights into the "CPU_REPACK" buffer type,
// interleaved eight rows at a time, and computes their MUL_MATs with the
// GEMV/GEMM kernels of ggml-cpu/repack.cpp and arch/x86/repack.cpp instead
// of ggml_compute_forward_mul_mat (read from ec98e2002):
//
//   - Which weights (ggml_repack_get_optimal_repack_type, and
//     extra_buffer_type::supports_op): a 2-D weight of a MUL_MAT with an
//     F32 src1 (llama.cpp places each weight by a trial op: every weight used
//     by MUL_MAT, the tied output included; token_embd's GET_ROWS is not),
//     ne[1] % 8 == 0, and on x86 with AVX2: Q4_0 → q4_0_8x8_q8_0, Q4_K →
//     q4_K_8x8_q8_K, IQ4_NL → iq4_nl_8x8_q8_0, and with AVX-512 (only)
//     Q2_K → q2_K_8x8_q8_K. No other type (Q8_0 is not repacked in this
//     version); MUL_MAT_ID is repacked too but no model here has it.
//   - Activations (forward_mul_mat): per src1 plane the first ne11 − ne11%4
//     columns through ggml_quantize_mat_t<8> four at a time
//     (ggml_quantize_mat_q8_0_4x8: the same blocks as quantize_row_q8_0;
//     ggml_quantize_mat_q8_K_4x8: not quantize_row_q8_K's, see
//     quantQ8KMat), the others through the vec_dot_type's from_float.
//   - Products (forward_mul_mat_one_chunk): those first columns by the gemm
//     kernel, the last ne11%4 by gemv. Each output is one scalar chain over
//     the blocks — the integer sums are exact, the float steps are
//     _mm256/_mm512 fmadd and mul intrinsics, one lane per output — so the
//     AVX2 and the AVX-512 code (GEMM tiles of 16 columns) give the same
//     bits; thread count and chunking change nothing.
//
// See repackDot* for the arithmetic of each kernel.

// repackKind is the repacked kernel of a weight: 0 when it is not repacked.
type repackKind int

const (
	repackNone  repackKind = iota
	repackQ4_0             // q4_0_8x8_q8_0
	repackIQ4NL            // iq4_nl_8x8_q8_0
	repackQ4_K             // q4_K_8x8_q8_K
	repackQ2_K             // q2_K_8x8_q8_K (AVX-512 only)
)

// repackOf returns the repacked kernel llama.cpp uses for a MUL_MAT with
// src0 a and src1 b under these kernels (repackNone: the ordinary path).
func (ks kernels) repackOf(a, b *node) repackKind {
	if !ks.repack || a.weight == nil || b.typ != model.F32 {
		return repackNone
	}
	// ggml_n_dims(src0) == 2 and ne[1] % 8 == 0 (which implies ne[1] > 1)
	if a.ne[2] != 1 || a.ne[3] != 1 || a.ne[1]%8 != 0 {
		return repackNone
	}
	switch a.typ {
	case model.Q4_0:
		return repackQ4_0
	case model.IQ4_NL:
		return repackIQ4NL
	case model.Q4_K:
		return repackQ4_K
	case model.Q2_K:
		if ks.lanes16 {
			return repackQ2_K
		}
	}
	return repackNone
}

// mulMatRepack is the repack buffer's forward_mul_mat for src0 a repacked
// as kind.
func (e *executor) mulMatRepack(dst *node, kind repackKind) error {
	a, b := dst.src[0], dst.src[1]
	ne00, ne01 := a.ne[0], a.ne[1]
	ne11, ne12, ne13 := b.ne[1], b.ne[2], b.ne[3]
	if b.ne[0] != ne00 {
		return fmt.Errorf("%s: inner dimensions differ: %s has %d, %s has %d", dst.name, a.name, ne00, b.name, b.ne[0])
	}
	if ne13 != 1 {
		return fmt.Errorf("%s: repacked MUL_MAT with a 4-D src1 %s", dst.name, b.name)
	}
	vdt := model.Q8_0
	if kind == repackQ4_K || kind == repackQ2_K {
		vdt = model.Q8_K
	}
	rb, err := vdt.RowBytes(ne00)
	if err != nil {
		return fmt.Errorf("%s: %w", dst.name, err)
	}
	for _, s := range dst.src {
		if s != nil {
			s.base()
		}
	}
	// The activations: column c = i11 + ne11*i12; gemm[c] for the columns
	// the GEMM kernel takes (and ggml_quantize_mat_t quantized).
	ncols := ne11 * ne12
	ngemm := ne11 - ne11%4
	act := make([][]byte, ncols)
	var convErr error
	var convOnce sync.Once
	threads := e.threads
	if ncols*ne00 < 1<<14 {
		threads = 1
	}
	parallelFor(int(ncols), threads, func(lo, hi int) {
		tmp := make([]float32, ne00)
		for c := int64(lo); c < int64(hi); c++ {
			i11, i12 := c%ne11, c/ne11
			x := b.rowF32(i11, i12, 0, tmp)
			q := make([]byte, rb)
			if vdt == model.Q8_K && i11 < ngemm {
				quantQ8KMat(x, q)
			} else if err := model.QuantizeRow(vdt, x, q, model.QuantCPU); err != nil {
				convOnce.Do(func() { convErr = fmt.Errorf("%s: quantizing %s: %w", dst.name, b.name, err) })
				return
			}
			act[c] = q
		}
	})
	if convErr != nil {
		return convErr
	}
	out, off := dst.base()
	colStride := dst.nb[1] / typeSize(dst.typ)
	nb := int(ne00) / 32
	if vdt == model.Q8_K {
		nb = int(ne00) / 256
	}
	parallelFor(int(ne01), e.threads, func(lo, hi int) {
		var w repackRow
		w.init(kind, nb)
		for r := int64(lo); r < int64(hi); r++ {
			w.decode(kind, a.weightRow(r, 0, 0))
			for i12 := int64(0); i12 < ne12; i12++ {
				o := off + dst.elemOffset(r, 0, i12, 0)
				for i11 := int64(0); i11 < ne11; i11++ {
					y := act[i11+ne11*i12]
					gemm := i11 < ngemm
					var v float32
					switch kind {
					case repackQ4_0, repackIQ4NL:
						v = w.dotQ4B32(y)
					case repackQ4_K:
						v = w.dotQ4K(y, gemm)
					case repackQ2_K:
						v = w.dotQ2K(y, gemm)
					}
					out.f32[o+i11*colStride] = v
				}
			}
		}
	})
	return nil
}

// repackRow is one weight row decoded for the repacked kernels: the quants
// as small integers, the per-block scales as float32 (from fp16) and the
// per-sub-block scales and mins.
type repackRow struct {
	q    []int8    // the quants (Q4_0: q−8; IQ4_NL: kvalues_iq4nl; Q4_K 0..15; Q2_K 0..3)
	d    []float32 // per block: d (Q4_0, IQ4_NL) or the super-block d
	dmin []float32 // Q4_K, Q2_K: the super-block dmin
	sc   []int32   // Q4_K: 8 scales per block; Q2_K: 16
	m    []int32   // Q4_K: 8 mins per block; Q2_K: 16
}

func (w *repackRow) init(kind repackKind, nb int) {
	switch kind {
	case repackQ4_0, repackIQ4NL:
		w.q = make([]int8, 32*nb)
		w.d = make([]float32, nb)
	case repackQ4_K:
		w.q = make([]int8, 256*nb)
		w.d, w.dmin = make([]float32, nb), make([]float32, nb)
		w.sc, w.m = make([]int32, 8*nb), make([]int32, 8*nb)
	case repackQ2_K:
		w.q = make([]int8, 256*nb)
		w.d, w.dmin = make([]float32, nb), make([]float32, nb)
		w.sc, w.m = make([]int32, 16*nb), make([]int32, 16*nb)
	}
}

// decode reads one row of the weight in its GGUF layout (the repacking
// only interleaves rows; the values are the same).
func (w *repackRow) decode(kind repackKind, x []byte) {
	switch kind {
	case repackQ4_0, repackIQ4NL:
		for b := range w.d {
			xb := x[18*b : 18*b+18]
			w.d[b] = ldF16(xb)
			q := w.q[32*b : 32*b+32]
			for j, v := range xb[2:18] {
				if kind == repackQ4_0 {
					q[j], q[j+16] = int8(v&0xF)-8, int8(v>>4)-8
				} else {
					q[j], q[j+16] = kvaluesIQ4NL[v&0xF], kvaluesIQ4NL[v>>4]
				}
			}
		}
	case repackQ4_K:
		for b := range w.d {
			xb := x[144*b : 144*b+144]
			w.d[b], w.dmin[b] = ldF16(xb), ldF16(xb[2:])
			for s := 0; s < 8; s++ {
				sc, m := scaleMinK4(s, xb[4:16])
				w.sc[8*b+s], w.m[8*b+s] = int32(sc), int32(m)
			}
			q := w.q[256*b : 256*b+256]
			qs := xb[16:144]
			for j := 0; j < 4; j++ {
				for l := 0; l < 32; l++ {
					v := qs[32*j+l]
					q[64*j+l], q[64*j+32+l] = int8(v&0xF), int8(v>>4)
				}
			}
		}
	case repackQ2_K:
		for b := range w.d {
			xb := x[84*b : 84*b+84]
			for s := 0; s < 16; s++ {
				w.sc[16*b+s], w.m[16*b+s] = int32(xb[s]&0xF), int32(xb[s]>>4)
			}
			w.d[b], w.dmin[b] = ldF16(xb[80:]), ldF16(xb[82:])
			q := w.q[256*b : 256*b+256]
			qs := xb[16:80]
			for h := 0; h < 2; h++ {
				for k := 0; k < 4; k++ {
					for l := 0; l < 32; l++ {
						q[128*h+32*k+l] = int8((qs[32*h+l] >> (2 * k)) & 3)
					}
				}
			}
		}
	}
}

// dot32 is the exact integer dot product of 32 quants.
func dot32(a []int8, b []byte) int32 {
	var s int32
	for i := 0; i < 32; i++ {
		s += int32(a[i]) * int32(int8(b[i]))
	}
	return s
}

// dotQ4B32 is one output of gemv/gemm_q4_b32_8x8_q8_0_lut_avx (Q4_0,
// IQ4_NL; both kernels alike): acc = fma(float(Σ q·y), d_x·d_y, acc) over
// the blocks in order, d_x·d_y rounded (_mm256_mul_ps, then
// _mm256_fmadd_ps).
func (w *repackRow) dotQ4B32(y []byte) float32 {
	var acc float32
	for b, dx := range w.d {
		yb := y[34*b : 34*b+34]
		s := dot32(w.q[32*b:], yb[2:])
		acc = fma32(float32(s), float32(dx*ldF16(yb)), acc)
	}
	return acc
}

// q8KBsum32 is the sum of the Q8_K quants of 32-value sub-block s, from the
// block's sixteen int16 sums.
func q8KBsum32(bsums []byte, s int) int32 {
	return int32(int16(binary.LittleEndian.Uint16(bsums[4*s:]))) + int32(int16(binary.LittleEndian.Uint16(bsums[4*s+2:])))
}

// dotQ4K is one output of ggml_gemv_q4_K_8x8_q8_K (gemm false) or
// ggml_gemm_q4_K_8x8_q8_K (true). With the exact integer sums
// i_s = sc_s·Σ q·y and n_s = m_s·Σ y of the eight 32-value sub-blocks, gemv
// accumulates once per super-block, acc = fma(float(Σ_s i_s), d·d_y, acc)
// and accm = fma(float(Σ_s n_s), dmin·d_y, accm); gemm once per pair of
// sub-blocks (its sb loop), acc = fma(float(i_2k + i_2k+1), d·d_y, acc),
// and the same for accm. The result is acc − accm.
func (w *repackRow) dotQ4K(y []byte, gemm bool) float32 {
	var acc, accm float32
	for b := range w.d {
		yd, yq, bs := q8K(y[292*b : 292*b+292])
		dd := float32(w.d[b] * yd)
		dm := float32(w.dmin[b] * yd)
		q := w.q[256*b:]
		var is, ns int32
		for s := 0; s < 8; s++ {
			is += w.sc[8*b+s] * dot32(q[32*s:], yq[32*s:])
			ns += w.m[8*b+s] * q8KBsum32(bs, s)
			if gemm && s%2 == 1 {
				acc = fma32(float32(is), dd, acc)
				accm = fma32(float32(ns), dm, accm)
				is, ns = 0, 0
			}
		}
		if !gemm {
			acc = fma32(float32(is), dd, acc)
			accm = fma32(float32(ns), dm, accm)
		}
	}
	return acc - accm
}

// dotQ2K is one output of ggml_gemv_q2_K_8x8_q8_K (gemm false) or
// ggml_gemm_q2_K_8x8_q8_K (true), like dotQ4K with sixteen 16-value
// sub-blocks: i_s = sc_s·Σ q·y, n_s = m_s·Σ y (the Q8_K block sum s);
// gemv accumulates once per super-block, gemm once per 128 values (its
// sb loop: sub-blocks 8h..8h+7).
func (w *repackRow) dotQ2K(y []byte, gemm bool) float32 {
	var acc, accm float32
	for b := range w.d {
		yd, yq, bs := q8K(y[292*b : 292*b+292])
		dd := float32(w.d[b] * yd)
		dm := float32(w.dmin[b] * yd)
		q := w.q[256*b:]
		var is, ns int32
		for s := 0; s < 16; s++ {
			var p int32
			for i := 16 * s; i < 16*s+16; i++ {
				p += int32(q[i]) * int32(int8(yq[i]))
			}
			is += w.sc[16*b+s] * p
			ns += w.m[16*b+s] * int32(int16(binary.LittleEndian.Uint16(bs[2*s:])))
			if gemm && s%8 == 7 {
				acc = fma32(float32(is), dd, acc)
				accm = fma32(float32(ns), dm, accm)
				is, ns = 0, 0
			}
		}
		if !gemm {
			acc = fma32(float32(is), dd, acc)
			accm = fma32(float32(ns), dm, accm)
		}
	}
	return acc - accm
}

// quantQ8KMat is one row of ggml_quantize_mat_q8_K_4x8 (arch/x86, AVX2),
// written as ordinary block_q8_K (the interleaving changes no value). Per
// 256 values: amax from _mm256_max_ps lane by lane and the _mm_max
// reduction; iscale = -127/amax when some value equals +amax, else
// 127/amax (quantize_row_q8_K_ref takes the sign of the first value of
// largest magnitude); q = round-to-even of the product iscale·x rounded
// to float32 first (_mm256_mul_ps, _mm256_round_ps: where from_float's
// nearest_int is contracted into one FMA), saturated by the packs; d =
// 1/iscale; the sums of 16 quants exact.
func quantQ8KMat(x []float32, dst []byte) {
	for i := 0; i < len(x)/256; i++ {
		xb := x[256*i : 256*i+256]
		y := dst[292*i : 292*i+292]
		var m [8]float32
		for l := 0; l < 8; l++ {
			a := x86Max(x86Abs(xb[l]), x86Abs(xb[8+l]))
			a = x86Max(a, x86Abs(xb[16+l]))
			m[l] = x86Max(a, x86Abs(xb[24+l]))
		}
		for sb := 1; sb < 8; sb++ {
			for v := 0; v < 4; v++ {
				for l := 0; l < 8; l++ {
					m[l] = x86Max(m[l], x86Abs(xb[32*sb+8*v+l]))
				}
			}
		}
		var m4 [4]float32
		for l := 0; l < 4; l++ {
			m4[l] = x86Max(m[4+l], m[l])
		}
		maxScalar := x86Max(x86Max(m4[0], m4[2]), x86Max(m4[1], m4[3]))
		// finalMask: a lane whose maximum is maxScalar and equals one of
		// its values (a positive one, since maxScalar >= 0).
		pos := false
		for l := 0; l < 8; l++ {
			if m[l] != maxScalar {
				continue
			}
			for j := l; j < 256; j += 8 {
				if xb[j] == m[l] {
					pos = true
				}
			}
		}
		var iscale float32
		if maxScalar != 0 {
			iscale = 127 / maxScalar
			if pos {
				iscale = -127 / maxScalar
			}
		}
		var d float32
		if maxScalar != 0 {
			d = 1 / iscale
		}
		binary.LittleEndian.PutUint32(y, math.Float32bits(d))
		qs := y[4:260]
		for j, v := range xb {
			p := float32(v * iscale)
			qs[j] = byte(sat8(x86Cvt(float32(math.RoundToEven(float64(p))))))
		}
		for j := 0; j < 16; j++ {
			var s int16
			for _, q := range qs[16*j : 16*j+16] {
				s += int16(int8(q))
			}
			binary.LittleEndian.PutUint16(y[260+2*j:], uint16(s))
		}
	}
}

// x86Max is MAXPS on one lane: a > b ? a : b (the second operand when
// either is NaN or both are zero).
func x86Max(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}

// x86Abs clears the sign bit (_mm256_andnot_ps(-0.0f, v)).
func x86Abs(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ 0x80000000) }

// x86Cvt is CVTPS2DQ on an integral value: the int32, or 0x80000000 for
// NaN and out-of-range values.
func x86Cvt(r float32) int32 {
	if r != r || r >= 2147483648 || r < -2147483648 {
		return math.MinInt32
	}
	return int32(r)
}

// sat8 is PACKSSDW then PACKSSWB on one value.
func sat8(v int32) int8 {
	return int8(max(-128, min(127, v)))
}
