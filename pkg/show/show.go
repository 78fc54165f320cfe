// Package show reads one tensor — a reference node, a single .npy file or
// one row of a GGUF weight — and summarizes its values: the first few,
// mean, RMS, min, max and counts of non-zero, NaN and Inf values, for the
// whole tensor and per token (or per row). It is a reading-side tool: it
// depends on pkg/reference and pkg/model, nothing depends on it.
// `layerdiff show` is its command (README.md, docs/show.md).
package show

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// DefaultFirst is the number of leading values shown by default.
const DefaultFirst = 8

// edgeRows is how many first and last rows are shown when the slices are
// rows of ne[0] rather than tokens.
const edgeRows = 3

// Options select what is shown.
type Options struct {
	Token int // >= 0: only that token's slice; < 0: all
	First int // leading values per summary; 0 means DefaultFirst
	Row   int // GGUF only: the row to dequantize (required, >= 0)
}

// Stats summarizes a set of float32 values. Mean and RMS are over the
// finite values, Min and Max over the non-NaN values; each is nil when
// there is no such value.
type Stats struct {
	Count   int64     `json:"count"`
	First   []float64 `json:"first"`
	Mean    *float64  `json:"mean"`
	RMS     *float64  `json:"rms"`
	Min     *float64  `json:"min"`
	Max     *float64  `json:"max"`
	NonZero int64     `json:"nonzero"`
	NaN     int64     `json:"nan"`
	Inf     int64     `json:"inf"`
}

// ComputeStats summarizes data, keeping its first `first` values.
func ComputeStats(data []float32, first int) Stats {
	s := Stats{Count: int64(len(data))}
	n := min(first, len(data))
	s.First = make([]float64, n)
	for i := range n {
		s.First[i] = float64(data[i])
	}
	var sum, sq float64
	var finite int64
	lo, hi := math.Inf(1), math.Inf(-1)
	seen := false
	for _, v := range data {
		x := float64(v)
		switch {
		case math.IsNaN(x):
			s.NaN++
			s.NonZero++
			continue
		case math.IsInf(x, 0):
			s.Inf++
		default:
			finite++
			sum += x
			sq += x * x
		}
		if x != 0 {
			s.NonZero++
		}
		seen = true
		lo, hi = min(lo, x), max(hi, x)
	}
	if finite > 0 {
		m, r := sum/float64(finite), math.Sqrt(sq/float64(finite))
		s.Mean, s.RMS = &m, &r
	}
	if seen {
		s.Min, s.Max = &lo, &hi
	}
	return s
}

// Slice is the summary of one slice of a tensor.
type Slice struct {
	Label string `json:"label"` // "token 3", "row 0"
	Index int64  `json:"index"`
	Stats Stats  `json:"stats"`
}

// Result is what show prints; its JSON form is documented in docs/show.md.
type Result struct {
	Source string   `json:"source"` // the file or directory read
	Key    string   `json:"key"`
	Name   string   `json:"name"`
	Op     string   `json:"op"`
	Type   string   `json:"type"`
	Ne     []int64  `json:"ne"` // ggml order
	Notes  []string `json:"notes,omitempty"`
	// SliceBy is "token" (slices are tokens: the outermost non-1
	// dimension equals the number of tokens), "row" (rows of ne[0]) or
	// "" (no slices: a single row).
	SliceBy string  `json:"slice_by"`
	Slices  []Slice `json:"slices"`
	// Omitted counts the rows not shown between the first and last ones.
	Omitted int64 `json:"omitted"`
	// Whole summarizes the whole tensor, or the --token slice when one was
	// asked for.
	Whole Stats `json:"whole"`
}

// Error is a bad-input error: the CLI exits 2 on it.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func errf(format string, args ...any) error { return &Error{fmt.Sprintf(format, args...)} }

func (o Options) first() int {
	if o.First <= 0 {
		return DefaultFirst
	}
	return o.First
}

