package forward

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Numerics modes of Options.Numerics.
const (
	// NumericsGGML reproduces llama.cpp's CPU arithmetic (x86-64, AVX2,
	// FMA, F16C; llama.cpp ec98e2002): activations quantized to the
	// weight's vec_dot_type, ggml's kernels and their rounding, F16 KV
	// cache. The default.
	NumericsGGML = "ggml"
	// NumericsF64 is the exact computation: dequantized weights, float64
	// accumulation in every op, no activation quantization, float32 KV
	// cache and libm-accurate exp, sin, cos. Activations are stored as
	// float32 between ops.
	NumericsF64 = "f64"
)

// Options configure Run.
type Options struct {
	// Numerics is NumericsGGML ("" means the same) or NumericsF64.
	Numerics string
	// Kernels is the kernel profile NumericsGGML reproduces (KernelProfiles;
	// "" means KernelsAVX2): choose the reference's own, as ggml compiles
	// different kernels for different CPUs. NumericsF64 ignores it.
	Kernels string
	// FlashAttn builds the flash-attention graph (llama.cpp's CPU default,
	// "auto" resolves to on); false builds kq, kq_soft_max and kqv.
	FlashAttn bool
	// KVType is the type of the K and V cache: quant.F16 (llama.cpp's
	// default) or quant.F32. The zero value is F32: start from
	// DefaultOptions. NumericsF64 keeps the graph of this type but stores
	// the cache unrounded.
	KVType quant.Type
	// NCtx is the number of KV cache cells (llama.cpp's n_ctx); 0 means
	// the number of tokens rounded up to 256, llama.cpp's padding.
	NCtx int
	// Threads is the number of goroutines for the large ops; 0 means
	// runtime.NumCPU(). Results do not depend on it.
	Threads int
	// Inject, when not nil, may replace the value of a node after it is
	// computed and recorded, before later nodes read it.
	Inject Injector
	// UBatches splits the tokens into consecutive micro-batches of these
	// sizes, one graph each over a shared KV cache, as llama.cpp does for
	// a prompt longer than n_ubatch or decoded in several llama_decode
	// calls; nil evaluates every token in one batch. The sizes must add up
	// to the number of tokens.
	UBatches []int
	// Variant, when set, changes the model's arithmetic as a hypothesis
	// (NumericsF64 only; see Variant).
	Variant *Variant
}

// DefaultOptions are llama.cpp's defaults on the CPU: ggml numerics, flash
// attention on, F16 KV cache.
func DefaultOptions() Options {
	return Options{Numerics: NumericsGGML, FlashAttn: true, KVType: quant.F16}
}

// Node describes a graph node as llama.cpp's eval callback sees it.
type Node struct {
	Index int        // position in graph order (the callback order)
	Name  string     // llama.cpp's tensor name, e.g. "attn_norm-0"
	Op    string     // ggml_op_desc, e.g. "MUL_MAT", "SWIGLU", "FLASH_ATTN_EXT"
	Layer int        // layer the node belongs to, -1 outside the layers
	Ne    [4]int64   // shape in ggml order
	Type  quant.Type // F32, F16 for the KV cache nodes, I32 for ARGSORT (expert selections)
	View  bool       // RESHAPE, VIEW, PERMUTE, TRANSPOSE (data shared with a source)
	// TokenDim is the dimension of Ne that indexes token positions, or -1
	// (weights, KV cache): 1 for activations {n, T} and attention scores
	// {n_kv, T, heads}, 2 for per-head tensors {d, heads, T}.
	TokenDim int
	// UBatch is the micro-batch whose graph the node belongs to (0 when
	// the tokens are one batch); Index counts within that graph.
	UBatch int
	// Src are the graph indices (Index, in the same micro-batch) of the
	// node's sources that are nodes (not weights or inputs), in ggml src
	// order; SrcNames names every source (weights by their GGUF name).
	Src      []int
	SrcNames []string
}

// Recorder receives the nodes of a run in graph order. Want is asked
// before a node's data is materialized, so a Recorder that keeps a few
// tensors costs little; Record gets the data (in ggml order, as float32) of
// every wanted node. The data may be the node's own buffer, not a copy: it
// stays valid after Record returns and the run never changes it again, but
// a Recorder must not modify it (later nodes read it). An error from
// Record stops the run.
type Recorder interface {
	Want(n *Node) bool
	Record(n *Node, t *tensor.Tensor) error
}

