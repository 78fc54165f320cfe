//go:build llamacpp

// Package ggmlref calls the C library functions that llama.cpp's ggml calls
// (the system libm's expf, sincosf, powf and tanhf) on many inputs at once, so that
// the forward package can test its Go ports against them bit for bit. It is
// only built with the llamacpp tag.
package ggmlref

/*
#cgo LDFLAGS: -lm
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>

static void ld_expf(const float *x, float *y, int64_t n) { for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]); }
static void ld_sincosf(const float *x, float *s, float *c, int64_t n) {
    for (int64_t i = 0; i < n; i++) { float a, b; sincosf(x[i], &a, &b); s[i] = a; c[i] = b; }
}
static void ld_powf(const float *x, const float *y, float *z, int64_t n) { for (int64_t i = 0; i < n; i++) z[i] = powf(x[i], y[i]); }

// ld_expf_range evaluates expf on every float whose bits lie in [lo, hi) and
// stores the result bits.
static void ld_expf_bits(uint32_t lo, uint32_t n, uint32_t *out) {
    for (uint32_t i = 0; i < n; i++) { union { uint32_t u; float f; } a, b; a.u = lo + i; b.f = expf(a.f); out[i] = b.u; }
}
static void ld_tanhf_bits(uint32_t lo, uint32_t n, uint32_t *out) {
    for (uint32_t i = 0; i < n; i++) { union { uint32_t u; float f; } a, b; a.u = lo + i; b.f = tanhf(a.f); out[i] = b.u; }
}
static void ld_sincosf_bits(uint32_t lo, uint32_t n, uint32_t *s, uint32_t *c) {
    for (uint32_t i = 0; i < n; i++) { union { uint32_t u; float f; } a, b, d; a.u = lo + i; sincosf(a.f, &b.f, &d.f); s[i] = b.u; c[i] = d.u; }
}
*/
import "C"

import "unsafe"

// Expf is libm's expf on every element.
func Expf(x []float32) []float32 {
	y := make([]float32, len(x))
	if len(x) > 0 {
		C.ld_expf((*C.float)(unsafe.Pointer(&x[0])), (*C.float)(unsafe.Pointer(&y[0])), C.int64_t(len(x)))
	}
	return y
}

// Sincosf is libm's sincosf on every element.
func Sincosf(x []float32) (sin, cos []float32) {
	sin, cos = make([]float32, len(x)), make([]float32, len(x))
	if len(x) > 0 {
		C.ld_sincosf((*C.float)(unsafe.Pointer(&x[0])), (*C.float)(unsafe.Pointer(&sin[0])), (*C.float)(unsafe.Pointer(&cos[0])), C.int64_t(len(x)))
	}
	return sin, cos
}

// Powf is libm's powf on every pair.
func Powf(x, y []float32) []float32 {
	z := make([]float32, len(x))
	if len(x) > 0 && len(y) == len(x) {
		C.ld_powf((*C.float)(unsafe.Pointer(&x[0])), (*C.float)(unsafe.Pointer(&y[0])), (*C.float)(unsafe.Pointer(&z[0])), C.int64_t(len(x)))
	}
	return z
}

// ExpfBits evaluates libm's expf on the n floats whose bit patterns start at
// lo, into out (len(out) >= n), as bit patterns.
func ExpfBits(lo uint32, out []uint32) {
	if len(out) > 0 {
		C.ld_expf_bits(C.uint32_t(lo), C.uint32_t(len(out)), (*C.uint32_t)(unsafe.Pointer(&out[0])))
	}
}

// TanhfBits evaluates libm's tanhf on the len(out) floats whose bit patterns
// start at lo, as bit patterns.
func TanhfBits(lo uint32, out []uint32) {
	if len(out) > 0 {
		C.ld_tanhf_bits(C.uint32_t(lo), C.uint32_t(len(out)), (*C.uint32_t)(unsafe.Pointer(&out[0])))
	}
}

// SincosfBits evaluates libm's sincosf on the len(s) floats whose bit
// patterns start at lo.
func SincosfBits(lo uint32, s, c []uint32) {
	if len(s) > 0 && len(c) == len(s) {
		C.ld_sincosf_bits(C.uint32_t(lo), C.uint32_t(len(s)), (*C.uint32_t)(unsafe.Pointer(&s[0])), (*C.uint32_t)(unsafe.Pointer(&c[0])))
	}
}
