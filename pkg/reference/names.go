package reference

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// NameMap maps a third-party engine's tensor names to llama.cpp's, so that
// its dump aligns with a llama.cpp reference (docs/names.md, "Your engine's
// names"). Rules are tried in order; the first whose engine pattern matches
// a name gives its llama.cpp name.
type NameMap struct {
	// Name says where the map came from: "hf", "meta" or a file path.
	Name  string
	rules []nameRule
}

// nameRule maps one engine name pattern to one llama.cpp name pattern.
// Patterns hold at most one "{L}", the layer number.
type nameRule struct {
	from, to string
	op       string // the llama.cpp node's op when the map fixes it, else ""
	// permute marks the output of an HF llama q_proj ('q') or k_proj ('k'),
	// whose elements are in rotate-half order within each head.
	permute byte
	line    int // line in the map file, 0 for built-in maps
}

// Rules returns the map's rules as "ENGINE = LLAMACPP" lines, for docs and
// diagnostics.
func (m *NameMap) Rules() []string {
	out := make([]string, len(m.rules))
	for i, r := range m.rules {
		out[i] = r.from + " = " + r.to
	}
	return out
}

// layerVar is the layer placeholder of map patterns.
const layerVar = "{L}"

// match reports whether name matches the pattern and returns the layer
// ("" when the pattern has no {L}).
func matchPattern(pat, name string) (layer string, ok bool) {
	pre, post, has := strings.Cut(pat, layerVar)
	if !has {
		return "", pat == name
	}
	if len(name) <= len(pre)+len(post) || !strings.HasPrefix(name, pre) || !strings.HasSuffix(name, post) {
		return "", false
	}
	l := name[len(pre) : len(name)-len(post)]
	if len(l) > 6 {
		return "", false
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return "", false
		}
	}
	if len(l) > 1 && l[0] == '0' {
		return "", false // "layers.01" is not layer 1's name
	}
	return l, true
}

// Map returns the llama.cpp name of an engine name, and whether a rule
// matched.
func (m *NameMap) Map(name string) (string, bool) {
	if r := m.rule(name); r != nil {
		l, _ := matchPattern(r.from, name)
		return strings.Replace(r.to, layerVar, l, 1), true
	}
	return "", false
}

func (m *NameMap) rule(name string) *nameRule {
	for i := range m.rules {
		if _, ok := matchPattern(m.rules[i].from, name); ok {
			return &m.rules[i]
		}
	}
	return nil
}

// maxNameMapLine bounds one line of a name map file.
const maxNameMapLine = 4096

// ParseNameMap reads a name map: one "ENGINE_NAME = LLAMACPP_NAME" per
// line, "{L}" standing for the layer number on both sides (on both or on
// neither); blank lines are ignored, and a '#' at the start of a line or
// after a space or tab starts a comment (a '#' glued to a name, as in
// "Qcur-{L}#2", the second node named Qcur-L, is part of it). file names
// the input in errors, which say FILE:LINE.
func ParseNameMap(r io.Reader, file string) (*NameMap, error) {
	m := &NameMap{Name: file}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxNameMapLine)
	seen := map[string]int{}
	n := 0
	for sc.Scan() {
		n++
		line := stripComment(sc.Text())
		if strings.TrimSpace(line) == "" {
			continue
		}
		r, err := parseNameRule(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", file, n, err)
		}
		if prev, dup := seen[r.from]; dup {
			return nil, fmt.Errorf("%s:%d: %q is already mapped on line %d", file, n, r.from, prev)
		}
		seen[r.from] = n
		r.line = n
		m.rules = append(m.rules, r)
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			return nil, fmt.Errorf("%s:%d: line longer than %d bytes", file, n+1, maxNameMapLine)
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(m.rules) == 0 {
		return nil, fmt.Errorf("%s: no mapping (lines are ENGINE_NAME = LLAMACPP_NAME)", file)
	}
	return m, nil
}

// ReadNameMap reads the name map file path (see ParseNameMap).
func ReadNameMap(path string) (*NameMap, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseNameMap(bytes.NewReader(b), path)
}

// stripComment cuts a line at a '#' that begins it or follows a space or a
// tab.
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

