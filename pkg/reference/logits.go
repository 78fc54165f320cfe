package reference

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Logits is llama-debug --save-logits output: for a model file MODEL.gguf,
// llama-debug writes into its output directory
//
//	llamacpp-MODEL.bin         logits of the last prompt token, n_vocab float32 (host order)
//	llamacpp-MODEL.txt         the same, one "i: value" line each (C++ ostream, 6 significant digits)
//	llamacpp-MODEL-tokens.bin  the prompt's token ids, int32 (host order)
//	llamacpp-MODEL-prompt.txt  "prompt: ...", "n_tokens: N", "token ids: a, b, ..."
//
// It is exposed as a source with one node, "result_output", of ne
// {n_vocab, 1}: the row of token position len(Tokens)-1.
type Logits struct {
	Dir    string
	Stem   string  // "llamacpp-MODEL"
	Tokens []int32 // nil if the tokens file is missing
	Prompt string

	data     []float32       // from the .bin file
	partial  *tensor.Partial // from the .txt file when there is no .bin
	nVocab   int64
	warnings []string
}

const logitsNode = "result_output"

// logitsStems lists the output stems in dir ("llamacpp-MODEL"): those with
// a .bin or .txt logits file. Embedding outputs ("-embeddings") are left out.
func logitsStems(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var stems []string
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, "llamacpp-") || e.IsDir() {
			continue
		}
		var stem string
		switch {
		case strings.HasSuffix(n, "-tokens.bin"), strings.HasSuffix(n, "-prompt.txt"):
			continue
		case strings.HasSuffix(n, ".bin"):
			stem = strings.TrimSuffix(n, ".bin")
		case strings.HasSuffix(n, ".txt"):
			stem = strings.TrimSuffix(n, ".txt")
		default:
			continue
		}
		if strings.HasSuffix(stem, "-embeddings") || seen[stem] {
			continue
		}
		seen[stem] = true
		stems = append(stems, stem)
	}
	return stems, nil
}

// OpenLogits opens llama-debug --save-logits output: a directory holding the
// files of one model, or the path of its .bin or .txt logits file.
func OpenLogits(path string) (*Logits, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	l := &Logits{}
	if st.IsDir() {
		stems, err := logitsStems(path)
		if err != nil {
			return nil, err
		}
		switch len(stems) {
		case 0:
			return nil, fileErr(path, "no llama-debug logits (llamacpp-MODEL.bin or .txt) in this directory")
		case 1:
		default:
			return nil, fileErr(path, "logits of several models (%s); open one .bin file", strings.Join(stems, ", "))
		}
		l.Dir, l.Stem = path, stems[0]
	} else {
		l.Dir = filepath.Dir(path)
		l.Stem = strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".bin"), ".txt")
	}
	base := filepath.Join(l.Dir, l.Stem)
	if err := l.readTokens(base + "-tokens.bin"); err != nil {
		return nil, err
	}
	l.readPrompt(base + "-prompt.txt")
	haveBin := fileExists(base + ".bin")
	if haveBin {
		if err := l.readBin(base + ".bin"); err != nil {
			return nil, err
		}
	}
	if fileExists(base + ".txt") {
		if err := l.readText(base+".txt", haveBin); err != nil {
			if !haveBin {
				return nil, err
			}
			l.warnings = append(l.warnings, err.Error())
		}
	} else if !haveBin {
		return nil, fileErr(base+".bin", "missing, and no .txt logits either")
	}
	return l, nil
}

