package pipeline

import (
	"fmt"
	"regexp"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// RunOptions configure Run.
type RunOptions struct {
	CompareOptions
	// Prompt is tokenized by layerdiff's tokenizer when the reference does
	// not record token ids; Tokens, when set, are used instead.
	Prompt string
	Tokens []int32
	NoBOS  bool
	// Numerics is "ggml" (default) or "f64".
	Numerics string
	// FlashAttn is "auto" (follow the reference; llama.cpp's CPU default,
	// on, when it does not say), "on" or "off".
	FlashAttn string
	// KVType is "f16" (default, or the reference's) or "f32".
	KVType  string
	Threads int
	// Inject perturbs named activations of the forward pass.
	Inject []Injection
	// Isolate recomputes every op from the reference's inputs, not only the
	// ops up to the first divergence.
	Isolate bool
	// NodeFilter limits which forward nodes are kept in memory (nil: all).
	NodeFilter *regexp.Regexp
}

// Run evaluates the model with layerdiff's forward pass on the reference's
// tokens and compares every activation with the reference.
func Run(ref reference.Source, modelPath string, o RunOptions) (*compare.Report, error) {
	info := ref.Describe()
	f, err := model.Open(modelPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := forward.Load(f)
	if err != nil {
		return nil, err
	}
	toks, err := runTokens(f, info, o)
	if err != nil {
		return nil, err
	}
	fo := forward.DefaultOptions()
	fo.Threads = o.Threads
	if o.Numerics != "" {
		fo.Numerics = o.Numerics
	}
	switch o.FlashAttn {
	case "", "auto":
		fo.FlashAttn = info.FlashAttn != "off"
	case "on":
		fo.FlashAttn = true
	case "off":
		fo.FlashAttn = false
	default:
		return nil, fmt.Errorf("--flash-attn must be auto, on or off, not %q", o.FlashAttn)
	}
	switch o.KVType {
	case "", "f16":
		fo.KVType = model.F16
	case "f32":
		fo.KVType = model.F32
	default:
		return nil, fmt.Errorf("--kv-type must be f16 or f32, not %q", o.KVType)
	}
	inj, err := newInjector(o.Inject)
	if err != nil {
		return nil, err
	}
	if inj != nil {
		fo.Inject = inj
	}
	rec := &listRecorder{filter: o.NodeFilter}
	if _, err := m.Run(toks, fo, rec); err != nil {
		return nil, err
	}
	if inj != nil {
		if err := inj.unused(); err != nil {
			return nil, err
		}
	}
	warn := append([]string(nil), o.Warnings...)
	warn = append(warn, info.Warnings...)
	sha, _, err := reference.FileSHA256(modelPath)
	if err != nil {
		return nil, err
	}
	if info.ModelSHA256 != "" && info.ModelSHA256 != sha {
		warn = append([]string{fmt.Sprintf("MODEL MISMATCH: the reference was made from %s (sha256 %s), not from %s (sha256 %s)", info.ModelPath, info.ModelSHA256, modelPath, sha)}, warn...)
	}
	label := "layerdiff forward (" + fo.Numerics + ")"
	if len(o.Inject) > 0 {
		label += " with --inject"
	}
	meta := compare.Meta{
		Reference: sourceMeta(ref, ""),
		Other:     compare.Source{Label: label, Format: "forward", Model: modelPath, ModelSHA256: sha},
		Tokens:    toks,
		Prompt:    info.Prompt,
		Tool:      o.Tool,
	}
	if meta.Prompt == "" {
		meta.Prompt = o.Prompt
	}
	pol := o.Policy
	if pol == nil {
		pol, err = compare.DefaultPolicy(fo.Numerics)
		if err != nil {
			return nil, err
		}
	}
	blamer := o.Blamer
	if blamer == nil {
		blamer = &isolationBlamer{model: m, tokens: toks, opts: fo, user: inj, all: o.Isolate}
	}
	ours := compare.NewTensorList(rec.list)
	return compare.Compare(SideOf(ref), ours, compare.Options{
		Policy: pol, Meta: meta, Filter: o.Filter, Blamer: blamer, Warnings: warn,
	})
}

// runTokens picks the token ids: the caller's, else the reference's, else
// the prompt tokenized by layerdiff's tokenizer.
func runTokens(f *model.File, info reference.Info, o RunOptions) ([]int32, error) {
	if len(o.Tokens) > 0 {
		if len(info.Tokens) > 0 && !sameTokens(o.Tokens, info.Tokens) {
			return nil, &TokenMismatchError{A: info.Path + " (reference)", B: "--tokens", TokA: info.Tokens, TokB: o.Tokens}
		}
		return o.Tokens, nil
	}
	var fromPrompt []int32
	if o.Prompt != "" {
		v, err := model.VocabFromGGUF(f)
		if err != nil {
			return nil, err
		}
		tk, err := model.NewTokenizer(v)
		if err != nil {
			return nil, err
		}
		fromPrompt, err = tk.Encode(o.Prompt, !o.NoBOS, false)
		if err != nil {
			return nil, fmt.Errorf("tokenizing the prompt: %w", err)
		}
	}
	if len(info.Tokens) > 0 {
		if fromPrompt != nil && !sameTokens(fromPrompt, info.Tokens) {
			return nil, &TokenMismatchError{A: info.Path + " (reference)", B: "--prompt tokenized by layerdiff", TokA: info.Tokens, TokB: fromPrompt}
		}
		return info.Tokens, nil
	}
	if fromPrompt == nil {
		return nil, ErrNoTokens
	}
	return fromPrompt, nil
}

// listRecorder keeps the forward pass's tensors in graph order.
type listRecorder struct {
	filter *regexp.Regexp
	list   []*tensor.Tensor
	keys   reference.KeyMaker
}

func (r *listRecorder) Want(n *forward.Node) bool {
	return r.filter == nil || r.filter.MatchString(n.Name)
}

func (r *listRecorder) Record(n *forward.Node, t *tensor.Tensor) error {
	t.Key = r.keys.Next(n.Name)
	r.list = append(r.list, t)
	return nil
}
