// Package attention recomputes the attention nodes a flash-attention graph
// does not have. With flash attention llama.cpp runs one FLASH_ATTN_EXT op
// per layer (__fattn__-L), so its dump has no kq-L, kq_soft_max-L or kqv-L;
// an engine that computes attention step by step dumps exactly those.
// Derive adds them to a reference, recomputed from the reference's own
// inputs to the flash-attention op — the Q view and the K/V cache views —
// the way llama.cpp computes them without flash attention:
//
//	kq-L          {n_kv, T, n_head}  MUL_MAT(k, q): Σ_i K[i, c, h/g]·Q[i, t, h],
//	                                 unscaled and unmasked
//	kq_soft_max-L {n_kv, T, n_head}  softmax over c of kq·scale + mask
//	kqv-L         {d_v, T, n_head}   Σ_c V[i, c, h/g]·kq_soft_max[c, t, h]
//
// with g = n_head/n_head_kv (the KV head of query head h is h/g, as ggml
// broadcasts), in float64 and rounded to float32 once.
package attention

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Derived node base names.
const (
	KQ        = "kq"
	KQSoftMax = "kq_soft_max"
	KQV       = "kqv"
)

// Source is a reference with derived attention nodes: the wrapped source's
// nodes, and before each flash-attention node the derived ones of its
// layer. It implements reference.Source and reference.BufferLoader.
type Source struct {
	src     reference.Source
	nodes   []reference.NodeInfo
	derived map[string]*derivedNode // by key
	warn    []string

	mu    sync.Mutex
	stash map[string][]float32 // computed alongside another node, taken once
}

// derivedNode is one derived node and the layer it comes from.
type derivedNode struct {
	base  string // KQ, KQSoftMax or KQV
	layer *layer
	note  string
}

// layer is one flash-attention op's inputs.
type layer struct {
	l                int
	fattn            string            // the flash-attention node's key
	q, k, v, mask    string            // keys in the wrapped source; mask "" when causal
	scale            float64           // softmax scale
	scaleHow         string            // how scale was chosen (kqScale)
	sinks            bool              // the op adds attention sinks (src[4])
	keys             map[string]string // derived node keys by base name
	d, dv, nkv, t, h int64
	hkv              int64
}

// Derive returns src with the attention nodes of every flash-attention
// layer that want asks for (want is called with "kq-L", "kq_soft_max-L" and
// "kqv-L"; nil asks for all), and warnings for the layers whose nodes cannot
// be derived (their inputs are missing or have no data). When nothing is
// derived it returns src itself.
//
// The softmax scale is the architecture's when its builder fixes one (phi3,
// gemma2, gemma3: 1, their Q being scaled before), else the model's
// attention.scale when the dump records it, else 1/√d (the dump does not
// keep FLASH_ATTN_EXT's op params); the mask is the flash-attention op's own
// mask input when it has data, else the causal mask of one batch from
// position 0. Models whose attention adds more (logit soft-capping, ALiBi),
// and sliding-window models whose mask has no data, get kq only.
func Derive(src reference.Source, want func(name string) bool) (reference.Source, []string) {
	nodes := src.Nodes()
	s := &Source{src: src, derived: map[string]*derivedNode{}, stash: map[string][]float32{}}
	keys := map[string]bool{}
	for _, n := range nodes {
		keys[n.Key] = true
	}
	hp := hparams(src)
	arch := archOf(src)
	for i, n := range nodes {
		if opKey(n.Op) == "FLASH_ATTN_EXT" {
			ly, err := s.planLayer(nodes, i, hp, arch)
			if err != nil {
				s.warn = append(s.warn, fmt.Sprintf("%s: %s (%s): attention nodes not derived: %v", src.Describe().Path, n.Name, n.Op, err))
			} else {
				s.addLayer(ly, hp, keys, want)
			}
		}
		s.nodes = append(s.nodes, n)
	}
	if len(s.derived) == 0 {
		return src, s.warn
	}
	// Derived nodes go before their flash-attention node: rebuild the
	// list in that order.
	s.nodes = s.nodes[:0]
	for _, n := range nodes {
		if opKey(n.Op) == "FLASH_ATTN_EXT" {
			s.nodes = append(s.nodes, s.pending(n.Key)...)
		}
		s.nodes = append(s.nodes, n)
	}
	return s, s.warn
}

// opKey is the innermost op name ("GLU(SWIGLU)" → "SWIGLU").
func opKey(op string) string {
	if i := strings.IndexByte(op, '('); i > 0 && strings.HasSuffix(op, ")") {
		return op[i+1 : len(op)-1]
	}
	return op
}

