package forward

import "math"

// Ports of the single-precision glibc (2.27 and later, up to at least 2.36)
// functions that ggml-cpu calls through libm: expf, sinf/cosf/sincosf and
// powf. They come from Arm's optimized-routines (sysdeps/ieee754/flt-32:
// e_expf.c, s_sincosf.h, sincosf_poly.h, e_powf.c and their data tables).
//
// glibc picks its "-fma" variants of these functions on x86-64 CPUs with FMA
// (ifunc), which are the same C compiled with -mfma -mavx2, so GCC contracts
// every a*b+c of the double-precision evaluation into a fused multiply-add.
// The ports use math.FMA exactly where that contraction happens, which makes
// them bit-identical to the libm of this machine (verified over every float32
// input of the ranges ggml uses, see libm_llamacpp_test.go).

// exp2fTab is __exp2f_data.tab: tab[i] = uint(2^(i/32)) - (i << 47).
var exp2fTab = [32]uint64{
	0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
	0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
	0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
	0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
	0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
	0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
	0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
	0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
}

const (
	exp2fN           = 32
	exp2fShift       = 0x1.8p+52
	exp2fShiftScaled = 0x1.8p+52 / exp2fN
	exp2fInvLn2N     = 0x1.71547652b82fep+0 * exp2fN
)

var (
	exp2fPoly       = [3]float64{0x1.c6af84b912394p-5, 0x1.ebfce50fac4f3p-3, 0x1.62e42ff0c52d6p-1}
	exp2fPolyScaled = [3]float64{0x1.c6af84b912394p-5 / exp2fN / exp2fN / exp2fN, 0x1.ebfce50fac4f3p-3 / exp2fN / exp2fN, 0x1.62e42ff0c52d6p-1 / exp2fN}
)

// Expf is glibc's expf (e_expf.c, FMA build), as ggml-cpu's scalar code
// calls it: the online softmax of flash attention, the tails of softmax and
// SiLU.
func Expf(x float32) float32 {
	xd := float64(x)
	abstop := (math.Float32bits(x) >> 20) & 0x7ff
	if abstop >= math.Float32bits(88.0)>>20 {
		// |x| >= 88 or x is nan.
		if math.Float32bits(x) == math.Float32bits(float32(math.Inf(-1))) {
			return 0
		}
		if abstop >= math.Float32bits(float32(math.Inf(1)))>>20 {
			return x + x
		}
		if x > 0x1.62e42ep6 {
			return float32(math.Inf(1))
		}
		if x < -0x1.9fe368p6 {
			return 0
		}
	}
	// x*N/Ln2 = k + r with r in [-1/2, 1/2] and int k. GCC fuses the
	// product into both of its uses (z + SHIFT and z - kd).
	kd := math.FMA(exp2fInvLn2N, xd, exp2fShift)
	ki := math.Float64bits(kd)
	kd -= exp2fShift
	r := math.FMA(exp2fInvLn2N, xd, -kd)
	// exp(x) = 2^(k/N) * 2^(r/N) ~= s * (C0*r^3 + C1*r^2 + C2*r + 1)
	t := exp2fTab[ki%exp2fN]
	t += ki << (52 - 5)
	s := math.Float64frombits(t)
	c := &exp2fPolyScaled
	z := math.FMA(c[0], r, c[1])
	r2 := r * r
	y := math.FMA(c[2], r, 1)
	y = math.FMA(z, r2, y)
	y = y * s
	return float32(y)
}

// sincosT is glibc's sincos_t: the constants of sinf/cosf.
type sincosT struct {
	sign           [4]float64
	hpiInv, hpi    float64
	c0, c1, c2, c3 float64
	c4             float64
	s1, s2, s3     float64
}

// sincosfTable is __sincosf_table; the second entry computes -cos(x).
var sincosfTable = [2]sincosT{
	{
		sign:   [4]float64{1.0, -1.0, -1.0, 1.0},
		hpiInv: 0x1.45F306DC9C883p+23, hpi: 0x1.921FB54442D18p0,
		c0: 0x1p0, c1: -0x1.ffffffd0c621cp-2, c2: 0x1.55553e1068f19p-5, c3: -0x1.6c087e89a359dp-10, c4: 0x1.99343027bf8c3p-16,
		s1: -0x1.555545995a603p-3, s2: 0x1.1107605230bc4p-7, s3: -0x1.994eb3774cf24p-13,
	},
	{
		sign:   [4]float64{1.0, -1.0, -1.0, 1.0},
		hpiInv: 0x1.45F306DC9C883p+23, hpi: 0x1.921FB54442D18p0,
		c0: -0x1p0, c1: 0x1.ffffffd0c621cp-2, c2: -0x1.55553e1068f19p-5, c3: 0x1.6c087e89a359dp-10, c4: -0x1.99343027bf8c3p-16,
		s1: -0x1.555545995a603p-3, s2: 0x1.1107605230bc4p-7, s3: -0x1.994eb3774cf24p-13,
	},
}

