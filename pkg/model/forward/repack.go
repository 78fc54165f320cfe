package forward

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
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
	if !ks.repack || a.weight == nil || b.typ != quant.F32 {
		return repackNone
	}
	// ggml_n_dims(src0) == 2 and ne[1] % 8 == 0 (which implies ne[1] > 1)
	if a.ne[2] != 1 || a.ne[3] != 1 || a.ne[1]%8 != 0 {
		return repackNone
	}
	return ks.repackType(a.typ)
}

// repackType is ggml_repack_get_optimal_repack_type on this profile: the
// layout weights of type t are repacked to, or repackNone.
func (ks kernels) repackType(t quant.Type) repackKind {
	switch t {
	case quant.Q4_0:
		return repackQ4_0
	case quant.IQ4_NL:
		return repackIQ4NL
	case quant.Q4_K:
		return repackQ4_K
	case quant.Q2_K:
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
	vdt := quant.Q8_0
	if kind == repackQ4_K || kind == repackQ2_K {
		vdt = quant.Q8_K
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
			if vdt == quant.Q8_K && i11 < ngemm {
				quantQ8KMat(x, q)
			} else if err := quant.QuantizeRow(vdt, x, q, quant.QuantCPU); err != nil {
				convOnce.Do(func() { convErr = fmt.Errorf("%s: quantizing %s: %w", dst.name, b.name, err) })
				return
			}
			act[c] = q
		}
	})
	if convErr != nil {
		return convErr
	}
	acts := make([]repackAct, ncols)
	for c, q := range act {
		acts[c] = newRepackAct(vdt, q)
	}
	out, off := dst.base()
	colStride := dst.nb[1] / typeSize(dst.typ)
	nb := int(ne00) / 32
	if vdt == quant.Q8_K {
		nb = int(ne00) / 256
	}
	parallelFor(int(ne01), e.threads, func(lo, hi int) {
		var w repackRow
		w.init(kind, nb)
		tmp := make([]int32, ne00/16)
		for r := int64(lo); r < int64(hi); r++ {
			w.decode(kind, a.weightRow(r, 0, 0))
			for i12 := int64(0); i12 < ne12; i12++ {
				o := off + dst.elemOffset(r, 0, i12, 0)
				for i11 := int64(0); i11 < ne11; i11++ {
					y := &acts[i11+ne11*i12]
					out.f32[o+i11*colStride] = w.dot(kind, y, i11 < ngemm, tmp)
				}
			}
		}
	})
	return nil
}

// repackAct is one activation column (Q8_0 or Q8_K blocks) unpacked for
// the repacked kernels.
type repackAct struct {
	q     []int8    // the quants
	d     []float32 // the block scales (Q8_0: fp16 → f32; Q8_K: f32)
	bs    []int32   // Q8_K: the sums of 16 quants
	clean bool      // no -128 quant (sums16SIMD's condition)
}

// newRepackAct unpacks a row of vdt (Q8_0 or Q8_K) blocks.
func newRepackAct(vdt quant.Type, y []byte) repackAct {
	bb, bs := 34, 32
	if vdt == quant.Q8_K {
		bb, bs = 292, 256
	}
	nb := len(y) / bb
	a := repackAct{q: make([]int8, nb*bs), d: make([]float32, nb), clean: true}
	if vdt == quant.Q8_K {
		a.bs = make([]int32, nb*16)
	}
	for b := 0; b < nb; b++ {
		blk := y[b*bb : (b+1)*bb]
		qs := blk[2:34]
		if vdt == quant.Q8_K {
			a.d[b] = math.Float32frombits(binary.LittleEndian.Uint32(blk))
			qs = blk[4:260]
			for g := 0; g < 16; g++ {
				a.bs[16*b+g] = int32(int16(binary.LittleEndian.Uint16(blk[260+2*g:])))
			}
		} else {
			a.d[b] = ldF16(blk)
		}
		for i, v := range qs {
			a.q[b*bs+i] = int8(v)
			if v == 0x80 {
				a.clean = false
			}
		}
	}
	return a
}

// sums16 sets out[i] to the exact Σ_{j<16} w[16i+j]·y[16i+j].
func sums16(w, y []int8, clean bool, out []int32) {
	if clean && sums16SIMD(w, y, out) {
		return
	}
	for i := range len(w) / 16 {
		a, b := w[16*i:16*i+16], y[16*i:16*i+16]
		var s int32
		for j := range a {
			s += int32(a[j]) * int32(b[j])
		}
		out[i] = s
	}
}

// dot is one output of the repacked kernel kind for activation column y
// (from the GEMM's columns when gemm); tmp holds len(w.q)/16 int32.
func (w *repackRow) dot(kind repackKind, y *repackAct, gemm bool, tmp []int32) float32 {
	sums16(w.q, y.q, y.clean, tmp)
	switch kind {
	case repackQ4_K:
		return w.dotQ4K(y, gemm, tmp)
	case repackQ2_K:
		return w.dotQ2K(y, gemm, tmp)
	}
	return w.dotQ4B32(y, tmp)
}