func (l *Logits) readTokens(p string) error {
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		l.warnings = append(l.warnings, fmt.Sprintf("%s: missing; token positions unknown", p))
		return nil
	}
	if err != nil {
		return err
	}
	if len(b)%4 != 0 {
		return offsetErr(p, int64(len(b)/4*4), "size %d is not a multiple of 4 (int32 token ids)", len(b))
	}
	l.Tokens = make([]int32, len(b)/4)
	for i := range l.Tokens {
		l.Tokens[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return nil
}

// readPrompt reads the prompt and checks its token list against the binary
// one; the file is informative, so problems are warnings.
func (l *Logits) readPrompt(p string) {
	b, err := os.ReadFile(p)
	if err != nil {
		return
	}
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	if rest, ok := strings.CutPrefix(s, "prompt: "); ok {
		if i := strings.LastIndex(rest, "\nn_tokens: "); i >= 0 {
			l.Prompt = rest[:i]
		}
	}
	i := strings.LastIndex(s, "token ids: ")
	if i < 0 || l.Tokens == nil {
		return
	}
	line, _, _ := strings.Cut(s[i+len("token ids: "):], "\n")
	var ids []int32
	for _, f := range strings.Split(line, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil {
			return
		}
		ids = append(ids, int32(v))
	}
	if fmt.Sprint(ids) != fmt.Sprint(l.Tokens) {
		l.warnings = append(l.warnings, fmt.Sprintf("%s: token ids %v differ from the tokens file %v", p, ids, l.Tokens))
	}
}

func (l *Logits) readBin(p string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if len(b) == 0 || len(b)%4 != 0 {
		return offsetErr(p, int64(len(b)/4*4), "size %d is not a positive multiple of 4 (float32 logits)", len(b))
	}
	l.data = make([]float32, len(b)/4)
	for i := range l.data {
		l.data[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	l.nVocab = int64(len(l.data))
	return nil
}

// readText reads "i: value" lines. With the binary logits present it only
// cross-checks them; otherwise the text becomes a Partial with every index.
func (l *Logits) readText(p string, check bool) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 1<<20)
	var vals []float64
	quantum := 0.0
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		if s == "" {
			continue
		}
		is, vs, ok := strings.Cut(s, ": ")
		idx, err := strconv.Atoi(is)
		if !ok || err != nil || idx != len(vals) {
			return lineErr(p, line, "want \"%d: value\", got %q", len(vals), clip(s))
		}
		v, q, ok := parseCFloat(vs)
		if !ok {
			return lineErr(p, line, "bad value %q", clip(vs))
		}
		if check && int64(idx) < l.nVocab {
			if b := float64(l.data[idx]); !(b == v || math.Abs(b-v) <= q/2*1.000001 || math.IsNaN(b) && math.IsNaN(v)) {
				return lineErr(p, line, "logit %d is %s here but %g in the .bin file", idx, vs, b)
			}
		}
		quantum = math.Max(quantum, q)
		vals = append(vals, v)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	if check {
		if int64(len(vals)) != l.nVocab {
			return fileErr(p, "%d logits, the .bin file has %d", len(vals), l.nVocab)
		}
		return nil
	}
	if len(vals) == 0 {
		return fileErr(p, "no logits")
	}
	idx := make([]int64, len(vals))
	for i := range idx {
		idx[i] = int64(i)
	}
	l.nVocab = int64(len(vals))
	l.partial = &tensor.Partial{Index: idx, Values: vals, Quantum: quantum}
	return nil
}

// parseCFloat parses a value printed by a C++ ostream with the default
// precision (6 significant digits, %g style) and returns the printed
// resolution: one unit in the sixth significant digit.
func parseCFloat(s string) (v, quantum float64, ok bool) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(strings.TrimLeft(s, "+-")) {
	case "nan":
		return math.NaN(), 0, true
	case "inf":
		if strings.HasPrefix(s, "-") {
			return math.Inf(-1), 0, true
		}
		return math.Inf(1), 0, true
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, 0, false
	}
	if v == 0 {
		return 0, 0, true
	}
	e := math.Floor(math.Log10(math.Abs(v)))
	return v, math.Pow(10, e-5), true
}

// Describe implements Source.
func (l *Logits) Describe() Info {
	return Info{
		Kind:     KindLogits,
		Path:     filepath.Join(l.Dir, l.Stem),
		Format:   "llama-debug --save-logits output",
		Tokens:   l.Tokens,
		Prompt:   l.Prompt,
		Warnings: l.warnings,
	}
}

// Position is the token position the logits belong to (the last prompt
// token), or -1 when the tokens are unknown.
func (l *Logits) Position() int { return len(l.Tokens) - 1 }

// Nodes implements Source.
func (l *Logits) Nodes() []NodeInfo {
	n := NodeInfo{Key: logitsNode, Name: logitsNode, Type: "f32", Ne: []int64{l.nVocab, 1}, Data: FullData}
	if l.data == nil {
		n.Data = PartialData
	}
	if p := l.Position(); p >= 0 {
		n.Positions = []int{p}
	}
	return []NodeInfo{n}
}

// Load implements Source.
func (l *Logits) Load(key string) (*tensor.Tensor, error) {
	if key != logitsNode {
		return nil, fmt.Errorf("%s: %q: %w", filepath.Join(l.Dir, l.Stem), key, ErrNotFound)
	}
	t := &tensor.Tensor{Key: logitsNode, Name: logitsNode, Ne: []int64{l.nVocab, 1}}
	if l.data != nil {
		t.Data = append([]float32(nil), l.data...)
	} else {
		p := *l.partial
		t.Partial = &p
	}
	return t, nil
}