// archDefaults adds what an architecture's llama.cpp builder fixes to the
// hyperparameters hp of a dump: gemma2 always soft-caps its attention
// logits (50 unless attn_logit_softcapping says otherwise). (The attention
// scales builders fix are archKQScale.)
func archDefaults(arch string, hp map[string]float64) {
	if arch == "gemma2" {
		if _, ok := hp["attn_logit_softcapping"]; !ok {
			hp["attn_logit_softcapping"] = 50
		}
	}
}

// hparams returns the model hyperparameters a dump records, by key without
// the architecture prefix ("attention.scale"), with archDefaults.
func hparams(src reference.Source) map[string]float64 {
	out := map[string]float64{}
	d, ok := src.(*reference.Dump)
	if !ok || d.Manifest == nil {
		return out
	}
	arch := d.Manifest.Model.Architecture
	for k, v := range d.Manifest.Model.HParams {
		if f, ok := v.(float64); ok {
			out[strings.TrimPrefix(k, arch+".")] = f
		}
	}
	archDefaults(arch, out)
	return out
}

// pending lists the derived nodes of the flash-attention node fattnKey, in
// llama.cpp's order (kq, kq_soft_max, kqv).
func (s *Source) pending(fattnKey string) []reference.NodeInfo {
	var out []reference.NodeInfo
	for _, base := range []string{KQ, KQSoftMax, KQV} {
		for key, dn := range s.derived {
			if dn.base == base && dn.layer.fattn == fattnKey {
				out = append(out, s.nodeInfo(key, dn))
			}
		}
	}
	return out
}

func (s *Source) nodeInfo(key string, dn *derivedNode) reference.NodeInfo {
	ly := dn.layer
	n := reference.NodeInfo{Key: key, Name: fmt.Sprintf("%s-%d", dn.base, ly.l), Type: "f32", Data: reference.FullData}
	switch dn.base {
	case KQ:
		n.Op, n.Ne, n.Src = "MUL_MAT", []int64{ly.nkv, ly.t, ly.h, 1}, []string{ly.k, ly.q}
	case KQSoftMax:
		n.Op, n.Ne, n.Src = "SOFT_MAX", []int64{ly.nkv, ly.t, ly.h, 1}, []string{fmt.Sprintf("%s-%d", KQ, ly.l)}
	case KQV:
		n.Op, n.Ne, n.Src = "MUL_MAT", []int64{ly.dv, ly.t, ly.h, 1}, []string{ly.v, fmt.Sprintf("%s-%d", KQSoftMax, ly.l)}
	}
	return n
}

// planLayer finds the inputs of the flash-attention node nodes[i]: its
// sources by name, each the closest earlier node of that name.
func (s *Source) planLayer(nodes []reference.NodeInfo, i int, hp map[string]float64, arch string) (*layer, error) {
	fa := nodes[i]
	if len(fa.Src) < 3 {
		return nil, errors.New("its sources (Q, K, V) are not recorded")
	}
	find := func(name string) (reference.NodeInfo, bool) {
		for j := i - 1; j >= 0; j-- {
			if nodes[j].Name == name {
				return nodes[j], true
			}
		}
		return reference.NodeInfo{}, false
	}
	var in [3]reference.NodeInfo
	for k, what := range []string{"Q", "K", "V"} {
		n, ok := find(fa.Src[k])
		if !ok {
			return nil, fmt.Errorf("its %s source %q is not in the graph", what, fa.Src[k])
		}
		if n.Data != reference.FullData {
			return nil, fmt.Errorf("its %s source %s has no data (a --filter dump) or only printed elements (a text log)", what, n.Key)
		}
		in[k] = n
	}
	q, k, v := tensor.Trim(in[0].Ne), tensor.Trim(in[1].Ne), tensor.Trim(in[2].Ne)
	pad := func(s []int64) []int64 {
		for len(s) < 3 {
			s = append(s, 1)
		}
		return s
	}
	q, k, v = pad(q), pad(k), pad(v)
	if len(q) > 3 || len(k) > 3 || len(v) > 3 {
		return nil, fmt.Errorf("Q %s, K %s, V %s: more than 3 dimensions", tensor.ShapeString(q), tensor.ShapeString(k), tensor.ShapeString(v))
	}
	ly := &layer{d: q[0], t: q[1], h: q[2], nkv: k[1], hkv: k[2], dv: v[0],
		fattn: fa.Key, q: in[0].Key, k: in[1].Key, v: in[2].Key, keys: map[string]string{}}
	if k[0] != ly.d || v[1] != ly.nkv || v[2] != ly.hkv || ly.hkv == 0 || ly.h%ly.hkv != 0 || ly.d == 0 {
		return nil, fmt.Errorf("Q %s, K %s, V %s do not make an attention ({d, T, n_head}, {d, n_kv, n_head_kv}, {d_v, n_kv, n_head_kv})", tensor.ShapeString(q), tensor.ShapeString(k), tensor.ShapeString(v))
	}
	ly.l = tensor.Layer(fa.Name)
	if ly.l < 0 {
		ly.l = tensor.Layer(in[0].Name) // an unnamed node_N: Qcur-L's layer
	}
	if ly.l < 0 {
		return nil, errors.New("its layer cannot be told from its name or its Q's")
	}
	if len(fa.Src) >= 4 && fa.Src[3] != "" {
		if m, ok := find(fa.Src[3]); ok && m.Data == reference.FullData {
			mt := tensor.Trim(m.Ne)
			if len(mt) <= 2 && mt[0] == ly.nkv && (len(mt) == 1 && ly.t == 1 || len(mt) == 2 && mt[1] >= ly.t) {
				ly.mask = m.Key
			}
		}
	}
	// attention sinks (gpt-oss: FLASH_ATTN_EXT's fifth source) add one
	// score per head to every softmax row
	ly.sinks = len(fa.Src) >= 5 && fa.Src[4] != ""
	ly.scale, ly.scaleHow = kqScale(ly.d, hp, arch)
	return ly, nil
}

