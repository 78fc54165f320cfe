//go:build !amd64 || purego

package forward

// hasAVX2 is false without the assembly kernels: the portable Go kernels
// run.
var hasAVX2 = false

func dotQ8_0SIMD(n int, x, y []byte) (float32, bool) { return 0, false }

func q4KAccSIMD(qs, q8 []byte, scales *[8]int16, acc *[8]float32, d float32, mins *[4]int32, accm *[4]float32, dmin float32) bool {
	return false
}

func q6KAccSIMD(ql, qh, q8 []byte, scales *[16]int16, acc *[8]float32, d float32) bool {
	return false
}

func dotQ8_0x4(n int, x []byte, y *[4][]byte, out []float32) bool { return false }