// Node shows node (a key, or a name: the first node of that name) of the
// reference at path (anything reference.Open accepts).
func Node(path, node string, o Options) (*Result, error) {
	src, err := reference.Open(path)
	if err != nil {
		return nil, err
	}
	nodes := src.Nodes()
	var pick *reference.NodeInfo
	for i := range nodes {
		if nodes[i].Key == node {
			pick = &nodes[i]
			break
		}
	}
	// A name held by several nodes: the first (unless node is a key), the
	// others listed in a note.
	var others []string
	for i := range nodes {
		if nodes[i].Name != node {
			continue
		}
		if pick == nil {
			pick = &nodes[i]
		} else if nodes[i].Key != pick.Key {
			others = append(others, nodes[i].Key)
		}
	}
	if pick == nil {
		msg := fmt.Sprintf("%s: no node %q", path, node)
		if sug := Suggest(node, nodes, 5); len(sug) > 0 {
			msg += "; nearest: " + strings.Join(sug, ", ")
		}
		return nil, &Error{msg}
	}
	t, err := src.Load(pick.Key)
	if err != nil {
		return nil, err
	}
	if t.Data == nil {
		return nil, errf("%s: node %q has only partial values (a text log); show needs a dump or an .npy file", path, pick.Key)
	}
	r := &Result{Source: path, Key: pick.Key, Name: pick.Name, Op: pick.Op, Type: pick.Type, Ne: tensor.Trim(t.Ne)}
	if len(others) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("name %q is ambiguous: showing %s; also %s", node, pick.Key, strings.Join(others, ", ")))
	}
	ntok := len(src.Describe().Tokens)
	if err := r.fill(t.Data, ntok, o); err != nil {
		return nil, err
	}
	return r, nil
}

// Suggest returns up to n node keys near name: those whose key or name has
// name as a prefix or substring, or whose name shares name's base (the
// part before "-L"), in graph order.
func Suggest(name string, nodes []reference.NodeInfo, n int) []string {
	base, _ := tensor.SplitName(strings.SplitN(name, "#", 2)[0])
	var pre, sub, sameBase []string
	for _, nd := range nodes {
		switch {
		case strings.HasPrefix(nd.Key, name):
			pre = append(pre, nd.Key)
		case strings.Contains(nd.Key, name) || strings.Contains(name, nd.Name) && nd.Name != "":
			sub = append(sub, nd.Key)
		default:
			if b, _ := tensor.SplitName(strings.SplitN(nd.Name, "#", 2)[0]); b == base && base != "" {
				sameBase = append(sameBase, nd.Key)
			}
		}
	}
	out := slices.Concat(pre, sub, sameBase)
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// NPYFile shows the single .npy file at path (numpy shape reversed to ggml
// order). The number of tokens is unknown, so slices are rows.
func NPYFile(path string, o Options) (*Result, error) {
	a, err := reference.ReadNPY(path)
	if err != nil {
		return nil, err
	}
	ne := make([]int64, len(a.Shape))
	for i, d := range a.Shape {
		ne[len(a.Shape)-1-i] = d
	}
	if len(ne) == 0 {
		ne = []int64{1}
	}
	name := strings.TrimSuffix(filepath.Base(path), ".npy")
	r := &Result{Source: path, Key: name, Name: name, Type: npyType(a.Descr), Ne: tensor.Trim(ne)}
	if err := r.fill(a.Data, 0, o); err != nil {
		return nil, err
	}
	return r, nil
}

func npyType(descr string) string {
	switch strings.TrimLeft(descr, "<>|=") {
	case "f4":
		return "f32"
	case "f2":
		return "f16"
	case "f8":
		return "f64"
	}
	return descr
}

// GGUFRow shows row o.Row of the weight tensor name of the GGUF file at
// path, dequantized to float32.
func GGUFRow(path, name string, o Options) (*Result, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ti, ok := f.Tensor(name)
	if !ok {
		var near []string
		for _, t := range f.Tensors {
			if strings.Contains(t.Name, name) || strings.Contains(name, t.Name) {
				near = append(near, t.Name)
			}
		}
		msg := fmt.Sprintf("%s: no tensor %q", path, name)
		if len(near) > 5 {
			near = near[:5]
		}
		if len(near) > 0 {
			msg += "; nearest: " + strings.Join(near, ", ")
		} else {
			msg += " (layerdiff inspect lists the tensors)"
		}
		return nil, &Error{msg}
	}
	ne0 := int64(1)
	if len(ti.Ne) > 0 {
		ne0 = ti.Ne[0]
	}
	rows := int64(1)
	if ne0 > 0 {
		rows = tensor.Numel(ti.Ne) / ne0
	}
	if o.Row < 0 || int64(o.Row) >= rows {
		return nil, errf("%s: tensor %q (ne %s) has rows 0..%d; row %d is out of range", path, name, tensor.ShapeString(ti.Ne), rows-1, o.Row)
	}
	if !quant.CanDequantize(ti.Type) {
		return nil, errf("%s: tensor %q: no decoder for type %s", path, name, ti.Type)
	}
	data, err := f.TensorData(ti)
	if err != nil {
		return nil, err
	}
	dst := make([]float32, ne0)
	if err := quant.DequantizeRow(ti.Type, data, o.Row, dst); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", path, name, err)
	}
	r := &Result{Source: path, Key: fmt.Sprintf("%s[row %d]", name, o.Row), Name: name, Type: ti.Type.String(), Ne: tensor.Trim(ti.Ne)}
	r.Notes = append(r.Notes, fmt.Sprintf("row %d of %d, dequantized to f32", o.Row, rows))
	r.Whole = ComputeStats(dst, o.first())
	return r, nil
}

