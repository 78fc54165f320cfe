package reference

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// LogFormat is a text layout of llama.cpp's eval-callback printer (see
// docs/log-formats.md).
type LogFormat int

// The layouts WriteLog prints.
const (
	// LogFormatOld is the eval-callback example's printer as it was in
	// December 2025 (examples/eval-callback/eval-callback.cpp,
	// ggml_print_tensor after PR #15637): "ggml_debug:" headers, 37-column
	// indents, rows "[v, v, v, ..., v, v, v],". No token ids.
	LogFormatOld LogFormat = iota + 1
	// LogFormatNew is libcommon's printer of 2026 (common/debug.cpp,
	// common_debug_print_tensor): "common_debug_cb_eval:" headers, 4-space
	// indents, rows "[v, v, v,    ..., v, v, v  ],", preceded by
	// "number of input tokens = N" and the token ids.
	LogFormatNew
)

// LogFormats lists the names ParseLogFormat accepts.
var LogFormats = []string{"old", "new"}

// ParseLogFormat parses "old" or "new".
func ParseLogFormat(s string) (LogFormat, error) {
	switch s {
	case "old":
		return LogFormatOld, nil
	case "new":
		return LogFormatNew, nil
	}
	return 0, fmt.Errorf("log format %q: want old or new", s)
}

// String returns "old" or "new".
func (f LogFormat) String() string {
	switch f {
	case LogFormatOld:
		return "old"
	case LogFormatNew:
		return "new"
	}
	return fmt.Sprintf("LogFormat(%d)", int(f))
}

// LogOptions configure WriteLog.
type LogOptions struct {
	Format LogFormat // LogFormatOld or LogFormatNew
	// Shapes gives, by name, the shapes of source tensors that are not
	// graph nodes, for the headers: typically the model's weights (see
	// WeightShapes). Other sources are resolved as WriteLog describes.
	Shapes map[string][]int64
}

// logPrintN is the number of leading and trailing entries llama.cpp's
// printer shows per dimension (the n = 3 of ggml_print_tensor).
const logPrintN = 3

