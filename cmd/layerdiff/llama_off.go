//go:build !llamacpp

package main

import (
	"errors"
	"io"

	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

var errNoLlama = errors.New("this layerdiff was built without llama.cpp; build it with `make build`")

// llama is the in-build llama.cpp; in this build there is none.
var llama llamaBackend = noLlama{}

type noLlama struct{}

func (noLlama) Quantize(string, string, fixture.Quant, int) error { return errNoLlama }

func (noLlama) QuantizeTensor(quant.Type, []float32, int, int, int) ([]byte, error) {
	return nil, errNoLlama
}

func (noLlama) Dump(dumpRequest, io.Writer) error { return errNoLlama }