// addLayer adds the wanted derived nodes of a layer, keyed by their names
// (suffixed when the source has the name as a key already).
func (s *Source) addLayer(ly *layer, hp map[string]float64, keys map[string]bool, want func(string) bool) {
	scaleHow := ly.scaleHow
	maskHow := "the flash-attention op's mask " + ly.mask
	if ly.mask == "" {
		maskHow = "a causal mask of one batch from position 0 (the op's mask has no data)"
	}
	from := fmt.Sprintf("recomputed from the reference's Q and KV cache views (%s, %s", ly.q, ly.k)
	bases := []string{KQ}
	softcap, alibi := hp["attn_logit_softcapping"] > 0, hp["attention.max_alibi_bias"] > 0
	// a sliding window needs the op's own mask: the causal one is wrong
	swaNoMask := hp["attention.sliding_window"] > 0 && ly.mask == ""
	switch {
	case !softcap && !alibi && !swaNoMask && !ly.sinks:
		bases = append(bases, KQSoftMax, KQV)
	case ly.sinks:
		s.warn = append(s.warn, fmt.Sprintf("layer %d: only kq-%d derived: the model's softmax adds attention sinks, which the derivation does not reproduce", ly.l, ly.l))
	case swaNoMask && !softcap && !alibi:
		s.warn = append(s.warn, fmt.Sprintf("layer %d: only kq-%d derived: the model attends through a sliding window and the op's mask has no data", ly.l, ly.l))
	default:
		s.warn = append(s.warn, fmt.Sprintf("layer %d: only kq-%d derived: the model's attention adds logit soft-capping or ALiBi, which the derivation does not reproduce", ly.l, ly.l))
	}
	for _, base := range bases {
		name := fmt.Sprintf("%s-%d", base, ly.l)
		if want != nil && !want(name) {
			continue
		}
		key := name
		for k := 2; keys[key]; k++ {
			key = fmt.Sprintf("%s#derived%d", name, k)
		}
		keys[key] = true
		dn := &derivedNode{base: base, layer: ly}
		switch base {
		case KQ:
			dn.note = from + "; unscaled and unmasked, as llama.cpp's kq without flash attention)"
		case KQSoftMax:
			dn.note = from + "; softmax of kq·scale + mask, " + scaleHow + ", " + maskHow + ")"
		case KQV:
			dn.note = fmt.Sprintf("recomputed from the reference's Q and KV cache views (%s, %s, %s; %s, %s)", ly.q, ly.k, ly.v, scaleHow, maskHow)
		}
		ly.keys[base] = key
		s.derived[key] = dn
	}
}

// Warnings are the problems Derive met (also returned by it).
func (s *Source) Warnings() []string { return s.warn }

// Unwrap returns the wrapped source.
func (s *Source) Unwrap() reference.Source { return s.src }

// DerivedNote says how a derived node was computed, "" for the wrapped
// source's own nodes (compare.Node.Derived).
func (s *Source) DerivedNote(key string) string {
	if dn, ok := s.derived[key]; ok {
		return dn.note
	}
	return ""
}

// Describe implements reference.Source: the wrapped source's description.
func (s *Source) Describe() reference.Info { return s.src.Describe() }

// Nodes implements reference.Source.
func (s *Source) Nodes() []reference.NodeInfo { return s.nodes }

// Load implements reference.Source.
func (s *Source) Load(key string) (*tensor.Tensor, error) { return s.LoadInto(key, nil) }

