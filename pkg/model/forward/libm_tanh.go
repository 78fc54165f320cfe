package forward

import "math"

// Ports of glibc's single-precision tanhf and expm1f (sysdeps/ieee754/flt-32:
// s_tanhf.c, s_expm1f.c, both fdlibm), which ggml-cpu calls for the TANH op
// (unary-ops.cpp op_tanh), the logit soft-capping of flash attention
// (ggml_compute_forward_flash_attn_ext_f16_one_chunk) and the GELU table
// (ggml_gelu_f32). x86-64 glibc has no FMA variant of them, so the float
// arithmetic is evaluated operation by operation, as Go does on amd64
// (verified over every float32 of the ranges ggml uses in
// libm_llamacpp_test.go).

// Tanhf is glibc's tanhf.
func Tanhf(x float32) float32 {
	jx := math.Float32bits(x)
	ix := jx & 0x7fffffff
	if ix >= 0x7f800000 { // Inf or NaN
		if int32(jx) >= 0 {
			return 1/x + 1
		}
		return 1/x - 1
	}
	var z float32
	switch {
	case ix == 0:
		return x
	case ix < 0x24000000: // |x| < 2^-55
		return x * (1 + x)
	case ix < 0x41b00000: // |x| < 22
		ax := float32(math.Abs(float64(x)))
		if ix >= 0x3f800000 { // |x| >= 1
			t := expm1f(2 * ax)
			z = 1 - 2/(t+2)
		} else {
			t := expm1f(-2 * ax)
			z = -t / (t + 2)
		}
	default:
		z = 1 // one - tiny, rounded
	}
	if int32(jx) >= 0 {
		return z
	}
	return -z
}

// expm1f constants (s_expm1f.c).
const (
	expm1fLn2Hi  float32 = 6.9313812256e-01 // 0x3f317180
	expm1fLn2Lo  float32 = 9.0580006145e-06 // 0x3717f7d1
	expm1fInvLn2 float32 = 1.4426950216e+00 // 0x3fb8aa3b
	expm1fQ1     float32 = -3.3333335072e-02
	expm1fQ2     float32 = 1.5873016091e-03
	expm1fQ3     float32 = -7.9365076090e-05
	expm1fQ4     float32 = 4.0082177293e-06
	expm1fQ5     float32 = -2.0109921195e-07
)

// expm1f is glibc's expm1f for the finite arguments tanhf passes (|x| <
// 44); NaN, infinities and overflow follow the C code too.
func expm1f(x float32) float32 {
	hx := math.Float32bits(x)
	xsb := hx & 0x80000000
	hx &= 0x7fffffff
	if hx >= 0x4195b844 { // |x| >= 27*ln2
		if hx >= 0x42b17218 { // |x| >= 88.721...
			if hx > 0x7f800000 {
				return x + x
			}
			if hx == 0x7f800000 {
				if xsb == 0 {
					return x
				}
				return -1
			}
			if x > 8.8721679688e+01 {
				return float32(math.Inf(1))
			}
		}
		if xsb != 0 {
			return -1
		}
	}
	var hi, lo, c float32
	var k int32
	switch {
	case hx > 0x3eb17218: // |x| > 0.5 ln2
		if hx < 0x3F851592 { // and |x| < 1.5 ln2
			if xsb == 0 {
				hi, lo, k = x-expm1fLn2Hi, expm1fLn2Lo, 1
			} else {
				hi, lo, k = x+expm1fLn2Hi, -expm1fLn2Lo, -1
			}
		} else {
			half := float32(0.5)
			if xsb != 0 {
				half = -0.5
			}
			k = int32(expm1fInvLn2*x + half)
			t := float32(k)
			hi = x - t*expm1fLn2Hi
			lo = t * expm1fLn2Lo
		}
		x = hi - lo
		c = (hi - x) - lo
	case hx < 0x33000000: // |x| < 2^-25
		return x
	}
	hfx := 0.5 * x
	hxs := x * hfx
	r1 := 1 + hxs*(expm1fQ1+hxs*(expm1fQ2+hxs*(expm1fQ3+hxs*(expm1fQ4+hxs*expm1fQ5))))
	t := 3 - r1*hfx
	e := hxs * ((r1 - t) / (6 - x*t))
	if k == 0 {
		return x - (x*e - hxs)
	}
	e = x*(e-c) - c
	e -= hxs
	if k == -1 {
		return 0.5*(x-e) - 0.5
	}
	if k == 1 {
		if x < -0.25 {
			return -2 * (e - (x + 0.5))
		}
		return 1 + 2*(x-e)
	}
	addExp := func(y float32) float32 {
		return math.Float32frombits(uint32(int32(math.Float32bits(y)) + k<<23))
	}
	if k <= -2 || k > 56 {
		y := 1 - (e - x)
		if k == 128 {
			y = y * 2 * 0x1p127
		} else {
			y = addExp(y)
		}
		return y - 1
	}
	if k < 23 {
		t = math.Float32frombits(uint32(0x3f800000 - (0x1000000 >> k))) // 1-2^-k
		return addExp(t - (e - x))
	}
	t = math.Float32frombits(uint32((0x7f - k) << 23)) // 2^-k
	y := x - (e + t)
	y += 1
	return addExp(y)
}
