//go:build llamacpp

package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
)

// Differential tests of the tokenizer against the llama.cpp compiled into
// the llamacpp package, on llama.cpp's vocabulary files, on the GPT-2
// vocabulary re-labelled with every pre-tokenizer llama.cpp knows (so each
// regex path runs on real merges), and on SmallVocab.

// diffVocab is one vocabulary under test.
type diffVocab struct {
	name   string
	path   string
	texts  int                       // generated texts
	extra  func(r *rand.Rand) string // when set, generates every other text
	pieces bool                      // compare every token's piece
}

// writeVocabVariant copies the metadata of src with tokenizer.ggml.pre
// replaced, as a tensor-less GGUF that llama.cpp loads with vocab_only.
func writeVocabVariant(t *testing.T, src, dst, pre string) {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var kvs []gguf.KV
	for _, kv := range f.KVs {
		if kv.Key == KeyTokenizerPre {
			continue
		}
		kvs = append(kvs, kv)
	}
	kvs = append(kvs, gguf.NewKV(KeyTokenizerPre, pre))
	if err := gguf.WriteFile(dst, kvs, nil, 0); err != nil {
		t.Fatal(err)
	}
}

// writeSmallVocab writes SmallVocab(n) with the llama hyperparameters
// llama.cpp needs to load a vocabulary.
func writeSmallVocab(t *testing.T, n int, dst string) {
	t.Helper()
	writeLlamaVocab(t, SmallVocab(n), dst)
}

// writeLlamaVocab writes v with the llama hyperparameters llama.cpp needs to
// load a vocabulary.
func writeLlamaVocab(t *testing.T, v *Vocab, dst string) {
	t.Helper()
	kvs := []gguf.KV{
		gguf.NewKV(gguf.KeyArchitecture, "llama"),
		gguf.NewKV("llama.context_length", uint32(256)),
		gguf.NewKV("llama.embedding_length", uint32(64)),
		gguf.NewKV("llama.block_count", uint32(1)),
		gguf.NewKV("llama.feed_forward_length", uint32(128)),
		gguf.NewKV("llama.attention.head_count", uint32(4)),
		gguf.NewKV("llama.attention.head_count_kv", uint32(4)),
		gguf.NewKV("llama.attention.layer_norm_rms_epsilon", float32(1e-5)),
	}
	kvs = append(kvs, v.KVs()...)
	if err := gguf.WriteFile(dst, kvs, nil, 0); err != nil {
		t.Fatal(err)
	}
}

// overlapVocab is SmallVocab with 36 user-defined and control tokens of
// equal lengths that overlap each other, so that the order of llama.cpp's
// special-token cache (std::sort, not stable) decides the partition.
func overlapVocab() *Vocab {
	v := SmallVocab(600)
	have := map[string]bool{}
	for _, s := range v.Tokens {
		have[s] = true
	}
	var add []string
	for _, a := range "XQZ" {
		for _, b := range "XQZ" {
			add = append(add, string(a)+string(b))
			for _, c := range "XQZ" {
				add = append(add, string(a)+string(b)+string(c))
			}
		}
	}
	for i, s := range add {
		if have[s] {
			continue
		}
		typ := TokenUserDefined
		if i%3 == 0 {
			typ = TokenControl
		}
		v.Tokens = append(v.Tokens, s)
		v.Scores = append(v.Scores, 0)
		v.Types = append(v.Types, typ)
	}
	return v
}

// maskVocab is SmallVocab labelled as a jina-v2-de tokenizer with a
// user-defined "<mask>" token, which llama.cpp gives LSTRIP.
func maskVocab() *Vocab {
	v := SmallVocab(500)
	v.Pre = "jina-v2-de"
	v.Tokens = append(v.Tokens, "<mask>")
	v.Scores = append(v.Scores, 0)
	v.Types = append(v.Types, TokenUserDefined)
	return v
}