// repackRow is one weight row decoded for the repacked kernels: the quants
// as small integers, the per-block scales as float32 (from fp16) and the
// per-sub-block scales and mins.
type repackRow struct {
	q    []int8    // the quants (Q4_0: q−8; IQ4_NL: kvalues_iq4nl; Q4_K 0..15; Q2_K 0..3)
	qb   []byte    // q's bytes
	d    []float32 // per block: d (Q4_0, IQ4_NL) or the super-block d
	dmin []float32 // Q4_K, Q2_K: the super-block dmin
	sc   []int32   // Q4_K: 8 scales per block; Q2_K: 16
	m    []int32   // Q4_K: 8 mins per block; Q2_K: 16
}

func (w *repackRow) init(kind repackKind, nb int) {
	defer func() {
		if len(w.q) > 0 {
			w.qb = unsafe.Slice((*byte)(unsafe.Pointer(&w.q[0])), len(w.q))
		}
	}()
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
			if kind == repackQ4_0 {
				// nibble − 8 a byte at a time in a word: ((v|0x80) − 8) ^ 0x80
				q := w.qb[32*b : 32*b+32]
				for l := 0; l < 16; l += 8 {
					v := binary.LittleEndian.Uint64(xb[2+l:])
					lo := (v&0x0F0F0F0F0F0F0F0F | 0x8080808080808080) - 0x0808080808080808 ^ 0x8080808080808080
					hi := (v>>4&0x0F0F0F0F0F0F0F0F | 0x8080808080808080) - 0x0808080808080808 ^ 0x8080808080808080
					binary.LittleEndian.PutUint64(q[l:], lo)
					binary.LittleEndian.PutUint64(q[16+l:], hi)
				}
				continue
			}
			q := w.q[32*b : 32*b+32]
			for j, v := range xb[2:18] {
				q[j], q[j+16] = kvaluesIQ4NL[v&0xF], kvaluesIQ4NL[v>>4]
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
			// eight nibbles a word: the low ones are values 64j+l, the
			// high ones 64j+32+l
			q := w.qb[256*b : 256*b+256]
			qs := xb[16:144]
			for j := 0; j < 4; j++ {
				for l := 0; l < 32; l += 8 {
					v := binary.LittleEndian.Uint64(qs[32*j+l:])
					binary.LittleEndian.PutUint64(q[64*j+l:], v&0x0F0F0F0F0F0F0F0F)
					binary.LittleEndian.PutUint64(q[64*j+32+l:], v>>4&0x0F0F0F0F0F0F0F0F)
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

// dotQ4B32 is one output of gemv/gemm_q4_b32_8x8_q8_0_lut_avx (Q4_0,
// IQ4_NL; both kernels alike): acc = fma(float(Σ q·y), d_x·d_y, acc) over
// the blocks in order, d_x·d_y rounded (_mm256_mul_ps, then
// _mm256_fmadd_ps). s16 holds the sums of 16 products.
func (w *repackRow) dotQ4B32(y *repackAct, s16 []int32) float32 {
	var acc float32
	for b, dx := range w.d {
		s := s16[2*b] + s16[2*b+1]
		acc = fma32(float32(s), float32(dx*y.d[b]), acc)
	}
	return acc
}

// dotQ4K is one output of ggml_gemv_q4_K_8x8_q8_K (gemm false) or
// ggml_gemm_q4_K_8x8_q8_K (true). With the exact integer sums
// i_s = sc_s·Σ q·y and n_s = m_s·Σ y of the eight 32-value sub-blocks, gemv
// accumulates once per super-block, acc = fma(float(Σ_s i_s), d·d_y, acc)
// and accm = fma(float(Σ_s n_s), dmin·d_y, accm); gemm once per pair of
// sub-blocks (its sb loop), acc = fma(float(i_2k + i_2k+1), d·d_y, acc),
// and the same for accm. The result is acc − accm.
func (w *repackRow) dotQ4K(y *repackAct, gemm bool, s16 []int32) float32 {
	var acc, accm float32
	for b := range w.d {
		dd := float32(w.d[b] * y.d[b])
		dm := float32(w.dmin[b] * y.d[b])
		sc, m := w.sc[8*b:8*b+8], w.m[8*b:8*b+8]
		ps, bs := s16[16*b:16*b+16], y.bs[16*b:16*b+16]
		var is, ns int32
		for s := 0; s < 8; s++ {
			is += sc[s] * (ps[2*s] + ps[2*s+1])
			ns += m[s] * (bs[2*s] + bs[2*s+1])
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
func (w *repackRow) dotQ2K(y *repackAct, gemm bool, s16 []int32) float32 {
	var acc, accm float32
	for b := range w.d {
		dd := float32(w.d[b] * y.d[b])
		dm := float32(w.dmin[b] * y.d[b])
		var is, ns int32
		for s := 0; s < 16; s++ {
			is += w.sc[16*b+s] * s16[16*b+s]
			ns += w.m[16*b+s] * y.bs[16*b+s]
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
