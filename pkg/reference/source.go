package reference

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Source is a set of reference activations of one model run, whatever its
// format.
type Source interface {
	// Describe tells what the source is and what is known about the run.
	Describe() Info
	// Nodes lists the tensors in graph order (for directories of .npy files
	// without a manifest, in the order documented in docs/dump-format.md).
	Nodes() []NodeInfo
	// Load returns the tensor with the given key: with Data for FullData
	// nodes, with Partial for PartialData nodes. Unknown keys fail with
	// ErrNotFound, nodes without values with ErrNoData.
	Load(key string) (*tensor.Tensor, error)
}

// BufferLoader is a Source that can store a tensor's values in a buffer
// the caller recycles, sparing a reader of many tensors the cost of fresh
// memory for each.
type BufferLoader interface {
	// LoadInto is Load, storing full data in buf when its capacity
	// suffices (else in new memory).
	LoadInto(key string, buf []float32) (*tensor.Tensor, error)
}

// Kind names a kind of source.
type Kind string

// The kinds of source Open recognizes.
const (
	KindDump   Kind = "dump"    // layerdiff dump directory (manifest.json)
	KindNPYDir Kind = "npy-dir" // directory of .npy files without a manifest
	KindLog    Kind = "log"     // eval-callback / llama-debug text log
	KindLogits Kind = "logits"  // llama-debug --save-logits output
)

// Info describes a source. Fields that the source does not record are zero.
type Info struct {
	Kind   Kind
	Path   string
	Format string // human-readable format description, e.g. "layerdiff-dump v1"
	// Engine names what computed the values when the source says so:
	// "llama.cpp ec98e2002", or a dump's producer for another engine; ""
	// when unknown.
	Engine string
	// Producer names the program that wrote the files, when known and not
	// the engine itself: "layerdiff 0.1.0 (built-in dumper)",
	// "layerdiff-dump.c 3 (standalone C dumper)", a manifest's producer.
	Producer string

	Tokens      []int32 // token ids of the run, nil if unknown
	Prompt      string
	ModelPath   string
	ModelSHA256 string // lowercase hex SHA-256 of the whole model file
	// ModelFingerprint is the model's ModelFingerprint, "" when the source
	// does not record it.
	ModelFingerprint string
	SystemInfo       string
	FlashAttn        string // "on", "off", "" unknown

	// Warnings are problems that did not stop reading: damaged or cut
	// logs, skipped files. Each names the file and, where it applies, the
	// line.
	Warnings []string
}

// DataKind says what Load can return for a node.
type DataKind int

// Data availability of a node.
const (
	NoData      DataKind = iota // nothing recorded; Load fails with ErrNoData
	FullData                    // every element: Tensor.Data
	PartialData                 // some elements and maybe a sum: Tensor.Partial
)

// String returns "none", "full" or "partial".
func (d DataKind) String() string {
	switch d {
	case FullData:
		return "full"
	case PartialData:
		return "partial"
	}
	return "none"
}

// NodeInfo describes one tensor of a source without loading it.
type NodeInfo struct {
	Key  string   // unique within the source
	Name string   // llama.cpp (or engine) tensor name
	Op   string   // ggml_op_desc, "" if unknown
	Type string   // ggml type name ("f32", "f16", ...), "" if unknown
	Ne   []int64  // ggml order
	Src  []string // source tensor names, if known
	Data DataKind
	// Positions lists the token positions (0-based) of the rows (ne[1]) when
	// they are known not to be 0..T-1, e.g. [T-1] for last-token logits;
	// nil otherwise.
	Positions []int
}

// Open opens a reference of any kind, detected from path:
//   - a directory with manifest.json (or that file itself): a layerdiff dump;
//   - a directory with llama-debug --save-logits output
//     (llamacpp-MODEL.bin / -tokens.bin), or one of those .bin or .txt files;
//   - a directory with .npy files: a third-party dump without manifest;
//   - any other file: an eval-callback / llama-debug text log.
func Open(path string) (Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		if fileExists(filepath.Join(path, ManifestFile)) {
			return OpenDump(path)
		}
		if stems, _ := logitsStems(path); len(stems) > 0 {
			return OpenLogits(path)
		}
		if m, _ := filepath.Glob(filepath.Join(path, "*.npy")); len(m) > 0 {
			if dumpFilesOnly(m) {
				return nil, fileErr(path, "no %s, but every .npy file is named like a layerdiff dump's (NNNN-name.npy): an interrupted or damaged dump? (a dump is complete only once its manifest is written)", ManifestFile)
			}
			return OpenNPYDir(path)
		}
		return nil, fmt.Errorf("%s: not a reference directory: no %s, no .npy files, no llama-debug --save-logits output", path, ManifestFile)
	}
	base := filepath.Base(path)
	switch {
	case base == ManifestFile:
		return OpenDump(filepath.Dir(path))
	case strings.HasSuffix(base, ".npy"):
		return nil, fmt.Errorf("%s: a single .npy file is not a reference; open its directory", path)
	case strings.HasSuffix(base, ".bin"):
		return OpenLogits(path)
	}
	head, err := readHead(path, 64<<10)
	if err != nil {
		return nil, err
	}
	if !logLooksLike(head) && logitsTextLooksLike(head) {
		return OpenLogits(path)
	}
	return ReadLog(path)
}

// dumpFileRe matches the names NodeFileName gives .npy files in a dump.
var dumpFileRe = regexp.MustCompile(`^[0-9]{4,}-[A-Za-z0-9._-]+\.npy$`)

// dumpFilesOnly reports whether every path is named like a dump's .npy file.
func dumpFilesOnly(paths []string) bool {
	for _, p := range paths {
		if !dumpFileRe.MatchString(filepath.Base(p)) {
			return false
		}
	}
	return true
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:k], nil
}

