//go:build llamacpp

package llamacpp

/*
#include <stdlib.h>
#include "ggml.h"
#include "gguf.h"

static struct gguf_context *ld_gguf_open(const char *path, struct ggml_context **meta) {
    struct gguf_init_params p = { .no_alloc = true, .ctx = meta };
    return gguf_init_from_file(path, p);
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// GGUFListing is what ggml's own GGUF reader (gguf_init_from_file, the
// reader llama.cpp loads models with) sees in a file.
type GGUFListing struct {
	Version    uint32
	Alignment  uint64
	DataOffset uint64
	Keys       []string
	KeyTypes   []int // enum gguf_type
	Tensors    []GGUFTensor
}

// GGUFTensor is one tensor info as ggml reads it.
type GGUFTensor struct {
	Name   string
	Type   int
	Ne     [4]int64
	Offset uint64 // relative to the data section
	Size   uint64
}

// ReadGGUF lists a GGUF file with ggml's reader (metadata only).
func ReadGGUF(path string) (*GGUFListing, error) {
	Init()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var meta *C.struct_ggml_context
	g := C.ld_gguf_open(cpath, &meta)
	if g == nil {
		return nil, fmt.Errorf("ggml's gguf reader rejects %s", path)
	}
	defer C.gguf_free(g)
	if meta != nil {
		defer C.ggml_free(meta)
	}
	l := &GGUFListing{
		Version:    uint32(C.gguf_get_version(g)),
		Alignment:  uint64(C.gguf_get_alignment(g)),
		DataOffset: uint64(C.gguf_get_data_offset(g)),
	}
	for i := C.int64_t(0); i < C.gguf_get_n_kv(g); i++ {
		l.Keys = append(l.Keys, C.GoString(C.gguf_get_key(g, i)))
		l.KeyTypes = append(l.KeyTypes, int(C.gguf_get_kv_type(g, i)))
	}
	for i := C.int64_t(0); i < C.gguf_get_n_tensors(g); i++ {
		name := C.gguf_get_tensor_name(g, i)
		t := GGUFTensor{
			Name:   C.GoString(name),
			Type:   int(C.gguf_get_tensor_type(g, i)),
			Offset: uint64(C.gguf_get_tensor_offset(g, i)),
			Size:   uint64(C.gguf_get_tensor_size(g, i)),
		}
		if meta != nil {
			if tt := C.ggml_get_tensor(meta, name); tt != nil {
				for d := 0; d < 4; d++ {
					t.Ne[d] = int64(tt.ne[d])
				}
			}
		}
		l.Tensors = append(l.Tensors, t)
	}
	return l, nil
}
