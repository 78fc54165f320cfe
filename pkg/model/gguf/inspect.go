package gguf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// InspectMaxItems is the number of leading elements an InspectReport keeps
// of each array value.
const InspectMaxItems = 8

// inspectMaxText is the number of bytes of a string the text rendering
// shows before cutting it (JSON keeps whole scalar strings).
const inspectMaxText = 100

// InspectReport is what `layerdiff inspect` shows of a GGUF file: header,
// metadata (arrays cut to their first InspectMaxItems elements), the tensor
// table and totals per tensor type. It is built once by Inspect and rendered
// by WriteText or WriteJSON; the JSON form is documented field by field in
// docs/inspect-json.md and is a stable contract.
type InspectReport struct {
	File         string          `json:"file"`
	Size         int64           `json:"size"`
	Version      uint32          `json:"version"`
	Alignment    uint64          `json:"alignment"`
	DataOffset   int64           `json:"data_offset"`
	Architecture string          `json:"architecture"`
	Metadata     []InspectKV     `json:"metadata"`
	Tensors      []InspectTensor `json:"tensors"`
	Totals       []InspectTotal  `json:"totals"`
	Total        InspectTotal    `json:"total"`
}

// InspectKV is one metadata pair. Value holds a scalar as its Go value
// (uint8 ... float64, bool, string) or, for arrays, an *InspectArray.
type InspectKV struct {
	Key   string
	Type  string // GGUF type name: "u32", "str", "arr", ...
	Value any
}

// InspectArray summarizes an array value: its element type, its length and
// its first InspectMaxItems elements (scalars, or *InspectArray for arrays
// of arrays).
type InspectArray struct {
	Elem      string
	Len       int
	Items     []any
	Truncated bool // Len > len(Items)
}

// InspectTensor is one row of the tensor table.
type InspectTensor struct {
	Index      int     `json:"index"`
	Name       string  `json:"name"`
	Type       string  `json:"type"`
	Ne         []int64 `json:"ne"`
	Elements   int64   `json:"elements"`
	Offset     uint64  `json:"offset"`
	FileOffset int64   `json:"file_offset"`
	Size       int64   `json:"size"`
}

// InspectTotal sums the tensors of one type (or of all types, in
// InspectReport.Total, whose Type is "all").
type InspectTotal struct {
	Type     string `json:"type"`
	Count    int    `json:"count"`
	Elements int64  `json:"elements"`
	Bytes    int64  `json:"bytes"`
}

// Inspect summarizes f.
func Inspect(f *File) *InspectReport {
	r := &InspectReport{
		File:         f.Path,
		Size:         f.Size,
		Version:      f.Version,
		Alignment:    f.Alignment,
		DataOffset:   f.DataOffset,
		Architecture: f.Arch(),
		Metadata:     make([]InspectKV, 0, len(f.KVs)),
		Tensors:      make([]InspectTensor, 0, len(f.Tensors)),
		Totals:       []InspectTotal{},
		Total:        InspectTotal{Type: "all"},
	}
	for _, kv := range f.KVs {
		v := kv.Value
		if a, ok := v.(Array); ok {
			v = summarizeArray(a)
		}
		r.Metadata = append(r.Metadata, InspectKV{Key: kv.Key, Type: kv.Type.String(), Value: v})
	}
	byType := map[quant.Type]*InspectTotal{}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		n := ti.Elements()
		r.Tensors = append(r.Tensors, InspectTensor{
			Index:      ti.Index,
			Name:       ti.Name,
			Type:       ti.Type.String(),
			Ne:         append([]int64(nil), ti.Ne...),
			Elements:   n,
			Offset:     ti.Offset,
			FileOffset: f.DataOffset + int64(ti.Offset),
			Size:       ti.Size,
		})
		t := byType[ti.Type]
		if t == nil {
			t = &InspectTotal{Type: ti.Type.String()}
			byType[ti.Type] = t
		}
		for _, t := range []*InspectTotal{t, &r.Total} {
			t.Count++
			t.Elements += n
			t.Bytes += ti.Size
		}
	}
	for _, typ := range quant.Types() {
		if t := byType[typ]; t != nil {
			r.Totals = append(r.Totals, *t)
		}
	}
	return r
}

