//go:build llamacpp

package llamacpp

/*
#include <stdlib.h>
#include <string.h>
#include "ggml.h"
#include "ggml-cpu.h"

// ggml-quants.c exports this (GGML_API in the internal ggml-quants.h); Q8_K
// has no to_float in ggml's type_traits, so it is declared here to test it.
void dequantize_row_q8_K(const void * x, float * y, int64_t k);

// ld_cpu_from_float runs ggml-cpu's type_traits_cpu[type].from_float, the
// quantizer MUL_MAT applies to activations (x86 SIMD where the build has it).
static int ld_cpu_from_float(int type, const float *src, void *dst, int64_t n) {
    const struct ggml_type_traits_cpu *tr = ggml_get_type_traits_cpu((enum ggml_type)type);
    if (tr == NULL || tr->from_float == NULL) return -1;
    tr->from_float(src, dst, n);
    return 0;
}

// ld_from_float_ref runs ggml-base's type_traits[type].from_float_ref.
static int ld_from_float_ref(int type, const float *src, void *dst, int64_t n) {
    const struct ggml_type_traits *tr = ggml_get_type_traits((enum ggml_type)type);
    if (tr == NULL || tr->from_float_ref == NULL) return -1;
    tr->from_float_ref(src, dst, n);
    return 0;
}

static int ld_vec_dot_type(int type) {
    const struct ggml_type_traits_cpu *tr = ggml_get_type_traits_cpu((enum ggml_type)type);
    if (tr == NULL) return -1;
    return (int)tr->vec_dot_type;
}
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

var cpuOnce sync.Once

// cpuInit runs ggml_cpu_init once (it fills ggml-cpu's conversion tables).
func cpuInit() { cpuOnce.Do(func() { C.ggml_cpu_init() }) }

// quantBuffers checks that src is a whole number of blocks of type t and
// returns C copies of src and a zeroed destination of the matching size.
func quantBuffers(what string, t int, src []float32) (csrc *C.float, dst unsafe.Pointer, size int, err error) {
	Init()
	bs := BlockSize(t)
	if bs <= 0 || len(src) == 0 || len(src)%bs != 0 {
		return nil, nil, 0, fmt.Errorf("%s %s: %d values are not a whole number of blocks of %d", what, TypeName(t), len(src), bs)
	}
	size = len(src) / bs * TypeSize(t)
	csrc = (*C.float)(C.malloc(C.size_t(4 * len(src))))
	copy(unsafe.Slice((*float32)(unsafe.Pointer(csrc)), len(src)), src)
	dst = C.calloc(C.size_t(size), 1)
	return csrc, dst, size, nil
}

// CPUFromFloat quantizes src to type t with ggml-cpu's from_float
// (ggml_get_type_traits_cpu(t)->from_float): the quantizer that MUL_MAT
// applies to activations, in the SIMD variant this build runs. The output
// buffer is zeroed first (quantize_row_q8_K leaves bsums of all-zero blocks
// unwritten).
func CPUFromFloat(t int, src []float32) ([]byte, error) {
	csrc, dst, size, err := quantBuffers("cpu from_float", t, src)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(csrc))
	defer C.free(dst)
	cpuInit()
	if C.ld_cpu_from_float(C.int(t), csrc, dst, C.int64_t(len(src))) != 0 {
		return nil, fmt.Errorf("cpu from_float: type %s has none", TypeName(t))
	}
	return C.GoBytes(dst, C.int(size)), nil
}

// FromFloatRef quantizes src to type t with ggml's reference quantizer
// (ggml_get_type_traits(t)->from_float_ref, e.g. quantize_row_q8_0_ref).
func FromFloatRef(t int, src []float32) ([]byte, error) {
	csrc, dst, size, err := quantBuffers("from_float_ref", t, src)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(csrc))
	defer C.free(dst)
	if C.ld_from_float_ref(C.int(t), csrc, dst, C.int64_t(len(src))) != 0 {
		return nil, fmt.Errorf("from_float_ref: type %s has none", TypeName(t))
	}
	return C.GoBytes(dst, C.int(size)), nil
}

// VecDotType is ggml_get_type_traits_cpu(t)->vec_dot_type: the type MUL_MAT
// converts activations to for a weight of type t.
func VecDotType(t int) int {
	Init()
	cpuInit()
	return int(C.ld_vec_dot_type(C.int(t)))
}

// DequantizeQ8K runs ggml's dequantize_row_q8_K on n values (Q8_K has no
// to_float in ggml's type traits).
func DequantizeQ8K(data []byte, n int) ([]float32, error) {
	Init()
	const qk, size = 256, 292
	if n <= 0 || n%qk != 0 || len(data) != n/qk*size {
		return nil, fmt.Errorf("dequantize q8_K: %d bytes for %d values, want %d", len(data), n, n/qk*size)
	}
	src := C.CBytes(data)
	defer C.free(src)
	dst := (*C.float)(C.malloc(C.size_t(4 * n)))
	defer C.free(unsafe.Pointer(dst))
	C.dequantize_row_q8_K(src, dst, C.int64_t(n))
	out := make([]float32, n)
	copy(out, unsafe.Slice((*float32)(unsafe.Pointer(dst)), n))
	return out, nil
}

// halfConv runs one of ggml's float32 -> 16-bit row conversions.
func halfConv(src []float32, f func(*C.float, unsafe.Pointer, C.int64_t)) []uint16 {
	Init()
	if len(src) == 0 {
		return nil
	}
	csrc := (*C.float)(C.malloc(C.size_t(4 * len(src))))
	defer C.free(unsafe.Pointer(csrc))
	copy(unsafe.Slice((*float32)(unsafe.Pointer(csrc)), len(src)), src)
	dst := C.calloc(C.size_t(len(src)), 2)
	defer C.free(dst)
	f(csrc, dst, C.int64_t(len(src)))
	out := make([]uint16, len(src))
	copy(out, unsafe.Slice((*uint16)(dst), len(src)))
	return out
}

// FP32ToFP16 is ggml_fp32_to_fp16_row (ggml-base, the portable
// ggml_compute_fp32_to_fp16).
func FP32ToFP16(src []float32) []uint16 {
	return halfConv(src, func(s *C.float, d unsafe.Pointer, n C.int64_t) {
		C.ggml_fp32_to_fp16_row(s, (*C.ggml_fp16_t)(d), n)
	})
}

// CPUFP32ToFP16 is ggml_cpu_fp32_to_fp16 (ggml-cpu: F16C on x86).
func CPUFP32ToFP16(src []float32) []uint16 {
	cpuInit()
	return halfConv(src, func(s *C.float, d unsafe.Pointer, n C.int64_t) {
		C.ggml_cpu_fp32_to_fp16(s, (*C.ggml_fp16_t)(d), n)
	})
}

// FP32ToBF16Ref is ggml_fp32_to_bf16_row_ref (ggml_compute_fp32_to_bf16).
func FP32ToBF16Ref(src []float32) []uint16 {
	return halfConv(src, func(s *C.float, d unsafe.Pointer, n C.int64_t) {
		C.ggml_fp32_to_bf16_row_ref(s, (*C.ggml_bf16_t)(d), n)
	})
}