// fill computes the whole-tensor and per-slice summaries of data (ne
// r.Ne) for a run of ntok tokens (0 if unknown).
func (r *Result) fill(data []float32, ntok int, o Options) error {
	if len(r.Ne) == 0 { // a 0-d array
		r.Ne = []int64{1}
	}
	ne := r.Ne
	ne0 := ne[0]
	outer := ne[len(ne)-1]
	first := o.first()
	if int64(len(data)) != tensor.Numel(ne) {
		return errf("%s: %s: %d values, ne %s needs %d", r.Source, r.Key, len(data), tensor.ShapeString(ne), tensor.Numel(ne))
	}
	byToken := len(ne) > 1 && ntok > 0 && outer == int64(ntok)
	if o.Token >= 0 && !byToken {
		// Unknown token count (an .npy file or directory): the outermost
		// dimension stands for the tokens.
		if len(ne) > 1 && ntok == 0 {
			byToken = true
			r.Notes = append(r.Notes, fmt.Sprintf("number of tokens unknown: taking the outermost dimension (%d) as tokens", outer))
		} else {
			if ntok == 0 {
				return errf("%s: %s (ne %s) has no token dimension", r.Source, r.Key, tensor.ShapeString(ne))
			}
			return errf("%s: %s (ne %s) has no token dimension: its outermost dimension is not the %d tokens", r.Source, r.Key, tensor.ShapeString(ne), ntok)
		}
	}
	if byToken {
		per := int64(len(data)) / outer
		r.SliceBy = "token"
		if o.Token >= 0 {
			if int64(o.Token) >= outer {
				return errf("%s: %s: token %d out of range (0..%d)", r.Source, r.Key, o.Token, outer-1)
			}
			s := data[int64(o.Token)*per : int64(o.Token+1)*per]
			r.Whole = ComputeStats(s, first)
			r.Slices = nil
			r.SliceBy = "token"
			r.Notes = append(r.Notes, fmt.Sprintf("token %d only", o.Token))
			return nil
		}
		r.Whole = ComputeStats(data, first)
		for i := range outer {
			r.Slices = append(r.Slices, Slice{Label: "token " + strconv.FormatInt(i, 10), Index: i, Stats: ComputeStats(data[i*per:(i+1)*per], first)})
		}
		return nil
	}
	r.Whole = ComputeStats(data, first)
	rows := int64(len(data)) / max(ne0, 1)
	if rows <= 1 {
		return nil
	}
	r.SliceBy = "row"
	add := func(i int64) {
		r.Slices = append(r.Slices, Slice{Label: "row " + strconv.FormatInt(i, 10), Index: i, Stats: ComputeStats(data[i*ne0:(i+1)*ne0], first)})
	}
	if rows <= 2*edgeRows {
		for i := range rows {
			add(i)
		}
		return nil
	}
	for i := range int64(edgeRows) {
		add(i)
	}
	r.Omitted = rows - 2*edgeRows
	for i := rows - edgeRows; i < rows; i++ {
		add(i)
	}
	return nil
}

