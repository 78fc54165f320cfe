package tokenizer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file ports llama.cpp's vocabulary (src/llama-vocab.cpp, commit
// ec98e2002 as vendored by ollama v0.17.4): loading a vocabulary the way
// llama_vocab::impl::load does, with its defaults, special-token detection
// and attribute fix-ups; llama_tokenize with tokenizer_st_partition for
// special tokens; llm_tokenizer_spm (SentencePiece, "llama") and
// llm_tokenizer_bpe (byte-level BPE, "gpt2") with their pre-tokenizers; and
// llama_token_to_piece / llama_detokenize. The goal is identical token ids.

// TokenType is a GGUF token type (tokenizer.ggml.token_type, llama.cpp's
// enum llama_token_type).
type TokenType int32

// Token types.
const (
	TokenUndefined   TokenType = 0
	TokenNormal      TokenType = 1
	TokenUnknown     TokenType = 2
	TokenControl     TokenType = 3
	TokenUserDefined TokenType = 4
	TokenUnused      TokenType = 5
	TokenByte        TokenType = 6
)

// TokenAttr is llama.cpp's enum llama_token_attr: bits describing a token.
type TokenAttr uint32

// Token attributes.
const (
	AttrUndefined   TokenAttr = 0
	AttrUnknown     TokenAttr = 1 << 0
	AttrUnused      TokenAttr = 1 << 1
	AttrNormal      TokenAttr = 1 << 2
	AttrControl     TokenAttr = 1 << 3
	AttrUserDefined TokenAttr = 1 << 4
	AttrByte        TokenAttr = 1 << 5
	AttrNormalized  TokenAttr = 1 << 6
	AttrLStrip      TokenAttr = 1 << 7
	AttrRStrip      TokenAttr = 1 << 8
	AttrSingleWord  TokenAttr = 1 << 9
)

// Vocab is a tokenizer vocabulary as GGUF stores it (the tokenizer.ggml.*
// keys). A nil slice or pointer means the key is absent, in which case
// NewTokenizer applies llama.cpp's defaults for the vocabulary type.
type Vocab struct {
	Model  string      // tokenizer.ggml.model: "llama" (SentencePiece), "gpt2" (byte-level BPE), "no_vocab", ...
	Pre    string      // tokenizer.ggml.pre: "default", "llama-bpe", "qwen2", "gpt-2", "starcoder", ...; "" when absent
	Tokens []string    // tokenizer.ggml.tokens
	Scores []float32   // tokenizer.ggml.scores
	Types  []TokenType // tokenizer.ggml.token_type
	Merges []string    // tokenizer.ggml.merges ("left right"); required for "gpt2"

	// Special maps the NAME of each tokenizer.ggml.NAME_token_id key
	// present to its value: "bos", "eos", "eot", "eom", "unknown",
	// "seperator" (sic), "padding", "mask", "fim_pre", "fim_suf", "fim_mid",
	// "fim_pad", "fim_rep", "fim_sep", and the deprecated "prefix",
	// "suffix", "middle".
	Special map[string]uint32

	AddBOS                 *bool // tokenizer.ggml.add_bos_token
	AddEOS                 *bool // tokenizer.ggml.add_eos_token
	AddSep                 *bool // tokenizer.ggml.add_sep_token
	AddSpacePrefix         *bool // tokenizer.ggml.add_space_prefix
	RemoveExtraWhitespaces *bool // tokenizer.ggml.remove_extra_whitespaces

	Name         string // general.name (llama.cpp adjusts Phi-3 tokens by it)
	Architecture string // general.architecture
	VocabSize    uint32 // ARCH.vocab_size: the number of dummy tokens of a "no_vocab" model
}

// specialKeys lists the special-token keys in the order llama.cpp reads
// them (later keys override earlier ones: the deprecated prefix/suffix/middle
// ids win over fim_pre/fim_suf/fim_mid).
var specialKeys = []string{
	"bos", "eos", "eot", "eom", "unknown", "seperator", "padding", "mask",
	"fim_pre", "fim_suf", "fim_mid", "fim_pad", "fim_rep", "fim_sep",
	"prefix", "suffix", "middle",
}

