package tokenizer

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
)

// fuzzTokenizers are SmallVocab(1000) and, when shared/vocab is present,
// llama.cpp's vocabularies.
var fuzzTokenizers = sync.OnceValues(func() ([]*Tokenizer, []string) {
	small, err := NewTokenizer(SmallVocab(1000))
	if err != nil {
		panic(err)
	}
	toks := []*Tokenizer{small}
	var seeds []string
	if dir := findSharedVocab(); dir != "" {
		for _, name := range vocabFiles {
			path := filepath.Join(dir, name)
			f, err := gguf.Open(path)
			if err != nil {
				continue
			}
			v, err := VocabFromGGUF(f)
			f.Close()
			if err != nil {
				continue
			}
			tok, err := NewTokenizer(v)
			if err != nil {
				continue
			}
			toks = append(toks, tok)
			if inp, err := os.ReadFile(path + ".inp"); err == nil && len(seeds) == 0 {
				seeds = strings.Split(string(inp), "\n__ggml_vocab_test__\n")
			}
		}
	}
	return toks, seeds
})

// hasUserText reports whether text contains the text of a user-defined
// token, which is cut out even without parseSpecial.
func hasUserText(tok *Tokenizer, text string) bool {
	for _, id := range tok.specialCache {
		if tok.TokenAttr(id)&(AttrControl|AttrUnknown) == 0 && strings.Contains(text, tok.TokenText(id)) {
			return true
		}
	}
	return false
}

// FuzzTokenize checks that Encode never panics, returns ids in range, adds
// BOS/EOS exactly as asked, fails only where llama.cpp throws (code points
// beyond U+10FFFF in byte-level BPE), and that SentencePiece text decodes
// back to itself, as it does in llama.cpp, when it is valid UTF-8 (an
// invalid sequence can swallow the bytes of an escaped space) without U+2581
// (which decodes to a space) or the text of a user-defined token. (With BOS,
// llama.cpp keeps the leading space of the first piece, so only texts
// encoded without special tokens round-trip.)
func FuzzTokenize(f *testing.F) {
	toks, seeds := fuzzTokenizers()
	for _, s := range seeds {
		f.Add(s, uint8(0))
	}
	for _, s := range []string{"", " ", "Hello world", "<s>a</s>", "<|endoftext|>x", "\xff\xfe", "\xf7\xbf\xbf\xbf", "a\u2581b", "  \n\t 12345 ünï 日本 🦙"} {
		for fl := range uint8(4) {
			f.Add(s, fl)
		}
	}
	f.Fuzz(func(t *testing.T, text string, flags uint8) {
		addSpecial, parseSpecial := flags&1 != 0, flags&2 != 0
		for _, tok := range toks {
			ids, err := tok.Encode(text, addSpecial, parseSpecial)
			if err != nil {
				if tok.typ == vocabBPE && !utf8.ValidString(text) {
					continue
				}
				t.Fatalf("%s: Encode(%q): %v", tok.Model(), text, err)
			}
			for _, id := range ids {
				if id < 0 || int(id) >= tok.NumTokens() {
					t.Fatalf("%s: Encode(%q): id %d out of range", tok.Model(), text, id)
				}
			}
			if tok.typ != vocabSPM {
				if _, err := tok.Detokenize(ids, addSpecial, parseSpecial); err != nil {
					t.Fatalf("Detokenize: %v", err)
				}
				continue
			}
			if addSpecial {
				plain, err := tok.Encode(text, false, parseSpecial)
				if err != nil {
					t.Fatal(err)
				}
				want := plain
				if tok.AddBOS() {
					want = append([]int32{tok.BOS()}, want...)
				}
				if tok.AddEOS() {
					want = append(want, tok.EOS())
				}
				if !slices.Equal(ids, want) {
					t.Fatalf("Encode(%q, true, %v) = %v, want BOS/EOS around %v", text, parseSpecial, ids, plain)
				}
			}
			if !addSpecial && !parseSpecial && utf8.ValidString(text) && !strings.Contains(text, "\u2581") && !hasUserText(tok, text) {
				back, err := tok.Detokenize(ids, false, false)
				if err != nil {
					t.Fatal(err)
				}
				if back != text {
					t.Fatalf("Detokenize(Encode(%q)) = %q (ids %v)", text, back, ids)
				}
			}
		}
	})
}

