// Package gguf reads and writes GGUF model files: the header, metadata and
// tensor directory (Parse, Open with mmap), typed metadata accessors, a
// writer that lays tensors out as ggml does (WriteFile), and `layerdiff
// inspect`'s description of a file. It is the first stage on the model side:
//
//	model files → gguf → quant (weights), tokenizer (vocab) → forward → compare
//
// Tensor types and their dequantization live in package quant.
package gguf