// invPio4 is __inv_pio4: 4/PI to 192 bits, 8 new bits per entry.
var invPio4 = [24]uint32{
	0xa2, 0xa2f9, 0xa2f983, 0xa2f9836e,
	0xf9836e4e, 0x836e4e44, 0x6e4e4415, 0x4e441529,
	0x441529fc, 0x1529fc27, 0x29fc2757, 0xfc2757d1,
	0x2757d1f5, 0x57d1f534, 0xd1f534dd, 0xf534ddc0,
	0x34ddc0db, 0xddc0db62, 0xc0db6295, 0xdb629599,
	0x6295993c, 0x95993c43, 0x993c4390, 0x3c439041,
}

const (
	sincosPi63 = 0x1.921FB54442D18p-62 // 2PI * 2^-64
	sincosPio4 = 0x1.921FB54442D18p-1  // PI / 4
)

func abstop12(x float32) uint32 { return (math.Float32bits(x) >> 20) & 0x7ff }

// sincosfPoly is sincosf_poly (x86-64 sincosf_poly.h, with FMA): the sine
// and cosine of x (x2 = x*x), swapped when the quadrant n is odd.
func sincosfPoly(x, x2 float64, p *sincosT, n int) (sin, cos float32) {
	x3 := x2 * x
	x4 := x2 * x2
	s1 := math.FMA(x2, p.s3, p.s2)
	c2 := math.FMA(x2, p.c4, p.c3)
	c1 := math.FMA(x2, p.c1, p.c0)
	x5 := x3 * x2
	x6 := x4 * x2
	s := math.FMA(x3, p.s1, x)
	c := math.FMA(x4, p.c2, c1)
	sv := math.FMA(x5, s1, s)
	cv := math.FMA(x6, c2, c)
	if n&1 != 0 {
		return float32(cv), float32(sv)
	}
	return float32(sv), float32(cv)
}

// reduceFast is reduce_fast without TOINT_INTRINSICS: x modulo PI/2 for
// |x| <= 120, and the quadrant.
func reduceFast(x float64, p *sincosT) (float64, int) {
	r := x * p.hpiInv
	n := (int32(r) + 0x800000) >> 24
	return math.FMA(-float64(n), p.hpi, x), int(n)
}

// reduceLarge is reduce_large: the modulo of a reinterpreted float >= 2 by
// PI/2 with a 32x96 -> 128 bit multiply.
func reduceLarge(xi uint32) (float64, int) {
	arr := invPio4[(xi>>26)&15:]
	shift := (xi >> 23) & 7
	xi = (xi & 0xffffff) | 0x800000
	xi <<= shift
	res0 := uint64(xi * arr[0])
	res1 := uint64(xi) * uint64(arr[4])
	res2 := uint64(xi) * uint64(arr[8])
	res0 = (res2 >> 32) | (res0 << 32)
	res0 += res1
	n := (res0 + (1 << 61)) >> 62
	res0 -= n << 62
	x := float64(int64(res0))
	return x * sincosPi63, int(n)
}

// Sincosf is glibc's sincosf (s_sincosf.c, FMA build). GCC turns the
// cosf(theta) and sinf(theta) of ggml's rope_yarn into one sincosf call.
func Sincosf(y float32) (sin, cos float32) {
	x := float64(y)
	p := &sincosfTable[0]
	switch {
	case abstop12(y) < abstop12(float32(sincosPio4)):
		x2 := x * x
		if abstop12(y) < abstop12(0x1p-12) {
			return y, 1
		}
		return sincosfPoly(x, x2, p, 0)
	case abstop12(y) < abstop12(120):
		x, n := reduceFast(x, p)
		s := p.sign[n&3]
		if n&2 != 0 {
			p = &sincosfTable[1]
		}
		return sincosfPoly(x*s, x*x, p, n)
	case abstop12(y) < abstop12(float32(math.Inf(1))):
		xi := math.Float32bits(y)
		sign := int(xi >> 31)
		x, n := reduceLarge(xi)
		s := p.sign[(n+sign)&3]
		if (n+sign)&2 != 0 {
			p = &sincosfTable[1]
		}
		return sincosfPoly(x*s, x*x, p, n)
	default:
		nan := float32(math.NaN())
		return nan, nan
	}
}

// powfLog2Tab is __powf_log2_data.tab (POWF_SCALE = 1 without
// TOINT_INTRINSICS): {invc, logc} for 16 subintervals.
var powfLog2Tab = [16][2]float64{
	{0x1.661ec79f8f3bep+0, -0x1.efec65b963019p-2},
	{0x1.571ed4aaf883dp+0, -0x1.b0b6832d4fca4p-2},
	{0x1.49539f0f010bp+0, -0x1.7418b0a1fb77bp-2},
	{0x1.3c995b0b80385p+0, -0x1.39de91a6dcf7bp-2},
	{0x1.30d190c8864a5p+0, -0x1.01d9bf3f2b631p-2},
	{0x1.25e227b0b8eap+0, -0x1.97c1d1b3b7afp-3},
	{0x1.1bb4a4a1a343fp+0, -0x1.2f9e393af3c9fp-3},
	{0x1.12358f08ae5bap+0, -0x1.960cbbf788d5cp-4},
	{0x1.0953f419900a7p+0, -0x1.a6f9db6475fcep-5},
	{0x1p+0, 0x0p+0},
	{0x1.e608cfd9a47acp-1, 0x1.338ca9f24f53dp-4},
	{0x1.ca4b31f026aap-1, 0x1.476a9543891bap-3},
	{0x1.b2036576afce6p-1, 0x1.e840b4ac4e4d2p-3},
	{0x1.9c2d163a1aa2dp-1, 0x1.40645f0c6651cp-2},
	{0x1.886e6037841edp-1, 0x1.88e9c2c1b9ff8p-2},
	{0x1.767dcf5534862p-1, 0x1.ce0a44eb17bccp-2},
}

