package main

import (
	"fmt"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/urfave/cli/v2"
)

// namesFlag is --names: the name map of the engine side (compare's B,
// run's --ref).
func namesFlag(side string) cli.Flag {
	return &cli.StringFlag{Name: "names", Usage: "rename " + side + "'s tensors to llama.cpp's: hf (transformers module names), meta (Meta's llama code) or a map `FILE` of ENGINE_NAME = LLAMACPP_NAME lines (docs/names.md)"}
}

// withNames applies --names to the engine side src. llama is the llama.cpp
// side when it is a reference (nil for run, whose other side is the forward
// pass); modelPath the GGUF the run uses ("" if none). The architecture and
// head geometry come from the model when given, else from llama.
func withNames(c *cli.Context, src, llama reference.Source, modelPath string) (reference.Source, []string, error) {
	spec := c.String("names")
	if spec == "" {
		return src, nil, nil
	}
	arch := ""
	var o reference.NameOptions
	if modelPath != "" {
		f, err := gguf.Open(modelPath)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		m, err := forward.Load(f)
		if err != nil {
			return nil, nil, fmt.Errorf("--names %s: %w", spec, err)
		}
		h := m.Hparams
		arch, o.HeadDim, o.NHead, o.NHeadKV = string(h.Arch), h.HeadDimK, h.NHead, h.NHeadKV
	}
	if llama != nil {
		nodes := llama.Nodes()
		o.Ref = nodes
		if arch == "" {
			if d, ok := llama.(*reference.Dump); ok {
				arch = d.Manifest.Model.Architecture
			}
		}
		if o.HeadDim == 0 {
			o.HeadDim, o.NHead, o.NHeadKV = reference.HeadsFromNodes(nodes)
		}
	}
	m, err := reference.NameMapFor(spec, arch)
	if err != nil {
		return nil, nil, err
	}
	return reference.WithNames(src, m, o)
}

// namesHint adds a pointer to the name docs to the message of a run that
// measured nothing, when the report's warnings blame the names.
func namesHint(rep *compare.Report) string {
	for _, w := range rep.Warnings {
		if strings.HasPrefix(w, "names: ") {
			return fmt.Sprintf("; the tensor names do not match llama.cpp's (see the warning and %s)", reference.NamesDoc)
		}
	}
	return ""
}
