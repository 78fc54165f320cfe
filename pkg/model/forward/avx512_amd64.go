//go:build amd64 && !purego

package forward

import "unsafe"

//go:noescape
func tinyF32x4L16AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[8][8]float32)

//go:noescape
func tinyF16x4L16AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[8][8]float32)

//go:noescape
func tinyBF16x4L16AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[8][8]float32)

//go:noescape
func dotF16Acc16AVX2(n int, a, b *uint16, acc *[8][8]float32)

// tinyX4L16 is tinyX4 for tinyBLAS<16, __m512> (x86-avx512): the weight
// row a (kind tinyF32, tinyF16 or tinyBF16) against four float32 columns
// over the first n&^15 values; out[c] is reduce16 of column c's lanes.
func tinyX4L16(kind, n int, a unsafe.Pointer, b *[4][]float32, out []float32) bool {
	n &^= 15
	p, ok := tinyColumns(b, n)
	if !ok || len(out) < 4 {
		return false
	}
	var acc [8][8]float32
	switch kind {
	case tinyF32:
		tinyF32x4L16AVX2(n, a, p, &acc)
	case tinyF16:
		tinyF16x4L16AVX2(n, a, p, &acc)
	default:
		tinyBF16x4L16AVX2(n, a, p, &acc)
	}
	for c := 0; c < 4; c++ {
		var v [16]float32
		copy(v[:8], acc[2*c][:])
		copy(v[8:], acc[2*c+1][:])
		out[c] = reduce16(&v)
	}
	return true
}

// dotF16Acc16 runs vecDotF16x16's main loop over the first np (a multiple
// of 64) elements into sum, or returns false without the kernel.
func dotF16Acc16(np int, a, b []uint16, sum *[4][16]float32) bool {
	if !hasAVX2 || np == 0 || len(a) < np || len(b) < np {
		return false
	}
	var acc [8][8]float32
	dotF16Acc16AVX2(np, &a[0], &b[0], &acc)
	for j := 0; j < 4; j++ {
		copy(sum[j][:8], acc[2*j][:])
		copy(sum[j][8:], acc[2*j+1][:])
	}
	return true
}

//go:noescape
func dpbf16x32AVX2(n int, a, b *uint16, acc *[2][8]float32)

//go:noescape
func dpbf16x64AVX2(n int, a, b *uint16, acc *[4][8]float32)

// dpbf16Acc32 runs dotBF16Tiny32's loop over the first n&^31 values into
// acc (lanes 0-15), or returns false without the kernel.
func dpbf16Acc32(a, b []uint16, acc *[16]float32) bool {
	n := len(a) &^ 31
	if !hasAVX2 || n == 0 || len(b) < n {
		return false
	}
	var r [2][8]float32
	dpbf16x32AVX2(n, &a[0], &b[0], &r)
	copy(acc[:8], r[0][:])
	copy(acc[8:], r[1][:])
	return true
}

// dpbf16Acc64 runs vecDotBF16x16's vdpbf16ps loop over the first np (a
// multiple of 64) values into c1 and c2, or returns false without the
// kernel.
func dpbf16Acc64(np int, a, b []uint16, c1, c2 *[16]float32) bool {
	if !hasAVX2 || np == 0 || len(a) < np || len(b) < np {
		return false
	}
	var r [4][8]float32
	dpbf16x64AVX2(np, &a[0], &b[0], &r)
	copy(c1[:8], r[0][:])
	copy(c1[8:], r[1][:])
	copy(c2[:8], r[2][:])
	copy(c2[8:], r[3][:])
	return true
}

//go:noescape
func dpbf16x32x4AVX2(n int, a *uint16, b *[4]unsafe.Pointer, acc *[8][8]float32)

// dpbf16X4 is dotBF16Tiny32 of the weight row a against four bfloat16
// columns at once (out[c] for b[c]), or false without the kernel.
func dpbf16X4(a []uint16, b *[4][]uint16, out []float32) bool {
	n := len(a) &^ 31
	if !hasAVX2 || n == 0 || len(out) < 4 {
		return false
	}
	var p [4]unsafe.Pointer
	for c := range b {
		if len(b[c]) < n {
			return false
		}
		p[c] = unsafe.Pointer(&b[c][0])
	}
	var acc [8][8]float32
	dpbf16x32x4AVX2(n, &a[0], &p, &acc)
	for c := 0; c < 4; c++ {
		var v [16]float32
		copy(v[:8], acc[2*c][:])
		copy(v[8:], acc[2*c+1][:])
		out[c] = reduce16(&v)
	}
	return true
}
