//go:build llamacpp

package llamacpp

/*
#include <stdlib.h>
#include "shim.h"

static int ld_to_float(int type, const void *src, float *dst, int64_t n) {
    const struct ggml_type_traits *tr = ggml_get_type_traits((enum ggml_type)type);
    if (tr == NULL || tr->to_float == NULL) return -1;
    tr->to_float(src, dst, n);
    return 0;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// TypeName is ggml_type_name.
func TypeName(t int) string {
	Init()
	return C.GoString(C.ggml_type_name(C.enum_ggml_type(t)))
}

// BlockSize is ggml_blck_size: values per block.
func BlockSize(t int) int { Init(); return int(C.ggml_blck_size(C.enum_ggml_type(t))) }

// TypeSize is ggml_type_size: bytes per block.
func TypeSize(t int) int { Init(); return int(C.ggml_type_size(C.enum_ggml_type(t))) }

// QuantizeChunk quantizes nrows rows of nPerRow values with ggml's reference
// quantizer (ggml_quantize_chunk), as llama.cpp does when it writes a model.
// Types whose quantizer requires an importance matrix
// (ggml_quantize_requires_imatrix: IQ2_XXS, IQ2_XS, IQ1_S) get a flat one of
// ones.
func QuantizeChunk(t int, src []float32, nrows, nPerRow int) ([]byte, error) {
	Init()
	if nrows*nPerRow != len(src) {
		return nil, fmt.Errorf("quantize: %d values are not %d rows of %d", len(src), nrows, nPerRow)
	}
	bs := BlockSize(t)
	if bs <= 0 || nPerRow%bs != 0 {
		return nil, fmt.Errorf("quantize %s: row length %d is not a multiple of the block size %d", TypeName(t), nPerRow, bs)
	}
	ct := C.enum_ggml_type(t)
	C.ggml_quantize_init(ct)
	var imat *C.float
	if bool(C.ggml_quantize_requires_imatrix(ct)) {
		ones := (*C.float)(C.malloc(C.size_t(4 * nPerRow)))
		defer C.free(unsafe.Pointer(ones))
		s := unsafe.Slice((*float32)(unsafe.Pointer(ones)), nPerRow)
		for i := range s {
			s[i] = 1
		}
		imat = ones
	}
	rowSize := int(C.ggml_row_size(ct, C.int64_t(nPerRow)))
	out := C.malloc(C.size_t(rowSize * nrows))
	defer C.free(out)
	csrc := C.malloc(C.size_t(4 * len(src)))
	defer C.free(csrc)
	copy(unsafe.Slice((*float32)(csrc), len(src)), src)
	n := C.ggml_quantize_chunk(ct, (*C.float)(csrc), out, 0, C.int64_t(nrows), C.int64_t(nPerRow), imat)
	if int(n) != rowSize*nrows {
		return nil, fmt.Errorf("quantize %s: wrote %d bytes, want %d", TypeName(t), int(n), rowSize*nrows)
	}
	return C.GoBytes(out, C.int(n)), nil
}

// ToFloat dequantizes n values of type t with ggml's to_float.
func ToFloat(t int, data []byte, n int) ([]float32, error) {
	Init()
	if len(data) == 0 || n == 0 {
		return nil, fmt.Errorf("to_float %s: no data", TypeName(t))
	}
	dst := (*C.float)(C.malloc(C.size_t(4 * n)))
	defer C.free(unsafe.Pointer(dst))
	src := C.CBytes(data)
	defer C.free(src)
	if C.ld_to_float(C.int(t), src, dst, C.int64_t(n)) != 0 {
		return nil, fmt.Errorf("to_float: type %s has no dequantizer", TypeName(t))
	}
	out := make([]float32, n)
	copy(out, unsafe.Slice((*float32)(unsafe.Pointer(dst)), n))
	return out, nil
}

// QuantizeModel runs llama_model_quantize (what llama-quantize does) with the
// given llama_ftype: Quantize with the ftype's own tensor mix and, for the
// ftypes that need one (NeedsImatrix), an importance matrix computed from in.
func QuantizeModel(in, out string, ftype int, threads int) error {
	return Quantize(in, out, QuantizeParams{Ftype: ftype, Threads: threads})
}
