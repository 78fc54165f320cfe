//go:build llamacpp

package llamacpp

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// LoadVocab loads only the vocabulary of a GGUF file
// (llama_model_params.vocab_only), so files without tensors, such as
// llama.cpp's ggml-vocab-*.gguf, can be tokenized. Only the vocabulary
// functions (Tokenize, Detokenize, TokenToPiece, Token*) work on the result.
func LoadVocab(path string) (*Model, error) {
	Init()
	p := C.llama_model_default_params()
	p.n_gpu_layers = 0
	p.use_mmap = true
	p.vocab_only = true
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	m := C.llama_model_load_from_file(cpath, p)
	if m == nil {
		return nil, fmt.Errorf("llama.cpp could not load the vocabulary of %s", path)
	}
	return &Model{m: m}, nil
}

// TokenToPiece is llama_token_to_piece: the bytes of one token, skipping up
// to lstrip leading spaces; special renders control and unknown tokens.
func (m *Model) TokenToPiece(id int32, lstrip int, special bool) ([]byte, error) {
	vocab := C.llama_model_get_vocab(m.m)
	if id < 0 || int(id) >= m.NVocab() {
		return nil, fmt.Errorf("token %d out of range [0, %d)", id, m.NVocab())
	}
	n := 64
	for tries := 0; tries < 2; tries++ {
		buf := make([]byte, n)
		got := C.llama_token_to_piece(vocab, C.llama_token(id), (*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(n), C.int32_t(lstrip), C.bool(special))
		if got >= 0 {
			return buf[:int(got)], nil
		}
		n = int(-got)
	}
	return nil, fmt.Errorf("llama_token_to_piece failed for token %d", id)
}

// Detokenize is llama_detokenize: tokens back to text. removeSpecial drops a
// leading BOS / trailing EOS the vocabulary adds; unparseSpecial renders
// control tokens.
func (m *Model) Detokenize(tokens []int32, removeSpecial, unparseSpecial bool) ([]byte, error) {
	vocab := C.llama_model_get_vocab(m.m)
	nv := m.NVocab()
	toks := make([]C.llama_token, len(tokens)+1) // +1: never take &toks[0] of an empty slice
	for i, t := range tokens {
		if t < 0 || int(t) >= nv {
			return nil, fmt.Errorf("token %d at %d out of range [0, %d)", t, i, nv)
		}
		toks[i] = C.llama_token(t)
	}
	n := 16 + 8*len(tokens)
	for tries := 0; tries < 2; tries++ {
		buf := make([]byte, n)
		got := C.llama_detokenize(vocab, &toks[0], C.int32_t(len(tokens)), (*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(n), C.bool(removeSpecial), C.bool(unparseSpecial))
		if got >= 0 {
			return buf[:int(got)], nil
		}
		n = int(-got) + 1
	}
	return nil, errors.New("llama_detokenize failed")
}

// TokenText is llama_vocab_get_text: the stored text of a token.
func (m *Model) TokenText(id int32) string {
	vocab := C.llama_model_get_vocab(m.m)
	if id < 0 || int(id) >= m.NVocab() {
		return ""
	}
	return C.GoString(C.llama_vocab_get_text(vocab, C.llama_token(id)))
}

// TokenAttr is llama_vocab_get_attr: the token's attribute bits
// (enum llama_token_attr).
func (m *Model) TokenAttr(id int32) int {
	vocab := C.llama_model_get_vocab(m.m)
	if id < 0 || int(id) >= m.NVocab() {
		return 0
	}
	return int(C.llama_vocab_get_attr(vocab, C.llama_token(id)))
}

// VocabSpecial returns the BOS and EOS ids (-1 when absent) and whether the
// vocabulary adds them (llama_vocab_get_add_bos / _eos).
func (m *Model) VocabSpecial() (bos, eos int32, addBOS, addEOS bool) {
	vocab := C.llama_model_get_vocab(m.m)
	return int32(C.llama_vocab_bos(vocab)), int32(C.llama_vocab_eos(vocab)),
		bool(C.llama_vocab_get_add_bos(vocab)), bool(C.llama_vocab_get_add_eos(vocab))
}

// IsEOG is llama_vocab_is_eog.
func (m *Model) IsEOG(id int32) bool {
	return bool(C.llama_vocab_is_eog(C.llama_model_get_vocab(m.m), C.llama_token(id)))
}
