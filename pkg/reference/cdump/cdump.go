//go:build llamacpp

package cdump

/*
// layerdiff-dump.h is a symbolic link to tools/llamacpp-dump/layerdiff-dump.c:
// the go command hashes the .h files of a package into its build cache key,
// so an edit of the C file rebuilds this package (a file included from
// outside the package directory would not).
#define LAYERDIFF_LLAMACPP_COMMIT "ec98e2002"
#define LAYERDIFF_LLAMACPP_SOURCE "github.com/ollama/ollama@v0.17.4"
#define main layerdiff_dump_main
#include "layerdiff-dump.h"
#undef main
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
)

// ToolVersion is the layerdiff_version the C dumper writes.
const ToolVersion = C.LD_TOOL_VERSION

// The C dumper keeps its log verbosity in static variables and installs
// llama.cpp's process-wide log callback: one run at a time.
var mu sync.Mutex

// Main runs the C dumper's main with args (args[0] is the program name, as
// in argv) and returns its exit status: 0 dump written, 1 failure, 2 bad
// usage. It initialises llama.cpp's backends first, as layerdiff does.
func Main(args ...string) int {
	llamacpp.Init()
	mu.Lock()
	defer mu.Unlock()
	argv := C.malloc(C.size_t(len(args)+1) * C.size_t(unsafe.Sizeof((*C.char)(nil))))
	if argv == nil {
		return 1
	}
	defer C.free(argv)
	ptrs := unsafe.Slice((**C.char)(argv), len(args)+1)
	for i, a := range args {
		ptrs[i] = C.CString(a)
		defer C.free(unsafe.Pointer(ptrs[i]))
	}
	ptrs[len(args)] = nil
	return int(C.layerdiff_dump_main(C.int(len(args)), (**C.char)(argv)))
}

func cErr(e *C.ld_err) error {
	return errors.New(C.GoString(&e.msg[0]))
}

// NodeFileName is the C dumper's node_file_name: the .npy file name of
// node index with key (see reference.NodeFileName). Keys must not contain
// NUL bytes.
func NodeFileName(index int, key string) (string, error) {
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	var e C.ld_err
	p := C.node_file_name(C.size_t(index), ck, &e)
	if p == nil {
		return "", cErr(&e)
	}
	defer C.free(unsafe.Pointer(p))
	return C.GoString(p), nil
}

// sbufString returns the contents of a C sbuf and frees it.
func sbufString(b *C.sbuf) (string, error) {
	defer C.free(unsafe.Pointer(b.p))
	if b.oom {
		return "", errors.New("out of memory")
	}
	return C.GoStringN(b.p, C.int(b.len)), nil
}

// JSONString is the C dumper's sb_json_str: s as a JSON string literal.
// s must not contain NUL bytes.
func JSONString(s string) (string, error) {
	cs := C.CString(s)
	defer C.free(unsafe.Pointer(cs))
	var b C.sbuf
	C.sb_json_str(&b, cs)
	return sbufString(&b)
}

// JSONFloat64 is the C dumper's sb_json_f64: the shortest decimal that
// reads back as v, or "NaN", "Infinity", "-Infinity" as JSON strings.
func JSONFloat64(v float64) (string, error) {
	var b C.sbuf
	C.sb_json_f64(&b, C.double(v))
	return sbufString(&b)
}

// JSONFloat32 is the C dumper's sb_json_f32: the shortest decimal that
// reads back as the float32 v.
func JSONFloat32(v float32) (string, error) {
	var b C.sbuf
	C.sb_json_f32(&b, C.float(v))
	return sbufString(&b)
}

// NPYHeader is the C dumper's npy_header: the .npy header of a node of
// ggml shape ne stored with dtype descr.
func NPYHeader(descr string, ne [4]int64) ([]byte, error) {
	cd := C.CString(descr)
	defer C.free(unsafe.Pointer(cd))
	var cne [4]C.int64_t
	for i, d := range ne {
		cne[i] = C.int64_t(d)
	}
	var b C.sbuf
	if !C.npy_header(cd, &cne[0], &b) {
		C.free(unsafe.Pointer(b.p))
		return nil, errors.New("npy_header failed")
	}
	s, err := sbufString(&b)
	return []byte(s), err
}

// FileSHA256 is the C dumper's file_sha256: the lowercase hex SHA-256 of a
// file and its size.
func FileSHA256(path string) (string, int64, error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var hex [65]C.char
	var size C.uint64_t
	var e C.ld_err
	if !C.file_sha256(cp, &hex[0], &size, &e) {
		return "", 0, fmt.Errorf("file_sha256: %w", cErr(&e))
	}
	return C.GoString(&hex[0]), int64(size), nil
}

// Gather runs the C dumper's gather on a tensor of ggml type typ with shape
// ne and byte strides nb whose bytes (ggml_nbytes of them) are data. It
// returns the npy dtype and the bytes the dumper would store, and the
// values as floats.
func Gather(typ int, ne [4]int64, nb [4]uint64, data []byte) (descr string, out []byte, vals []float32, err error) {
	d := (*C.dumper)(C.calloc(1, C.size_t(unsafe.Sizeof(C.dumper{}))))
	if d == nil {
		return "", nil, nil, errors.New("out of memory")
	}
	defer C.free(unsafe.Pointer(d))
	defer C.dumper_free(d)
	t := (*C.struct_ggml_tensor)(C.calloc(1, C.size_t(unsafe.Sizeof(C.struct_ggml_tensor{}))))
	if t == nil {
		return "", nil, nil, errors.New("out of memory")
	}
	defer C.free(unsafe.Pointer(t))
	t._type = uint32(typ)
	for i := range ne {
		t.ne[i] = C.int64_t(ne[i])
		t.nb[i] = C.size_t(nb[i])
	}
	cdata := C.CBytes(append(data, 0)) // never empty
	defer C.free(cdata)
	var cout *C.uchar
	var outLen, numel C.size_t
	var cdescr *C.char
	if !C.gather(d, t, (*C.uchar)(cdata), C.size_t(len(data)), &cout, &outLen, &numel, &cdescr) {
		return "", nil, nil, cErr(&d.err)
	}
	vals = make([]float32, int(numel))
	if numel > 0 {
		copy(vals, unsafe.Slice((*float32)(unsafe.Pointer(d.vals)), int(numel)))
	}
	return C.GoString(cdescr), C.GoBytes(unsafe.Pointer(cout), C.int(outLen)), vals, nil
}

// Stats are the C dumper's node statistics (compute_stats).
type Stats struct {
	Sum, Min, Max float64
	NaN, Inf      int64
}

// ComputeStats runs the C dumper's compute_stats on vals.
func ComputeStats(vals []float32) Stats {
	var nd C.dump_node
	var p *C.float
	if len(vals) > 0 {
		cv := C.CBytes(unsafe.Slice((*byte)(unsafe.Pointer(&vals[0])), 4*len(vals)))
		defer C.free(cv)
		p = (*C.float)(cv)
	}
	C.compute_stats(&nd, p, C.size_t(len(vals)))
	return Stats{Sum: float64(nd.sum), Min: float64(nd.min), Max: float64(nd.max), NaN: int64(nd.nan), Inf: int64(nd.inf)}
}

// HParamsJSON runs the C dumper's GGUF metadata reader on a file of the
// given size and returns the hparams object it writes to the manifest (the
// scalar "<arch>.*" metadata and general.file_type) and the architecture.
func HParamsJSON(path string, size int64) (obj, arch string, err error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var meta C.gguf_meta
	defer C.gguf_meta_free(&meta)
	var e C.ld_err
	if !C.gguf_read_meta(cp, C.uint64_t(size), &meta, &e) {
		return "", "", cErr(&e)
	}
	ak := C.CString("general.architecture")
	defer C.free(unsafe.Pointer(ak))
	empty := C.CString("")
	defer C.free(unsafe.Pointer(empty))
	ca, la := empty, C.size_t(0)
	if kv := C.gguf_find(&meta, ak); kv != nil && kv._type == C.GV_STRING {
		arch, ca, la = C.GoStringN(kv.s, C.int(kv.s_len)), kv.s, kv.s_len
	}
	var b C.sbuf
	if !C.sb_json_hparams(&b, &meta, ca, la, &e) {
		C.free(unsafe.Pointer(b.p))
		return "", "", cErr(&e)
	}
	obj, err = sbufString(&b)
	return obj, arch, err
}

// FlushStdio flushes the C library's output streams (fflush(NULL)), so
// that a test sees everything the C dumper wrote to stdout.
func FlushStdio() {
	C.fflush(nil)
}
