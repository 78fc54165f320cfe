//go:build amd64 && !purego

package forward

//go:noescape
func sums16AVX2(n64 int, w, y *int8, out *int32)

// sums16SIMD is sums16 through the assembly kernel; false (nothing
// written) without AVX2 or when len(w) is not a multiple of 64.
func sums16SIMD(w, y []int8, out []int32) bool {
	n := len(w)
	if !hasAVX2 || n == 0 || n%64 != 0 || len(y) < n || len(out) < n/16 {
		return false
	}
	sums16AVX2(n/64, &w[0], &y[0], &out[0])
	return true
}