// WriteLog prints src as llama.cpp's eval callback prints a graph
// evaluation: a preamble (the system_info line, and in the new format the
// token ids), then per node a header
//
//	PREFIX: %24s = (%s) %10s(%s, %s}) = {%s}
//
// and, for f32, f16, bf16 and integer nodes, the first and last 3 entries of
// every dimension ("%12.4f") and the float32 sum of all elements in ggml
// order ("%f"), exactly as ggml_print_tensor (old) and
// common_debug_print_tensor (new) print them — byte for byte, NaN and ±Inf
// spelled as glibc does ("nan", "-nan", "inf", "-inf"). The log prefix and
// timestamps of llama.cpp's logger are not printed (its default).
//
// Nodes with full data are printed from it. Nodes of a partial source (a
// parsed log) are printed from the partial data when every element the
// layout shows is known; its sum is printed as recorded. A node without
// values (a dump made with --filter) gets its header only, as llama.cpp
// prints quantized tensors; ReadLog keeps such nodes without values, with a
// warning.
//
// The headers name src[0] and src[1] with their shapes. The sources' shapes
// are not recorded in dumps, so they are resolved in this order: the last
// earlier node of that name; o.Shapes; what the op implies (the index input
// of GET_ROWS and SET_ROWS, ROPE's positions, SOFT_MAX's mask, both
// sources of CPY, the destination of a SET_ROWS — src[2], or X for a
// SET_ROWS named "X (view)" —, which the node views whole); for a dump, the KV cache buffers cache_k_lN and cache_v_lN from
// the model's hyperparameters and n_ctx. A source resolved by none of these
// prints as name{0, 0, 0, 0}, a shape no llama.cpp tensor has.
func WriteLog(w io.Writer, src Source, o LogOptions) error {
	var lay logLayout
	switch o.Format {
	case LogFormatOld:
		lay = oldLayout
	case LogFormatNew:
		lay = newLayout
	default:
		return fmt.Errorf("write log: unknown format %d", int(o.Format))
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	info := src.Describe()
	if info.SystemInfo != "" {
		si := info.SystemInfo
		if d, ok := src.(*Dump); ok && d.Manifest.Threads > 0 && !strings.HasPrefix(si, "n_threads") {
			t := d.Manifest.Threads
			si = fmt.Sprintf("n_threads = %d (n_threads_batch = %d) / %d | %s", t, t, t, si)
		}
		if strings.HasSuffix(si, "|") {
			// llama_print_system_info ends with "| "; readers trim it
			si += " "
		}
		fmt.Fprintf(bw, "\nsystem_info: %s\n\n", si)
	}
	if o.Format == LogFormatNew && len(info.Tokens) > 0 {
		fmt.Fprintf(bw, "number of input tokens = %d\n", len(info.Tokens))
		for _, t := range info.Tokens {
			fmt.Fprintf(bw, "  %d\n", t)
		}
	}
	nodes := src.Nodes()
	res := newShapeResolver(src, nodes, o.Shapes)
	for i := range nodes {
		n := &nodes[i]
		ne := ne4(n.Ne)
		typ := n.Type
		if typ == "" {
			typ = "f32"
		}
		op := n.Op
		if op == "" {
			op = "NONE"
		}
		srcs := [2]string{}
		for j := 0; j < 2 && j < len(n.Src); j++ {
			srcs[j] = n.Src[j] + "{" + neString(res.shape(n, j)) + "}"
		}
		fmt.Fprintf(bw, "%s: %s = (%s) %s(%s, %s}) = {%s}\n", lay.prefix, padLeft(n.Name, 24), typ, padLeft(op, 10), srcs[0], srcs[1], neString(ne))
		res.seen(n.Name, ne)
		if !printedTypes[typ] || n.Data == NoData {
			continue
		}
		vals, err := nodeValues(src, n, ne)
		if err != nil {
			if errors.Is(err, ErrNoData) {
				continue
			}
			return fmt.Errorf("write log: node %d %q: %w", i, n.Key, err)
		}
		if vals == nil {
			continue
		}
		lay.tensor(bw, ne, vals)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	return nil
}

// nodeValues returns what the printer needs of a node: nil when a partial
// source lacks a printed element.
func nodeValues(src Source, n *NodeInfo, ne [4]int64) (*logValues, error) {
	t, err := src.Load(n.Key)
	if err != nil {
		return nil, err
	}
	numel := ne[0] * ne[1] * ne[2] * ne[3]
	switch {
	case t.Data != nil:
		if int64(len(t.Data)) != numel {
			return nil, fmt.Errorf("%d values for shape {%s}", len(t.Data), neString(ne))
		}
		return &logValues{at: func(i int64) float64 { return float64(t.Data[i]) }, sum: float64(tensor.SumF32(t.Data))}, nil
	case t.Partial != nil:
		p := t.Partial
		known := make(map[int64]float64, len(p.Index))
		for k, idx := range p.Index {
			if k < len(p.Values) {
				known[idx] = p.Values[k]
			}
		}
		for _, idx := range printedIndices(ne) {
			if _, ok := known[idx]; !ok {
				return nil, nil
			}
		}
		if !p.HasSum {
			return nil, nil
		}
		return &logValues{at: func(i int64) float64 { return known[i] }, sum: p.Sum}, nil
	}
	return nil, ErrNoData
}

// logValues gives the value at a flat ggml index and the sum to print.
type logValues struct {
	at  func(i int64) float64
	sum float64
}

// printedIndices lists the flat indices the printer shows for shape ne, in
// print order.
func printedIndices(ne [4]int64) []int64 {
	var out []int64
	for i3 := int64(0); i3 < ne[3]; i3++ {
		for _, i2 := range shown(ne[2]) {
			for _, i1 := range shown(ne[1]) {
				for _, i0 := range shown(ne[0]) {
					out = append(out, i0+ne[0]*(i1+ne[1]*(i2+ne[2]*i3)))
				}
			}
		}
	}
	return out
}

// shown lists the entries of a dimension of n the printer shows: all of
// them, or the first and last logPrintN when n > 2·logPrintN.
func shown(n int64) []int64 {
	var out []int64
	for i := int64(0); i < n; i++ {
		if i == logPrintN && n > 2*logPrintN {
			i = n - logPrintN
		}
		out = append(out, i)
	}
	return out
}

// logLayout is one printer's text.
type logLayout struct {
	prefix string
	// open3, open2, open1 start the blocks of i3, i2 and a row; elide2 and
	// elide1 are the lines for skipped i2 blocks and rows; elide0 is put
	// before the last values of a row; close1, close2, close3 end them;
	// sum is the sum line's text before the number.
	open3, open2, open1    string
	elide2, elide1, elide0 string
	close1, close2, close3 string
	sum                    string
}

// oldLayout ports ggml_print_tensor of the eval-callback example
// (December 2025): 37-, 38- and 39-column indents.
var oldLayout = logLayout{
	prefix: "ggml_debug",
	open3:  strings.Repeat(" ", 37) + "[\n",
	elide2: strings.Repeat(" ", 38) + "..., \n",
	open2:  strings.Repeat(" ", 38) + "[\n",
	elide1: strings.Repeat(" ", 39) + "..., \n",
	open1:  strings.Repeat(" ", 39) + "[",
	elide0: "..., ",
	close1: "],\n",
	close2: strings.Repeat(" ", 38) + "],\n",
	close3: strings.Repeat(" ", 37) + "]\n",
	sum:    strings.Repeat(" ", 37) + "sum = ",
}

// newLayout ports common_debug_print_tensor (common/debug.cpp, 2026):
// INDENT is four spaces.
var newLayout = logLayout{
	prefix: "common_debug_cb_eval",
	open3:  "    [\n",
	elide2: "        ..., \n",
	open2:  "        [\n",
	elide1: "            ..., \n",
	open1:  "            [",
	elide0: "   ..., ",
	close1: "  ],\n",
	close2: "        ],\n",
	close3: "    ]\n",
	sum:    "    sum = ",
}

// tensor prints the body of one tensor: the loops of ggml_print_tensor with
// n = 3, the sum (of all elements, computed before printing) repeated after
// each i3 block.
func (l logLayout) tensor(w *bufio.Writer, ne [4]int64, v *logValues) {
	n := int64(logPrintN)
	var buf []byte
	for i3 := int64(0); i3 < ne[3]; i3++ {
		w.WriteString(l.open3)
		for i2 := int64(0); i2 < ne[2]; i2++ {
			if i2 == n && ne[2] > 2*n {
				w.WriteString(l.elide2)
				i2 = ne[2] - n
			}
			w.WriteString(l.open2)
			for i1 := int64(0); i1 < ne[1]; i1++ {
				if i1 == n && ne[1] > 2*n {
					w.WriteString(l.elide1)
					i1 = ne[1] - n
				}
				w.WriteString(l.open1)
				for i0 := int64(0); i0 < ne[0]; i0++ {
					if i0 == n && ne[0] > 2*n {
						w.WriteString(l.elide0)
						i0 = ne[0] - n
					}
					buf = appendCFloat(buf[:0], v.at(i0+ne[0]*(i1+ne[1]*(i2+ne[2]*i3))), 4, 12)
					w.Write(buf)
					if i0 < ne[0]-1 {
						w.WriteString(", ")
					}
				}
				w.WriteString(l.close1)
			}
			w.WriteString(l.close2)
		}
		w.WriteString(l.close3)
		w.WriteString(l.sum)
		buf = appendCFloat(buf[:0], v.sum, 6, 0)
		w.Write(buf)
		w.WriteByte('\n')
	}
}

// appendCFloat appends x as C's printf("%*.*f", width, prec, x) does with
// glibc: correctly rounded (ties to even, like Go's strconv), a sign for
// negative zero and for values that round to zero from below, and "nan",
// "-nan", "inf", "-inf", right-aligned in width.
func appendCFloat(b []byte, x float64, prec, width int) []byte {
	var s []byte
	switch {
	case math.IsNaN(x):
		if math.Signbit(x) {
			s = []byte("-nan")
		} else {
			s = []byte("nan")
		}
	case math.IsInf(x, 1):
		s = []byte("inf")
	case math.IsInf(x, -1):
		s = []byte("-inf")
	default:
		s = strconv.AppendFloat(nil, x, 'f', prec, 64)
	}
	for i := len(s); i < width; i++ {
		b = append(b, ' ')
	}
	return append(b, s...)
}

// padLeft is C's "%*s": s right-aligned in width bytes (never cut).
func padLeft(s string, width int) string {
	if len(s) >= width {
		return s
	}
	return strings.Repeat(" ", width-len(s)) + s
}

// ne4 pads a shape to ggml's 4 dimensions with 1s.
func ne4(ne []int64) [4]int64 {
	out := [4]int64{1, 1, 1, 1}
	copy(out[:], ne)
	return out
}

// neString is llama.cpp's ggml_ne_string: "ne0, ne1, ne2, ne3".
func neString(ne [4]int64) string {
	return fmt.Sprintf("%d, %d, %d, %d", ne[0], ne[1], ne[2], ne[3])
}

// shapeResolver finds the shapes of the sources named in headers.
type shapeResolver struct {
	last    map[string][4]int64 // shape of the last node written, by name
	given   map[string][]int64
	viewed  map[string][4]int64 // SET_ROWS destination -> the node's shape
	hparams func(name string) ([4]int64, bool)
}

// cacheRe matches llama.cpp's KV cache buffers.
var cacheRe = regexp.MustCompile(`^cache_([kv])_l([0-9]+)$`)

func newShapeResolver(src Source, nodes []NodeInfo, given map[string][]int64) *shapeResolver {
	r := &shapeResolver{last: map[string][4]int64{}, given: given, viewed: map[string][4]int64{}}
	for _, n := range nodes {
		// ggml_set_rows returns a view of its whole destination, src[2],
		// named "DEST (view)" (a log does not show src[2]).
		if n.Op != "SET_ROWS" {
			continue
		}
		dest, ok := strings.CutSuffix(n.Name, " (view)")
		if len(n.Src) > 2 {
			dest, ok = n.Src[2], true
		}
		if _, seen := r.viewed[dest]; ok && !seen {
			r.viewed[dest] = ne4(n.Ne)
		}
	}
	if d, ok := src.(*Dump); ok {
		r.hparams = func(name string) ([4]int64, bool) { return cacheShape(d.Manifest, name) }
	}
	return r
}

func (r *shapeResolver) seen(name string, ne [4]int64) { r.last[name] = ne }

// shape resolves src[j] of node n.
func (r *shapeResolver) shape(n *NodeInfo, j int) [4]int64 {
	name := n.Src[j]
	if ne, ok := r.last[name]; ok {
		return ne
	}
	if ne, ok := r.given[name]; ok {
		return ne4(ne)
	}
	out := ne4(n.Ne)
	switch {
	case n.Op == "GET_ROWS" && j == 1:
		// ggml_get_rows(a, b) has shape {a0, b0, b1, b2}.
		return [4]int64{out[1], out[2], out[3], 1}
	case n.Op == "ROPE" && j == 1:
		return [4]int64{out[2], 1, 1, 1}
	case n.Op == "SOFT_MAX" && j == 1:
		return [4]int64{out[0], out[1], 1, 1}
	case n.Op == "CPY":
		return out
	case n.Op == "SET_ROWS" && j == 1:
		// one row index per row of the rows written, src[0]
		rows := r.shape(n, 0)
		return [4]int64{rows[1], 1, 1, 1}
	}
	if ne, ok := r.viewed[name]; ok {
		return ne
	}
	if r.hparams != nil {
		if ne, ok := r.hparams(name); ok {
			return ne
		}
	}
	return [4]int64{0, 0, 0, 0}
}

// cacheShape is the shape of llama.cpp's K or V cache buffer of a layer,
// {n_embd_head · n_head_kv, n_ctx}, from a dump's hyperparameters.
func cacheShape(m *Manifest, name string) ([4]int64, bool) {
	mm := cacheRe.FindStringSubmatch(name)
	if mm == nil || m.NCtx <= 0 {
		return [4]int64{}, false
	}
	arch := m.Model.Architecture
	hp := func(key string) (int64, bool) {
		v, ok := m.Model.HParams[arch+"."+key]
		if !ok {
			return 0, false
		}
		switch x := v.(type) {
		case float64:
			return int64(x), x == math.Trunc(x) && x > 0
		case int64:
			return x, x > 0
		case uint32:
			return int64(x), x > 0
		case int:
			return int64(x), x > 0
		}
		return 0, false
	}
	kv, ok := hp("attention.head_count_kv")
	if !ok {
		return [4]int64{}, false
	}
	key := "attention.key_length"
	if mm[1] == "v" {
		key = "attention.value_length"
	}
	head, ok := hp(key)
	if !ok {
		embd, ok1 := hp("embedding_length")
		heads, ok2 := hp("attention.head_count")
		if !ok1 || !ok2 || embd%heads != 0 {
			return [4]int64{}, false
		}
		head = embd / heads
	}
	return [4]int64{head * kv, int64(m.NCtx), 1, 1}, true
}

// WeightShapes returns the shapes of the tensors of a GGUF file, by name,
// for LogOptions.Shapes.
func WeightShapes(path string) (map[string][]int64, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make(map[string][]int64, len(f.Tensors))
	for _, t := range f.Tensors {
		out[t.Name] = append([]int64(nil), t.Ne...)
	}
	return out, nil
}