// FuzzDetokenize feeds arbitrary ids to Detokenize and TokenToPiece.
func FuzzDetokenize(f *testing.F) {
	toks, _ := fuzzTokenizers()
	f.Add([]byte{1, 0, 0, 0, 2, 0, 0, 0}, uint8(3))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 13, 0, 0, 0}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, flags uint8) {
		var ids []int32
		for len(data) >= 4 {
			ids = append(ids, int32(binary.LittleEndian.Uint32(data)))
			data = data[4:]
		}
		for _, tok := range toks {
			_, err := tok.Detokenize(ids, flags&1 != 0, flags&2 != 0)
			inRange := true
			for _, id := range ids {
				if id < 0 || int(id) >= tok.NumTokens() {
					inRange = false
				}
				_, _ = tok.TokenToPiece(id, int(flags>>2), flags&2 != 0)
			}
			if (err == nil) != inRange {
				t.Fatalf("Detokenize(%v): err %v with ids in range %v", ids, err, inRange)
			}
		}
	})
}

// FuzzNewTokenizer builds vocabularies from arbitrary bytes: NewTokenizer
// and the tokenizers it accepts must never panic or hang.
func FuzzNewTokenizer(f *testing.F) {
	f.Add([]byte("\x00<unk>\x00<s>\x00</s>\x00<0x0A>\x00a\x00b\x00ab\x00\xe2\x96\x81a"), "ab a\nb", uint8(0))
	f.Add([]byte("\x01a\x00b\x00ab\x00\xc4\xa0\x00\xc4\xa0a\x00<|endoftext|>"), "a ab <|endoftext|>", uint8(3))
	f.Add([]byte("\x02x"), "x", uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, text string, sel uint8) {
		if len(data) == 0 || len(data) > 4096 || len(text) > 1024 {
			return
		}
		models := []string{"llama", "gpt2", "no_vocab", "bogus"}
		pres := []string{"", "default", "llama-bpe", "qwen2", "gpt-2", "starcoder", "deepseek-llm", "tekken", "superbpe", "chameleon", "jina-v2-de"}
		v := &Vocab{Model: models[int(data[0])%len(models)], Pre: pres[int(sel)%len(pres)]}
		for i, s := range bytes.Split(data[1:], []byte{0}) {
			v.Tokens = append(v.Tokens, string(s))
			v.Scores = append(v.Scores, float32(i%7)-3)
			typ := TokenNormal
			if len(s) > 0 {
				typ = TokenType(s[0] % 8)
			}
			v.Types = append(v.Types, typ)
			if i > 0 {
				v.Merges = append(v.Merges, v.Tokens[i-1]+" "+string(s))
			}
		}
		if v.Model == "gpt2" {
			v.Types = nil
		}
		if sel&4 != 0 {
			v.Special = map[string]uint32{"bos": uint32(sel >> 3), "eos": uint32(data[0] >> 2), "eot": 1}
		}
		if sel&8 != 0 {
			b := sel&16 != 0
			v.AddBOS, v.AddEOS, v.AddSpacePrefix = &b, &b, &b
		}
		if sel&32 != 0 {
			v.Name = "phi3"
		}
		tok, err := NewTokenizer(v)
		if err != nil {
			return
		}
		for fl := range 4 {
			ids, err := tok.Encode(text, fl&1 != 0, fl&2 != 0)
			if err != nil {
				continue
			}
			_, _ = tok.Detokenize(ids, fl&1 != 0, fl&2 != 0)
		}
	})
}

