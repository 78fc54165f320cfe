//go:build llamacpp

package main

import (
	"io"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
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

func (inBuild) Dump(r dumpRequest, progress io.Writer) error {
	_, err := reference.DumpLlamaCpp(reference.DumpOptions{
		Model: r.Model, Prompt: r.Prompt, Tokens: r.Tokens, NoBOS: r.NoBOS, Out: r.Out, Force: r.Force,
		FlashAttn: r.FlashAttn, KVType: r.KVType, Batch: r.Batch, Threads: r.Threads, Filter: r.Filter,
		Version: version, Progress: progress,
	})
	return err
}