// summarizeArray keeps the first InspectMaxItems elements of a.
func summarizeArray(a Array) *InspectArray {
	s := &InspectArray{Elem: a.Elem.String(), Len: max(a.Len(), 0)}
	n := min(s.Len, InspectMaxItems)
	s.Truncated = s.Len > n
	s.Items = make([]any, 0, n)
	switch v := a.Values.(type) {
	case []Array:
		for _, x := range v[:n] {
			s.Items = append(s.Items, summarizeArray(x))
		}
	case []uint8:
		s.Items = appendItems(s.Items, v[:n])
	case []int8:
		s.Items = appendItems(s.Items, v[:n])
	case []uint16:
		s.Items = appendItems(s.Items, v[:n])
	case []int16:
		s.Items = appendItems(s.Items, v[:n])
	case []uint32:
		s.Items = appendItems(s.Items, v[:n])
	case []int32:
		s.Items = appendItems(s.Items, v[:n])
	case []float32:
		s.Items = appendItems(s.Items, v[:n])
	case []bool:
		s.Items = appendItems(s.Items, v[:n])
	case []string:
		s.Items = appendItems(s.Items, v[:n])
	case []uint64:
		s.Items = appendItems(s.Items, v[:n])
	case []int64:
		s.Items = appendItems(s.Items, v[:n])
	case []float64:
		s.Items = appendItems(s.Items, v[:n])
	}
	return s
}

func appendItems[T any](dst []any, src []T) []any {
	for _, x := range src {
		dst = append(dst, x)
	}
	return dst
}

