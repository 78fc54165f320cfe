package forward

import (
	"slices"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/fixture"
)

// TestArchRegistry checks the registry is well formed and that every
// architecture the forward pass runs has a fixture, and the reverse.
func TestArchRegistry(t *testing.T) {
	if err := checkNames(); err != nil {
		t.Fatal(err)
	}
	var fw []string
	for _, a := range Archs() {
		fw = append(fw, string(a))
	}
	if !slices.Equal(fw, fixture.Archs) {
		t.Errorf("forward runs %v, fixtures exist for %v", fw, fixture.Archs)
	}
}
