package tokenizer

import (
	"flag"
	"fmt"
	"github.com/layerdiff/layerdiff/internal/testshared"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
)

// findSharedVocab finds shared/vocab by walking up from the test
// directory, or returns "".
func findSharedVocab() string {
	if d := testshared.Find(); d != "" {
		return filepath.Join(d, "vocab")
	}
	return ""
}

// sharedVocabDir is findSharedVocab, skipping the test when it is absent.
func sharedVocabDir(t testing.TB) string {
	t.Helper()
	d := findSharedVocab()
	if d == "" {
		t.Skip("shared/vocab not found")
	}
	return d
}

// vocabFiles are llama.cpp's vocabulary files with test vectors.
var vocabFiles = []string{"ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf", "ggml-vocab-gpt-2.gguf", "ggml-vocab-starcoder.gguf"}

func loadTokenizer(t testing.TB, path string) *Tokenizer {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := VocabFromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := NewTokenizer(v)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return tok
}

// vocabTest is one test vector: a string and the ids llama.cpp gives it.
type vocabTest struct {
	text string
	ids  []int32
}

// readVocabTests reads NAME.inp and NAME.out as llama.cpp's
// test-tokenizer-0 does: the strings are separated by
// "\n__ggml_vocab_test__\n" (so no string includes the newline before a
// separator), and each line of the .out file holds the ids of one string.
func readVocabTests(t testing.TB, path string) []vocabTest {
	t.Helper()
	inp, err := os.ReadFile(path + ".inp")
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(path + ".out")
	if err != nil {
		t.Fatal(err)
	}
	const sep = "\n__ggml_vocab_test__\n"
	var texts []string
	for s := string(inp); s != ""; {
		i := strings.Index(s, sep)
		if i < 0 {
			texts = append(texts, s)
			break
		}
		texts = append(texts, s[:i])
		s = s[i+len(sep):]
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("%s: %d strings but %d lines of ids", path, len(texts), len(lines))
	}
	tests := make([]vocabTest, len(texts))
	for i, line := range lines {
		tests[i].text = texts[i]
		for _, f := range strings.Fields(line) {
			id, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				t.Fatalf("%s.out:%d: %v", path, i+1, err)
			}
			tests[i].ids = append(tests[i].ids, int32(id))
		}
	}
	return tests
}

// TestTokenizerVectors runs llama.cpp's own tokenizer test vectors
// (tests/test-tokenizer-0: add_special=false, parse_special=false).
func TestTokenizerVectors(t *testing.T) {
	dir := sharedVocabDir(t)
	for _, name := range vocabFiles {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			tok := loadTokenizer(t, path)
			tests := readVocabTests(t, path)
			pass := 0
			for i, tc := range tests {
				got, err := tok.Encode(tc.text, false, false)
				if err != nil {
					t.Errorf("string %d %q: %v", i, tc.text, err)
					continue
				}
				if !slices.Equal(got, tc.ids) {
					t.Errorf("string %d %q:\n got %v\nwant %v", i, tc.text, got, tc.ids)
					continue
				}
				pass++
			}
			t.Logf("%s: %d/%d test vectors match", name, pass, len(tests))
		})
	}
}

