//go:build llamacpp

package pipeline

import (
	"fmt"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
)

// armFtypes is cmd/layerdiff's fixtureFtypes (llama_ftype per `layerdiff
// fixture --type`).
var armFtypes = map[string]int{
	"f16": 1, "bf16": 32,
	"q8_0": 7, "q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9,
	"q2_k": 10, "q3_k": 11, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18,
	"iq4_nl": 25, "iq4_xs": 30,
}

func init() {
	armQuantize = func(f32, out, typ string) error {
		ft, ok := armFtypes[typ]
		if !ok {
			return fmt.Errorf("fixture type %q", typ)
		}
		return llamacpp.QuantizeModel(f32, out, ft, 2)
	}
}