// fmtVal formats one value compactly (%.6g; nan, inf, -inf).
func fmtVal(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

func fmtPtr(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmtVal(*p)
}

func (s Stats) text() string {
	vals := make([]string, len(s.First))
	for i, v := range s.First {
		vals[i] = fmtVal(v)
	}
	more := ""
	if int64(len(s.First)) < s.Count {
		more = " …"
	}
	return fmt.Sprintf("n=%d mean=%s rms=%s min=%s max=%s nonzero=%d nan=%d inf=%d\n    first: [%s%s]",
		s.Count, fmtPtr(s.Mean), fmtPtr(s.RMS), fmtPtr(s.Min), fmtPtr(s.Max), s.NonZero, s.NaN, s.Inf, strings.Join(vals, " "), more)
}

// WriteText writes r for a reader.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "source: %s\n", r.Source)
	fmt.Fprintf(&b, "key:    %s\n", r.Key)
	if r.Name != r.Key {
		fmt.Fprintf(&b, "name:   %s\n", r.Name)
	}
	op := r.Op
	if op == "" {
		op = "-"
	}
	typ := r.Type
	if typ == "" {
		typ = "-"
	}
	fmt.Fprintf(&b, "op:     %s\ntype:   %s\nne:     %s\n", op, typ, tensor.ShapeString(r.Ne))
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note:   %s\n", n)
	}
	fmt.Fprintf(&b, "all:    %s\n", r.Whole.text())
	for i, s := range r.Slices {
		if r.Omitted > 0 && i == edgeRows {
			fmt.Fprintf(&b, "  … %d rows omitted\n", r.Omitted)
		}
		fmt.Fprintf(&b, "  %s: %s\n", s.Label, s.Stats.text())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// jsonFloat encodes NaN and ±Inf as the strings "nan", "inf", "-inf".
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte(strconv.Quote(fmtVal(v))), nil
	}
	return json.Marshal(v)
}

// MarshalJSON encodes non-finite values (in first, min, max) as the
// strings "nan", "inf", "-inf", and absent ones as null.
func (s Stats) MarshalJSON() ([]byte, error) {
	first := make([]jsonFloat, len(s.First))
	for i, v := range s.First {
		first[i] = jsonFloat(v)
	}
	p := func(v *float64) *jsonFloat {
		if v == nil {
			return nil
		}
		f := jsonFloat(*v)
		return &f
	}
	return json.Marshal(struct {
		Count   int64       `json:"count"`
		First   []jsonFloat `json:"first"`
		Mean    *jsonFloat  `json:"mean"`
		RMS     *jsonFloat  `json:"rms"`
		Min     *jsonFloat  `json:"min"`
		Max     *jsonFloat  `json:"max"`
		NonZero int64       `json:"nonzero"`
		NaN     int64       `json:"nan"`
		Inf     int64       `json:"inf"`
	}{s.Count, first, p(s.Mean), p(s.RMS), p(s.Min), p(s.Max), s.NonZero, s.NaN, s.Inf})
}

// WriteJSON writes r as one indented JSON object (docs/show.md).
func (r *Result) WriteJSON(w io.Writer) error {
	if r.Slices == nil {
		r.Slices = []Slice{}
	}
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}
