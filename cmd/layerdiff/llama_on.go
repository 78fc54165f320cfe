//go:build llamacpp

package main

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// llama is the in-build llama.cpp.
var llama llamaBackend = inBuild{}

type inBuild struct{}

func (inBuild) Quantize(in, out string, q fixture.Quant, threads int) error {
	if threads <= 0 {
		threads = defaultThreads()
	}
	return llamacpp.Quantize(in, out, llamacpp.QuantizeParams{
		Ftype: q.Ftype, Threads: threads, Pure: q.Pure, TokenEmbdType: q.TokenEmbd, OutputType: q.Output,
	})
}

func (inBuild) QuantizeTensor(t quant.Type, src []float32, nrows, nPerRow, threads int) ([]byte, error) {
	if threads <= 0 {
		threads = defaultThreads()
	}
	// contiguous row ranges on threads goroutines (ggml_quantize_chunk
	// quantizes each row on its own: the bytes do not depend on the split)
	threads = max(1, min(threads, nrows))
	parts := make([][]byte, threads)
	errs := make([]error, threads)
	var wg sync.WaitGroup
	for i := range threads {
		lo, hi := nrows*i/threads, nrows*(i+1)/threads
		wg.Go(func() {
			parts[i], errs[i] = llamacpp.QuantizeChunk(int(t), src[lo*nPerRow:hi*nPerRow], hi-lo, nPerRow)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return bytes.Join(parts, nil), nil
}

func (inBuild) Dump(r dumpRequest, progress io.Writer) error {
	_, err := reference.DumpLlamaCpp(reference.DumpOptions{
		Model: r.Model, Prompt: r.Prompt, Tokens: r.Tokens, NoBOS: r.NoBOS, Out: r.Out, Force: r.Force,
		FlashAttn: r.FlashAttn, KVType: r.KVType, Batch: r.Batch, Threads: r.Threads, Filter: r.Filter,
		Version: version, Progress: progress,
	})
	return err
}