type vocabType uint8

const (
	vocabNone vocabType = iota
	vocabSPM
	vocabBPE
)

type tokenData struct {
	text  string
	score float32
	attr  TokenAttr
}

type mergePair struct{ left, right string }

// Tokenizer turns text into token ids exactly as llama.cpp's llama_tokenize
// does for the same vocabulary, and back as llama_detokenize does. It is
// safe for concurrent use.
type Tokenizer struct {
	typ      vocabType
	model    string
	pre      string
	preType  string
	nTokens  int
	tokens   []tokenData
	toID     map[string]int32
	bpeRanks map[mergePair]int
	split    *preSplitter

	bos, eos, eot, eom, unk, sep, pad, mask        int32
	fimPre, fimSuf, fimMid, fimPad, fimRep, fimSep int32

	addSpacePrefix, addBOS, addEOS, addSep bool
	ignoreMerges, cleanSpaces              bool
	removeExtraWhitespaces                 bool

	eog          map[int32]bool
	specialCache []int32  // control, user-defined and unknown tokens, longest text first
	pieces       []string // token_to_piece(id, special=true), as cached at load
}

// tokenNull is LLAMA_TOKEN_NULL.
const tokenNull = -1

// ErrUnsupportedVocab is returned for vocabulary types llama.cpp has but
// this package does not implement (WPM, UGM, RWKV, PLaMo-2).
var ErrUnsupportedVocab = errors.New("unsupported tokenizer model")

// NewTokenizer builds a tokenizer from v as llama_vocab::impl::load does.
func NewTokenizer(v *Vocab) (*Tokenizer, error) {
	if v == nil {
		return nil, errors.New("tokenizer: nil vocabulary")
	}
	t := &Tokenizer{
		model: v.Model, pre: v.Pre,
		bos: 1, eos: 2, eot: tokenNull, eom: tokenNull, unk: 0, sep: tokenNull, pad: tokenNull, mask: tokenNull,
		fimPre: tokenNull, fimSuf: tokenNull, fimMid: tokenNull, fimPad: tokenNull, fimRep: tokenNull, fimSep: tokenNull,
	}
	switch v.Model {
	case "no_vocab", "none":
		t.typ = vocabNone
		t.bos, t.eos, t.unk, t.sep, t.pad, t.mask = tokenNull, tokenNull, tokenNull, tokenNull, tokenNull, tokenNull
		t.nTokens = int(v.VocabSize)
		return t, nil
	case "llama":
		t.typ = vocabSPM
		t.bos, t.eos, t.unk = 1, 2, 0
	case "gpt2":
		t.typ = vocabBPE
		if v.Merges == nil {
			return nil, errors.New("tokenizer: tokenizer.ggml.merges is missing (required for model gpt2)")
		}
		t.bpeRanks = make(map[mergePair]int, len(v.Merges))
		for i, w := range v.Merges {
			var p mergePair
			if len(w) > 1 {
				if j := strings.IndexByte(w[1:], ' '); j >= 0 {
					p = mergePair{w[:j+1], w[j+2:]}
				}
			}
			if _, dup := t.bpeRanks[p]; !dup {
				t.bpeRanks[p] = i
			}
		}
		t.bos, t.eos, t.unk = 11, 11, tokenNull
	case "bert", "t5", "rwkv", "plamo2":
		return nil, fmt.Errorf("tokenizer: %w %q", ErrUnsupportedVocab, v.Model)
	default:
		return nil, fmt.Errorf("tokenizer: unknown tokenizer model %q", v.Model)
	}

	switch t.typ {
	case vocabBPE:
		t.addSpacePrefix = false
		t.cleanSpaces = true
		if err := t.setPre(v.Pre); err != nil {
			return nil, err
		}
	case vocabSPM:
		t.preType = "default"
		t.addSpacePrefix = true
		t.cleanSpaces = false
		t.addBOS = true
		t.addEOS = false
	}
	if v.AddSpacePrefix != nil {
		t.addSpacePrefix = *v.AddSpacePrefix
	}
	if v.RemoveExtraWhitespaces != nil {
		t.removeExtraWhitespaces = *v.RemoveExtraWhitespaces
	}

	if len(v.Tokens) == 0 {
		return nil, errors.New("tokenizer: tokenizer.ggml.tokens is missing or empty")
	}
	n := len(v.Tokens)
	if v.Scores != nil && len(v.Scores) != n {
		return nil, fmt.Errorf("tokenizer: %d scores for %d tokens", len(v.Scores), n)
	}
	if v.Types != nil && len(v.Types) != n {
		return nil, fmt.Errorf("tokenizer: %d token types for %d tokens", len(v.Types), n)
	}
	t.nTokens = n
	t.tokens = make([]tokenData, n)
	t.toID = make(map[string]int32, n)
	for i, w := range v.Tokens {
		if w == "" {
			w = "[EMPTY_" + strconv.Itoa(i) + "]"
		}
		if j, dup := t.toID[w]; dup {
			return nil, fmt.Errorf("tokenizer: token %d %q duplicates token %d (llama.cpp refuses such a vocabulary)", i, w, j)
		}
		t.toID[w] = int32(i)
		d := tokenData{text: w, attr: AttrNormal}
		if v.Scores != nil {
			d.score = v.Scores[i]
		}
		if v.Types != nil {
			switch v.Types[i] {
			case TokenUnknown:
				d.attr = AttrUnknown
			case TokenUnused:
				d.attr = AttrUnused
			case TokenNormal:
				d.attr = AttrNormal
			case TokenControl:
				d.attr = AttrControl
			case TokenUserDefined:
				d.attr = AttrUserDefined
			case TokenByte:
				d.attr = AttrByte
			default:
				d.attr = AttrUndefined
			}
		}
		t.tokens[i] = d
	}

	if t.typ == vocabBPE {
		var err error
		if t.split, err = newPreSplitter(preRegexes[t.preType]); err != nil {
			return nil, fmt.Errorf("tokenizer: pre-tokenizer %q: %w", t.preType, err)
		}
	}

	t.loadSpecial(v)
	if err := t.buildCaches(v); err != nil {
		return nil, err
	}
	return t, nil
}