func TestSmallVocab(t *testing.T) {
	for _, n := range []int{300, 301, 512, 1000, 5000} {
		v := SmallVocab(n)
		if len(v.Tokens) != n || len(v.Scores) != n || len(v.Types) != n {
			t.Fatalf("SmallVocab(%d): %d tokens, %d scores, %d types", n, len(v.Tokens), len(v.Scores), len(v.Types))
		}
		if !reflect.DeepEqual(v, SmallVocab(n)) {
			t.Fatalf("SmallVocab(%d) is not deterministic", n)
		}
		if v.Tokens[0] != "<unk>" || v.Tokens[1] != "<s>" || v.Tokens[2] != "</s>" || v.Tokens[3] != "<0x00>" || v.Tokens[258] != "<0xFF>" {
			t.Fatalf("SmallVocab(%d): unexpected layout %q", n, v.Tokens[:4])
		}
		if v.Types[0] != TokenUnknown || v.Types[1] != TokenControl || v.Types[2] != TokenControl || v.Types[3] != TokenByte || v.Types[259] != TokenNormal {
			t.Fatalf("SmallVocab(%d): unexpected types %v", n, v.Types[:4])
		}
		tok, err := NewTokenizer(v)
		if err != nil {
			t.Fatalf("SmallVocab(%d): %v", n, err)
		}
		const prompt = "Hello world, this is a test of the model."
		ids, err := tok.Encode(prompt, true, false)
		if err != nil {
			t.Fatal(err)
		}
		maxTokens := len(prompt) + 2
		if n >= 1000 {
			maxTokens = 20
		}
		if len(ids) < 4 || len(ids) > maxTokens || ids[0] != 1 {
			t.Errorf("SmallVocab(%d): %q is %d tokens: %s", n, prompt, len(ids), fmtIDs(tok, ids))
		}
		plain, _ := tok.Encode(prompt, false, false)
		if back, _ := tok.Detokenize(plain, false, false); back != prompt {
			t.Errorf("SmallVocab(%d): round trip %q", n, back)
		}
	}
}

// TestVocabGGUFRoundTrip writes a vocabulary with KVs, reads it back with
// VocabFromGGUF and expects the same Vocab.
func TestVocabGGUFRoundTrip(t *testing.T) {
	yes, no := true, false
	vocabs := []*Vocab{
		SmallVocab(400),
		{Model: "gpt2", Pre: "qwen2", Tokens: []string{"a", "b", "ab", "Ġ"}, Merges: []string{"a b"},
			Special: map[string]uint32{"bos": 2, "eos": 3, "padding": 0}, AddBOS: &no, AddEOS: &yes, AddSep: &no,
			AddSpacePrefix: &yes, RemoveExtraWhitespaces: &no, Name: "tiny"},
	}
	for _, v := range vocabs {
		kvs := append(v.KVs(), gguf.NewKV(gguf.KeyArchitecture, "llama"))
		var buf bytes.Buffer
		if err := gguf.Write(&buf, kvs, nil, 0); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Parse(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "vocab.gguf")
		if err != nil {
			t.Fatal(err)
		}
		got, err := VocabFromGGUF(f)
		if err != nil {
			t.Fatal(err)
		}
		want := *v
		want.Architecture = "llama"
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("round trip of %q vocabulary:\n got %+v\nwant %+v", v.Model, got, &want)
		}
	}
}

func TestVocabFromGGUFErrors(t *testing.T) {
	base := []gguf.KV{gguf.NewKV(KeyTokenizerModel, "llama"), gguf.NewKV(KeyTokenizerTokens, []string{"a", "b"})}
	tests := []struct {
		name string
		kvs  []gguf.KV
		want string
	}{
		{"no model", []gguf.KV{gguf.NewKV(KeyTokenizerTokens, []string{"a"})}, KeyTokenizerModel},
		{"model not a string", []gguf.KV{gguf.NewKV(KeyTokenizerModel, uint32(1))}, KeyTokenizerModel},
		{"no tokens", []gguf.KV{gguf.NewKV(KeyTokenizerModel, "llama")}, KeyTokenizerTokens},
		{"scores of the wrong type", append(slices.Clone(base), gguf.NewKV(KeyTokenizerScores, []float64{1, 2})), KeyTokenizerScores},
		{"too few scores", append(slices.Clone(base), gguf.NewKV(KeyTokenizerScores, []float32{1})), KeyTokenizerScores},
		{"too many types", append(slices.Clone(base), gguf.NewKV(KeyTokenizerTypes, []int32{1, 1, 1})), KeyTokenizerTypes},
		{"negative bos", append(slices.Clone(base), gguf.NewKV("tokenizer.ggml.bos_token_id", int32(-1))), "bos_token_id"},
		{"add_bos not a bool", append(slices.Clone(base), gguf.NewKV("tokenizer.ggml.add_bos_token", uint8(1))), "add_bos_token"},
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		if err := gguf.Write(&buf, tc.kvs, nil, 0); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Parse(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "bad.gguf")
		if err != nil {
			t.Fatal(err)
		}
		_, err = VocabFromGGUF(f)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.gguf") {
			t.Errorf("%s: error %v, want one naming bad.gguf and %s", tc.name, err, tc.want)
		}
	}
}

