package pipeline

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/model/forward"
)

// Injection perturbs one named activation of layerdiff's forward pass, to
// show a divergence being caught (and to test that it is). Its text form is
// NAME:KIND[=VALUE]:
//
//	ffn_up-1:scale=1.01   multiply every element by VALUE
//	attn_norm-0:add=0.1   add VALUE to every element
//	Qcur-0#2:swap         swap the two halves of every row (ne[0])
//	kq-0:transpose        write the ne[0]×ne[1] matrices transposed
//	l_out-0:sign          negate every element
//	inp_embd:shift        shift every row to the next token (off-by-one position)
//
// NAME is a llama.cpp node name; "#N" selects its N-th occurrence in graph
// order (Qcur-0 names the MUL_MAT, and Qcur-0#2 the ROPE, in llama.cpp's
// graph). Views and F16 nodes cannot be perturbed.
type Injection struct {
	Name  string
	Nth   int // 1-based occurrence
	Kind  string
	Value float64
}

// InjectionKinds lists the kinds ParseInjection accepts.
var InjectionKinds = []string{"scale", "add", "swap", "transpose", "sign", "shift"}

// ParseInjection parses NAME:KIND[=VALUE].
func ParseInjection(s string) (Injection, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return Injection{}, fmt.Errorf("--inject %q: want NAME:KIND[=VALUE] (kinds: %s)", s, strings.Join(InjectionKinds, ", "))
	}
	inj := Injection{Name: s[:i], Nth: 1}
	kind, val, hasVal := strings.Cut(s[i+1:], "=")
	inj.Kind = kind
	if n, occ, ok := strings.Cut(inj.Name, "#"); ok {
		k, err := strconv.Atoi(occ)
		if err != nil || k < 1 {
			return Injection{}, fmt.Errorf("--inject %q: occurrence %q is not a positive number", s, occ)
		}
		inj.Name, inj.Nth = n, k
	}
	switch kind {
	case "scale", "add":
		if !hasVal {
			return Injection{}, fmt.Errorf("--inject %q: %s needs a value (%s=X)", s, kind, kind)
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return Injection{}, fmt.Errorf("--inject %q: %q is not a finite number", s, val)
		}
		inj.Value = v
	case "swap", "transpose", "sign", "shift":
		if hasVal {
			return Injection{}, fmt.Errorf("--inject %q: %s takes no value", s, kind)
		}
	default:
		return Injection{}, fmt.Errorf("--inject %q: unknown kind %q (want one of %s)", s, kind, strings.Join(InjectionKinds, ", "))
	}
	return inj, nil
}

// String is the text form.
func (j Injection) String() string {
	s := j.Name
	if j.Nth > 1 {
		s += "#" + strconv.Itoa(j.Nth)
	}
	s += ":" + j.Kind
	if j.Kind == "scale" || j.Kind == "add" {
		s += "=" + strconv.FormatFloat(j.Value, 'g', -1, 64)
	}
	return s
}

// Apply perturbs data, a tensor of ggml shape ne, in place.
func (j Injection) Apply(data []float32, ne [4]int64) {
	n0 := int(ne[0])
	rows := len(data) / max(n0, 1)
	switch j.Kind {
	case "scale":
		for i := range data {
			data[i] = float32(float64(data[i]) * j.Value)
		}
	case "add":
		for i := range data {
			data[i] = float32(float64(data[i]) + j.Value)
		}
	case "sign":
		for i := range data {
			data[i] = -data[i]
		}
	case "swap":
		h := n0 / 2
		for r := 0; r < rows; r++ {
			row := data[r*n0 : (r+1)*n0]
			for i := 0; i < h; i++ {
				row[i], row[h+i] = row[h+i], row[i]
			}
		}
	case "transpose":
		n1 := int(ne[1])
		mat := n0 * n1
		tmp := make([]float32, mat)
		for off := 0; off+mat <= len(data); off += mat {
			m := data[off : off+mat]
			// m is n1 rows of n0; write n0 rows of n1.
			for r := 0; r < n1; r++ {
				for c := 0; c < n0; c++ {
					tmp[c*n1+r] = m[r*n0+c]
				}
			}
			copy(m, tmp)
		}
	case "shift":
		// the row of token t gets token t-1's values (token 0 keeps its own)
		for r := rows - 1; r > 0; r-- {
			copy(data[r*n0:(r+1)*n0], data[(r-1)*n0:r*n0])
		}
	}
}

// injector applies user injections inside the forward pass.
type injector struct {
	list []Injection
	seen map[string]int
	used []bool
}

func newInjector(list []Injection) (*injector, error) {
	if len(list) == 0 {
		return nil, nil
	}
	return &injector{list: list, seen: map[string]int{}, used: make([]bool, len(list))}, nil
}

// reset prepares for another forward run.
func (j *injector) reset() {
	j.seen = map[string]int{}
	for i := range j.used {
		j.used[i] = false
	}
}

// apply perturbs computed when node n is targeted; it reports whether it did.
func (j *injector) apply(n *forward.Node, computed []float32) bool {
	j.seen[n.Name]++
	hit := false
	for i, inj := range j.list {
		if inj.Name == n.Name && inj.Nth == j.seen[n.Name] {
			inj.Apply(computed, n.Ne)
			j.used[i] = true
			hit = true
		}
	}
	return hit
}

// Inject implements forward.Injector.
func (j *injector) Inject(n *forward.Node, computed []float32) ([]float32, bool) {
	if j.apply(n, computed) {
		return computed, true
	}
	return nil, false
}

// unused reports injections that matched no node.
func (j *injector) unused() error {
	for i, u := range j.used {
		if !u {
			return fmt.Errorf("--inject %s: no such node in the forward pass (views and F16 nodes cannot be perturbed)", j.list[i])
		}
	}
	return nil
}
