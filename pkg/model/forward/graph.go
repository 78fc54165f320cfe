package forward

import (
	"fmt"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// A small model of a ggml compute graph. The forward pass builds the graph
// with the same constructor calls as llama.cpp's model builders (ggml_mul_mat,
// ggml_reshape_3d, ggml_view_2d, ...), so node names, shapes, strides, views
// and the topological order (ggml_visit_parents) come out exactly as in
// llama.cpp, including unnamed "node_N" nodes whose N counts every node
// before them. Executing the nodes in that order reproduces the sequence of
// llama.cpp's eval callback.

// opKind is a ggml op.
type opKind int

const (
	opNone opKind = iota // a leaf: weight, input or KV cache buffer
	opGetRows
	opRMSNorm
	opMul
	opAdd
	opMulMat
	opReshape
	opView
	opPermute
	opTranspose
	opCont
	opRope
	opSetRows
	opCpy
	opFlashAttnExt
	opSoftMax
	opSwiglu
	opScale
	// gemma2, gemma3 (ops_gemma.go)
	opTanh
	opGeglu
	// mixtures of experts (build_moe_ffn: qwen3moe, llama with experts)
	opMulMatID
	opArgsort
	opSumRows
	opClamp
	opDiv
	// gpt-oss (ops_gptoss.go)
	opSwigluOAI
	opAddID
)

// opDesc is ggml_op_desc for each op: the op name, or the GLU/unary sub-op.
var opDesc = [...]string{
	opNone:         "NONE",
	opGetRows:      "GET_ROWS",
	opRMSNorm:      "RMS_NORM",
	opMul:          "MUL",
	opAdd:          "ADD",
	opMulMat:       "MUL_MAT",
	opReshape:      "RESHAPE",
	opView:         "VIEW",
	opPermute:      "PERMUTE",
	opTranspose:    "TRANSPOSE",
	opCont:         "CONT",
	opRope:         "ROPE",
	opSetRows:      "SET_ROWS",
	opCpy:          "CPY",
	opFlashAttnExt: "FLASH_ATTN_EXT",
	opSoftMax:      "SOFT_MAX",
	opSwiglu:       "SWIGLU",
	opScale:        "SCALE",
	opTanh:         "TANH",
	opGeglu:        "GEGLU",
	// mixtures of experts
	opMulMatID:  "MUL_MAT_ID",
	opArgsort:   "ARGSORT",
	opSumRows:   "SUM_ROWS",
	opClamp:     "CLAMP",
	opDiv:       "DIV",
	opSwigluOAI: "SWIGLU_OAI",
	opAddID:     "ADD_ID",
}

func (o opKind) String() string {
	if int(o) < len(opDesc) {
		return opDesc[o]
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// isViewOp reports ops whose result shares its source's memory.
func (o opKind) isViewOp() bool {
	return o == opReshape || o == opView || o == opPermute || o == opTranspose
}

// ggmlMaxName is GGML_MAX_NAME: names are cut to 63 bytes.
const ggmlMaxName = 64

// buffer is the memory of a non-view tensor. Exactly one slice is used,
// according to the tensor type.
type buffer struct {
	f32 []float32
	f16 []uint16
	i32 []int32
	i64 []int64
}

// node is a ggml_tensor.
type node struct {
	name string
	op   opKind
	typ  quant.Type
	ne   [4]int64
	nb   [4]int64 // byte strides
	src  [5]*node // GGML_MAX_SRC sources (FLASH_ATTN_EXT's sinks are src[4])

	// viewSrc is the tensor whose memory a view uses (always a non-view:
	// chains of views are resolved when built), at byte offset viewOffs.
	viewSrc  *node
	viewOffs int64
	buf      *buffer // memory of a non-view tensor, allocated on execution

	// weight is the raw data of a model tensor (a leaf).
	weight []byte

	fp   [8]float32 // float op params (eps, scale, rope parameters)
	ip   [8]int32   // int op params (rope n_dims, mode, n_ctx_orig)
	self bool       // src[1] is the node itself (ggml_cast)

	// graph bookkeeping
	visited bool
	isLeaf  bool
	index   int // position in graph order
	layer   int // layer the node was built for, -1 outside layers
	tokDim  int // dimension indexing token positions, -1 if none
}

// typeSize is ggml_type_size for the activation types the graph uses.
func typeSize(t quant.Type) int64 {
	switch t {
	case quant.F32, quant.I32:
		return 4
	case quant.F16, quant.BF16, quant.I16:
		return 2
	case quant.I64, quant.F64:
		return 8
	}
	return int64(t.BlockBytes())
}

func (n *node) nelements() int64 { return n.ne[0] * n.ne[1] * n.ne[2] * n.ne[3] }

func (n *node) nrows() int64 { return n.ne[1] * n.ne[2] * n.ne[3] }

// isContiguous is ggml_is_contiguous.
func (n *node) isContiguous() bool {
	next := typeSize(n.typ)
	if n.typ.BlockSize() > 1 {
		if n.nb[0] != next {
			return false
		}
		next = next * n.ne[0] / int64(n.typ.BlockSize())
		for i := 1; i < 4; i++ {
			if n.ne[i] != 1 && n.nb[i] != next {
				return false
			}
			next *= n.ne[i]
		}
		return true
	}
	for i := 0; i < 4; i++ {
		if n.ne[i] != 1 && n.nb[i] != next {
			return false
		}
		next *= n.ne[i]
	}
	return true
}

// storage returns the tensor owning the memory of n and the byte offset of
// n's first element in it.
func (n *node) storage() (*node, int64) {
	if n.viewSrc != nil {
		return n.viewSrc, n.viewOffs
	}
	return n, 0
}

// graph is a ggml_context plus ggml_cgraph: it creates tensors and orders
// them.
type graph struct {
	nodes  []*node
	leafs  []*node
	layer  int // layer being built, for node.layer
	nNodes int
}

func (g *graph) setName(n *node, name string) {
	if len(name) > ggmlMaxName-1 {
		name = name[:ggmlMaxName-1]
	}
	n.name = name
}

// cb is llama.cpp's graph callback cb(cur, name, il): "name-il" for layer
// tensors, "name" otherwise.
func (g *graph) cb(n *node, name string, il int) {
	if il >= 0 {
		g.setName(n, fmt.Sprintf("%s-%d", name, il))
	} else {
		g.setName(n, name)
	}
}

// newTensor is ggml_new_tensor: a contiguous tensor of its own.
func (g *graph) newTensor(t quant.Type, ne ...int64) *node {
	n := &node{typ: t, layer: g.layer}
	for i := range n.ne {
		n.ne[i] = 1
	}
	copy(n.ne[:], ne)
	n.nb[0] = typeSize(t)
	bs := int64(t.BlockSize())
	if bs < 1 {
		bs = 1
	}
	n.nb[1] = n.nb[0] * (n.ne[0] / bs)
	for i := 2; i < 4; i++ {
		n.nb[i] = n.nb[i-1] * n.ne[i-1]
	}
	return n
}

// newView is ggml_new_tensor_impl with a view source: a tensor of shape ne
// with contiguous strides, sharing a's memory from byte offset offs.
func (g *graph) newView(a *node, t quant.Type, offs int64, ne ...int64) *node {
	n := g.newTensor(t, ne...)
	src, base := a.storage()
	n.viewSrc = src
	n.viewOffs = base + offs
	return n
}

// leaf makes an input tensor (op NONE).
func (g *graph) leaf(t quant.Type, ne ...int64) *node {
	n := g.newTensor(t, ne...)
	n.layer = -1
	return n
}

// weightLeaf makes a model tensor.
func (g *graph) weightLeaf(name string, t quant.Type, data []byte, ne []int64) *node {
	n := g.newTensor(t, ne...)
	n.name = name
	n.weight = data
	n.layer = -1
	return n
}

// dupTensor is ggml_dup_tensor: a new contiguous tensor shaped like a.
func (g *graph) dupTensor(a *node) *node {
	return g.newTensor(a.typ, a.ne[:]...)
}

// viewTensor is ggml_view_tensor: a view with a's shape and strides.
func (g *graph) viewTensor(a *node) *node {
	n := g.newView(a, a.typ, 0, a.ne[:]...)
	n.nb = a.nb
	g.setName(n, a.name+" (view)")
	return n
}

// getRows is ggml_get_rows(a, b).
func (g *graph) getRows(a, b *node) *node {
	t := quant.F32
	if a.typ == quant.I32 {
		t = quant.I32
	}
	n := g.newTensor(t, a.ne[0], b.ne[0], b.ne[1], b.ne[2])
	n.op = opGetRows
	n.src[0], n.src[1] = a, b
	return n
}

// rmsNorm is ggml_rms_norm(a, eps).
func (g *graph) rmsNorm(a *node, eps float32) *node {
	n := g.dupTensor(a)
	n.op = opRMSNorm
	n.fp[0] = eps
	n.src[0] = a
	return n
}

func (g *graph) binary(o opKind, a, b *node) *node {
	n := g.dupTensor(a)
	n.op = o
	n.src[0], n.src[1] = a, b
	return n
}

// mul is ggml_mul(a, b), b broadcast over a.
func (g *graph) mul(a, b *node) *node { return g.binary(opMul, a, b) }

// add is ggml_add(a, b), b broadcast over a.
func (g *graph) add(a, b *node) *node { return g.binary(opAdd, a, b) }

// scale is ggml_scale(a, s).
func (g *graph) scale(a *node, s float32) *node {
	n := g.dupTensor(a)
	n.op = opScale
	n.fp[0] = s
	n.src[0] = a
	return n
}

// mulMat is ggml_mul_mat(a, b): {a.ne[1], b.ne[1], b.ne[2], b.ne[3]}.
func (g *graph) mulMat(a, b *node) *node {
	n := g.newTensor(quant.F32, a.ne[1], b.ne[1], b.ne[2], b.ne[3])
	n.op = opMulMat
	n.src[0], n.src[1] = a, b
	return n
}

// reshape is ggml_reshape_{1,2,3,4}d: a contiguous view with a new shape.
func (g *graph) reshape(a *node, ne ...int64) *node {
	n := g.newView(a, a.typ, 0, ne...)
	g.setName(n, a.name+" (reshaped)")
	n.op = opReshape
	n.src[0] = a
	return n
}

// view2d is ggml_view_2d.
func (g *graph) view2d(a *node, ne0, ne1, nb1, offset int64) *node {
	n := g.newView(a, a.typ, offset, ne0, ne1)
	n.nb[1] = nb1
	n.nb[2] = nb1 * ne1
	n.nb[3] = n.nb[2]
	g.setName(n, a.name+" (view)")
	n.op = opView
	n.src[0] = a
	return n
}

// view4d is ggml_view_4d.
func (g *graph) view4d(a *node, ne0, ne1, ne2, ne3, nb1, nb2, nb3, offset int64) *node {
	n := g.newView(a, a.typ, offset, ne0, ne1, ne2, ne3)
	n.nb[1], n.nb[2], n.nb[3] = nb1, nb2, nb3
	g.setName(n, a.name+" (view)")
	n.op = opView
	n.src[0] = a
	return n
}

// permute is ggml_permute(a, axis0, axis1, axis2, axis3).
func (g *graph) permute(a *node, axes ...int) *node {
	n := g.viewTensor(a)
	g.setName(n, a.name+" (permuted)")
	for i, ax := range axes {
		n.ne[ax] = a.ne[i]
		n.nb[ax] = a.nb[i]
	}
	n.op = opPermute
	n.src[0] = a
	return n
}

// transpose is ggml_transpose.
func (g *graph) transpose(a *node) *node {
	n := g.viewTensor(a)
	g.setName(n, a.name+" (transposed)")
	n.ne[0], n.ne[1] = a.ne[1], a.ne[0]
	n.nb[0], n.nb[1] = a.nb[1], a.nb[0]
	n.op = opTranspose
	n.src[0] = a
	return n
}

// cont is ggml_cont_4d(a, ne...) (ggml_cont when ne is a's shape).
func (g *graph) cont(a *node, ne ...int64) *node {
	n := g.newTensor(a.typ, ne...)
	g.setName(n, a.name+" (cont)")
	n.op = opCont
	n.src[0] = a
	return n
}

// ropeParams are ggml_rope_ext's parameters.
type ropeParams struct {
	nDims, mode, nCtxOrig                                          int32
	freqBase, freqScale, extFactor, attnFactor, betaFast, betaSlow float32
}

// rope is ggml_rope_ext(a, pos, freqs, ...).
func (g *graph) rope(a, pos, freqs *node, p ropeParams) *node {
	n := g.dupTensor(a)
	n.op = opRope
	n.src[0], n.src[1], n.src[2] = a, pos, freqs
	n.ip[1], n.ip[2], n.ip[4] = p.nDims, p.mode, p.nCtxOrig
	n.fp[0], n.fp[1], n.fp[2], n.fp[3], n.fp[4], n.fp[5] = p.freqBase, p.freqScale, p.extFactor, p.attnFactor, p.betaFast, p.betaSlow
	return n
}

// setRows is ggml_set_rows(a, b, c): rows of b stored into a at indices c.
func (g *graph) setRows(a, b, c *node) *node {
	n := g.viewTensor(a)
	n.op = opSetRows
	n.src[0], n.src[1], n.src[2] = b, c, a
	return n
}

// cast is ggml_cast(a, t).
func (g *graph) cast(a *node, t quant.Type) *node {
	n := g.newTensor(t, a.ne[:]...)
	g.setName(n, a.name+" (copy)")
	n.op = opCpy
	n.src[0] = a
	n.self = true
	return n
}

// flashAttnExt is ggml_flash_attn_ext(q, k, v, mask, scale, max_bias,
// logit_softcap): {v.ne[0], q.ne[2], q.ne[1], q.ne[3]}.
func (g *graph) flashAttnExt(q, k, v, mask *node, scale, maxBias, softcap float32) *node {
	n := g.newTensor(quant.F32, v.ne[0], q.ne[2], q.ne[1], q.ne[3])
	n.op = opFlashAttnExt
	n.src[0], n.src[1], n.src[2], n.src[3] = q, k, v, mask
	n.fp[0], n.fp[1], n.fp[2] = scale, maxBias, softcap
	return n
}

// softMaxExt is ggml_soft_max_ext(a, mask, scale, max_bias).
func (g *graph) softMaxExt(a, mask *node, scale, maxBias float32) *node {
	n := g.dupTensor(a)
	n.op = opSoftMax
	n.src[0], n.src[1] = a, mask
	n.fp[0], n.fp[1] = scale, maxBias
	return n
}

// swigluSplit is ggml_swiglu_split(a, b): silu(a)*b.
func (g *graph) swigluSplit(a, b *node) *node {
	n := g.dupTensor(a)
	n.op = opSwiglu
	n.src[0], n.src[1] = a, b
	return n
}

// expand is ggml_build_forward_expand: add t and its unvisited ancestors to
// the graph, depth first, sources left to right (ggml_visit_parents).
func (g *graph) expand(t *node) {
	if t.visited {
		return
	}
	t.visited = true
	for i, s := range t.src {
		if s == nil || (i == 1 && t.self) {
			continue
		}
		g.expand(s)
	}
	if t.op == opNone {
		if t.name == "" {
			g.setName(t, fmt.Sprintf("leaf_%d", len(g.leafs)))
		}
		t.isLeaf = true
		g.leafs = append(g.leafs, t)
		return
	}
	if t.name == "" {
		g.setName(t, fmt.Sprintf("node_%d", len(g.nodes)))
	}
	t.index = len(g.nodes)
	g.nodes = append(g.nodes, t)
}

// reshapedDim finds the dimension of shape ne that indexes tokens when a
// tensor whose token dimension dim (of size T, with inner elements below
// it) is reinterpreted with shape ne, or -1.
func reshapedDim(inner, T int64, ne [4]int64) int {
	p := int64(1)
	for d := 0; d < 4; d++ {
		if p == inner && ne[d] == T {
			return d
		}
		p *= ne[d]
	}
	return -1
}

// tokenDims computes node.tokDim for every node from the inputs' token
// dimensions, op by op.
func (b *built) tokenDims() {
	for _, l := range b.g.leafs {
		l.tokDim = -1
	}
	b.tokens.tokDim, b.pos.tokDim, b.outIDs.tokDim = 0, 0, 0
	b.kqMask.tokDim = 1
	if b.kqMaskSWA != nil {
		b.kqMaskSWA.tokDim = 1
	}
	for _, n := range b.g.nodes {
		n.tokDim = -1
		a := n.src[0]
		switch n.op {
		case opGetRows:
			// {a.ne[0], b.ne[0], b.ne[1], b.ne[2]}
			if d := n.src[1].tokDim; d >= 0 && d < 3 {
				n.tokDim = d + 1
			}
		case opRMSNorm, opMul, opAdd, opScale, opSwiglu, opRope, opCpy, opSoftMax, opTanh, opGeglu,
			opArgsort, opSumRows, opClamp, opDiv, // (the MoE ops: rows stay rows)
			opSwigluOAI, opAddID: // gpt-oss
			n.tokDim = a.tokDim
		case opMulMat, opMulMatID:
			if d := n.src[1].tokDim; d >= 1 {
				n.tokDim = d
			}
		case opPermute, opTranspose:
			if a.tokDim >= 0 {
				// find where dimension a.tokDim went: the one with its stride
				for d := 0; d < 4; d++ {
					if n.nb[d] == a.nb[a.tokDim] && n.ne[d] == a.ne[a.tokDim] {
						n.tokDim = d
					}
				}
			}
		case opReshape, opView, opCont:
			if a.tokDim >= 0 {
				inner := int64(1)
				for d := 0; d < a.tokDim; d++ {
					inner *= a.ne[d]
				}
				n.tokDim = reshapedDim(inner, a.ne[a.tokDim], n.ne)
				if n.tokDim < 0 && n.op == opView {
					// a strided view (a top-k selection, one expert's
					// rows): the dimension with the token stride
					for d := 0; d < 4; d++ {
						if n.nb[d] == a.nb[a.tokDim] && n.ne[d] == a.ne[a.tokDim] {
							n.tokDim = d
						}
					}
				}
			}
		case opFlashAttnExt:
			if a.tokDim == 1 {
				n.tokDim = 2
			}
		case opSetRows:
			n.tokDim = -1
		}
		if s, _ := n.storage(); s != n && s.isLeaf {
			n.tokDim = -1 // views of the KV cache
		}
	}
}
