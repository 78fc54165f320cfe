// Package pipeline wires layerdiff's stages together: a reference (any
// format pkg/reference reads) and the other side (layerdiff's own forward
// pass, or a second reference) become compare.Sides, compare aligns, measures
// and judges them, and the Report goes to a renderer. The CLI is a thin layer
// over the functions here.
package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// refSide adapts a reference.Source to compare.Side. Nodes without data are
// still listed (compare reports them unmeasured when loading fails). When
// the source can load into a buffer, the memory of tensors Compare has
// released is recycled for the next ones.
type refSide struct {
	src   reference.Source
	nodes []compare.Node
	numel map[string]int64

	mu   sync.Mutex
	lent map[string][][]float32 // data of loaded tensors, by key, until released
	free [][]float32            // released data, to be loaded into again
}

// maxFree bounds the buffers a refSide keeps for reuse.
const maxFree = 16

// SideOf makes a compare.Side of a reference source.
func SideOf(src reference.Source) compare.Side {
	s := &refSide{src: src, numel: map[string]int64{}, lent: map[string][][]float32{}}
	d, _ := src.(derivedNoter)
	for _, n := range src.Nodes() {
		cn := compare.Node{Key: n.Key, Name: n.Name, Op: n.Op, Ne: n.Ne, NoData: n.Data == reference.NoData}
		if n.Data == reference.Unreadable {
			cn.Unreadable = "unknown reason"
			if _, err := src.Load(n.Key); err != nil {
				cn.Unreadable = err.Error()
			}
		}
		if d != nil {
			cn.Derived = d.DerivedNote(n.Key)
		}
		s.nodes = append(s.nodes, cn)
		s.numel[n.Key] = tensor.Numel(n.Ne)
	}
	return s
}

// derivedNoter is a Source with nodes recomputed from others (see
// attention.Derive): DerivedNote says how, "" for the source's own nodes.
type derivedNoter interface {
	DerivedNote(key string) string
}

func (s *refSide) Nodes() []compare.Node { return s.nodes }

func (s *refSide) Tensor(key string) (*tensor.Tensor, error) {
	bl, ok := s.src.(reference.BufferLoader)
	if !ok {
		return s.src.Load(key)
	}
	buf := s.take(s.numel[key])
	t, err := bl.LoadInto(key, buf)
	if err == nil && t != nil && len(t.Data) > 0 {
		s.mu.Lock()
		s.lent[key] = append(s.lent[key], t.Data)
		s.mu.Unlock()
		if len(buf) > 0 && &buf[0] == &t.Data[0] {
			return t, nil
		}
	}
	s.put(buf)
	return t, err
}

// Release implements compare.Releaser: the memory of every tensor loaded
// for key is loaded into again (the caller has finished with all of them).
func (s *refSide) Release(key string) {
	s.mu.Lock()
	data := s.lent[key]
	delete(s.lent, key)
	s.mu.Unlock()
	for _, d := range data {
		s.put(d)
	}
}

// take returns a free buffer of at least n values (the smallest), or nil.
func (s *refSide) take(n int64) []float32 {
	if n <= 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	best := -1
	for i, b := range s.free {
		if int64(cap(b)) >= n && (best < 0 || cap(b) < cap(s.free[best])) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	b := s.free[best]
	s.free[best] = s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	return b[:cap(b)]
}

// put keeps b for reuse; with maxFree buffers kept, b replaces the
// smallest if it is larger.
func (s *refSide) put(b []float32) {
	if cap(b) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.free) < maxFree {
		s.free = append(s.free, b)
		return
	}
	small := 0
	for i := range s.free {
		if cap(s.free[i]) < cap(s.free[small]) {
			small = i
		}
	}
	if cap(b) > cap(s.free[small]) {
		s.free[small] = b
	}
}