// loadSpecial reads the special token ids and flags, detects EOT/EOM/FIM and
// end-of-generation tokens by their text and marks them as control tokens.
func (t *Tokenizer) loadSpecial(v *Vocab) {
	ids := map[string]*int32{
		"bos": &t.bos, "eos": &t.eos, "eot": &t.eot, "eom": &t.eom, "unknown": &t.unk,
		"seperator": &t.sep, "padding": &t.pad, "mask": &t.mask,
		"fim_pre": &t.fimPre, "fim_suf": &t.fimSuf, "fim_mid": &t.fimMid,
		"fim_pad": &t.fimPad, "fim_rep": &t.fimRep, "fim_sep": &t.fimSep,
		"prefix": &t.fimPre, "suffix": &t.fimSuf, "middle": &t.fimMid,
	}
	for _, k := range specialKeys {
		id, ok := v.Special[k]
		if !ok || uint64(id) >= uint64(t.nTokens) {
			continue // llama.cpp warns about a bad id and keeps the default
		}
		*ids[k] = int32(id)
	}
	if v.AddBOS != nil {
		t.addBOS = *v.AddBOS
	}
	if v.AddEOS != nil {
		t.addEOS = *v.AddEOS
	}
	if v.AddSep != nil {
		t.addSep = *v.AddSep
	}

	// llama.cpp walks its token_to_id hash map here, so when several texts
	// qualify (say "<|eot_id|>" and "<|end_of_text|>") the one it picks
	// depends on libstdc++'s hashing; we take the lowest id. This only
	// decides which id is "the" EOT/EOM/FIM token: the end-of-generation set
	// and the control attributes below do not depend on it.
	detect := func(id *int32, texts ...string) {
		if *id != tokenNull {
			return
		}
		for _, s := range texts {
			if i, ok := t.toID[s]; ok && (*id == tokenNull || i < *id) {
				*id = i
			}
		}
		if *id != tokenNull {
			t.makeControl(int(*id))
		}
	}
	detect(&t.eot, "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
		"<EOT>", "_<EOT>", "<｜end▁of▁sentence｜>", "<end_of_utterance>")
	detect(&t.eom, "<|eom_id|>")
	detect(&t.fimPre, "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>")
	detect(&t.fimSuf, "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>")
	detect(&t.fimMid, "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>")
	detect(&t.fimPad, "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>")
	detect(&t.fimRep, "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>")
	detect(&t.fimSep, "<|file_sep|>")

	t.eog = map[int32]bool{}
	for _, id := range []int32{t.fimPad, t.fimRep, t.fimSep} {
		if id != tokenNull {
			t.eog[id] = true
		}
	}
	eogTexts := map[string]bool{
		"<|eot_id|>": true, "<|im_end|>": true, "<|end|>": true, "<|return|>": true, "<|call|>": true,
		"<end_of_turn>": true, "<|endoftext|>": true, "<|eom_id|>": true, "<EOT>": true, "_<EOT>": true,
		"<|end_of_text|>": true, "<end_of_utterance>": true,
	}
	for s := range eogTexts {
		if i, ok := t.toID[s]; ok {
			t.eog[i] = true
			t.makeControl(int(i))
		}
	}
	// gpt-oss: always render these.
	for _, s := range []string{"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"} {
		if i, ok := t.toID[s]; ok {
			t.tokens[i].attr = AttrUserDefined
		}
	}
	for _, id := range []int32{t.eos, t.eot, t.eom} {
		if id != tokenNull {
			t.eog[id] = true
		}
	}
	// o200k_harmony: "<|end|>" is not end-of-generation when "<|return|>"
	// and "<|call|>" are.
	var hasReturn, hasCall bool
	end := int32(tokenNull)
	for id := range t.eog {
		if id < 0 || int(id) >= len(t.tokens) {
			continue // a default id beyond a tiny vocabulary (undefined behaviour in llama.cpp)
		}
		switch t.tokens[id].text {
		case "<|return|>":
			hasReturn = true
		case "<|call|>":
			hasCall = true
		case "<|end|>":
			end = id
		}
	}
	if hasReturn && hasCall && end != tokenNull {
		delete(t.eog, end)
		t.tokens[end].attr = AttrUserDefined
	}
}

