//go:build llamacpp

// Package llamacpp binds the llama.cpp and ggml that the ollama module carries
// (built from source through cgo) for the parts of layerdiff that must run real
// llama.cpp: reference dumps, quantization of fixtures and differential tests.
//
// It is only compiled with the build tag "llamacpp" and needs CGO_CPPFLAGS to
// name the llama.cpp and ggml include directories (the Makefile sets them).
package llamacpp

/*
#cgo CXXFLAGS: -std=c++17
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/cgo"
	"strings"
	"sync"
	"unsafe"

	_ "github.com/ollama/ollama/llama/llama.cpp/src"
	ggml "github.com/ollama/ollama/ml/backend/ggml/ggml/src"
)

// Version describes the llama.cpp that is compiled in.
const Version = "llama.cpp ec98e2002 (github.com/ollama/ollama v0.17.4)"

// ModuleVersion is the Go module that carries the compiled llama.cpp.
const ModuleVersion = "github.com/ollama/ollama@v0.17.4"

// Commit is the llama.cpp commit vendored by ModuleVersion.
const Commit = "ec98e2002"

var initOnce sync.Once

// Init loads the ggml backends and initialises llama.cpp once per process.
// It is called by every entry point of this package.
func Init() {
	initOnce.Do(func() {
		prev := slog.Default()
		slog.SetDefault(slog.New(slog.DiscardHandler))
		ggml.OnceLoad()
		slog.SetDefault(prev)
		C.ld_log_quiet(C.bool(true))
		C.llama_backend_init()
	})
}

// SetVerbose makes llama.cpp's log visible on stderr (errors always are).
func SetVerbose(v bool) {
	Init()
	C.ld_log_quiet(C.bool(!v))
}

// SystemInfo returns llama_print_system_info: the CPU features compiled in.
func SystemInfo() string {
	Init()
	return C.GoString(C.llama_print_system_info())
}

// Model is a loaded llama.cpp model.
type Model struct {
	m *C.struct_llama_model
}

// LoadModel loads a GGUF file on the CPU.
func LoadModel(path string) (*Model, error) {
	Init()
	p := C.llama_model_default_params()
	p.n_gpu_layers = 0
	p.use_mmap = true
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	C.ld_errors_clear()
	m := C.llama_model_load_from_file(cpath, p)
	if m == nil {
		return nil, fmt.Errorf("llama.cpp could not load model %s%s", path, loggedErrors())
	}
	return &Model{m: m}, nil
}

// loggedErrors returns the error lines llama.cpp logged since the last
// ld_errors_clear as ": line; line", or "" if none.
func loggedErrors() string {
	var lines []string
	for _, l := range strings.Split(C.GoString(C.ld_errors()), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return ": " + strings.Join(lines, "; ")
}

// Close frees the model.
func (m *Model) Close() {
	if m.m != nil {
		C.llama_model_free(m.m)
		m.m = nil
	}
}

// NVocab is the vocabulary size.
func (m *Model) NVocab() int {
	return int(C.llama_vocab_n_tokens(C.llama_model_get_vocab(m.m)))
}

// NEmbd is the embedding length.
func (m *Model) NEmbd() int { return int(C.llama_model_n_embd(m.m)) }

// Desc is llama.cpp's one-line model description.
func (m *Model) Desc() string {
	buf := make([]byte, 256)
	n := C.llama_model_desc(m.m, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	if n < 0 {
		return ""
	}
	return string(buf[:min(int(n), len(buf)-1)])
}

// Meta returns a metadata value as llama.cpp reads it, and whether it exists.
func (m *Model) Meta(key string) (string, bool) {
	ckey := C.CString(key)
	defer C.free(unsafe.Pointer(ckey))
	buf := make([]byte, 4096)
	n := C.llama_model_meta_val_str(m.m, ckey, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	if n < 0 {
		return "", false
	}
	return string(buf[:min(int(n), len(buf)-1)]), true
}

// Tokenize runs llama.cpp's tokenizer. addSpecial adds BOS/EOS as the vocab
// says; parseSpecial lets control-token text map to control tokens.
func (m *Model) Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error) {
	vocab := C.llama_model_get_vocab(m.m)
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	n := len(text) + 8
	for tries := 0; tries < 2; tries++ {
		out := make([]C.llama_token, n)
		var p *C.llama_token
		if n > 0 {
			p = &out[0]
		}
		got := C.llama_tokenize(vocab, ctext, C.int32_t(len(text)), p, C.int32_t(n), C.bool(addSpecial), C.bool(parseSpecial))
		if got >= 0 {
			res := make([]int32, int(got))
			for i := range res {
				res[i] = int32(out[i])
			}
			return res, nil
		}
		n = int(-got)
	}
	return nil, errors.New("llama_tokenize failed")
}

// ContextOptions configures a llama.cpp context.
type ContextOptions struct {
	NCtx      int    // context length; 0 = number of tokens rounded up
	NBatch    int    // logical and physical batch size; 0 = NCtx
	Threads   int    // 0 = 2
	FlashAttn string // "auto", "on" or "off"
	TypeK     int    // ggml type of the K cache (1 = F16, 0 = F32)
	TypeV     int    // ggml type of the V cache
}

// Context is a llama.cpp inference context with an eval callback.
type Context struct {
	c      *C.struct_llama_context
	model  *Model
	handle cgo.Handle
	state  *evalState
	opts   ContextOptions
}

// Node is one graph node as computed by llama.cpp.
type Node struct {
	Name     string
	Op       string
	Type     int
	Ne       [4]int64
	Nb       [4]uint64
	Src      []string
	ViewSrc  string
	ViewOffs uint64
	IsView   bool
	// Data is a copy of the tensor's ggml_nbytes bytes (nil when the node
	// has no data). It is only valid during the callback.
	Data []byte
}

type evalState struct {
	want func(name string) bool
	node func(n *Node) error
	err  error
}

//export layerdiffWant
func layerdiffWant(h C.uintptr_t, name *C.char) C.int {
	st := cgo.Handle(h).Value().(*evalState)
	if st.err != nil || st.node == nil {
		return 0
	}
	if st.want == nil || st.want(C.GoString(name)) {
		return 1
	}
	return 0
}

//export layerdiffNode
func layerdiffNode(h C.uintptr_t, n *C.ld_node) C.int {
	st := cgo.Handle(h).Value().(*evalState)
	if st.err != nil || st.node == nil {
		return 0
	}
	node := Node{
		Name:     C.GoString(n.name),
		Op:       C.GoString(n.op),
		Type:     int(n._type),
		ViewOffs: uint64(n.view_offs),
		IsView:   bool(n.is_view),
	}
	for i := 0; i < 4; i++ {
		node.Ne[i] = int64(n.ne[i])
		node.Nb[i] = uint64(n.nb[i])
	}
	for i := 0; i < int(n.n_src); i++ {
		node.Src = append(node.Src, C.GoString(n.src[i]))
	}
	if n.view_src != nil {
		node.ViewSrc = C.GoString(n.view_src)
	}
	if n.data != nil && n.nbytes > 0 {
		node.Data = unsafe.Slice((*byte)(n.data), int(n.nbytes))
	}
	if err := st.node(&node); err != nil {
		st.err = err
		return 0
	}
	return 1
}

// NewContext creates a context for m.
func NewContext(m *Model, o ContextOptions) (*Context, error) {
	st := &evalState{}
	h := cgo.NewHandle(st)
	p := C.llama_context_default_params()
	if o.NCtx <= 0 {
		o.NCtx = 256
	}
	if o.NBatch <= 0 {
		o.NBatch = o.NCtx
	}
	if o.Threads <= 0 {
		o.Threads = 2
	}
	p.n_ctx = C.uint32_t(o.NCtx)
	p.n_batch = C.uint32_t(o.NBatch)
	p.n_ubatch = C.uint32_t(o.NBatch)
	p.n_seq_max = 1
	p.n_threads = C.int32_t(o.Threads)
	p.n_threads_batch = C.int32_t(o.Threads)
	p.no_perf = true
	switch o.FlashAttn {
	case "", "auto":
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_AUTO
	case "on":
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_ENABLED
	case "off":
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_DISABLED
	default:
		h.Delete()
		return nil, fmt.Errorf("flash attention must be auto, on or off, not %q", o.FlashAttn)
	}
	p.type_k = C.enum_ggml_type(o.TypeK)
	p.type_v = C.enum_ggml_type(o.TypeV)
	C.ld_errors_clear()
	c := C.ld_init_from_model(m.m, p, C.uintptr_t(h))
	if c == nil {
		h.Delete()
		return nil, errors.New("llama.cpp could not create a context" + loggedErrors())
	}
	return &Context{c: c, model: m, handle: h, state: st, opts: o}, nil
}

// Close frees the context.
func (c *Context) Close() {
	if c.c != nil {
		C.llama_free(c.c)
		c.c = nil
		c.handle.Delete()
	}
}

// Eval decodes tokens from position 0 in batches of the context's batch size,
// requesting logits for every position. For each node it computes, want is
// asked first (nil = every node) and node is called with its data. An error
// from node stops the evaluation and is returned.
func (c *Context) Eval(tokens []int32, want func(name string) bool, node func(n *Node) error) error {
	if len(tokens) == 0 {
		return errors.New("no tokens to evaluate")
	}
	if len(tokens) > c.opts.NCtx {
		return fmt.Errorf("%d tokens do not fit a context of %d", len(tokens), c.opts.NCtx)
	}
	c.state.want, c.state.node, c.state.err = want, node, nil
	defer func() { c.state.want, c.state.node = nil, nil }()
	C.llama_memory_clear(C.llama_get_memory(c.c), C.bool(true))
	toks := make([]C.llama_token, len(tokens))
	for i, t := range tokens {
		toks[i] = C.llama_token(t)
	}
	rc := C.ld_eval(c.c, &toks[0], C.int(len(toks)), C.int(c.opts.NBatch), C.uintptr_t(c.handle))
	if c.state.err != nil {
		return c.state.err
	}
	if rc != 0 {
		return fmt.Errorf("llama_decode returned %d", int(rc))
	}
	return nil
}

// Logits returns a copy of the logits of output i (every position is an output).
func (c *Context) Logits(i int) []float32 {
	p := C.llama_get_logits_ith(c.c, C.int32_t(i))
	if p == nil {
		return nil
	}
	n := c.model.NVocab()
	out := make([]float32, n)
	copy(out, unsafe.Slice((*float32)(unsafe.Pointer(p)), n))
	return out
}

// ExtraBufts returns the names of the CPU device's extra buffer types
// (CPU_REPACK, AMX, CPU_KLEIDIAI …), asked as llama.cpp's
// make_cpu_buft_list asks: the buffers weights may be repacked into.
// Never nil; empty when the backend offers none.
func ExtraBufts() []string {
	Init()
	var names [32]*C.char
	n := int(C.ld_extra_bufts(&names[0], C.int(len(names))))
	out := make([]string, 0, n)
	for i := 0; i < min(n, len(names)); i++ {
		out = append(out, C.GoString(names[i]))
	}
	return out
}
