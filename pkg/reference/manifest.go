package reference

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Dump directory constants. The format is documented field by field in
// docs/dump-format.md.
const (
	// ManifestFile is the name of the manifest inside a dump directory.
	ManifestFile = "manifest.json"
	// FormatName is the value of the manifest's "format" field.
	FormatName = "layerdiff-dump"
	// FormatVersion is the manifest version this package writes and the
	// newest it reads.
	FormatVersion = 1
)

// Manifest describes a dump directory: how the activations were produced
// and, per graph node, where its values are stored.
type Manifest struct {
	Format           string `json:"format"`            // always FormatName
	FormatVersion    int    `json:"format_version"`    // FormatVersion
	LayerdiffVersion string `json:"layerdiff_version"` // version of the producing tool
	// Producer optionally names, for a dump written by another program than
	// layerdiff's dumpers, the engine and the writer: "my-engine 0.3
	// (layerdiff capture/python 1)". Reports show it as the dump's producer.
	Producer string `json:"producer,omitempty"`
	Created  string `json:"created,omitempty"` // RFC 3339 time of the run, informative

	LlamaCppCommit string `json:"llamacpp_commit"` // llama.cpp commit the dumper was built from, e.g. "ec98e2002"
	LlamaCppSource string `json:"llamacpp_source"` // where that llama.cpp came from, e.g. "github.com/ollama/ollama v0.17.4"
	SystemInfo     string `json:"system_info"`     // llama_print_system_info(): CPU features and backends
	// ExtraBufts are the names of the CPU device's extra buffer types
	// (ggml_backend_dev_get_extra_bufts), which llama.cpp tries in this
	// order before the plain CPU buffer for every weight it keeps on the
	// CPU, e.g. "CPU_REPACK" (weights repacked for ggml's interleaved
	// kernels) or "AMX". Empty when there are none; nil (null or absent)
	// when the dump does not say (dumps written before the field).
	ExtraBufts []string `json:"extra_bufts"`

	Model ModelInfo `json:"model"`

	Prompt string  `json:"prompt"` // text that was tokenized ("" when tokens were given directly)
	Tokens []int32 `json:"tokens"` // token ids evaluated, in order, from position 0

	Threads            int    `json:"threads"`
	FlashAttnRequested string `json:"flash_attn_requested"` // "auto", "on" or "off"
	FlashAttn          string `json:"flash_attn"`           // as resolved: "on" or "off" ("" unknown)
	TypeK              string `json:"type_k"`               // ggml type name of the K cache, e.g. "f16"
	TypeV              string `json:"type_v"`               // ggml type name of the V cache
	NCtx               int    `json:"n_ctx"`
	NBatch             int    `json:"n_batch"`  // logical batch size
	NUBatch            int    `json:"n_ubatch"` // physical (micro) batch size
	// OutputAll is true when every position was requested as an output, so
	// the last layer and the logits keep all rows; false when llama.cpp kept
	// only the last position (its default for a prompt).
	OutputAll bool `json:"output_all"`

	Nodes []ManifestNode `json:"nodes"`
}

// ModelInfo identifies the model a dump was made from.
type ModelInfo struct {
	Path         string         `json:"path"`                  // as given to the dumper
	Size         int64          `json:"size"`                  // bytes
	SHA256       string         `json:"sha256"`                // lowercase hex of the whole file
	Fingerprint  string         `json:"fingerprint,omitempty"` // ModelFingerprint: cheap identity checked by layerdiff run; "" in older dumps
	Architecture string         `json:"architecture"`
	HParams      map[string]any `json:"hparams"` // e.g. "n_embd": 64, "rope_freq_base": 10000
}