var powfLog2Poly = [5]float64{
	0x1.27616c9496e0bp-2, -0x1.71969a075c67ap-2,
	0x1.ec70a6ca7baddp-2, -0x1.7154748bef6c8p-1,
	0x1.71547652ab82bp0,
}

func powfLog2(ix uint32) float64 {
	const off = 0x3f330000
	tmp := ix - off
	i := (tmp >> (23 - 4)) % 16
	top := tmp & 0xff800000
	iz := ix - top
	k := int32(top) >> 23
	invc, logc := powfLog2Tab[i][0], powfLog2Tab[i][1]
	z := float64(math.Float32frombits(iz))
	a := &powfLog2Poly
	r := math.FMA(z, invc, -1)
	y0 := logc + float64(k)
	r2 := r * r
	y := math.FMA(a[0], r, a[1])
	p := math.FMA(a[2], r, a[3])
	r4 := r2 * r2
	q := math.FMA(a[4], r, y0)
	q = math.FMA(p, r2, q)
	return math.FMA(y, r4, q)
}

func powfExp2(xd float64, signBias uint64) float64 {
	kd := xd + exp2fShiftScaled
	ki := math.Float64bits(kd)
	kd -= exp2fShiftScaled
	r := xd - kd
	t := exp2fTab[ki%exp2fN]
	ski := ki + signBias
	t += ski << (52 - 5)
	s := math.Float64frombits(t)
	c := &exp2fPoly
	z := math.FMA(c[0], r, c[1])
	r2 := r * r
	y := math.FMA(c[2], r, 1)
	y = math.FMA(z, r2, y)
	return y * s
}

func powfCheckint(iy uint32) int {
	e := int(iy >> 23 & 0xff)
	if e < 0x7f {
		return 0
	}
	if e > 0x7f+23 {
		return 2
	}
	if iy&((1<<(0x7f+23-e))-1) != 0 {
		return 0
	}
	if iy&(1<<(0x7f+23-e)) != 0 {
		return 1
	}
	return 2
}

func powfZeroInfNaN(ix uint32) bool { return 2*ix-1 >= 2*0x7f800000-1 }

// Powf is glibc's powf (e_powf.c, FMA build). ggml's RoPE takes its
// theta_scale from powf(freq_base, -2.0f/n_dims).
func Powf(x, y float32) float32 {
	var signBias uint64
	ix := math.Float32bits(x)
	iy := math.Float32bits(y)
	if ix-0x00800000 >= 0x7f800000-0x00800000 || powfZeroInfNaN(iy) {
		if powfZeroInfNaN(iy) {
			if 2*iy == 0 {
				return 1
			}
			if ix == 0x3f800000 {
				return 1
			}
			if 2*ix > 2*0x7f800000 || 2*iy > 2*0x7f800000 {
				return x + y
			}
			if 2*ix == 2*0x3f800000 {
				return 1
			}
			if (2*ix < 2*0x3f800000) == (iy&0x80000000 == 0) {
				return 0
			}
			return y * y
		}
		if powfZeroInfNaN(ix) {
			x2 := x * x
			if ix&0x80000000 != 0 && powfCheckint(iy) == 1 {
				x2 = -x2
			}
			if iy&0x80000000 != 0 {
				return 1 / x2
			}
			return x2
		}
		if ix&0x80000000 != 0 {
			yint := powfCheckint(iy)
			if yint == 0 {
				return float32(math.NaN())
			}
			if yint == 1 {
				signBias = 1 << (5 + 11)
			}
			ix &= 0x7fffffff
		}
		if ix < 0x00800000 {
			ix = math.Float32bits(x * 0x1p23)
			ix &= 0x7fffffff
			ix -= 23 << 23
		}
	}
	logx := powfLog2(ix)
	ylogx := float64(y) * logx
	if (math.Float64bits(ylogx)>>47)&0xffff >= math.Float64bits(126.0)>>47 {
		if ylogx > 0x1.fffffffd1d571p+6 {
			if signBias != 0 {
				return float32(math.Inf(-1))
			}
			return float32(math.Inf(1))
		}
		if ylogx <= -150.0 {
			if signBias != 0 {
				return float32(math.Copysign(0, -1))
			}
			return 0
		}
	}
	return float32(powfExp2(ylogx, signBias))
}