// Injector replaces node values during a run: with llama.cpp's, to measure
// one op in isolation, or with a perturbed value (layerdiff run --inject).
// Inject is called with a node's computed value (in ggml order; the
// Injector may modify it in place) before the Recorder sees the node, and
// returns the data the Recorder and later nodes get instead (len = the
// node's element count), or ok = false to keep the computed value. Views and
// F16 nodes are never offered; I32 nodes (ARGSORT) are offered as float32
// values and must get integers back.
type Injector interface {
	Inject(n *Node, computed []float32) (data []float32, ok bool)
}

// Run evaluates tokens (positions 0..len-1, an empty KV cache at the start,
// every position an output; one batch unless opts.UBatches splits them)
// and hands every node to rec (which may be nil). It returns the logits,
// {n_vocab, len(tokens)}.
func (m *Model) Run(tokens []int32, opts Options, rec Recorder) (*tensor.Tensor, error) {
	if len(tokens) == 0 {
		return nil, errors.New("forward: no tokens")
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= m.Hparams.NVocab {
			return nil, fmt.Errorf("forward: token %d (position %d) outside the vocabulary of %d", t, i, m.Hparams.NVocab)
		}
	}
	bs, numerics, err := m.graphs(len(tokens), opts)
	if err != nil {
		return nil, err
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	k, err := kernelsOf(opts.Kernels)
	if err != nil {
		return nil, err
	}
	e := &executor{threads: threads, exact: numerics == NumericsF64, k: k}
	if !opts.Variant.IsZero() {
		e.variant = opts.Variant
	}
	var logits []float32
	for _, b := range bs {
		// Every micro-batch's graph writes the same KV cache.
		for l := range b.cacheK {
			b.cacheK[l].buf, b.cacheV[l].buf = bs[0].cacheK[l].buf, bs[0].cacheV[l].buf
		}
		if err := e.setInputs(b, tokens[b.p0:b.p0+b.nTokens]); err != nil {
			return nil, err
		}
		if err := e.run(b, rec, opts.Inject); err != nil {
			return nil, err
		}
		logits = append(logits, b.out.toF32()...)
	}
	out := bs[0].out
	ne := tensor.Trim(out.ne[:])
	ne[len(ne)-1] = int64(len(tokens))
	return &tensor.Tensor{Key: out.name, Name: out.name, Op: out.op.String(), Ne: ne, Data: logits}, nil
}

// Nodes returns the nodes Run would hand its Recorder for nTokens tokens
// with opts, in the same order and with the same names, ops and shapes,
// without computing anything: a caller can plan what to do with each
// tensor (align it with a reference) before the run.
func (m *Model) Nodes(nTokens int, opts Options) ([]Node, error) {
	if nTokens <= 0 {
		return nil, errors.New("forward: no tokens")
	}
	bs, _, err := m.graphs(nTokens, opts)
	if err != nil {
		return nil, err
	}
	var out []Node
	for _, b := range bs {
		for _, n := range b.g.nodes {
			info := n.info()
			info.UBatch = b.ubatch
			out = append(out, info)
		}
	}
	return out, nil
}

// graphs checks opts and builds the graph of every micro-batch of nTokens
// tokens; it returns the numerics mode with the default filled in.
func (m *Model) graphs(nTokens int, opts Options) ([]*built, string, error) {
	numerics := opts.Numerics
	if numerics == "" {
		numerics = NumericsGGML
	}
	if numerics != NumericsGGML && numerics != NumericsF64 {
		return nil, "", fmt.Errorf("forward: numerics %q (want %q or %q)", opts.Numerics, NumericsGGML, NumericsF64)
	}
	if opts.KVType != quant.F16 && opts.KVType != quant.F32 {
		return nil, "", fmt.Errorf("forward: KV cache type %s (want f16 or f32)", opts.KVType)
	}
	kvSize := opts.NCtx
	if kvSize == 0 {
		kvSize = (nTokens + kvPadding - 1) / kvPadding * kvPadding
	}
	kvSize = (kvSize + kvPadding - 1) / kvPadding * kvPadding
	if kvSize < nTokens {
		return nil, "", fmt.Errorf("forward: %d tokens do not fit a context of %d", nTokens, opts.NCtx)
	}
	sizes := opts.UBatches
	if len(sizes) == 0 {
		sizes = []int{nTokens}
	}
	sum := 0
	for _, n := range sizes {
		if n <= 0 {
			return nil, "", fmt.Errorf("forward: micro-batch sizes %v: each must be at least 1", sizes)
		}
		sum += n
	}
	if sum != nTokens {
		return nil, "", fmt.Errorf("forward: micro-batch sizes %v add up to %d, not the %d tokens", sizes, sum, nTokens)
	}
	if !opts.Variant.IsZero() {
		if numerics != NumericsF64 {
			return nil, "", ErrVariantNumerics
		}
		if err := opts.Variant.check(m); err != nil {
			return nil, "", err
		}
	}
	mv := m.withVariant(opts.Variant)
	var bs []*built
	p0 := 0
	for u, n := range sizes {
		b, err := mv.buildGraph(n, p0, kvSize, opts.FlashAttn, opts.KVType)
		if err != nil {
			return nil, "", fmt.Errorf("forward: %s: %w", m.File.Path, err)
		}
		b.ubatch = u
		b.tokenDims()
		bs = append(bs, b)
		p0 += n
	}
	return bs, numerics, nil
}

// executor runs a graph.
type executor struct {
	threads int
	exact   bool
	k       kernels  // the kernel profile of the ggml numerics
	variant *Variant // a diagnosis hypothesis (f64 numerics), or nil

	tmu        sync.Mutex
	transposed []float32 // Variant.TransposedWeight, dequantized
}

// setInputs fills the input leaves as llama.cpp's set_input functions do
// for one sequence whose micro-batch starts at position b.p0, the cells
// before it holding the earlier positions.
func (e *executor) setInputs(b *built, tokens []int32) error {
	for _, n := range []*node{b.tokens, b.pos, b.kIdxs, b.vIdxs, b.kqMask, b.outIDs} {
		e.alloc(n)
	}
	T, p0 := len(tokens), b.p0
	copy(b.tokens.buf.i32, tokens)
	for i := 0; i < T; i++ {
		b.pos.buf.i32[i] = int32(p0 + i)
		if e.variant != nil {
			b.pos.buf.i32[i] += int32(e.variant.PosOffset)
		}
		b.kIdxs.buf.i64[i] = int64(p0 + i)
		b.outIDs.buf.i32[i] = int32(i)
	}
	if b.vTrans {
		nv := b.nEmbdVGQA
		for i := int64(0); i < int64(T); i++ {
			for j := int64(0); j < nv; j++ {
				b.vIdxs.buf.i64[i*nv+j] = j*int64(b.kvSize) + int64(p0) + i
			}
		}
	} else {
		for i := 0; i < T; i++ {
			b.vIdxs.buf.i64[i] = int64(p0 + i)
		}
	}
	// Token i (position p0+i) sees the cells of positions 0..p0+i; later
	// and empty cells are masked.
	mask := b.kqMask.buf.f32
	for i := 0; i < T; i++ {
		for j := 0; j < b.nKV; j++ {
			v := float32(0)
			if j > p0+i {
				v = float32(math.Inf(-1))
			}
			mask[i*b.nKV+j] = v
		}
	}
	e.setSWAInputs(b, T)
	for _, c := range b.cacheK {
		e.alloc(c)
	}
	for _, c := range b.cacheV {
		e.alloc(c)
	}
	return nil
}

// alloc gives a tensor memory; in exact mode F16 tensors are stored as F32.
func (e *executor) alloc(n *node) {
	if n.viewSrc != nil || n.buf != nil {
		return
	}
	if e.exact && n.typ == quant.F16 {
		n.buf = &buffer{f32: make([]float32, n.nelements())}
		return
	}
	n.alloc()
}

// run executes the nodes in graph order, records them and releases memory
// that no later node reads.
func (e *executor) run(b *built, rec Recorder, inj Injector) error {
	nodes := b.g.nodes
	// last use of every storage owner
	last := map[*node]int{}
	for i, n := range nodes {
		if s, _ := n.storage(); s != n {
			last[s] = max(last[s], i)
		}
		for _, s := range n.src {
			if s == nil {
				continue
			}
			own, _ := s.storage()
			last[own] = max(last[own], i)
		}
	}
	pinned := map[*node]bool{b.out: true}
	for _, c := range b.cacheK {
		pinned[c] = true
	}
	for _, c := range b.cacheV {
		pinned[c] = true
	}
	release := map[int][]*node{}
	for i, n := range nodes {
		if n.viewSrc != nil || pinned[n] {
			continue
		}
		at := max(i, last[n])
		release[at] = append(release[at], n)
	}
	for i, n := range nodes {
		if n.viewSrc == nil {
			e.alloc(n)
		}
		if err := e.compute(n); err != nil {
			return fmt.Errorf("forward: node %d %q (%s): %w", i, n.name, n.op, err)
		}
		info := n.info()
		info.UBatch = b.ubatch
		if inj != nil && !info.View && n.viewSrc == nil && n.typ == quant.F32 {
			if data, ok := inj.Inject(&info, n.buf.f32); ok {
				if int64(len(data)) != n.nelements() {
					return fmt.Errorf("forward: injected %d values into %q of %d elements", len(data), n.name, n.nelements())
				}
				copy(n.buf.f32, data)
			}
		}
		// I32 nodes (ARGSORT: an expert selection) as float32 values
		if inj != nil && !info.View && n.viewSrc == nil && n.typ == quant.I32 {
			if err := injectI32(inj, &info, n); err != nil {
				return err
			}
		}
		if rec != nil && rec.Want(&info) {
			// A node's own float32 buffer is written only by its own
			// compute (other nodes write only the pinned KV caches, through
			// views), so the recorder can keep it instead of a copy; views
			// and other types are gathered into a new slice.
			var data []float32
			if n.viewSrc == nil && !pinned[n] && n.typ == quant.F32 && n.buf != nil && int64(len(n.buf.f32)) == n.nelements() {
				data = n.buf.f32
			} else {
				data = n.toF32()
			}
			t := &tensor.Tensor{Key: n.name, Name: n.name, Op: n.op.String(), Ne: tensor.Trim(n.ne[:]), Data: data}
			if err := rec.Record(&info, t); err != nil {
				return err
			}
		}
		for _, own := range release[i] {
			own.buf = nil
		}
	}
	return nil
}

// info describes n for Recorders.
func (n *node) info() Node {
	in := Node{Index: n.index, Name: n.name, Op: n.op.String(), Layer: n.layer, Ne: n.ne, Type: n.typ, View: n.op.isViewOp(), TokenDim: n.tokDim}
	for i, s := range n.src {
		if s == nil || (i == 1 && n.self) {
			continue
		}
		in.SrcNames = append(in.SrcNames, s.name)
		if !s.isLeaf {
			in.Src = append(in.Src, s.index)
		}
	}
	return in
}

// compute runs one node.
func (e *executor) compute(n *node) error {
	if e.exact {
		return e.computeExact(n)
	}
	switch n.op {
	case opReshape, opView, opPermute, opTranspose:
		return nil
	case opGetRows:
		return e.getRowsGGML(n)
	case opRMSNorm:
		e.rmsNormGGML(n)
	case opMul, opAdd:
		e.binaryGGML(n)
	case opScale:
		e.scaleGGML(n)
	case opMulMat:
		return e.mulMatGGML(n)
	case opRope:
		return e.ropeGGML(n)
	case opSetRows:
		return e.setRowsGGML(n)
	case opCpy:
		e.cpyGGML(n)
	case opCont:
		e.contGGML(n)
	case opFlashAttnExt:
		return e.flashAttnGGML(n)
	case opSoftMax:
		e.softMaxGGML(n)
	case opSwiglu:
		e.swigluGGML(n)
	case opTanh: // gemma
		e.tanhGGML(n)
	case opGeglu:
		e.gegluGGML(n)
	// mixtures of experts (ops_moe.go)
	case opMulMatID:
		return e.mulMatIDGGML(n)
	case opArgsort:
		return e.argsort(n)
	case opSumRows:
		e.sumRows(n)
	case opClamp:
		e.clamp(n)
	case opSwigluOAI: // gpt-oss
		e.swigluOAIGGML(n)
	case opAddID:
		return e.addID(n)
	case opDiv:
		e.div(n)
	default:
		return fmt.Errorf("op %s is not implemented", n.op)
	}
	return nil
}