// ManifestNode is one computed graph node.
type ManifestNode struct {
	Index int      `json:"index"` // position in graph (callback) order, 0-based
	Key   string   `json:"key"`   // unique: Name, or Name + "#2", "#3"... for repeats
	Name  string   `json:"name"`  // llama.cpp's tensor name
	Op    string   `json:"op"`    // ggml_op_desc(): "MUL_MAT", "ROPE", "SWIGLU", "SILU"...
	Src   []string `json:"src"`   // names of src[0], src[1]... up to the first NULL
	Type  string   `json:"type"`  // ggml type name: "f32", "f16", "i32"...
	Ne    []int64  `json:"ne"`    // shape in ggml order (ne[0] fastest), 4 entries from llama.cpp
	// File is the .npy file holding the node's values, relative to the dump
	// directory (slash-separated), or "" when the values were not stored.
	File     string `json:"file"`
	IsView   bool   `json:"is_view"`             // op is VIEW/RESHAPE/PERMUTE/TRANSPOSE or view_src is set
	ViewSrc  string `json:"view_src,omitempty"`  // name of the tensor this one views
	ViewOffs uint64 `json:"view_offs,omitempty"` // byte offset into ViewSrc
	// DataOf is the key of an earlier node whose stored values are, element
	// for element in ggml order, this node's values (a reshape or a
	// contiguous view at offset 0); File is then "".
	DataOf string `json:"data_of,omitempty"`
	// UBatch is the 0-based index of the micro-batch (llama_decode call)
	// that computed the node, when the prompt was split.
	UBatch int    `json:"ubatch,omitempty"`
	Stats  *Stats `json:"stats,omitempty"`
}

// Stats summarize a node's values; see [ComputeStats].
type Stats struct {
	// Sum is accumulated in float32 over the values in ggml order, exactly
	// as llama.cpp's eval callback computes the "sum =" it prints
	// (common/debug.cpp), then widened to float64.
	Sum Float `json:"sum"`
	Min Float `json:"min"` // smallest non-NaN value (0 when there is none)
	Max Float `json:"max"` // largest non-NaN value (0 when there is none)
	NaN int64 `json:"nan"` // number of NaN values
	Inf int64 `json:"inf"` // number of ±Inf values
}

// ComputeStats computes the manifest statistics of values in ggml order.
func ComputeStats(data []float32) Stats {
	s := Stats{Sum: Float(tensor.SumF32(data))}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range data {
		f := float64(v)
		if math.IsNaN(f) {
			s.NaN++
			continue
		}
		if math.IsInf(f, 0) {
			s.Inf++
		}
		lo = math.Min(lo, f)
		hi = math.Max(hi, f)
	}
	if int64(len(data)) == s.NaN {
		lo, hi = 0, 0
	}
	s.Min, s.Max = Float(lo), Float(hi)
	return s
}

// Float is a float64 that survives JSON: NaN and ±Inf, which JSON numbers
// cannot express, are written as the strings "NaN", "Infinity" and
// "-Infinity". Reading also accepts "nan", "inf", "+inf", "-inf" in any case.
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Infinity"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		switch strings.ToLower(s) {
		case "nan", "-nan", "+nan":
			*f = Float(math.NaN())
		case "inf", "+inf", "infinity", "+infinity":
			*f = Float(math.Inf(1))
		case "-inf", "-infinity":
			*f = Float(math.Inf(-1))
		default:
			return fmt.Errorf("invalid float %q", s)
		}
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("invalid float %s", b)
	}
	*f = Float(v)
	return nil
}

// NPYShape is the numpy (row-major) shape a node of ggml shape ne is stored
// with: ne reversed, trailing 1s of ne dropped (ne {64, 8, 1, 1} → (8, 64)).
func NPYShape(ne []int64) []int64 {
	t := tensor.Trim(ne)
	out := make([]int64, len(t))
	for i, d := range t {
		out[len(t)-1-i] = d
	}
	return out
}

// NeFromNPYShape is the ggml shape of a numpy-order shape: reversed.
func NeFromNPYShape(shape []int64) []int64 {
	out := make([]int64, len(shape))
	for i, d := range shape {
		out[len(shape)-1-i] = d
	}
	if len(out) == 0 {
		out = []int64{1}
	}
	return out
}

// NodeFileName is the file name the dumper gives node index with key: the
// zero-padded index, the key with characters outside [A-Za-z0-9._-] replaced
// by '_', and ".npy" ("0007-Qcur-0_2.npy" for key "Qcur-0#2"). Readers must
// use ManifestNode.File and never rebuild names.
func NodeFileName(index int, key string) string {
	var b strings.Builder
	for _, r := range key {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 96 {
			break
		}
	}
	return fmt.Sprintf("%04d-%s.npy", index, b.String())
}