// MarshalJSON encodes a metadata pair as {"key", "type", "value"} with the
// value encoded by jsonValue.
func (kv InspectKV) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"key":`)
	writeJSONString(&b, kv.Key)
	b.WriteString(`,"type":`)
	writeJSONString(&b, kv.Type)
	b.WriteString(`,"value":`)
	if err := writeJSONValue(&b, kv.Value); err != nil {
		return nil, fmt.Errorf("metadata %q: %w", kv.Key, err)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// MarshalJSON encodes an array summary as {"elem", "len", "items",
// "truncated"}.
func (a *InspectArray) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	if err := writeJSONValue(&b, a); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeJSONString writes s as a JSON string without HTML escaping; invalid
// UTF-8 becomes U+FFFD.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes; writing to a Buffer cannot fail
	b.Truncate(b.Len() - 1) // Encode's newline
}

// writeJSONValue encodes a metadata value. Integers and finite floats are
// JSON numbers (f32 with the shortest digits that round-trip to the same
// float32); NaN and infinities, which JSON numbers cannot express, are the
// strings "NaN", "+Inf" and "-Inf".
func writeJSONValue(b *bytes.Buffer, v any) error {
	switch v := v.(type) {
	case float32:
		b.WriteString(jsonFloat(float64(v), 32))
	case float64:
		b.WriteString(jsonFloat(v, 64))
	case string:
		writeJSONString(b, v)
	case uint8, int8, uint16, int16, uint32, int32, uint64, int64, bool:
		fmt.Fprint(b, v)
	case *InspectArray:
		fmt.Fprintf(b, `{"elem":%q,"len":%d,"items":[`, v.Elem, v.Len)
		for i, x := range v.Items {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJSONValue(b, x); err != nil {
				return err
			}
		}
		fmt.Fprintf(b, `],"truncated":%t}`, v.Truncated)
	default:
		return fmt.Errorf("unsupported metadata value %T", v)
	}
	return nil
}

func jsonFloat(v float64, bitSize int) string {
	switch {
	case math.IsNaN(v):
		return `"NaN"`
	case math.IsInf(v, 1):
		return `"+Inf"`
	case math.IsInf(v, -1):
		return `"-Inf"`
	}
	return strconv.FormatFloat(v, 'g', -1, bitSize)
}

// WriteJSON writes r as one indented JSON object followed by a newline.
func (r *InspectReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// WriteText writes r for a person: header lines, then metadata, tensors and
// totals as aligned tables. Long strings are cut to 100 bytes, arrays to
// their first InspectMaxItems elements.
func (r *InspectReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "file:         %s\n", plain(r.File))
	fmt.Fprintf(&b, "size:         %d bytes\n", r.Size)
	fmt.Fprintf(&b, "version:      %d\n", r.Version)
	fmt.Fprintf(&b, "alignment:    %d\n", r.Alignment)
	fmt.Fprintf(&b, "data offset:  %d (0x%x)\n", r.DataOffset, r.DataOffset)
	arch := plain(r.Architecture)
	if arch == "" {
		arch = "(none)"
	}
	fmt.Fprintf(&b, "architecture: %s\n", arch)

	fmt.Fprintf(&b, "\nmetadata: %d keys\n", len(r.Metadata))
	var rows [][]string
	for _, kv := range r.Metadata {
		typ := kv.Type
		if a, ok := kv.Value.(*InspectArray); ok {
			typ = fmt.Sprintf("[%d]%s", a.Len, a.Elem)
		}
		rows = append(rows, []string{plain(kv.Key), typ, textValue(kv.Value)})
	}
	writeTable(&b, rows, "lll")

	fmt.Fprintf(&b, "\ntensors: %d\n", len(r.Tensors))
	if len(r.Tensors) > 0 {
		rows = [][]string{{"#", "name", "type", "ne", "elements", "offset", "file offset", "bytes"}}
		for _, t := range r.Tensors {
			rows = append(rows, []string{strconv.Itoa(t.Index), plain(t.Name), t.Type, shapeText(t.Ne),
				strconv.FormatInt(t.Elements, 10), fmt.Sprintf("0x%x", t.Offset), fmt.Sprintf("0x%x", t.FileOffset),
				strconv.FormatInt(t.Size, 10)})
		}
		writeTable(&b, rows, "rlllrrrr")

		fmt.Fprintf(&b, "\ntotals by type:\n")
		rows = [][]string{{"type", "tensors", "elements", "bytes"}}
		for _, t := range append(r.Totals[:len(r.Totals):len(r.Totals)], r.Total) {
			rows = append(rows, []string{t.Type, strconv.Itoa(t.Count), strconv.FormatInt(t.Elements, 10), strconv.FormatInt(t.Bytes, 10)})
		}
		writeTable(&b, rows, "lrrr")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeTable writes rows as columns two spaces apart, indented by two,
// each column aligned left or right as align says ('l' or 'r' per column).
// The last column is not padded.
func writeTable(b *strings.Builder, rows [][]string, align string) {
	width := make([]int, len(align))
	for _, row := range rows {
		for i, cell := range row {
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	for _, row := range rows {
		b.WriteString(" ")
		for i, cell := range row {
			gap := strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell))
			b.WriteString(" ")
			if align[i] == 'r' {
				b.WriteString(gap)
			}
			b.WriteString(cell)
			if align[i] == 'l' && i < len(row)-1 {
				b.WriteString(gap)
			}
			if i < len(row)-1 {
				b.WriteString(" ")
			}
		}
		b.WriteString("\n")
	}
}

// plain returns s, or s quoted when it holds a character that is not
// printable (a tab or newline would break the tables).
func plain(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) || !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	return s
}

// shapeText formats ne as "[64 32000]".
func shapeText(ne []int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, n := range ne {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatInt(n, 10))
	}
	b.WriteByte(']')
	return b.String()
}

// textValue formats a metadata value for WriteText.
func textValue(v any) string {
	switch v := v.(type) {
	case string:
		return quoteCut(v)
	case float32:
		return strconv.FormatFloat(float64(v), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case *InspectArray:
		var b strings.Builder
		b.WriteByte('[')
		for i, x := range v.Items {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(textValue(x))
		}
		if v.Truncated {
			fmt.Fprintf(&b, ", ... %d more", v.Len-len(v.Items))
		}
		b.WriteByte(']')
		return b.String()
	}
	return fmt.Sprint(v)
}

// quoteCut quotes s, cutting it (at a rune boundary) after inspectMaxText
// bytes and saying how long it was.
func quoteCut(s string) string {
	if len(s) <= inspectMaxText {
		return strconv.Quote(s)
	}
	cut := inspectMaxText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:cut]), len(s))
}
