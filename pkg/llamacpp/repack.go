//go:build llamacpp

package llamacpp

/*
#include <stdint.h>
#include <stdlib.h>

// ggml-cpu/repack.h (extern "C"; compiled into every build, with or without
// GGML_USE_CPU_REPACK): the activation quantizers of the repacked GEMMs.
void ggml_quantize_mat_q8_0_4x8(const float * x, void * vy, int64_t k);
void ggml_quantize_mat_q8_K_4x8(const float * x, void * vy, int64_t k);
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

// Type numbers of the two quantizers' output (enum ggml_type).
const (
	typeQ8_0 = 8
	typeQ8_K = 15
)

// QuantizeMat4x8 runs ggml-cpu's ggml_quantize_mat_q8_0_4x8 (t = 8, Q8_0)
// or ggml_quantize_mat_q8_K_4x8 (t = 15, Q8_K) — the quantizer of the CPU
// repack buffers' GEMM for four activation rows — on rows (four of the
// same length, a multiple of the block size) and returns each row's
// blocks de-interleaved into the ordinary block_q8_0 / block_q8_K layout.
func QuantizeMat4x8(t int, rows [4][]float32) ([4][]byte, error) {
	var out [4][]byte
	cpuInit()
	bs, rb := 32, 34
	if t == typeQ8_K {
		bs, rb = 256, 292
	} else if t != typeQ8_0 {
		return out, fmt.Errorf("quantize_mat_4x8: type %d is neither Q8_0 nor Q8_K", t)
	}
	k := len(rows[0])
	for _, r := range rows {
		if len(r) != k || k == 0 || k%bs != 0 {
			return out, fmt.Errorf("quantize_mat_4x8: want four rows of the same length, a multiple of %d", bs)
		}
	}
	nb := k / bs
	x := (*C.float)(C.malloc(C.size_t(4 * 4 * k)))
	defer C.free(unsafe.Pointer(x))
	xs := unsafe.Slice((*float32)(unsafe.Pointer(x)), 4*k)
	for r := range rows {
		copy(xs[r*k:], rows[r])
	}
	size := 4 * nb * rb
	y := C.calloc(C.size_t(size), 1)
	defer C.free(y)
	if t == typeQ8_K {
		C.ggml_quantize_mat_q8_K_4x8(x, y, C.int64_t(k))
	} else {
		C.ggml_quantize_mat_q8_0_4x8(x, y, C.int64_t(k))
	}
	ys := C.GoBytes(y, C.int(size))
	for r := range out {
		out[r] = make([]byte, nb*rb)
	}
	for b := 0; b < nb; b++ {
		blk := ys[b*4*rb : (b+1)*4*rb]
		if t == typeQ8_0 {
			// block_q8_0x4: ggml_half d[4]; int8 qs[128], eight values of
			// each row in turn
			for r := 0; r < 4; r++ {
				copy(out[r][b*rb:], blk[2*r:2*r+2])
			}
			for j := 0; j < 128; j++ {
				r, e := (j%32)/8, (j/32)*8+j%8
				out[r][b*rb+2+e] = blk[8+j]
			}
			continue
		}
		// block_q8_Kx4: float d[4]; int8 qs[1024] as above; int16
		// bsums[64], four sums of 16 of each row in turn
		for r := 0; r < 4; r++ {
			copy(out[r][b*rb:], blk[4*r:4*r+4])
		}
		for j := 0; j < 1024; j++ {
			r, e := (j%32)/8, (j/32)*8+j%8
			out[r][b*rb+4+e] = blk[16+j]
		}
		for r := 0; r < 4; r++ {
			for g := 0; g < 16; g++ {
				v := binary.LittleEndian.Uint16(blk[16+1024+2*((g/4)*16+r*4+g%4):])
				binary.LittleEndian.PutUint16(out[r][b*rb+260+2*g:], v)
			}
		}
	}
	return out, nil
}