func TestNewTokenizerErrors(t *testing.T) {
	tests := []struct {
		name string
		v    *Vocab
	}{
		{"nil", nil},
		{"unknown model", &Vocab{Model: "sentencepiece", Tokens: []string{"a"}}},
		{"unsupported model", &Vocab{Model: "bert", Tokens: []string{"a"}}},
		{"no tokens", &Vocab{Model: "llama"}},
		{"gpt2 without merges", &Vocab{Model: "gpt2", Tokens: []string{"a"}}},
		{"duplicate tokens", &Vocab{Model: "llama", Tokens: []string{"a", "b", "a"}}},
		{"scores length", &Vocab{Model: "llama", Tokens: []string{"a", "b"}, Scores: []float32{0}}},
		{"byte token text too short", &Vocab{Model: "llama", Tokens: []string{"<0"}, Types: []TokenType{TokenByte}}},
		{"phi3 without </s>", &Vocab{Model: "llama", Tokens: []string{"<unk>", "<s>"}, Name: "Phi-3 mini"}},
	}
	for _, tc := range tests {
		if _, err := NewTokenizer(tc.v); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestCleanSpaces(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Hello , world !", "Hello, world!"},
		{"a . b ? c", "a. b? c"},
		{"a ' b", "a'b"},
		{"it 's I 'm we 're you 've", "it's I'm we're you've"},
		{"don 't you 'll he 'd", "don 't you 'll he 'd"},
		{" ,", ","},
		{"", ""},
		{"x", "x"},
	}
	for _, tc := range tests {
		if got := string(cleanSpaces([]byte(tc.in))); got != tc.want {
			t.Errorf("cleanSpaces(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSPMTokenByte(t *testing.T) {
	tests := []struct {
		text string
		want byte
	}{
		{"<0x0A>", 0x0A}, {"<0xff>", 0xFF}, {"<0xZZ>", 0}, {"<0x-1>", 0xFF}, {"<0x5", 5}, {"<0x", 0},
	}
	for _, tc := range tests {
		got, err := spmTokenByte(tc.text)
		if err != nil || got != tc.want {
			t.Errorf("spmTokenByte(%q) = %#x, %v; want %#x", tc.text, got, err, tc.want)
		}
	}
}

func TestStdSort(t *testing.T) {
	// Lengths with many ties, more than 16 elements: sorted descending, a
	// permutation of the input.
	for _, n := range []int{0, 1, 5, 16, 17, 40, 300} {
		s := make([]int, n)
		for i := range s {
			s[i] = (i * 7919) % 13
		}
		orig := slices.Clone(s)
		stdSort(s, func(a, b int) bool { return a > b })
		if !slices.IsSortedFunc(s, func(a, b int) int { return b - a }) {
			t.Errorf("n=%d: not sorted: %v", n, s)
		}
		slices.Sort(orig)
		got := slices.Clone(s)
		slices.Sort(got)
		if !slices.Equal(got, orig) {
			t.Errorf("n=%d: not a permutation", n)
		}
	}
	// Heap: pops come out in comparator order.
	var h []int
	for _, x := range []int{5, 1, 9, 3, 7, 3, 8} {
		h = append(h, x)
		stdPushHeap(h, func(a, b int) bool { return a < b })
	}
	var out []int
	for len(h) > 0 {
		stdPopHeap(h, func(a, b int) bool { return a < b })
		out = append(out, h[len(h)-1])
		h = h[:len(h)-1]
	}
	if !slices.Equal(out, []int{9, 8, 7, 5, 3, 3, 1}) {
		t.Errorf("heap order %v", out)
	}
}

// BenchmarkEncode tokenizes about 8 KiB of mixed text with each vocabulary.
func BenchmarkEncode(b *testing.B) {
	toks, _ := fuzzTokenizers()
	text := strings.Repeat("Hello world, this is a test of the tokenizer. Ünïcödé 日本語 🦙 12345\n\t  ", 100)
	for _, tok := range toks {
		b.Run(tok.Model()+"-"+tok.PreType()+"-"+strconv.Itoa(tok.NumTokens()), func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if _, err := tok.Encode(text, true, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
