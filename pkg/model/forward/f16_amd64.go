//go:build amd64 && !purego

package forward

//go:noescape
func dotF16AccAVX2(n int, a, b *uint16, acc *[4][8]float32)

//go:noescape
func madF16AVX2(n int, y, x *uint16, v float32)

//go:noescape
func scaleF16AVX2(n int, y *uint16, v float32)

//go:noescape
func toF16AVX2(n int, dst *uint16, src *float32)

//go:noescape
func fromF16AVX2(n int, dst *float32, src *uint16)

// dotF16Acc runs vecDotF16's main loop over the first np (a multiple of
// 32) elements into sum through the assembly kernel, or returns false when
// the CPU lacks it.
func dotF16Acc(np int, a, b []uint16, sum *[4][8]float32) bool {
	if !hasAVX2 || np == 0 || len(a) < np || len(b) < np {
		return false
	}
	dotF16AccAVX2(np, &a[0], &b[0], sum)
	return true
}

// madF16Prefix applies madF16 to the longest prefix of y whose length is a
// multiple of 8 and returns that length (0 without the kernel).
func madF16Prefix(y, x []uint16, v float32) int {
	n := len(y) &^ 7
	if !hasAVX2 || n == 0 || len(x) < n {
		return 0
	}
	madF16AVX2(n, &y[0], &x[0], v)
	return n
}

// scaleF16Prefix is madF16Prefix for scaleF16.
func scaleF16Prefix(y []uint16, v float32) int {
	n := len(y) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	scaleF16AVX2(n, &y[0], v)
	return n
}

// toF16Prefix is madF16Prefix for toF16Slice.
func toF16Prefix(dst []uint16, src []float32) int {
	n := min(len(dst), len(src)) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	toF16AVX2(n, &dst[0], &src[0])
	return n
}

// fromF16Prefix converts the longest prefix of src (and dst) whose length
// is a multiple of 8 from float16 to float32, as f16Table does, and returns
// that length (0 without the kernel).
func fromF16Prefix(dst []float32, src []uint16) int {
	n := min(len(dst), len(src)) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	fromF16AVX2(n, &dst[0], &src[0])
	return n
}
