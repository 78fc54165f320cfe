//go:build llamacpp

package llamacpp

/*
#include <stdint.h>
#include <string.h>
#include "ggml-cpu.h"

// ggml-cpu's vec.cpp defines the GELU lookup table that ggml_vec_gelu_f32
// and ggml_vec_geglu_f32 read (GGML_GELU_FP16); ggml_cpu_init fills it.
extern uint16_t ggml_table_gelu_f16[1 << 16];

static void ld_gelu_table(uint16_t *out) { memcpy(out, ggml_table_gelu_f16, sizeof(uint16_t) << 16); }
*/
import "C"

import "unsafe"

// GELUTableF16 returns ggml-cpu's GELU table as this build computed it:
// entry i is fp16(ggml_gelu_f32(f32(fp16 bits i))), the value GELU and GEGLU
// take for an input that rounds to fp16 bits i.
func GELUTableF16() []uint16 {
	cpuInit()
	out := make([]uint16, 1<<16)
	C.ld_gelu_table((*C.uint16_t)(unsafe.Pointer(&out[0])))
	return out
}
