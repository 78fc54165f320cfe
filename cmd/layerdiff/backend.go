package main

import (
	"io"
	"runtime"
)

// llamaBackend is what the CLI needs from the in-build llama.cpp. Builds
// without the llamacpp tag get an implementation that explains how to build
// with it.
type llamaBackend interface {
	QuantizeModel(in, out string, ftype, threads int) error
	Dump(r dumpRequest, progress io.Writer) error
}

func defaultThreads() int { return runtime.NumCPU() }
