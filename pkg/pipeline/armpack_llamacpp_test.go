//go:build llamacpp

package pipeline

import (
	"fmt"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
)

func init() {
	armQuantize = func(f32, out, typ string) error {
		ft, ok := fixture.Ftype(typ)
		if !ok {
			return fmt.Errorf("fixture type %q", typ)
		}
		return llamacpp.QuantizeModel(f32, out, ft, 2)
	}
}
