// Package tensor holds the one value handed from stage to stage in layerdiff:
// a named activation in ggml layout, complete (from a dump or from layerdiff's
// own forward pass) or partial (from a llama.cpp text log, which prints only a
// few elements and a sum).
package tensor

import (
	"fmt"
)

// Tensor is one named activation.
//
// Ne is in ggml order: Ne[0] varies fastest, so a tensor with Ne {n_embd, T}
// is T rows of n_embd values (numpy shape [T, n_embd]). Trailing 1s may be
// omitted. Data holds Numel() values in that order, or is nil when only
// Partial is known.
type Tensor struct {
	Key  string  // unique key within its source (name plus a "#N" suffix when repeated)
	Name string  // llama.cpp's node name, e.g. "attn_norm-0"
	Op   string  // ggml op description, e.g. "MUL_MAT", "ROPE", "GLU(SWIGLU)"; "" if unknown
	Ne   []int64 // shape in ggml order
	Data []float32

	// Partial is set when only some elements are known (text logs).
	Partial *Partial
}

// Partial records what a text log shows of a tensor: some elements at a
// printed precision, and the sum of all elements as llama.cpp computed it.
type Partial struct {
	Index  []int64   // flat ggml-order indices of the known elements
	Values []float64 // their printed values
	// Quantum is the printed resolution of Values (1e-4 for "%12.4f"): a
	// value v stands for the interval [v-Quantum/2, v+Quantum/2].
	Quantum float64
	Sum     float64 // sum of all elements, as printed
	HasSum  bool
	// SumQuantum is the printed resolution of Sum (0 when exact).
	SumQuantum float64
}

// Numel is the product of Ne (1 for an empty shape).
func Numel(ne []int64) int64 {
	n := int64(1)
	for _, d := range ne {
		n *= d
	}
	return n
}

// Numel is the number of elements of t.
func (t *Tensor) Numel() int64 { return Numel(t.Ne) }

// Layer parses the layer number from a llama.cpp name "base-L" (e.g.
// "ffn_up-3" or "Qcur-3 (reshaped)"), returning -1 for names without one
// (inp_embd, result_norm).
func Layer(name string) int {
	_, layer := SplitName(name)
	return layer
}

// SplitName splits "attn_norm-12 (reshaped)" into ("attn_norm", 12). Names
// without a layer suffix return layer -1. Suffixes that ggml adds to views
// (" (reshaped)", " (view)", " (permuted)", " (transposed)", " (cont)",
// " (copy...)") are dropped from base.
func SplitName(name string) (base string, layer int) {
	s := name
	if i := indexByte(s, ' '); i >= 0 {
		s = s[:i]
	}
	layer = -1
	j := len(s)
	for j > 0 && s[j-1] >= '0' && s[j-1] <= '9' {
		j--
	}
	if j < len(s) && j > 1 && s[j-1] == '-' && len(s)-j <= 6 {
		l := 0
		for _, c := range s[j:] {
			l = l*10 + int(c-'0')
		}
		return s[:j-1], l
	}
	return s, -1
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// ShapeString formats ne in ggml order, e.g. "{64, 8}".
func ShapeString(ne []int64) string {
	s := "{"
	for i, d := range ne {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprint(d)
	}
	return s + "}"
}

// Trim drops trailing 1s of a ggml shape (keeping at least one dimension).
func Trim(ne []int64) []int64 {
	n := len(ne)
	for n > 1 && ne[n-1] == 1 {
		n--
	}
	return append([]int64(nil), ne[:n]...)
}

// SameShape reports whether two ggml shapes are equal up to trailing 1s.
func SameShape(a, b []int64) bool {
	a, b = Trim(a), Trim(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// SumF32 sums data in ggml order into a float32 accumulator, which is how
// llama.cpp's eval callback (common/debug.cpp, common_debug_print_tensor)
// computes the "sum =" it prints: the result matches a log's sum to the last
// printed digit, where a float64 sum generally does not.
func SumF32(data []float32) float32 {
	var s float32
	for _, v := range data {
		s += v
	}
	return s
}