// sourceMeta describes a reference for the report: labelled by the engine
// it names (a dump's llamacpp_commit or producer), else "llama.cpp" when it
// carries llama.cpp's system_info, else by fallback ("reference" when "").
func sourceMeta(src reference.Source, fallback string) compare.Source {
	info := src.Describe()
	label := info.Engine
	switch {
	case label != "":
	case info.SystemInfo != "":
		label = "llama.cpp"
	case fallback != "":
		label = fallback
	default:
		label = "reference"
	}
	s := compare.Source{Label: label, Format: info.Format, Producer: info.Producer, Path: info.Path, Model: info.ModelPath, ModelSHA256: info.ModelSHA256, ModelFingerprint: info.ModelFingerprint}
	if info.SystemInfo != "" || info.Kind == reference.KindDump {
		// Without a system_info there is nothing to tell the kernels by
		// for a source that could carry one.
		s.Kernels = reference.KernelProfile(info.SystemInfo)
	}
	return s
}

// CompareOptions configure Compare and Run.
type CompareOptions struct {
	Policy   *compare.Policy
	Filter   func(compare.Node) bool
	Blamer   compare.Blamer
	Tool     string // e.g. "layerdiff 0.1.0"
	Warnings []string
}

// Compare compares two references: A is the reference, B the other side
// (llama.cpp CPU vs GPU, two llama.cpp versions, another engine's dumps).
// Token ids known on both sides must agree.
func Compare(a, b reference.Source, o CompareOptions) (*compare.Report, error) {
	ia, ib := a.Describe(), b.Describe()
	if len(ia.Tokens) > 0 && len(ib.Tokens) > 0 && !sameTokens(ia.Tokens, ib.Tokens) {
		return nil, &TokenMismatchError{A: ia.Path, B: ib.Path, TokA: ia.Tokens, TokB: ib.Tokens}
	}
	toks := ia.Tokens
	if len(toks) == 0 {
		toks = ib.Tokens
	}
	warn := append([]string(nil), o.Warnings...)
	warn = append(warn, ia.Warnings...)
	warn = append(warn, ib.Warnings...)
	if na, _ := graphRuns(a.Nodes()); na > 0 {
		if nb, _ := graphRuns(b.Nodes()); nb > 0 && na != nb {
			warn = append(warn, fmt.Sprintf("the two sides split their tokens differently: %s ran its graph %s, %s %s (once per llama_decode call); nodes of different micro-batches cannot be aligned", ia.Path, times(na), ib.Path, times(nb)))
		}
	}
	// Attention nodes a flash-attention side lacks and the other has, on
	// either side.
	a, wa := withDerivedAttention(a, nodeNames(b))
	b, wb := withDerivedAttention(b, nodeNames(a))
	warn = append(warn, wa...)
	warn = append(warn, wb...)
	meta := compare.Meta{
		Reference: sourceMeta(a, ""),
		Other:     sourceMeta(b, "other"),
		Tokens:    toks,
		Prompt:    ia.Prompt,
		Tool:      o.Tool,
	}
	rep, err := compare.Compare(SideOf(a), SideOf(b), compare.Options{
		Policy: o.Policy, Meta: meta, Filter: o.Filter, Blamer: o.Blamer, Warnings: warn,
	})
	if err == nil {
		nameAdvice(rep, "other", ib.Path)
	}
	return rep, err
}

// times is "once" or "N times".
func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

// TokenMismatchError says that two sides evaluated different tokens; its
// message shows both lists.
type TokenMismatchError struct {
	A, B       string
	TokA, TokB []int32
}

func (e *TokenMismatchError) Error() string {
	return fmt.Sprintf("token ids differ:\n  %s: %v\n  %s: %v", e.A, e.TokA, e.B, e.TokB)
}

func sameTokens(a, b []int32) bool { return slices.Equal(a, b) }

// ErrNoTokens is returned when neither the reference nor the caller gives
// token ids or a prompt.
var ErrNoTokens = errors.New("no token ids: the reference does not record them; give --prompt or --tokens")

// forwardLabel names layerdiff's forward pass for the report, once:
// "layerdiff forward pass (ggml numerics, kernels x86-avx2)", with "each op
// from the reference's inputs" in cross-kernel mode and "with --inject"
// when activations were perturbed. kernels is "" for numerics that emulate
// none (f64).
func forwardLabel(numerics, kernels string, cross, injected bool) string {
	parts := []string{numerics + " numerics"}
	if kernels != "" {
		parts = append(parts, "kernels "+kernels)
	}
	if cross {
		parts = append(parts, "each op from the reference's inputs")
	}
	s := "layerdiff forward pass (" + strings.Join(parts, ", ") + ")"
	if injected {
		s += " with --inject"
	}
	return s
}