// TestTokenizerVocabInfo checks what NewTokenizer derives from the real
// vocabularies: defaults, special tokens, attributes.
func TestTokenizerVocabInfo(t *testing.T) {
	dir := sharedVocabDir(t)
	tests := []struct {
		file             string
		model, pre       string
		n                int
		bos, eos         int32
		addBOS, addEOS   bool
		eog              []int32
		attr             map[int32]TokenAttr
		encodeSpecial    string
		wantSpecial      []int32 // Encode(encodeSpecial, true, true)
		wantSpecialPlain []int32 // Encode(encodeSpecial, false, false)
	}{
		{
			file: "ggml-vocab-llama-spm.gguf", model: "llama", pre: "default", n: 32000,
			bos: 1, eos: 2, addBOS: true, eog: []int32{2},
			attr:          map[int32]TokenAttr{0: AttrUnknown, 1: AttrControl, 2: AttrControl, 3: AttrByte, 29871: AttrNormal},
			encodeSpecial: "<s>Hi</s>", wantSpecial: []int32{1, 1, 6324, 2},
			wantSpecialPlain: []int32{529, 29879, 29958, 18567, 829, 29879, 29958},
		},
		{
			file: "ggml-vocab-phi-3.gguf", model: "llama", pre: "default", n: 32064,
			bos: 1, eos: 32000, addBOS: true, eog: []int32{32000, 32007},
			// Phi-3: special tokens get RSTRIP, except <unk>, <s>, <|endoftext|>.
			// "<unk>" is stored as a control token, "</s>" as user-defined.
			attr: map[int32]TokenAttr{0: AttrControl, 1: AttrControl, 2: AttrUserDefined | AttrRStrip,
				32000: AttrControl, 32007: AttrControl | AttrRStrip, 32010: AttrControl | AttrRStrip},
			encodeSpecial: "<|user|>\n Hi<|end|>\n", wantSpecial: []int32{1, 32010, 6324, 32007},
		},
		{
			file: "ggml-vocab-gpt-2.gguf", model: "gpt2", pre: "gpt2", n: 50257,
			bos: 50256, eos: 50256, eog: []int32{50256},
			attr:          map[int32]TokenAttr{50256: AttrControl, 0: AttrNormal},
			encodeSpecial: "a<|endoftext|>b", wantSpecial: []int32{64, 50256, 65},
			wantSpecialPlain: []int32{64, 27, 91, 437, 1659, 5239, 91, 29, 65},
		},
		{
			file: "ggml-vocab-starcoder.gguf", model: "gpt2", pre: "starcoder", n: 49152,
			bos: 0, eos: 0, eog: []int32{0, 4},
			attr:          map[int32]TokenAttr{0: AttrControl, 1: AttrControl},
			encodeSpecial: "<fim_prefix>x<fim_suffix>", wantSpecial: []int32{1, 125, 3},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			tok := loadTokenizer(t, filepath.Join(dir, tc.file))
			if tok.Model() != tc.model || tok.PreType() != tc.pre || tok.NumTokens() != tc.n {
				t.Errorf("model %q pre %q n %d, want %q %q %d", tok.Model(), tok.PreType(), tok.NumTokens(), tc.model, tc.pre, tc.n)
			}
			if tok.BOS() != tc.bos || tok.EOS() != tc.eos || tok.AddBOS() != tc.addBOS || tok.AddEOS() != tc.addEOS {
				t.Errorf("bos %d eos %d add %v %v, want %d %d %v %v", tok.BOS(), tok.EOS(), tok.AddBOS(), tok.AddEOS(),
					tc.bos, tc.eos, tc.addBOS, tc.addEOS)
			}
			var eog []int32
			for id := range int32(tok.NumTokens()) {
				if tok.IsEOG(id) {
					eog = append(eog, id)
				}
			}
			if !slices.Equal(eog, tc.eog) {
				t.Errorf("end-of-generation tokens %v, want %v", eog, tc.eog)
			}
			for id, want := range tc.attr {
				if got := tok.TokenAttr(id); got != want {
					t.Errorf("token %d %q: attr %#x, want %#x", id, tok.TokenText(id), got, want)
				}
			}
			got, err := tok.Encode(tc.encodeSpecial, true, true)
			if err != nil || !slices.Equal(got, tc.wantSpecial) {
				t.Errorf("Encode(%q, true, true) = %v, %v; want %v", tc.encodeSpecial, got, err, tc.wantSpecial)
			}
			if tc.wantSpecialPlain != nil {
				got, err := tok.Encode(tc.encodeSpecial, false, false)
				if err != nil || !slices.Equal(got, tc.wantSpecialPlain) {
					t.Errorf("Encode(%q, false, false) = %v, %v; want %v", tc.encodeSpecial, got, err, tc.wantSpecialPlain)
				}
			}
		})
	}
}

func fmtIDs(tok *Tokenizer, ids []int32) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:%q", id, tok.TokenText(id))
	}
	return b.String()
}