// Dump is an opened layerdiff dump directory.
type Dump struct {
	Dir      string
	Manifest *Manifest
	byKey    map[string]int
}

// OpenDump opens the dump directory dir, validating its manifest and the
// headers of its .npy files (see ReadManifest).
func OpenDump(dir string) (*Dump, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	d := &Dump{Dir: dir, Manifest: m, byKey: make(map[string]int, len(m.Nodes))}
	for i, n := range m.Nodes {
		d.byKey[n.Key] = i
	}
	return d, nil
}

// Describe implements Source.
func (d *Dump) Describe() Info {
	m := d.Manifest
	return Info{
		Kind:             KindDump,
		Path:             d.Dir,
		Format:           fmt.Sprintf("%s v%d", m.Format, m.FormatVersion),
		Engine:           m.EngineName(),
		Producer:         m.ProducerName(),
		Tokens:           m.Tokens,
		Prompt:           m.Prompt,
		ModelPath:        m.Model.Path,
		ModelSHA256:      m.Model.SHA256,
		ModelFingerprint: m.Model.Fingerprint,
		SystemInfo:       m.SystemInfo,
		FlashAttn:        m.FlashAttn,
	}
}

// Nodes implements Source.
func (d *Dump) Nodes() []NodeInfo {
	out := make([]NodeInfo, len(d.Manifest.Nodes))
	for i, n := range d.Manifest.Nodes {
		out[i] = NodeInfo{Key: n.Key, Name: n.Name, Op: n.Op, Type: n.Type, Ne: n.Ne, Src: n.Src}
		if n.File != "" || n.DataOf != "" {
			out[i].Data = FullData
		}
		if !d.Manifest.OutputAll && len(d.Manifest.Tokens) > 1 && len(n.Ne) > 1 && n.Ne[1] == 1 && isOutputName(n.Name) {
			out[i].Positions = []int{len(d.Manifest.Tokens) - 1}
		}
	}
	return out
}

// isOutputName reports names of the final nodes that llama.cpp computes
// for output rows only.
func isOutputName(name string) bool {
	return name == "result_output" || name == "result_norm"
}

// Load implements Source.
func (d *Dump) Load(key string) (*tensor.Tensor, error) { return d.LoadInto(key, nil) }

// LoadInto implements BufferLoader.
func (d *Dump) LoadInto(key string, buf []float32) (*tensor.Tensor, error) {
	i, ok := d.byKey[key]
	if !ok {
		return nil, fmt.Errorf("%s: %q: %w", d.Dir, key, ErrNotFound)
	}
	n := &d.Manifest.Nodes[i]
	file := n.File
	if n.DataOf != "" {
		file = d.Manifest.Nodes[d.byKey[n.DataOf]].File
	}
	if file == "" {
		return nil, fmt.Errorf("%s: node %q: %w", d.Dir, key, ErrNoData)
	}
	a, err := ReadNPYInto(filepath.Join(d.Dir, filepath.FromSlash(file)), buf)
	if err != nil {
		return nil, fmt.Errorf("node %q: %w", key, err)
	}
	if int64(len(a.Data)) != tensor.Numel(n.Ne) {
		return nil, fileErr(filepath.Join(d.Dir, file), "node %q: %d values, ne %s needs %d", key, len(a.Data), tensor.ShapeString(n.Ne), tensor.Numel(n.Ne))
	}
	return &tensor.Tensor{Key: n.Key, Name: n.Name, Op: n.Op, Ne: append([]int64(nil), n.Ne...), Data: a.Data}, nil
}

// Describe implements Source.
func (l *Log) Describe() Info {
	layout := l.Layout
	if layout == "" {
		layout = "no values"
	}
	return Info{
		Kind:       KindLog,
		Path:       l.Path,
		Format:     fmt.Sprintf("llama.cpp eval-callback log (%s:, %s)", l.Prefix, layout),
		Tokens:     l.Tokens,
		ModelPath:  l.ModelPath,
		SystemInfo: l.SystemInfo,
		FlashAttn:  l.FlashAttn,
		Warnings:   l.Warnings,
	}
}

// Nodes implements Source.
func (l *Log) Nodes() []NodeInfo {
	out := make([]NodeInfo, len(l.Tensors))
	for i, t := range l.Tensors {
		out[i] = NodeInfo{Key: t.Key, Name: t.Name, Op: t.Op, Type: t.Type, Ne: t.Ne, Src: t.Src}
		if t.Partial != nil {
			out[i].Data = PartialData
		}
	}
	return out
}

// Load implements Source.
func (l *Log) Load(key string) (*tensor.Tensor, error) {
	for i := range l.Tensors {
		t := &l.Tensors[i]
		if t.Key != key {
			continue
		}
		if t.Partial == nil {
			return nil, fmt.Errorf("%s:%d: tensor %q (%s): %w", l.Path, t.Line, key, t.Type, ErrNoData)
		}
		p := *t.Partial
		p.Index = append([]int64(nil), p.Index...)
		p.Values = append([]float64(nil), p.Values...)
		return &tensor.Tensor{Key: t.Key, Name: t.Name, Op: t.Op, Ne: append([]int64(nil), t.Ne...), Partial: &p}, nil
	}
	return nil, fmt.Errorf("%s: %q: %w", l.Path, key, ErrNotFound)
}

// logitsTextLooksLike reports whether head starts like llama-debug's logits
// text file ("0: -0.0498704").
func logitsTextLooksLike(head []byte) bool {
	line, _, _ := bytes.Cut(head, []byte{'\n'})
	line = bytes.TrimRight(line, "\r")
	v, ok := bytes.CutPrefix(line, []byte("0: "))
	if !ok {
		return false
	}
	_, _, ok = parseCFloat(string(v))
	return ok
}