func randFrom(r *rand.Rand, alphabet []string, n int) string {
	var b strings.Builder
	for range n {
		b.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

// diffPreTypes are the tokenizer.ggml.pre values tried on the GPT-2
// vocabulary: one or more per llama.cpp pre-tokenizer type.
var diffPreTypes = []string{
	"default", "llama-bpe", "deepseek-llm", "deepseek-coder", "deepseek-v3", "falcon", "mpt", "starcoder",
	"gpt-2", "refact", "command-r", "qwen2", "stablelm2", "olmo", "dbrx", "smaug-bpe", "poro-chat",
	"chatglm-bpe", "viking", "jais", "tekken", "smollm", "codeshell", "bloom", "gpt3-finnish", "exaone",
	"chameleon", "minerva-7b", "gpt-4o", "superbpe", "trillion", "granite-docling", "bailingmoe",
	"seed-coder", "hunyuan", "hunyuan-dense", "kimi-k2", "grok-2", "afmoe", "minimax-m2", "no-such-pre",
}

func diffVocabs(t *testing.T) []diffVocab {
	tmp := t.TempDir()
	var vs []diffVocab
	for _, n := range []int{300, 1000} {
		p := filepath.Join(tmp, fmt.Sprintf("small-%d.gguf", n))
		writeSmallVocab(t, n, p)
		vs = append(vs, diffVocab{name: fmt.Sprintf("SmallVocab(%d)", n), path: p, texts: 400, pieces: true})
	}
	// No space prefix, EOS added, unused tokens: other SentencePiece flags.
	flagVocab := SmallVocab(2000)
	no, yes := false, true
	flagVocab.AddSpacePrefix, flagVocab.AddEOS = &no, &yes
	p := filepath.Join(tmp, "flags.gguf")
	writeLlamaVocab(t, flagVocab, p)
	vs = append(vs, diffVocab{name: "SmallVocab(2000) without space prefix, with EOS", path: p, texts: 300, pieces: true})
	p = filepath.Join(tmp, "overlap.gguf")
	writeLlamaVocab(t, overlapVocab(), p)
	vs = append(vs, diffVocab{name: "overlapping special tokens", path: p, texts: 600, pieces: true,
		extra: func(r *rand.Rand) string {
			return randFrom(r, []string{"X", "Q", "Z", " ", "a", "XQZ", "\n"}, 1+r.IntN(40))
		}})
	p = filepath.Join(tmp, "mask.gguf")
	writeLlamaVocab(t, maskVocab(), p)
	vs = append(vs, diffVocab{name: "lstrip <mask>", path: p, texts: 300, pieces: true,
		extra: func(r *rand.Rand) string {
			return randFrom(r, []string{"<mask>", " ", "  ", "\t", "\n", "the", "mask", "<", ">"}, 1+r.IntN(12))
		}})
	dir := findSharedVocab()
	if dir == "" {
		t.Log("shared/vocab not found: testing SmallVocab only")
		return vs
	}
	for _, name := range vocabFiles {
		vs = append(vs, diffVocab{name: name, path: filepath.Join(dir, name), texts: 1500, pieces: true})
	}
	if p := filepath.Join(filepath.Dir(dir), "llamacpp", "S-Q8_0.gguf"); fileExists(p) {
		vs = append(vs, diffVocab{name: "S-Q8_0.gguf", path: p, texts: 300, pieces: true})
	}
	gpt2 := filepath.Join(dir, "ggml-vocab-gpt-2.gguf")
	for _, pre := range diffPreTypes {
		p := filepath.Join(tmp, "gpt2-"+pre+".gguf")
		writeVocabVariant(t, gpt2, p, pre)
		vs = append(vs, diffVocab{name: "gpt-2 vocab, pre " + pre, path: p, texts: 200})
	}
	return vs
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestTokenizerLlamaCpp compares vocabulary loading, Encode, TokenToPiece
// and Detokenize with llama.cpp.
func TestTokenizerLlamaCpp(t *testing.T) {
	var totalTexts, totalMismatch int
	for _, dv := range diffVocabs(t) {
		t.Run(dv.name, func(t *testing.T) {
			m, err := llamacpp.LoadVocab(dv.path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			tok := loadTokenizer(t, dv.path)
			compareVocab(t, tok, m, dv.pieces)
			texts := genTexts(tok, dv.texts, int64(len(dv.name)))
			if dv.extra != nil {
				r := rand.New(rand.NewPCG(7, 7))
				for i := 1; i < len(texts); i += 2 {
					texts[i] = dv.extra(r)
				}
			}
			mismatch := 0
			for i, text := range texts {
				for _, fl := range [][2]bool{{false, false}, {true, true}, {true, false}, {false, true}} {
					want, err := m.Tokenize(text, fl[0], fl[1])
					if err != nil {
						t.Fatalf("llama.cpp: %v", err)
					}
					got, err := tok.Encode(text, fl[0], fl[1])
					if err != nil {
						t.Errorf("text %d %q: %v", i, text, err)
						mismatch++
						break
					}
					if !slices.Equal(got, want) {
						if mismatch++; mismatch <= 5 {
							t.Errorf("text %d %q (addSpecial=%v parseSpecial=%v):\n got %s\nwant %s",
								i, text, fl[0], fl[1], fmtIDs(tok, got), fmtIDs(tok, want))
						}
						break
					}
					for _, dfl := range [][2]bool{{false, false}, {true, true}} {
						wantText, err := m.Detokenize(want, dfl[0], dfl[1])
						if err != nil {
							t.Fatalf("llama.cpp: %v", err)
						}
						gotText, err := tok.Detokenize(want, dfl[0], dfl[1])
						if err != nil || gotText != string(wantText) {
							if mismatch++; mismatch <= 5 {
								t.Errorf("Detokenize(%v, %v, %v) = %q, %v; llama.cpp %q", want, dfl[0], dfl[1], gotText, err, wantText)
							}
						}
					}
				}
			}
			totalTexts += len(texts)
			totalMismatch += mismatch
			t.Logf("%s: %d/%d generated texts tokenize and detokenize identically (4 flag combinations each)",
				dv.name, len(texts)-mismatch, len(texts))
		})
	}
	t.Logf("all vocabularies: %d/%d texts identical", totalTexts-totalMismatch, totalTexts)
}

// compareVocab checks what both sides derive from the vocabulary.
func compareVocab(t *testing.T, tok *Tokenizer, m *llamacpp.Model, pieces bool) {
	t.Helper()
	if tok.NumTokens() != m.NVocab() {
		t.Fatalf("%d tokens, llama.cpp %d", tok.NumTokens(), m.NVocab())
	}
	bos, eos, addBOS, addEOS := m.VocabSpecial()
	if tok.BOS() != bos || tok.EOS() != eos || tok.AddBOS() != addBOS || tok.AddEOS() != addEOS {
		t.Errorf("bos %d eos %d add_bos %v add_eos %v; llama.cpp %d %d %v %v",
			tok.BOS(), tok.EOS(), tok.AddBOS(), tok.AddEOS(), bos, eos, addBOS, addEOS)
	}
	bad := 0
	for id := range int32(tok.NumTokens()) {
		if tok.TokenText(id) != m.TokenText(id) || int(tok.TokenAttr(id)) != m.TokenAttr(id) || tok.IsEOG(id) != m.IsEOG(id) {
			if bad++; bad <= 5 {
				t.Errorf("token %d: text %q attr %#x eog %v; llama.cpp %q %#x %v", id,
					tok.TokenText(id), tok.TokenAttr(id), tok.IsEOG(id), m.TokenText(id), m.TokenAttr(id), m.IsEOG(id))
			}
			continue
		}
		if !pieces {
			continue
		}
		for _, special := range []bool{false, true} {
			for _, lstrip := range []int{0, 1} {
				want, err := m.TokenToPiece(id, lstrip, special)
				if err != nil {
					t.Fatal(err)
				}
				got, err := tok.TokenToPiece(id, lstrip, special)
				if err != nil || got != string(want) {
					if bad++; bad <= 5 {
						t.Errorf("TokenToPiece(%d, %d, %v) = %q, %v; llama.cpp %q", id, lstrip, special, got, err, want)
					}
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d tokens differ", bad)
	}
}

// Material for generated texts.
var (
	genWords = []string{
		"Hello", "world", "the", "The", "quick", "brown", "fox", "tokenizer", "llama", "cpp", "DIFF", "layer",
		"naïve", "café", "Straße", "ÄÖÜ", "ǅemal", "ﬁne", "œuvre",
		"привет", "мир", "Български", "Ελληνικά", "λόγος", "שלום", "مرحبا", "العربية", "नमस्ते", "हिन्दी",
		"สวัสดี", "ភាសាខ្មែរ", "កាន់តែពិសេស", "你好", "世界", "我想在apple工作", "日本語", "ひらがな", "カタカナ",
		"한국어", "안녕하세요", "Tiếng Việt", "ქართული", "Հայերեն", "አማርኛ", "ᏣᎳᎩ", "𐐷𐐸", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
		"𠀀𠀁", "\U0002EBF0\U0002EBF1", "⿼⿽", "㇯", "\u1C89", "e\u0301", "a\u0308\u0304", "Z̤͔ͧ̑̓ä͖̭̈̇",
	}
	genSpaces = []string{" ", "  ", "\t", "\n", "\r\n", "\r", "\v", "\f", "\u00A0", "\u3000", "\u2003", "\u0085", "\u2028", "\u1680", "\u200B", "\u202F"}
	genDigits = []string{"٣٤٥", "３２", "²³", "Ⅻ", "①②", "߀", "໒"}
	genEmoji  = []string{"🚀", "😶‍🌫️", "👩🏽‍💻", "🇫🇷", "❤️", "✅", "🦙", "1️⃣", "🏳️‍🌈", "©", "™"}
	genPunct  = []string{".", ",", "!", "?", "...", "…", "—", "–", "\"", "'", "«", "»", "„", "“", "”", "(", ")", "[", "]", "{", "}", "<", ">", "/", "\\", "|", "$", "+", "=", "^", "~", "`", "@", "#", "%", "&", "*", "_", "-", ":", ";", "。", "，", "、", "।", "۔", "،", "¿", "¡", "§", "°", "€", "£", "¥", "√", "∑", "≠", "←"}
	genContr  = []string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'lL", "'D", "'x", "''", "it's", "we're", "I'LL", "don't", "y'all"}
	// Invalid UTF-8 that llama.cpp decodes without throwing (no lead byte
	// F4-F7, whose sequences can exceed U+10FFFF).
	genInvalid = []string{"\xff", "\x80", "\xbf\xbf", "\xc3", "\xe6\x97", "\xed\xa0\x80", "\xc0\x80", "\xf0\x9f", "\xfe\xfe"}
	genCode    = []string{"func main() {\n\tfmt.Println(\"hi\")\n}\n", "x += 1; // comment", "<div class=\"a\">", "$HOME/.config", "a_b-c.d/e", "if (a<b && c>=d) return;", "    return x\n", "#include <stdio.h>", "SELECT * FROM t;", "0x1F", "1e-5", "3.14159", "IMGIMGAZ", "<sentinel:12>"}
)

// genTexts returns n deterministic texts mixing scripts, whitespace, digits,
// emoji, punctuation, code, the text of special tokens, pieces of the
// vocabulary and random code points.
func genTexts(tok *Tokenizer, n int, seed int64) []string {
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	var specials []string
	for _, id := range tok.specialCache {
		specials = append(specials, tok.TokenText(id))
	}
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	texts := []string{"", " ", "  ", "\n", " \n", "\t\t", "Hello", " Hello", "Hello world", "\u00A0", "3333333", "a  b", "a\u3000b"}
	for len(texts) < n {
		var b strings.Builder
		segs := 1 + r.IntN(10)
		for range segs {
			switch k := r.IntN(15); k {
			case 0:
				b.WriteString(pick(genWords))
			case 1:
				b.WriteString(pick(genSpaces))
			case 2:
				for range 1 + r.IntN(4) {
					b.WriteString(pick(genSpaces))
				}
			case 3:
				for range 1 + r.IntN(12) {
					b.WriteByte(byte('0' + r.IntN(10)))
				}
			case 4:
				b.WriteString(pick(genDigits))
			case 5:
				b.WriteString(pick(genEmoji))
			case 6:
				b.WriteString(pick(genPunct))
			case 7:
				b.WriteString(pick(genContr))
			case 8:
				b.WriteString(pick(genCode))
			case 9:
				if len(specials) > 0 {
					s := pick(specials)
					if r.IntN(4) == 0 {
						s = s[:r.IntN(len(s)+1)] // partial special text
					}
					if r.IntN(2) == 0 {
						s = pick(genSpaces) + s + pick(genSpaces)
					}
					b.WriteString(s)
				}
			case 10:
				id := int32(r.IntN(tok.NumTokens()))
				if p, err := tok.TokenToPiece(id, 0, false); err == nil && utf8.ValidString(p) {
					b.WriteString(p)
				}
			case 11:
				for range 1 + r.IntN(5) {
					b.WriteRune(randRune(r))
				}
			case 12:
				c := pick([]string{"a", "!", " ", "3", "é", "\n", "ab"})
				b.WriteString(strings.Repeat(c, 2+r.IntN(20)))
			case 13:
				w := []rune(pick(genWords))
				for i := range w {
					if r.IntN(2) == 0 {
						w[i] = []rune(strings.ToUpper(string(w[i])))[0]
					}
				}
				b.WriteString(string(w))
			case 14:
				b.WriteString(pick(genInvalid))
			}
			if r.IntN(3) == 0 {
				b.WriteByte(' ')
			}
		}
		texts = append(texts, b.String())
	}
	return texts
}

// randRune returns a random valid code point, biased towards the BMP.
func randRune(r *rand.Rand) rune {
	for {
		var c rune
		switch r.IntN(5) {
		case 0:
			c = rune(r.IntN(0x80))
		case 1:
			c = rune(0x80 + r.IntN(0x780))
		case 2, 3:
			c = rune(0x800 + r.IntN(0x10000-0x800))
		default:
			c = rune(0x10000 + r.IntN(0x110000-0x10000))
		}
		if utf8.ValidRune(c) {
			return c
		}
	}
}
