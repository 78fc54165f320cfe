package main

import (
	"io"
	"runtime"

	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// llamaBackend is what the CLI needs from the in-build llama.cpp. Builds
// without the llamacpp tag get an implementation that explains how to build
// with it.
type llamaBackend interface {
	// Quantize quantizes in to out by recipe q (llama_model_quantize, with
	// an importance matrix for the types that need one).
	Quantize(in, out string, q fixture.Quant, threads int) error
	// QuantizeTensor quantizes nrows rows of nPerRow values to t with
	// ggml_quantize_chunk, rows split over threads.
	QuantizeTensor(t quant.Type, src []float32, nrows, nPerRow, threads int) ([]byte, error)
	Dump(r dumpRequest, progress io.Writer) error
}

func defaultThreads() int { return runtime.NumCPU() }