// GatherGGML copies the elements of a ggml tensor with shape ne and byte
// strides nb out of raw (the tensor's bytes starting at its first element)
// into contiguous ggml order, so that permuted and strided views are stored
// as the values they show. It fails if a stride reaches outside raw.
func GatherGGML(raw []byte, elemSize int, ne []int64, nb []uint64) ([]byte, error) {
	if len(ne) != len(nb) || len(ne) == 0 || len(ne) > 4 || elemSize <= 0 {
		return nil, fmt.Errorf("gather: bad shape %v / strides %v / element size %d", ne, nb, elemSize)
	}
	var n4, s4 [4]uint64
	for i := range n4 {
		n4[i] = 1
	}
	count := uint64(1)
	for i, d := range ne {
		if d < 0 {
			return nil, fmt.Errorf("gather: negative dimension in %v", ne)
		}
		n4[i], s4[i] = uint64(d), nb[i]
		hi, lo := bits.Mul64(count, uint64(d))
		if hi != 0 {
			return nil, fmt.Errorf("gather: shape %v overflows", ne)
		}
		count = lo
	}
	if count == 0 {
		return []byte{}, nil
	}
	// Distinct elements occupy distinct bytes in any ggml view.
	if hi, lo := bits.Mul64(count, uint64(elemSize)); hi != 0 || lo > uint64(len(raw)) {
		return nil, fmt.Errorf("gather: shape %v of %d-byte elements needs more than the %d bytes given", ne, elemSize, len(raw))
	}
	// The farthest element must lie inside raw.
	last := uint64(0)
	for i := range n4 {
		hi, lo := bits.Mul64(n4[i]-1, s4[i])
		if hi != 0 || lo > uint64(len(raw)) {
			return nil, fmt.Errorf("gather: stride %d of dimension %d reaches past %d bytes", s4[i], i, len(raw))
		}
		last += lo
	}
	if last+uint64(elemSize) > uint64(len(raw)) {
		return nil, fmt.Errorf("gather: shape %v with strides %v needs %d bytes, have %d", ne, nb, last+uint64(elemSize), len(raw))
	}
	out := make([]byte, 0, count*uint64(elemSize))
	for i3 := uint64(0); i3 < n4[3]; i3++ {
		for i2 := uint64(0); i2 < n4[2]; i2++ {
			for i1 := uint64(0); i1 < n4[1]; i1++ {
				base := i1*s4[1] + i2*s4[2] + i3*s4[3]
				if s4[0] == uint64(elemSize) {
					out = append(out, raw[base:base+n4[0]*uint64(elemSize)]...)
					continue
				}
				for i0 := uint64(0); i0 < n4[0]; i0++ {
					o := base + i0*s4[0]
					out = append(out, raw[o:o+uint64(elemSize)]...)
				}
			}
		}
	}
	return out, nil
}

// KeyMaker assigns node keys in graph order, one node at a time (usable from
// an eval callback): the first node named X gets the key X, the N-th "X#N".
// If that key is already taken — only possible when names themselves contain
// '#' — "@I" is appended, I being the node's 0-based position in the graph.
// The zero value is ready to use.
type KeyMaker struct {
	count map[string]int
	used  map[string]bool
	n     int
}

// Next returns the key of the next node, named name.
func (k *KeyMaker) Next(name string) string {
	if k.count == nil {
		k.count, k.used = map[string]int{}, map[string]bool{}
	}
	k.count[name]++
	key := name
	if c := k.count[name]; c > 1 {
		key = name + "#" + strconv.Itoa(c)
	}
	if k.used[key] {
		key += "@" + strconv.Itoa(k.n)
	}
	k.used[key] = true
	k.n++
	return key
}

// UniqueKeys returns the keys of nodes with the given names, in graph
// order, as KeyMaker assigns them.
func UniqueKeys(names []string) []string {
	var k KeyMaker
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = k.Next(n)
	}
	return keys
}

// ReadManifest reads and validates dir/manifest.json and the headers of the
// .npy files it names (existence, readable header, shape matching ne). The
// tensor data is not read.
func ReadManifest(dir string) (*Manifest, error) {
	p := filepath.Join(dir, ManifestFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("reading dump manifest: %w", err)
	}
	m, err := decodeManifest(b, p)
	if err != nil {
		return nil, err
	}
	if err := m.validate(dir, p); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeManifest parses manifest JSON; name is used in errors.
func decodeManifest(b []byte, name string) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return nil, jsonErr(b, name, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, offsetErr(name, dec.InputOffset(), "data after the manifest object")
	}
	return &m, nil
}