func parseNameRule(line string) (nameRule, error) {
	from, to, ok := strings.Cut(line, "=")
	if !ok {
		return nameRule{}, fmt.Errorf("want ENGINE_NAME = LLAMACPP_NAME, got %q", strings.TrimSpace(line))
	}
	from, to = strings.TrimSpace(from), strings.TrimSpace(to)
	switch {
	case from == "":
		return nameRule{}, fmt.Errorf("empty engine name before '='")
	case to == "":
		return nameRule{}, fmt.Errorf("empty llama.cpp name after '=' for %q", from)
	case strings.Contains(to, "="):
		return nameRule{}, fmt.Errorf("more than one '=' in %q", strings.TrimSpace(line))
	}
	for _, s := range []string{from, to} {
		if s[0] == '#' {
			return nameRule{}, fmt.Errorf("%q: a name cannot start with '#' (after a space it starts a comment)", s)
		}
		if strings.Count(s, layerVar) > 1 {
			return nameRule{}, fmt.Errorf("%q: more than one %s", s, layerVar)
		}
		if strings.Contains(strings.ReplaceAll(s, layerVar, ""), "{") || strings.Contains(strings.ReplaceAll(s, layerVar, ""), "}") {
			return nameRule{}, fmt.Errorf("%q: the only placeholder is %s", s, layerVar)
		}
		for _, c := range s {
			if c < ' ' || c == 0x7f {
				return nameRule{}, fmt.Errorf("%q: control character %q", s, c)
			}
		}
	}
	if strings.Contains(to, " ") && !viewSuffixed(to) {
		return nameRule{}, fmt.Errorf("llama.cpp name %q has a space (only ggml's view suffixes such as \" (reshaped)\" follow one)", to)
	}
	if strings.Contains(from, layerVar) != strings.Contains(to, layerVar) {
		return nameRule{}, fmt.Errorf("%s must appear on both sides or on neither (%q = %q)", layerVar, from, to)
	}
	if len(to) > 63+8 {
		return nameRule{}, fmt.Errorf("llama.cpp name %q is longer than ggml's 63 bytes", to)
	}
	return nameRule{from: from, to: to}, nil
}

// viewSuffixed reports whether the part of name after its first space is
// a run of ggml view suffixes, maybe followed by an occurrence "#N".
func viewSuffixed(name string) bool {
	_, rest, _ := strings.Cut(name, " ")
	if i := strings.LastIndexByte(rest, '#'); i >= 0 {
		if _, err := strconv.Atoi(rest[i+1:]); err == nil {
			rest = rest[:i]
		}
	}
	for _, f := range strings.Fields(rest) {
		switch f {
		case "(reshaped)", "(view)", "(permuted)", "(transposed)", "(cont)", "(copy)":
		default:
			return false
		}
	}
	return rest != ""
}

// NameMapFor returns the map --names SPEC asks for: a built-in map's name
// (NamesHF for architecture arch, NamesMeta), else a map file's path.
func NameMapFor(spec, arch string) (*NameMap, error) {
	switch spec {
	case NamesHF, NamesMeta:
		return BuiltinNameMap(spec, arch)
	case "":
		return nil, fmt.Errorf("empty name map: want %s, %s or a map file", NamesHF, NamesMeta)
	}
	return ReadNameMap(spec)
}

// Built-in name maps (docs/names.md, "Your engine's names").
const (
	NamesHF   = "hf"   // transformers module outputs (forward hooks)
	NamesMeta = "meta" // Meta's reference llama code (model.py)
)

// HFArchs are the architectures the built-in "hf" map knows.
var HFArchs = []string{"llama", "qwen2", "qwen3", "phi3"}

// BuiltinNameMap returns a built-in map: NamesHF for arch llama, qwen2,
// qwen3 or phi3 (the map depends on it: qwen2's q/k/v projections carry a bias, so
// their hook output is llama.cpp's ADD, and llama's Q and K come in
// rotate-half order), or NamesMeta (any arch).
func BuiltinNameMap(name, arch string) (*NameMap, error) {
	switch name {
	case NamesMeta:
		return &NameMap{Name: NamesMeta, rules: metaRules}, nil
	case NamesHF:
		rules, ok := hfRules(arch)
		if !ok {
			if arch == "" {
				return nil, fmt.Errorf("--names hf: the architecture is unknown (the map differs between %s); give the model (--model) or a reference dump that records it", strings.Join(HFArchs, ", "))
			}
			return nil, fmt.Errorf("--names hf: no built-in map for architecture %q (known: %s); write a map file (docs/names.md)", arch, strings.Join(HFArchs, ", "))
		}
		return &NameMap{Name: NamesHF, rules: rules}, nil
	}
	return nil, fmt.Errorf("no built-in name map %q (known: %s, %s)", name, NamesHF, NamesMeta)
}

