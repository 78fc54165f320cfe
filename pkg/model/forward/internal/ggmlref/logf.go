//go:build llamacpp

package ggmlref

/*
#cgo LDFLAGS: -lm
#include <math.h>
#include <stdint.h>

static void ld_logf_bits(uint32_t lo, uint32_t n, uint32_t *out) {
    for (uint32_t i = 0; i < n; i++) { union { uint32_t u; float f; } a, b; a.u = lo + i; b.f = logf(a.f); out[i] = b.u; }
}
*/
import "C"

import "unsafe"

// LogfBits stores the bits of libm's logf of every float32 whose bits lie
// in [lo, lo+len(out)).
func LogfBits(lo uint32, out []uint32) {
	if len(out) > 0 {
		C.ld_logf_bits(C.uint32_t(lo), C.uint32_t(len(out)), (*C.uint32_t)(unsafe.Pointer(&out[0])))
	}
}
