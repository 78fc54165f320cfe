package quant

import (
	"fmt"
	"math"
)

// Type is a ggml tensor type (enum ggml_type). Values are the ones stored in
// GGUF tensor infos.
type Type uint32

// ggml tensor types, numbered as in ggml.h (llama.cpp ec98e2002).
const (
	F32     Type = 0
	F16     Type = 1
	Q4_0    Type = 2
	Q4_1    Type = 3
	Q5_0    Type = 6
	Q5_1    Type = 7
	Q8_0    Type = 8
	Q8_1    Type = 9
	Q2_K    Type = 10
	Q3_K    Type = 11
	Q4_K    Type = 12
	Q5_K    Type = 13
	Q6_K    Type = 14
	Q8_K    Type = 15
	IQ2_XXS Type = 16
	IQ2_XS  Type = 17
	IQ3_XXS Type = 18
	IQ1_S   Type = 19
	IQ4_NL  Type = 20
	IQ3_S   Type = 21
	IQ2_S   Type = 22
	IQ4_XS  Type = 23
	I8      Type = 24
	I16     Type = 25
	I32     Type = 26
	I64     Type = 27
	F64     Type = 28
	IQ1_M   Type = 29
	BF16    Type = 30
	TQ1_0   Type = 34
	TQ2_0   Type = 35
	MXFP4   Type = 39
)

// typeInfo is ggml's type_traits: name, values per block, bytes per block.
type typeInfo struct {
	name  string
	block int
	size  int
}

var typeInfos = map[Type]typeInfo{
	F32:     {"f32", 1, 4},
	F16:     {"f16", 1, 2},
	Q4_0:    {"q4_0", 32, 18},
	Q4_1:    {"q4_1", 32, 20},
	Q5_0:    {"q5_0", 32, 22},
	Q5_1:    {"q5_1", 32, 24},
	Q8_0:    {"q8_0", 32, 34},
	Q8_1:    {"q8_1", 32, 36},
	Q2_K:    {"q2_K", 256, 84},
	Q3_K:    {"q3_K", 256, 110},
	Q4_K:    {"q4_K", 256, 144},
	Q5_K:    {"q5_K", 256, 176},
	Q6_K:    {"q6_K", 256, 210},
	Q8_K:    {"q8_K", 256, 292},
	IQ2_XXS: {"iq2_xxs", 256, 66},
	IQ2_XS:  {"iq2_xs", 256, 74},
	IQ3_XXS: {"iq3_xxs", 256, 98},
	IQ1_S:   {"iq1_s", 256, 50},
	IQ4_NL:  {"iq4_nl", 32, 18},
	IQ3_S:   {"iq3_s", 256, 110},
	IQ2_S:   {"iq2_s", 256, 82},
	IQ4_XS:  {"iq4_xs", 256, 136},
	I8:      {"i8", 1, 1},
	I16:     {"i16", 1, 2},
	I32:     {"i32", 1, 4},
	I64:     {"i64", 1, 8},
	F64:     {"f64", 1, 8},
	IQ1_M:   {"iq1_m", 256, 56},
	BF16:    {"bf16", 1, 2},
	TQ1_0:   {"tq1_0", 256, 54},
	TQ2_0:   {"tq2_0", 256, 66},
	MXFP4:   {"mxfp4", 32, 17},
}

// Types lists every known type in enum order.
func Types() []Type {
	var ts []Type
	for t := Type(0); t < 40; t++ {
		if _, ok := typeInfos[t]; ok {
			ts = append(ts, t)
		}
	}
	return ts
}

// Known reports whether t is a type this ggml version knows.
func (t Type) Known() bool { _, ok := typeInfos[t]; return ok }

// String is ggml_type_name (e.g. "q8_0", "q4_K"), or "type(N)" when unknown.
func (t Type) String() string {
	if ti, ok := typeInfos[t]; ok {
		return ti.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// BlockSize is the number of values in one block (ggml_blck_size); 0 if unknown.
func (t Type) BlockSize() int { return typeInfos[t].block }

// BlockBytes is the size of one block in bytes (ggml_type_size); 0 if unknown.
func (t Type) BlockBytes() int { return typeInfos[t].size }

// Quantized reports whether t is a block-quantized type.
func (t Type) Quantized() bool { return typeInfos[t].block > 1 }

// ParseType maps a ggml type name (case-insensitive, "q4_k" or "Q4_K") to a Type.
func ParseType(s string) (Type, error) {
	for t, ti := range typeInfos {
		if equalFold(ti.name, s) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown ggml type %q", s)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// RowBytes returns the bytes taken by n values of type t (ggml_row_size), or an
// error when n is not a multiple of the block size or the type is unknown.
func (t Type) RowBytes(n int64) (int64, error) {
	ti, ok := typeInfos[t]
	if !ok {
		return 0, fmt.Errorf("unknown tensor type %d", uint32(t))
	}
	if n < 0 || n%int64(ti.block) != 0 {
		return 0, fmt.Errorf("row of %d values of type %s is not a multiple of its block size %d", n, ti.name, ti.block)
	}
	blocks := n / int64(ti.block)
	if blocks > math.MaxInt64/int64(ti.size) {
		return 0, fmt.Errorf("row of %d values of type %s: byte size overflows int64", n, ti.name)
	}
	return blocks * int64(ti.size), nil
}
