//go:build !amd64 || purego

package forward

import "unsafe"

// hasAVX2 is false without the assembly kernels: the portable Go kernels
// run.
var hasAVX2 = false

func dotQ8_0SIMD(n int, x, y []byte) (float32, bool) { return 0, false }

func q4KRowAcc(x []byte, meta []q4KBlockMeta, y *[4][]byte, ncol int, acc *[4][8]float32, accm *[4][4]float32) bool {
	return false
}

func q6KRowAcc(x []byte, meta []q6KBlockMeta, y *[4][]byte, ncol int, acc *[4][8]float32) bool {
	return false
}

func dotQ8_0x4(n int, x []byte, y *[4][]byte, out []float32) bool { return false }

func dotF16Acc(np int, a, b []uint16, sum *[4][8]float32) bool { return false }

func madF16Prefix(y, x []uint16, v float32) int { return 0 }

func scaleF16Prefix(y []uint16, v float32) int { return 0 }

func toF16Prefix(dst []uint16, src []float32) int { return 0 }

func fromF16Prefix(dst []float32, src []uint16) int { return 0 }

func dotQ8_0x8Packed(n int, x []byte, p *q8Packed, first int, out []float32) bool { return false }

func swigluPrefix(y, x, g []float32) int { return 0 }

func k8RowAcc(meta []k8BlockMeta, y *[4][]byte, ncol int, mode k8Mode, acc *[4][8]float32) bool {
	return false
}

func dotF32Tinyx4(a []float32, b *[4][]float32, out []float32) bool { return false }

func dotF16Tinyx4(a []uint16, b *[4][]float32, bf bool, out []float32) bool { return false }

func tinyX2x4(kind, n int, a0, a1 unsafe.Pointer, b *[4][]float32, out []float32) bool {
	return false
}

func summsQ1x8(m, sp []float32, ncols, first int, out *[8]float32) bool { return false }

func tinyX4L16(kind, n int, a unsafe.Pointer, b *[4][]float32, out []float32) bool { return false }

func dotF16Acc16(np int, a, b []uint16, sum *[4][16]float32) bool { return false }

func dpbf16Acc32(a, b []uint16, acc *[16]float32) bool { return false }

func dpbf16Acc64(np int, a, b []uint16, c1, c2 *[16]float32) bool { return false }

func dpbf16X4(a []uint16, b *[4][]uint16, out []float32) bool { return false }

func dotQ8_0Acc(nb int, x, y []byte, acc *[8]float32) bool { return false }

func dotQ8_0x4Acc(nb int, x []byte, y *[4][]byte, acc *[4][8]float32) bool { return false }