// jsonErr turns a JSON decoding error into a FormatError with a line.
func jsonErr(b []byte, name string, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		off = int64(len(b))
	}
	if off < 0 {
		return fileErr(name, "invalid manifest: %v", err)
	}
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	line := 1 + bytes.Count(b[:off], []byte{'\n'})
	return lineErr(name, line, "invalid manifest JSON: %v", err)
}

// Write validates m and writes it atomically as dir/manifest.json. The .npy
// files it names must already be in dir. Format and FormatVersion are filled
// in when empty.
func (m *Manifest) Write(dir string) error {
	if m.Format == "" {
		m.Format = FormatName
	}
	if m.FormatVersion == 0 {
		m.FormatVersion = FormatVersion
	}
	p := filepath.Join(dir, ManifestFile)
	if err := m.validate(dir, p); err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", p, err)
	}
	b = append(b, '\n')
	return writeFileAtomic(p, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// Node returns the node with key, or nil.
func (m *Manifest) Node(key string) *ManifestNode {
	for i := range m.Nodes {
		if m.Nodes[i].Key == key {
			return &m.Nodes[i]
		}
	}
	return nil
}

// validate checks the manifest's meaning and each node's .npy header
// against its ne.
func (m *Manifest) validate(dir, name string) error {
	if m.Format != FormatName {
		return fileErr(name, "format is %q, want %q", m.Format, FormatName)
	}
	if m.FormatVersion < 1 || m.FormatVersion > FormatVersion {
		return fileErr(name, "format_version %d not supported (this layerdiff reads 1 to %d)", m.FormatVersion, FormatVersion)
	}
	keys := make(map[string]int, len(m.Nodes))
	for i := range m.Nodes {
		n := &m.Nodes[i]
		nodeErr := func(format string, args ...any) error {
			return fileErr(name, "node %d %q: %s", i, n.Key, fmt.Sprintf(format, args...))
		}
		if n.Index != i {
			return nodeErr("index is %d, want %d (nodes must be listed in graph order)", n.Index, i)
		}
		if n.Key == "" {
			return nodeErr("empty key")
		}
		if j, dup := keys[n.Key]; dup {
			return nodeErr("key already used by node %d", j)
		}
		keys[n.Key] = i
		if len(n.Ne) < 1 || len(n.Ne) > 4 {
			return nodeErr("ne %v: want 1 to 4 dimensions", n.Ne)
		}
		numel := uint64(1)
		for _, d := range n.Ne {
			if d < 0 {
				return nodeErr("negative dimension in ne %v", n.Ne)
			}
			hi, lo := bits.Mul64(numel, uint64(d))
			if hi != 0 || lo > math.MaxInt64 {
				return nodeErr("ne %v overflows", n.Ne)
			}
			numel = lo
		}
		if n.File != "" && n.DataOf != "" {
			return nodeErr("both file %q and data_of %q are set", n.File, n.DataOf)
		}
		if n.DataOf != "" {
			j, ok := keys[n.DataOf]
			if !ok || j == i {
				return nodeErr("data_of %q is not an earlier node", n.DataOf)
			}
			t := &m.Nodes[j]
			if t.File == "" {
				return nodeErr("data_of %q names a node without a file", n.DataOf)
			}
			if tensor.Numel(t.Ne) != tensor.Numel(n.Ne) {
				return nodeErr("data_of %q has %d elements, this node %d", n.DataOf, tensor.Numel(t.Ne), tensor.Numel(n.Ne))
			}
		}
		if n.File == "" {
			continue
		}
		if err := checkRelPath(n.File); err != nil {
			return nodeErr("file %q: %v", n.File, err)
		}
		h, err := ReadNPYHeader(filepath.Join(dir, filepath.FromSlash(n.File)))
		if err != nil {
			return fmt.Errorf("%s: node %d %q: %w", name, i, n.Key, err)
		}
		if !tensor.SameShape(NeFromNPYShape(h.Shape), n.Ne) {
			return nodeErr("file %q has shape %s, but ne %s means %s", n.File, pyShape(h.Shape), tensor.ShapeString(n.Ne), pyShape(NPYShape(n.Ne)))
		}
	}
	return nil
}

// checkRelPath rejects file names that could leave the dump directory.
func checkRelPath(p string) error {
	if strings.Contains(p, "\\") || path.IsAbs(p) || filepath.IsAbs(p) {
		return errors.New("must be a relative, slash-separated path")
	}
	c := path.Clean(p)
	if c != p || c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return errors.New("must be a clean path inside the dump directory")
	}
	return nil
}