// LoadInto implements reference.BufferLoader: the wrapped source's nodes
// through its LoadInto when it has one.
func (s *Source) LoadInto(key string, buf []float32) (*tensor.Tensor, error) {
	dn, ok := s.derived[key]
	if !ok {
		if bl, ok := s.src.(reference.BufferLoader); ok {
			return bl.LoadInto(key, buf)
		}
		return s.src.Load(key)
	}
	s.mu.Lock()
	data, ok := s.stash[key]
	delete(s.stash, key)
	s.mu.Unlock()
	if !ok {
		out, err := s.compute(dn.layer)
		if err != nil {
			return nil, fmt.Errorf("%s: derived node %s: %w", s.src.Describe().Path, key, err)
		}
		s.mu.Lock()
		for base, k := range dn.layer.keys {
			if d, ok := out[base]; ok && k != key {
				s.stash[k] = d
			}
		}
		s.mu.Unlock()
		data = out[dn.base]
	}
	n := s.nodeInfo(key, dn)
	return &tensor.Tensor{Key: key, Name: n.Name, Op: n.Op, Ne: n.Ne, Data: data}, nil
}

// compute derives a layer's nodes (those it has keys for).
func (s *Source) compute(ly *layer) (map[string][]float32, error) {
	load := func(key string, ne ...int64) ([]float32, error) {
		t, err := s.src.Load(key)
		if err != nil {
			return nil, err
		}
		if int64(len(t.Data)) != tensor.Numel(ne) {
			return nil, fmt.Errorf("%s: %d values, want %s", key, len(t.Data), tensor.ShapeString(ne))
		}
		return t.Data, nil
	}
	q, err := load(ly.q, ly.d, ly.t, ly.h)
	if err != nil {
		return nil, err
	}
	k, err := load(ly.k, ly.d, ly.nkv, ly.hkv)
	if err != nil {
		return nil, err
	}
	var v, mask []float32
	_, wantSM := ly.keys[KQSoftMax]
	_, wantV := ly.keys[KQV]
	if wantV {
		if v, err = load(ly.v, ly.dv, ly.nkv, ly.hkv); err != nil {
			return nil, err
		}
	}
	if ly.mask != "" && (wantSM || wantV) {
		mt, err := s.src.Load(ly.mask)
		if err != nil {
			return nil, err
		}
		mask = mt.Data
	}
	return derive(ly, q, k, v, mask, wantSM, wantV), nil
}

// derive computes kq, and kq_soft_max and kqv when asked, in float64.
func derive(ly *layer, q, k, v, mask []float32, wantSM, wantV bool) map[string][]float32 {
	d, dv, nkv, T, H, g := ly.d, ly.dv, ly.nkv, ly.t, ly.h, ly.h/ly.hkv
	kq := make([]float32, nkv*T*H)
	var sm, kqv []float32
	if wantSM || wantV {
		sm = make([]float32, nkv*T*H)
	}
	if wantV {
		kqv = make([]float32, dv*T*H)
	}
	row := make([]float64, nkv)
	for h := range H {
		hk := h / g
		for t := range T {
			qv := q[(h*T+t)*d : (h*T+t+1)*d]
			for c := range nkv {
				kv := k[(hk*nkv+c)*d : (hk*nkv+c+1)*d]
				var acc float64
				for i := range d {
					acc += float64(kv[i]) * float64(qv[i])
				}
				row[c] = acc
				kq[(h*T+t)*nkv+c] = float32(acc)
			}
			if sm == nil {
				continue
			}
			// softmax(kq·scale + mask) over the cells.
			mx := math.Inf(-1)
			for c := range nkv {
				x := row[c] * ly.scale
				if mask != nil {
					x += float64(mask[t*nkv+c])
				} else if c > t {
					x = math.Inf(-1)
				}
				row[c] = x
				mx = math.Max(mx, x)
			}
			var sum float64
			for c := range nkv {
				e := 0.0
				if !math.IsInf(mx, -1) {
					e = math.Exp(row[c] - mx)
				}
				row[c] = e
				sum += e
			}
			for c := range nkv {
				if sum > 0 {
					row[c] /= sum
				}
				sm[(h*T+t)*nkv+c] = float32(row[c])
			}
			if kqv == nil {
				continue
			}
			out := kqv[(h*T+t)*dv : (h*T+t+1)*dv]
			for i := range dv {
				var acc float64
				for c := range nkv {
					if row[c] != 0 {
						acc += float64(v[(hk*nkv+c)*dv+i]) * row[c]
					}
				}
				out[i] = float32(acc)
			}
		}
	}
	res := map[string][]float32{KQ: kq}
	if wantSM {
		res[KQSoftMax] = sm
	}
	if wantV {
		res[KQV] = kqv
	}
	return res
}
