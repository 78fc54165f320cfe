//go:build amd64 && !purego

package forward

// hasAVX2 reports whether the CPU and OS support AVX2, FMA and F16C, the
// instructions of the assembly kernels in dot_amd64.s. Without them (or
// built with -tags purego, or on another architecture) the portable Go
// kernels run; both give the same bits.
var hasAVX2 = cpuidAVX2()

//go:noescape
func cpuidAVX2() bool

//go:noescape
func dotQ8_0AVX2(nb int, x, y *byte, tab *[1 << 16]float32, acc *[8]float32) bool

//go:noescape
func q4KAccAVX2(qs, q8 *byte, scales *[8]int16, acc *[8]float32, d float32, mins *[4]int32, accm *[4]float32, dmin float32)

// dotQ8_0SIMD is dotQ8_0 through the assembly kernel, or ok = false when
// the CPU lacks it or y holds a -128 quant (see dotQ8_0AVX2).
func dotQ8_0SIMD(n int, x, y []byte) (float32, bool) {
	nb := n / 32
	if !hasAVX2 || nb == 0 || len(x) < nb*34 || len(y) < nb*34 {
		return 0, false
	}
	var acc [8]float32
	if !dotQ8_0AVX2(nb, &x[0], &y[0], f16Table, &acc) {
		return 0, false
	}
	return hsum8(&acc), true
}

// q4KAccSIMD adds one Q4_K super-block (qs: 128 bytes, q8: 256) to acc
// and its mins to accm with the assembly kernel, or returns false having
// done nothing.
func q4KAccSIMD(qs, q8 []byte, scales *[8]int16, acc *[8]float32, d float32, mins *[4]int32, accm *[4]float32, dmin float32) bool {
	if !hasAVX2 || len(qs) < 128 || len(q8) < 256 {
		return false
	}
	q4KAccAVX2(&qs[0], &q8[0], scales, acc, d, mins, accm, dmin)
	return true
}

//go:noescape
func q6KAccAVX2(ql, qh, q8 *byte, scales *[16]int16, acc *[8]float32, d float32)

// q6KAccSIMD adds one Q6_K super-block (ql: 128 bytes, qh: 64, q8: 256) to
// acc with the assembly kernel, or returns false having done nothing.
func q6KAccSIMD(ql, qh, q8 []byte, scales *[16]int16, acc *[8]float32, d float32) bool {
	if !hasAVX2 || len(ql) < 128 || len(qh) < 64 || len(q8) < 256 {
		return false
	}
	q6KAccAVX2(&ql[0], &qh[0], &q8[0], scales, acc, d)
	return true
}

//go:noescape
func dotQ8_0x4AVX2(nb int, x *byte, y *[4]*byte, tab *[1 << 16]float32, acc *[4][8]float32) bool

// dotQ8_0x4 sets out[c] = dotQ8_0(n, x, y[c]) for four activation rows with
// one pass over the weight row, or returns false (no AVX2, or a -128 quant
// in an activation) having written nothing.
func dotQ8_0x4(n int, x []byte, y *[4][]byte, out []float32) bool {
	nb := n / 32
	if !hasAVX2 || nb == 0 || len(x) < nb*34 || len(out) < 4 {
		return false
	}
	var p [4]*byte
	for c := range p {
		if len(y[c]) < nb*34 {
			return false
		}
		p[c] = &y[c][0]
	}
	var acc [4][8]float32
	if !dotQ8_0x4AVX2(nb, &x[0], &p, f16Table, &acc) {
		return false
	}
	for c := range acc {
		out[c] = hsum8(&acc[c])
	}
	return true
}
