package forward

import (
	"slices"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/fixture"
)

// TestArchRegistry checks the registry is well formed and that every
// architecture the forward pass runs has a fixture, and the reverse. A
// fixture family may be a variant of another architecture ("mixtral"
// writes general.architecture "llama" with experts): the architectures
// the fixtures write, in order of first appearance, must be the
// registry's.
func TestArchRegistry(t *testing.T) {
	if err := checkNames(); err != nil {
		t.Fatal(err)
	}
	var fw []string
	for _, a := range Archs() {
		fw = append(fw, string(a))
	}
	var fx []string
	for _, f := range fixture.Archs {
		a := fixture.GGUFArch(f)
		if a == "" {
			t.Errorf("fixture family %q has no architecture", f)
		}
		if !slices.Contains(fx, a) {
			fx = append(fx, a)
		}
	}
	if !slices.Equal(fw, fx) {
		t.Errorf("forward runs %v, fixtures (%v) exist for %v", fw, fixture.Archs, fx)
	}
}