// makeControl is the attribute change llama.cpp makes to a token it detects
// as EOT/EOG/FIM by its text: unless it already has the CONTROL bit, its
// attribute is replaced by CONTROL ("control-looking token ... was not
// control-type").
func (t *Tokenizer) makeControl(i int) {
	if t.tokens[i].attr&AttrControl == 0 {
		t.tokens[i].attr = AttrControl
	}
}

// buildCaches builds the special-token cache and the piece cache, then
// applies llama.cpp's per-model attribute fix-ups.
func (t *Tokenizer) buildCaches(v *Vocab) error {
	for i := range t.tokens {
		if t.tokens[i].attr&(AttrControl|AttrUserDefined|AttrUnknown) != 0 {
			t.specialCache = append(t.specialCache, int32(i))
		}
	}
	stdSort(t.specialCache, func(a, b int32) bool { return len(t.tokens[a].text) > len(t.tokens[b].text) })

	t.pieces = make([]string, len(t.tokens))
	for i := range t.tokens {
		p, err := t.computePiece(int32(i))
		if err != nil {
			return err
		}
		t.pieces[i] = p
	}

	contains := func(s string, subs ...string) bool {
		for _, x := range subs {
			if strings.Contains(s, x) {
				return true
			}
		}
		return false
	}
	name := asciiLower(v.Name)
	switch {
	case contains(v.Pre, "jina-v2-de", "jina-v2-es", "jina-v2-code") || contains(v.Architecture, "nomic-bert-moe", "jina-bert-v3"):
		if id, ok := t.toID["<mask>"]; ok {
			t.tokens[id].attr |= AttrLStrip
		}
	case contains(name, "phi-3", "phi3"):
		for _, id := range t.specialCache {
			t.tokens[id].attr |= AttrRStrip
		}
		for _, s := range []string{"</s>", "<unk>", "<s>", "<|endoftext|>"} {
			id, ok := t.toID[s]
			if !ok {
				return fmt.Errorf("tokenizer: Phi-3 vocabulary without token %q (llama.cpp fails to load it)", s)
			}
			if s == "</s>" {
				t.tokens[id].attr |= AttrRStrip
			} else {
				t.tokens[id].attr &^= AttrRStrip
			}
		}
	}
	return nil
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// computePiece is llama_token_to_piece without the cache, with special=true.
func (t *Tokenizer) computePiece(id int32) (string, error) {
	d := &t.tokens[id]
	attr := d.attr
	switch t.typ {
	case vocabSPM:
		switch {
		case attr&(AttrUnknown|AttrControl|AttrUserDefined) != 0:
			return d.text, nil
		case attr&AttrNormal != 0:
			return strings.ReplaceAll(d.text, "\u2581", " "), nil
		case attr&AttrByte != 0:
			b, err := spmTokenByte(d.text)
			if err != nil {
				return "", fmt.Errorf("tokenizer: byte token %d: %w", id, err)
			}
			return string([]byte{b}), nil
		}
	case vocabBPE:
		switch {
		case attr&(AttrUnknown|AttrControl|AttrUserDefined) != 0:
			return d.text, nil
		case attr&AttrNormal != 0:
			return bpeDecodeText(d.text), nil
		}
	}
	return "", nil
}

// spmTokenByte is token_to_byte for SentencePiece: strtol(text.substr(3, 2),
// 16) truncated to a byte. llama.cpp throws when the text is shorter than 3.
func spmTokenByte(text string) (byte, error) {
	if len(text) < 3 {
		return 0, fmt.Errorf("byte token text %q is too short", text)
	}
	s := text[3:min(len(text), 5)]
	// strtol: leading space, sign, optional 0x, hex digits.
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] >= '\t' && s[i] <= '\r') {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	if i+1 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') && i+2 < len(s) && isHex(s[i+2]) {
		i += 2
	}
	v := 0
	for ; i < len(s) && isHex(s[i]); i++ {
		d, _ := strconv.ParseUint(s[i:i+1], 16, 8)
		v = v*16 + int(d)
	}
	if neg {
		v = -v
	}
	return byte(v), nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// bpeDecodeText is llama_decode_text: byte-level BPE text back to bytes.
