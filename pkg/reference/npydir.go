package reference

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// NPYDir is a directory of .npy files without a manifest, one tensor per
// file, as a third-party engine might dump them. The tensor name is the file
// name without ".npy", ne is the reversed numpy shape, and the order is
// the one documented in docs/dump-format.md (see [SortNames]). A name
// ending in "#N" ("Qcur-0#2.npy") is the N-th node of that name, as in a
// dump's keys: compare aligns it with the reference's N-th Qcur-0.
type NPYDir struct {
	Dir      string
	nodes    []NodeInfo
	files    map[string]string // key -> file path
	bad      map[string]error  // key -> why its file cannot be read
	warnings []string
}

// OpenNPYDir opens dir and reads the header of every *.npy file in it (not
// in subdirectories). An unreadable file is listed with a warning as a node
// of kind Unreadable (no shape), whose Load returns the reason, so that a
// comparison reports it rather than leave it out; a directory without any
// readable file is an error.
func OpenNPYDir(dir string) (*NPYDir, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.npy"))
	if err != nil {
		return nil, err
	}
	d := &NPYDir{Dir: dir, files: map[string]string{}, bad: map[string]error{}}
	byName := map[string]NodeInfo{}
	var names []string
	readable := 0
	for _, p := range paths {
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(p), ".npy")
		h, err := ReadNPYHeader(p)
		if err != nil {
			d.warnings = append(d.warnings, fmt.Sprintf("cannot read %v", err))
			if !errors.Is(err, ErrFormat) {
				err = fileErr(p, "%v", err)
			}
			names = append(names, name)
			byName[name] = NodeInfo{Key: name, Name: name, Data: Unreadable}
			d.bad[name] = err
			continue
		}
		readable++
		names = append(names, name)
		byName[name] = NodeInfo{Key: name, Name: name, Type: npyTypeName(h), Ne: NeFromNPYShape(h.Shape), Data: FullData}
		d.files[name] = p
	}
	if readable == 0 {
		if len(d.warnings) > 0 {
			// Say why: the first file's problem, with its offset.
			return nil, fileErr(dir, "no readable .npy file (%s%s)", strings.TrimPrefix(d.warnings[0], "cannot read "), moreText(len(d.warnings)-1))
		}
		return nil, fileErr(dir, "no readable .npy file")
	}
	for _, n := range SortNames(names) {
		d.nodes = append(d.nodes, byName[n])
	}
	return d, nil
}

// moreText is "; and N more unreadable" for n > 0 files not described.
func moreText(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; and %d more unreadable", n)
}

// npyTypeName maps a dtype to the ggml type name it corresponds to.
func npyTypeName(h *NPYHeader) string {
	switch h.kind {
	case npyKind{'f', 4}:
		return "f32"
	case npyKind{'f', 2}:
		return "f16"
	case npyKind{'f', 8}:
		return "f64"
	case npyKind{'i', 1}:
		return "i8"
	case npyKind{'i', 2}:
		return "i16"
	case npyKind{'i', 4}:
		return "i32"
	case npyKind{'i', 8}:
		return "i64"
	}
	return h.Descr
}

// Describe implements Source.
func (d *NPYDir) Describe() Info {
	return Info{Kind: KindNPYDir, Path: d.Dir, Format: "directory of .npy files", Warnings: d.warnings}
}

// Nodes implements Source.
func (d *NPYDir) Nodes() []NodeInfo { return d.nodes }

// Load implements Source.
func (d *NPYDir) Load(key string) (*tensor.Tensor, error) { return d.LoadInto(key, nil) }

// LoadInto implements BufferLoader.
func (d *NPYDir) LoadInto(key string, buf []float32) (*tensor.Tensor, error) {
	if err, bad := d.bad[key]; bad {
		return nil, err
	}
	p, ok := d.files[key]
	if !ok {
		return nil, fmt.Errorf("%s: %q: %w", d.Dir, key, ErrNotFound)
	}
	a, err := ReadNPYInto(p, buf)
	if err != nil {
		return nil, err
	}
	return &tensor.Tensor{Key: key, Name: key, Ne: NeFromNPYShape(a.Shape), Data: a.Data}, nil
}

// layerRe finds a layer number in engine-style names: "blk.3.", "layers.3.",
// "layer_3", "h.3.", "block3"...
var layerRe = regexp.MustCompile(`(?i)(?:^|[._/-])(?:blk|layers?|blocks?|h)[._-]?([0-9]{1,5})(?:[._/-]|$)`)

