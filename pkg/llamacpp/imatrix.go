//go:build llamacpp

package llamacpp

/*
#include <stdlib.h>
#include "shim.h"
#include "imatrix.h"
*/
import "C"

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"unsafe"
)

// Imatrix is an importance matrix as llama.cpp's quantizer takes it
// (llama_model_quantize_params.imatrix): for each weight, by tensor name,
// the mean over the evaluated tokens of the square of each input column
// (ne[0] values; ne[0]*ne[2] for stacked matrices).
type Imatrix map[string][]float32

// imatrixPrompt is the text ComputeImatrixFile evaluates: any text will do
// for a random-weight fixture; llama-imatrix is given a calibration file.
const imatrixPrompt = "The quick brown fox jumps over the lazy dog. " +
	"Importance matrices weigh each input column of a weight by how large its activations are, " +
	"so that the quantizer spends its few bits where they matter most. " +
	"One, two, three, four, five, six, seven, eight, nine, ten."

// minImatrixTokens is llama-imatrix's smallest useful batch (it skipped
// batches of fewer than 16 tokens).
const minImatrixTokens = 16

// ComputeImatrix evaluates tokens on m in one batch, as llama-imatrix does
// with its eval callback (IMatrixCollector::collect_imatrix): for every
// matrix product whose weight is named "blk.*", the float32 sum of x*x per
// column of the activations src1 over all rows, divided by the number of
// rows; for a MUL_MAT_ID (mixture of experts), per expert, over the rows
// routed to it.
func ComputeImatrix(m *Model, tokens []int32, threads int) (Imatrix, error) {
	Init()
	if len(tokens) == 0 {
		return nil, fmt.Errorf("imatrix: no tokens")
	}
	if threads <= 0 {
		threads = 2
	}
	im := C.ld_imatrix_new()
	defer C.ld_imatrix_free(im)
	toks := make([]C.llama_token, len(tokens))
	for i, t := range tokens {
		toks[i] = C.llama_token(t)
	}
	C.ld_errors_clear()
	if rc := C.ld_imatrix_collect(m.m, &toks[0], C.int(len(toks)), C.int(threads), im); rc != 0 {
		return nil, fmt.Errorf("imatrix: llama.cpp evaluation failed (%d)%s", int(rc), loggedErrors())
	}
	out := Imatrix{}
	for i := 0; i < int(C.ld_imatrix_count(im)); i++ {
		name := C.GoString(C.ld_imatrix_name(im, C.int(i)))
		v := make([]float32, int(C.ld_imatrix_len(im, C.int(i))))
		if len(v) > 0 {
			C.ld_imatrix_means(im, C.int(i), (*C.float)(unsafe.Pointer(&v[0])))
		}
		out[name] = v
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("imatrix: the model has no blk.* matrix products")
	}
	return out, nil
}

// ComputeImatrixFile loads the model in path and computes its importance
// matrix (ComputeImatrix) over a fixed English prompt tokenized by the
// model's own tokenizer, with BOS, repeated to at least 64 tokens (capped
// by the model's training context).
func ComputeImatrixFile(path string, threads int) (Imatrix, error) {
	m, err := LoadModel(path)
	if err != nil {
		return nil, fmt.Errorf("imatrix: %w", err)
	}
	defer m.Close()
	toks, err := imatrixTokens(m)
	if err != nil {
		return nil, fmt.Errorf("imatrix %s: %w", path, err)
	}
	im, err := ComputeImatrix(m, toks, threads)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return im, nil
}

// imatrixTokens is ComputeImatrixFile's prompt for m.
func imatrixTokens(m *Model) ([]int32, error) {
	text := imatrixPrompt
	toks, err := m.Tokenize(text, true, false)
	for err == nil && len(toks) > 0 && len(toks) < 64 {
		text += " " + imatrixPrompt
		toks, err = m.Tokenize(text, true, false)
	}
	if err != nil {
		return nil, err
	}
	if n, ok := m.Meta(metaKey(m, "context_length")); ok {
		var ctx int
		if _, e := fmt.Sscan(n, &ctx); e == nil && ctx > 0 && len(toks) > ctx {
			toks = toks[:ctx]
		}
	}
	if len(toks) < minImatrixTokens {
		return nil, fmt.Errorf("the prompt is only %d tokens, want at least %d", len(toks), minImatrixTokens)
	}
	return toks, nil
}

// metaKey is "<general.architecture>.<key>".
func metaKey(m *Model, key string) string {
	arch, _ := m.Meta("general.architecture")
	return arch + "." + key
}