var metaRules = []nameRule{
	{from: "tok_embeddings", to: "inp_embd", op: "GET_ROWS"},
	{from: "layers.{L}.attention_norm", to: "attn_norm-{L}", op: "MUL"},
	{from: "layers.{L}.attention.wq", to: "Qcur-{L}", op: "MUL_MAT"},
	{from: "layers.{L}.attention.wk", to: "Kcur-{L}", op: "MUL_MAT"},
	{from: "layers.{L}.attention.wv", to: "Vcur-{L}", op: "MUL_MAT"},
	{from: "layers.{L}.attention.wo", to: "attn_out-{L}", op: "MUL_MAT"},
	{from: "layers.{L}.ffn_norm", to: "ffn_norm-{L}", op: "MUL"},
	{from: "layers.{L}.feed_forward.w1", to: "ffn_gate-{L}", op: "MUL_MAT"},
	{from: "layers.{L}.feed_forward.w3", to: "ffn_up-{L}", op: "MUL_MAT"},
	{from: "layers.{L}.feed_forward.w2", to: "ffn_out-{L}", op: "MUL_MAT"},
	{from: "layers.{L}", to: "l_out-{L}", op: "ADD"},
	{from: "norm", to: "result_norm", op: "MUL"},
	{from: "output", to: "result_output", op: "MUL_MAT"},
}

// hfRules is the "hf" map of one architecture.
func hfRules(arch string) ([]nameRule, bool) {
	proj := func(from, to string, permute byte) nameRule {
		return nameRule{from: "model.layers.{L}.self_attn." + from, to: to + "-{L}", op: "MUL_MAT", permute: permute}
	}
	q, k, v := proj("q_proj", "Qcur", 0), proj("k_proj", "Kcur", 0), proj("v_proj", "Vcur", 0)
	var extra []nameRule
	switch arch {
	case "llama":
		q.permute, k.permute = 'q', 'k'
	case "qwen2":
		// With the bias: llama.cpp's second node of the name, the ADD.
		for _, r := range []*nameRule{&q, &k, &v} {
			r.to, r.op = r.to+"#2", "ADD"
		}
	case "phi3":
		return hfRulesPhi3(), true
	case "qwen3":
		extra = []nameRule{
			{from: "model.layers.{L}.self_attn.q_norm", to: "Qcur_normed-{L}", op: "MUL"},
			{from: "model.layers.{L}.self_attn.k_norm", to: "Kcur_normed-{L}", op: "MUL"},
		}
	default:
		return nil, false
	}
	rules := []nameRule{
		{from: "model.embed_tokens", to: "inp_embd", op: "GET_ROWS"},
		{from: "model.layers.{L}.input_layernorm", to: "attn_norm-{L}", op: "MUL"},
		q, k, v,
		{from: "model.layers.{L}.self_attn.o_proj", to: "attn_out-{L}", op: "MUL_MAT"},
		{from: "model.layers.{L}.post_attention_layernorm", to: "ffn_norm-{L}", op: "MUL"},
		{from: "model.layers.{L}.mlp.gate_proj", to: "ffn_gate-{L}", op: "MUL_MAT"},
		{from: "model.layers.{L}.mlp.up_proj", to: "ffn_up-{L}", op: "MUL_MAT"},
		{from: "model.layers.{L}.mlp.down_proj", to: "ffn_out-{L}", op: "MUL_MAT"},
		{from: "model.layers.{L}", to: "l_out-{L}", op: "ADD"},
		{from: "model.norm", to: "result_norm", op: "MUL"},
		{from: "lm_head", to: "result_output", op: "MUL_MAT"},
	}
	return append(rules, extra...), true
}
