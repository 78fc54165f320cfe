package compare

import (
	"math"
	"strconv"
	"strings"
)

// FormatFloat formats x with the given number of significant digits in %g
// style, spelling the special values "NaN", "+Inf" and "-Inf". digits < 1
// means the shortest representation that round-trips.
func FormatFloat(x float64, digits int) string {
	switch {
	case math.IsNaN(x):
		return "NaN"
	case math.IsInf(x, 1):
		return "+Inf"
	case math.IsInf(x, -1):
		return "-Inf"
	}
	if digits < 1 {
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return strconv.FormatFloat(x, 'g', digits, 64)
}

// FormatPair formats two values with the fewest significant digits, at
// least min, that make them print differently (go-cmp's habit): 0.12345678
// and 0.12345679 print as "0.12345678" and "0.12345679", not both as
// "0.1235". Values that are equal, or differ only in a way no digit count
// shows (±0, two NaNs), use min digits. Digits stop at 17, where every
// distinct float64 prints distinctly.
func FormatPair(a, b float64, min int) (string, string) {
	if min < 1 {
		min = 1
	}
	for d := min; d <= 17; d++ {
		sa, sb := FormatFloat(a, d), FormatFloat(b, d)
		if sa != sb || d == 17 {
			if sa == sb {
				return FormatFloat(a, min), FormatFloat(b, min)
			}
			return sa, sb
		}
	}
	return FormatFloat(a, min), FormatFloat(b, min)
}

// formatVs formats a measured value x against a limit so that both print
// differently when they differ (3 significant digits at least).
func formatVs(x, limit float64) (string, string) { return FormatPair(x, limit, 3) }

// fmtShape is tensor.ShapeString without importing fmt in hot paths.
func fmtShape(ne []int64) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, d := range ne {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatInt(d, 10))
	}
	b.WriteByte('}')
	return b.String()
}

// fmtCoord formats coordinates as "[i0, i1, ...]".
func fmtCoord(c []int64) string {
	s := fmtShape(c)
	return "[" + s[1:len(s)-1] + "]"
}