// nameLayer returns the layer of a tensor name, -1 if none: llama.cpp's
// "base-L" suffix first, then the engine patterns of layerRe.
func nameLayer(name string) int {
	name, _ = tensor.SplitOccurrence(name)
	if _, l := tensor.SplitName(name); l >= 0 {
		return l
	}
	if m := layerRe.FindStringSubmatch(name); m != nil {
		l, _ := strconv.Atoi(m[1])
		return l
	}
	return -1
}

// opRanks orders the tensors of one layer. The first entry whose pattern
// occurs in the lower-cased name wins; longer, more specific patterns come
// first.
var opRanks = []struct {
	pat  string
	rank int
}{
	{"attn_norm", 1}, {"input_layernorm", 1}, {"ln_1", 1},
	{"ffn_norm", 21}, {"post_attention_layernorm", 21}, {"ln_2", 21},
	{"q_norm", 3}, {"k_norm", 5}, {"qcur_normed", 3}, {"kcur_normed", 5},
	{"kq_soft_max", 11}, {"softmax", 11}, {"attn_weights", 11},
	{"kqv_out", 13}, {"attn_output", 14}, {"o_proj", 14}, {"attn_out", 14},
	{"kqv", 12}, {"kq", 10}, {"scores", 10}, {"fattn", 12},
	{"qcur", 2}, {"q_proj", 2}, {"attn_q", 2}, {"query", 2},
	{"kcur", 4}, {"k_proj", 4}, {"attn_k", 4}, {"key", 4},
	{"vcur", 6}, {"v_proj", 6}, {"attn_v", 6}, {"value", 6},
	{"ffn_inp", 20}, {"residual", 20},
	{"ffn_gate", 22}, {"gate_proj", 22},
	{"ffn_up", 23}, {"up_proj", 23},
	{"ffn_swiglu", 24}, {"ffn_geglu", 24}, {"ffn_act", 24}, {"ffn_silu", 24}, {"ffn_gelu", 24}, {"act", 24},
	{"ffn_out", 25}, {"down_proj", 25}, {"ffn_down", 25}, {"mlp", 25},
	{"l_out", 30}, {"layer_out", 30}, {"hidden", 30}, {"output", 30},
	{"norm", 0},
}

func opRank(name string) int {
	name, _ = tensor.SplitOccurrence(name)
	base, _ := tensor.SplitName(name)
	b := strings.ToLower(base)
	for _, r := range opRanks {
		if strings.Contains(b, r.pat) {
			return r.rank
		}
	}
	return 50
}

// inputWords mark layer-less tensors that come before the layers.
var inputWords = []string{"embd", "embed", "inp_", "input", "tok", "wte"}

// SortNames orders tensor names the way an .npy directory without manifest
// is listed: tensors without a layer number that look like inputs (names
// containing embd, embed, inp_, input, tok or wte) first; then layers in
// increasing order, within a layer by the position of the op in a LLaMA-style
// block (norm, attn_norm, Q, K, V, kq, softmax, kqv, kqv_out, attn_out,
// ffn_inp, ffn_norm, gate, up, activation, ffn_out, l_out; unknown names
// after those); then the remaining layer-less tensors (output norm, logits).
// Ties are broken by name.
func SortNames(names []string) []string {
	type item struct {
		name         string
		group, layer int
		rank         int
	}
	items := make([]item, len(names))
	for i, n := range names {
		it := item{name: n, layer: nameLayer(n), rank: opRank(n)}
		switch {
		case it.layer >= 0:
			it.group = 1
		case isInputName(n):
			it.group = 0
		default:
			it.group = 2
		}
		if it.group != 1 {
			it.layer = 0
			if it.group == 2 {
				it.rank = outputRank(n)
			}
		}
		items[i] = it
	}
	sort.SliceStable(items, func(a, b int) bool {
		x, y := items[a], items[b]
		if x.group != y.group {
			return x.group < y.group
		}
		if x.layer != y.layer {
			return x.layer < y.layer
		}
		if x.rank != y.rank {
			return x.rank < y.rank
		}
		return x.name < y.name
	})
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.name
	}
	return out
}

func isInputName(n string) bool {
	l := strings.ToLower(n)
	for _, w := range inputWords {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

// outputRank orders the layer-less tail: norms, then the output / logits.
func outputRank(n string) int {
	l := strings.ToLower(n)
	switch {
	case strings.Contains(l, "result_norm"):
		return 1
	case strings.Contains(l, "norm"):
		return 0
	case strings.Contains(l, "result_output"), strings.Contains(l, "logits"), strings.Contains(l, "lm_head"):
		return 3
	}
	return 2
}