func bpeDecodeText(text string) string {
	var b strings.Builder
	for _, c := range cptsFromUTF8(text) {
		u, err := appendCpt(nil, c)
		if err != nil {
			// llama.cpp's unicode_cpt_to_utf8 throws here; token texts
			// never hold such code points after GGUF string validation.
			continue
		}
		if by, ok := unicodeToByte[string(u)]; ok {
			b.WriteByte(by)
			continue
		}
		b.WriteString("[UNK_BYTE_0x")
		for _, x := range u {
			fmt.Fprintf(&b, "%02x", x)
		}
		b.WriteString(text + "]")
	}
	return b.String()
}

// setPre maps tokenizer.ggml.pre to llama.cpp's pre-tokenizer type and its
// flag changes.
func (t *Tokenizer) setPre(pre string) error {
	p := func(kind string) { t.preType = kind }
	noClean := func(kind string) { t.preType = kind; t.cleanSpaces = false }
	switch pre {
	case "default":
		p("default")
	case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2":
		p("llama3")
		t.ignoreMerges = true
		t.addBOS = true
	case "deepseek-llm":
		noClean("deepseek-llm")
	case "deepseek-coder":
		noClean("deepseek-coder")
	case "deepseek-v3":
		noClean("deepseek3-llm")
	case "falcon":
		p("falcon")
	case "mpt":
		p("mpt")
	case "starcoder":
		p("starcoder")
	case "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum":
		p("gpt2")
	case "jina-v1-en", "jina-v2-code", "roberta-bpe":
		p("gpt2")
		t.addSep = true
	case "refact":
		p("refact")
	case "command-r":
		noClean("command-r")
	case "qwen2", "deepseek-r1-qwen", "kormo":
		noClean("qwen2")
	case "stablelm2":
		p("stablelm2")
	case "olmo":
		p("olmo")
	case "dbrx":
		p("dbrx")
	case "smaug-bpe":
		p("smaug")
	case "poro-chat":
		noClean("poro")
	case "glm4", "chatglm-bpe":
		p("chatglm4")
		t.bos = tokenNull
	case "viking":
		noClean("viking")
	case "jais":
		p("jais")
	case "tekken":
		noClean("tekken")
		t.ignoreMerges = true
		t.addBOS = true
	case "smollm":
		noClean("smollm")
	case "codeshell":
		p("codeshell")
	case "bloom":
		p("bloom")
	case "gpt3-finnish":
		p("gpt3-finnish")
	case "exaone":
		p("exaone")
	case "exaone4":
		p("gpt2")
	case "chameleon":
		noClean("chameleon")
		t.addBOS = true
	case "minerva-7b":
		p("minerva")
	case "megrez":
		p("qwen2")
	case "gpt-4o", "llama4":
		noClean("gpt4o")
	case "superbpe":
		noClean("superbpe")
	case "trillion":
		noClean("trillion")
	case "granite-docling":
		noClean("granite-docling")
	case "bailingmoe", "bailingmoe2", "llada-moe":
		noClean("bailingmoe")
	case "seed-coder":
		noClean("seed-coder")
	case "hunyuan":
		noClean("hunyuan")
	case "hunyuan-dense":
		noClean("hunyuan-dense")
	case "kimi-k2":
		noClean("kimi-k2")
	case "grok-2":
		noClean("grok-2")
	case "afmoe":
		noClean("afmoe")
	case "minimax-m2":
		noClean("minimax-m2")
	default:
		// llama.cpp warns "missing or unrecognized pre-tokenizer type".
		p("default")
	}
	if _, ok := preRegexes[t.preType]; !ok {
		return fmt.Errorf("tokenizer: no regexes for pre-tokenizer %q", t.preType)
	}
	return nil
}

