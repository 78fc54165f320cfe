//go:build amd64 && !purego

package forward

//go:noescape
func swigluAVX2(n int, y, x, gate *float32, consts *[15][8]uint32)

// swigluConsts are swigluAVX2's constants, each broadcast to eight lanes:
// ggml_v_expf's (vec.h) and the masks and bounds of its special cases.
var swigluConsts = func() *[15][8]uint32 {
	vals := [15]uint32{
		0x4b400000, // r = 0x1.8p23
		0x3fb8aa3b, // 0x1.715476p+0 (log2 e)
		0x3f317200, // 0x1.62e4p-1
		0x35bfbe8e, // 0x1.7f7d1cp-20
		0x3f800000, // 1.0f
		0x7fffffff, // |·| mask (andnot -0.f)
		0x42fc0000, // 126
		0x3c072010, // 0x1.0e4020p-7
		0x3d2b9f17, // 0x1.573e2ep-5
		0x3e2aaf33, // 0x1.555e66p-3
		0x3efffedb, // 0x1.fffdb6p-2
		0x3f7ffff6, // 0x1.ffffecp-1
		0x82000000,
		0x7f000000,
		0x43400000, // 192
	}
	var k [15][8]uint32
	for i, v := range vals {
		for l := range k[i] {
			k[i][l] = v
		}
	}
	return &k
}()

// swigluPrefix computes y[i] = vSilu(x[i])·g[i] for the longest prefix
// whose length is a multiple of 8 with the assembly kernel and returns its
// length (0 without the kernel).
func swigluPrefix(y, x, g []float32) int {
	n := min(len(y), len(x), len(g)) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	swigluAVX2(n, &y[0], &x[0], &g[0], swigluConsts)
	return n
}
