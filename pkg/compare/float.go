package compare

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Float is a float64 that survives JSON. Finite values are encoded as JSON
// numbers exactly as encoding/json encodes a float64 (the shortest
// representation that round-trips); NaN, +Inf and -Inf, which JSON numbers
// cannot carry, are encoded as the strings "NaN", "+Inf" and "-Inf".
// Decoding accepts both forms, so a report read back from JSON holds the same
// bits it was written with (NaN payloads excepted).
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return json.Marshal(v)
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		switch s {
		case "NaN":
			*f = Float(math.NaN())
		case "+Inf", "Inf":
			*f = Float(math.Inf(1))
		case "-Inf":
			*f = Float(math.Inf(-1))
		default:
			return fmt.Errorf("compare: float: %q is neither a number nor NaN/+Inf/-Inf", s)
		}
		return nil
	}
	if string(b) == "null" {
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("compare: float: %w", err)
	}
	*f = Float(v)
	return nil
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// finite32 is isFinite(float64(v)) on the float32's bits: its exponent is
// not all ones.
func finite32(v float32) bool { return math.Float32bits(v)&0x7f800000 != 0x7f800000 }
