// Package tokenizer is llama.cpp's tokenizer in Go: the vocabulary read
// from a GGUF file's tokenizer.* metadata, SPM and BPE encoding with
// llama.cpp's pre-tokenizers (its Unicode tables and regex splits),
// special tokens and detokenization, bit for bit with llama-tokenize. It
// turns a prompt into the token ids the forward pass and llama.cpp run:
//
//	prompt → tokenizer → token ids → forward / llama.cpp
package tokenizer