// TestPreTokenizersMatchLlamaCpp reads llama-vocab.cpp (when the ollama
// module source is present) and checks the regexes of every pre-tokenizer
// type and what each tokenizer.ggml.pre value maps to, with its flags.
func TestPreTokenizersMatchLlamaCpp(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(llamaCppSrc(t), "llama-vocab.cpp"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	enumName := func(e string) string { return strings.ReplaceAll(strings.ToLower(e), "_", "-") }

	// Regexes: the switch in llm_tokenizer_bpe's constructor.
	a := strings.Index(text, "struct llm_tokenizer_bpe : llm_tokenizer {")
	b := strings.Index(text[max(a, 0):], "std::vector<std::string> regex_exprs;")
	if a < 0 || b < 0 {
		t.Fatal("llm_tokenizer_bpe not found")
	}
	caseRE := regexp.MustCompile(`case LLAMA_VOCAB_PRE_TYPE_(\w+):`)
	litRE := regexp.MustCompile(`^"(.*)",?\s*(//.*)?$`)
	seen := 0
	for _, blk := range strings.Split(text[a:a+b], "break;") {
		var names []string
		for _, m := range caseRE.FindAllStringSubmatch(blk, -1) {
			names = append(names, enumName(m[1]))
		}
		if strings.Contains(blk, "default:") {
			names = append(names, "default")
		}
		i := strings.Index(blk, "regex_exprs = {")
		if i < 0 {
			continue
		}
		j := strings.Index(blk[i:], "};")
		var want []string
		for _, line := range strings.Split(blk[i+len("regex_exprs = {"):i+j], "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "//") {
				continue
			}
			m := litRE.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("cannot parse regex line %q", line)
			}
			s, err := strconv.Unquote(`"` + m[1] + `"`)
			if err != nil {
				t.Fatalf("regex literal %q: %v", m[1], err)
			}
			want = append(want, s)
		}
		for _, n := range names {
			seen++
			if got := preRegexes[n]; !slices.Equal(got, want) {
				t.Errorf("pre-tokenizer %s: regexes %q, llama.cpp %q", n, got, want)
			}
		}
	}
	if seen != len(preRegexes) {
		t.Errorf("llama.cpp has %d pre-tokenizer types with regexes, we have %d", seen, len(preRegexes))
	}

	// tokenizer.ggml.pre values: the if/else chain in llama_vocab::impl::load.
	a = strings.Index(text, "if (type == LLAMA_VOCAB_TYPE_BPE) {")
	b = strings.Index(text[max(a, 0):], "} else if (type == LLAMA_VOCAB_TYPE_SPM) {")
	if a < 0 || b < 0 {
		t.Fatal("pre-tokenizer chain not found")
	}
	preRE := regexp.MustCompile(`tokenizer_pre == "([^"]+)"`)
	typeRE := regexp.MustCompile(`pre_type = LLAMA_VOCAB_PRE_TYPE_(\w+);`)
	n := 0
	for _, br := range strings.Split(text[a:a+b], "} else") {
		pres := preRE.FindAllStringSubmatch(br, -1)
		m := typeRE.FindStringSubmatch(br)
		if len(pres) == 0 || m == nil {
			continue
		}
		for _, p := range pres {
			n++
			v := &Vocab{Model: "gpt2", Pre: p[1], Tokens: []string{"a", "b", "ab"}, Merges: []string{"a b"}}
			tok, err := NewTokenizer(v)
			if err != nil {
				t.Errorf("pre %q: %v", p[1], err)
				continue
			}
			if tok.preType != enumName(m[1]) {
				t.Errorf("pre %q: type %s, llama.cpp %s", p[1], tok.preType, enumName(m[1]))
			}
			flags := []struct {
				stmt string
				got  bool
			}{
				{"clean_spaces = false", !tok.cleanSpaces},
				{"ignore_merges = true", tok.ignoreMerges},
				{"add_bos = true", tok.addBOS},
				{"add_sep = true", tok.addSep},
				{"special_bos_id = LLAMA_TOKEN_NULL", tok.bos == tokenNull},
			}
			for _, f := range flags {
				if want := strings.Contains(br, f.stmt); f.got != want {
					t.Errorf("pre %q: %q is %v, llama.cpp %v", p[1], f.stmt, f.got, want)
				}
			}
		}
	}
	if n < 50 {
		t.Errorf("only %d tokenizer.ggml.pre values found in llama-vocab.cpp", n)
	}
	t.Logf("%d pre-tokenizer types and %d tokenizer.ggml.pre values match llama-vocab.cpp", seen, n)
}

var updateTokenizer = flag.Bool("update-tokenizer", false, "rewrite testdata/tokenizer golden files")

// TestSmallVocabGolden pins SmallVocab: fixtures built from it must not
// change silently. The golden file lists SmallVocab(512) and how it
// tokenizes a few prompts.
func TestSmallVocabGolden(t *testing.T) {
	v := SmallVocab(512)
	tok, err := NewTokenizer(v)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i, s := range v.Tokens {
		fmt.Fprintf(&b, "%d\t%q\t%g\t%d\n", i, s, v.Scores[i], v.Types[i])
	}
	for _, p := range []string{
		"Hello world, this is a test of the model.",
		"What is the capital of France?",
		"The quick brown fox jumps over the lazy dog.\n",
		"Ünïcödé 日本 🦙 12345",
	} {
		ids, err := tok.Encode(p, true, false)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%q\t%v\n", p, ids)
	}
	path := filepath.Join("testdata", "tokenizer", "smallvocab-512.golden")
	if *updateTokenizer {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (create it with -update-tokenizer)", err)
	}
	if got := b.String(); got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s:%d: got %q, want %q (SmallVocab changed; rerun with -update-tokenizer if intended)", path, i+1, g, w)
			}
		}
	}
}