// QuantizeParams are llama_model_quantize_params, as far as layerdiff uses
// them.
type QuantizeParams struct {
	Ftype   int // llama_ftype
	Threads int // 0: all
	// Pure quantizes every matrix to the ftype's default type
	// (llama-quantize --pure) instead of llama_tensor_get_type's mix.
	Pure bool
	// TokenEmbdType and OutputType, when not zero, are the ggml types of
	// token_embd.weight and output.weight (llama-quantize
	// --token-embedding-type, --output-tensor-type; zero, GGML_TYPE_F32,
	// cannot be asked for).
	TokenEmbdType, OutputType int
	// Imatrix is the importance matrix. When nil and NeedsImatrix(Ftype),
	// Quantize computes one from the input model (ComputeImatrixFile).
	Imatrix Imatrix
}

// NeedsImatrix reports whether llama.cpp refuses to quantize to ftype
// without an importance matrix ("Missing importance matrix for tensor ...
// in a very low-bit quantization", llama_model_quantize_impl): the
// ftypes whose matrices are IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S or IQ1_M, and
// Q2_K_S.
func NeedsImatrix(ftype int) bool {
	switch ftype {
	case 19, 20, 21, 24, 28, 29, 31: // IQ2_XXS, IQ2_XS, Q2_K_S, IQ1_S, IQ2_S, IQ2_M, IQ1_M
		return true
	}
	return false
}

// Quantize runs llama_model_quantize (what llama-quantize does) on in,
// writing out, with p. An ftype that needs an importance matrix gets one
// computed from in by llama.cpp itself when p.Imatrix is nil.
func Quantize(in, out string, p QuantizeParams) error {
	Init()
	im := p.Imatrix
	if im == nil && NeedsImatrix(p.Ftype) {
		var err error
		if im, err = ComputeImatrixFile(in, p.Threads); err != nil {
			return fmt.Errorf("llama_model_quantize %s -> %s (ftype %d): %w", in, out, p.Ftype, err)
		}
	}
	cp := C.llama_model_quantize_default_params()
	cp.ftype = C.enum_llama_ftype(p.Ftype)
	cp.nthread = C.int32_t(p.Threads)
	cp.pure = C.bool(p.Pure)
	if p.TokenEmbdType != 0 {
		cp.token_embedding_type = C.enum_ggml_type(p.TokenEmbdType)
	}
	if p.OutputType != 0 {
		cp.output_tensor_type = C.enum_ggml_type(p.OutputType)
	}
	names := make([]string, 0, len(im))
	for k := range im {
		names = append(names, k)
	}
	sort.Strings(names)
	n := len(names)
	var cnames **C.char
	var cvals **C.float
	var clens *C.int64_t
	if n > 0 {
		// C memory: cgo forbids Go pointers to Go pointers.
		cnames = (**C.char)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(uintptr(0)))))
		cvals = (**C.float)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(uintptr(0)))))
		clens = (*C.int64_t)(C.malloc(C.size_t(n) * 8))
		defer C.free(unsafe.Pointer(cnames))
		defer C.free(unsafe.Pointer(cvals))
		defer C.free(unsafe.Pointer(clens))
		sn := unsafe.Slice(cnames, n)
		sv := unsafe.Slice(cvals, n)
		sl := unsafe.Slice(clens, n)
		for i, name := range names {
			v := im[name]
			for _, x := range v {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) || x < 0 {
					return fmt.Errorf("llama_model_quantize %s: imatrix of %q holds %v", in, name, x)
				}
			}
			sn[i] = C.CString(name)
			defer C.free(unsafe.Pointer(sn[i]))
			sv[i] = (*C.float)(C.malloc(C.size_t(4 * max(len(v), 1))))
			defer C.free(unsafe.Pointer(sv[i]))
			copy(unsafe.Slice((*float32)(unsafe.Pointer(sv[i])), len(v)), v)
			sl[i] = C.int64_t(len(v))
		}
	}
	cin, cout := C.CString(in), C.CString(out)
	defer C.free(unsafe.Pointer(cin))
	defer C.free(unsafe.Pointer(cout))
	C.ld_errors_clear()
	if rc := C.ld_quantize(cin, cout, &cp, cnames, cvals, clens, C.int(n)); rc != 0 {
		return fmt.Errorf("llama_model_quantize %s -> %s (ftype %d) failed with %d%s", in, out, p.Ftype, int(rc), withoutRules(loggedErrors()))
	}
	return nil
}

// withoutRules drops the "=====" banner lines from loggedErrors' "; "-joined
// lines.
func withoutRules(msg string) string {
	parts := strings.Split(strings.TrimPrefix(msg, ": "), "; ")
	keep := parts[:0]
	for _, p := range parts {
		if strings.Trim(p, "=") != "" {
			keep = append(keep, p)
		}
	}
	if len(keep) == 0 {
		return ""
	}
	return ": " + strings.Join(keep, "; ")
}
