//go:build llamacpp

package main

import (
	"io"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// llama is the in-build llama.cpp.
var llama llamaBackend = inBuild{}

type inBuild struct{}

func (inBuild) QuantizeModel(in, out string, ftype, threads int) error {
	if threads <= 0 {
		threads = defaultThreads()
	}
	return llamacpp.QuantizeModel(in, out, ftype, threads)
}

func (inBuild) Dump(r dumpRequest, progress io.Writer) error {
	_, err := reference.DumpLlamaCpp(reference.DumpOptions{
		Model: r.Model, Prompt: r.Prompt, Tokens: r.Tokens, NoBOS: r.NoBOS, Out: r.Out, Force: r.Force,
		FlashAttn: r.FlashAttn, KVType: r.KVType, Batch: r.Batch, Threads: r.Threads, Filter: r.Filter,
		Version: version, Progress: progress,
	})
	return err
}