// NumTokens is the vocabulary size.
func (t *Tokenizer) NumTokens() int { return t.nTokens }

// Model is tokenizer.ggml.model.
func (t *Tokenizer) Model() string { return t.model }

// PreType is the llama.cpp pre-tokenizer type tokenizer.ggml.pre maps to
// ("default" for SentencePiece).
func (t *Tokenizer) PreType() string { return t.preType }

// BOS is the beginning-of-sequence token, or -1.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS is the end-of-sequence token, or -1.
func (t *Tokenizer) EOS() int32 { return t.eos }

// EOT is the end-of-turn token, or -1.
func (t *Tokenizer) EOT() int32 { return t.eot }

// UNK is the unknown token, or -1.
func (t *Tokenizer) UNK() int32 { return t.unk }

// PAD is the padding token, or -1.
func (t *Tokenizer) PAD() int32 { return t.pad }

// AddBOS reports whether Encode with addSpecial prepends BOS.
func (t *Tokenizer) AddBOS() bool { return t.addBOS }

// AddEOS reports whether Encode with addSpecial appends EOS.
func (t *Tokenizer) AddEOS() bool { return t.addEOS }

// AddSpacePrefix reports whether SentencePiece text gets a leading space.
func (t *Tokenizer) AddSpacePrefix() bool { return t.addSpacePrefix }

// IsEOG reports whether id ends generation (llama_vocab_is_eog).
func (t *Tokenizer) IsEOG(id int32) bool { return id != tokenNull && t.eog[id] }

// TokenText is the stored text of token id (llama_vocab_get_text), or ""
// when id is out of range.
func (t *Tokenizer) TokenText(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	return t.tokens[id].text
}

// TokenScore is the score of token id, or 0 when out of range.
func (t *Tokenizer) TokenScore(id int32) float32 {
	if id < 0 || int(id) >= len(t.tokens) {
		return 0
	}
	return t.tokens[id].score
}

// TokenAttr is the attribute of token id (llama_vocab_get_attr), or
// AttrUndefined when out of range.
func (t *Tokenizer) TokenAttr(id int32) TokenAttr {
	if id < 0 || int(id) >= len(t.tokens) {
		return AttrUndefined
	}
	return t.tokens[id].attr
}

// TokenID returns the id of the token whose text is exactly s.
func (t *Tokenizer) TokenID(s string) (int32, bool) {
	id, ok := t.toID[s]
	return id, ok
}
