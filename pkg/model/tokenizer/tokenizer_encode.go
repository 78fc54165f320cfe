package tokenizer

import (
	"errors"
	"fmt"
	"strings"
)

// fragment is a piece of the input: a special token, or raw text
// [off, off+n) still to tokenize.
type fragment struct {
	tok    int32 // tokenNull for raw text
	off, n int
}

// partition is tokenizer_st_partition: each special token in turn (longest
// first) is cut out of the raw fragments. Control and unknown tokens are
// only recognised when parseSpecial; user-defined tokens always are.
func (t *Tokenizer) partition(text string, frags []fragment, parseSpecial bool) []fragment {
	for _, id := range t.specialCache {
		d := &t.tokens[id]
		if !parseSpecial && d.attr&(AttrControl|AttrUnknown) != 0 {
			continue
		}
		out := make([]fragment, 0, len(frags))
		for _, f := range frags {
			if f.tok != tokenNull {
				out = append(out, f)
				continue
			}
			off, n := f.off, f.n
			for n > 0 {
				i := strings.Index(text[off:off+n], d.text)
				if i < 0 {
					break
				}
				if i > 0 {
					left := i
					if d.attr&AttrLStrip != 0 {
						for left > 0 && isCSpace(text[off+left-1]) {
							left--
						}
					}
					if left > 0 {
						out = append(out, fragment{tok: tokenNull, off: off, n: left})
					}
				}
				out = append(out, fragment{tok: id})
				skip := i + len(d.text)
				off, n = off+skip, n-skip
				if n > 0 && d.attr&AttrRStrip != 0 {
					for n > 0 && isCSpace(text[off]) {
						off++
						n--
					}
				}
			}
			if n > 0 {
				out = append(out, fragment{tok: tokenNull, off: off, n: n})
			}
		}
		frags = out
	}
	return frags
}

// isCSpace is isspace in the C locale.
func isCSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

// Encode tokenizes text as llama_tokenize(vocab, text, addSpecial,
// parseSpecial) does: addSpecial adds BOS/EOS as the vocabulary asks,
// parseSpecial lets the text of control tokens stand for them.
func (t *Tokenizer) Encode(text string, addSpecial, parseSpecial bool) ([]int32, error) {
	if t.typ == vocabNone {
		return nil, errors.New("tokenizer: the model has no vocabulary")
	}
	var frags []fragment
	if text != "" {
		frags = t.partition(text, []fragment{{tok: tokenNull, off: 0, n: len(text)}}, parseSpecial)
	}
	var out []int32
	switch t.typ {
	case vocabSPM:
		prevSpecial := true // prefix the first text with a space
		if addSpecial && t.addBOS {
			if t.bos == tokenNull {
				return nil, errors.New("tokenizer: the vocabulary adds BOS but has none")
			}
			out = append(out, t.bos)
		}
		for _, f := range frags {
			if f.tok != tokenNull {
				out = append(out, f.tok)
				prevSpecial = true
				continue
			}
			s := text[f.off : f.off+f.n]
			if t.addSpacePrefix && prevSpecial {
				s = " " + s
			}
			var err error
			if out, err = t.spmTokenize(strings.ReplaceAll(s, " ", "\u2581"), out); err != nil {
				return nil, err
			}
			prevSpecial = false
		}
		if addSpecial && t.addEOS {
			if t.eos == tokenNull {
				return nil, errors.New("tokenizer: the vocabulary adds EOS but has none")
			}
			out = append(out, t.eos)
		}
	case vocabBPE:
		if addSpecial && t.addBOS {
			if t.bos == tokenNull {
				return nil, errors.New("tokenizer: the vocabulary adds BOS but has none")
			}
			out = append(out, t.bos)
		}
		for _, f := range frags {
			if f.tok != tokenNull {
				out = append(out, f.tok)
				continue
			}
			var err error
			if out, err = t.bpeTokenize(text[f.off:f.off+f.n], out); err != nil {
				return nil, err
			}
		}
		if addSpecial && t.addEOS {
			if t.eos == tokenNull {
				return nil, errors.New("tokenizer: the vocabulary adds EOS but has none")
			}
			out = append(out, t.eos)
		}
	}
	if out == nil {
		out = []int32{}
	}
	return out, nil
}

// TokenToPiece is llama_token_to_piece: the text of one token, skipping up
// to lstrip leading spaces. Control and unknown tokens are empty unless
// special.
func (t *Tokenizer) TokenToPiece(id int32, lstrip int, special bool) (string, error) {
	if id < 0 || int(id) >= len(t.tokens) {
		return "", fmt.Errorf("tokenizer: token %d out of range [0, %d)", id, len(t.tokens))
	}
	if !special && t.tokens[id].attr&(AttrUnknown|AttrControl) != 0 {
		return "", nil
	}
	p := t.pieces[id]
	for i := 0; i < lstrip && len(p) > 0 && p[0] == ' '; i++ {
		p = p[1:]
	}
	return p, nil
}

// Detokenize is llama_detokenize: removeSpecial drops a leading BOS and
// trailing EOS the vocabulary adds, unparseSpecial renders control tokens.
func (t *Tokenizer) Detokenize(ids []int32, removeSpecial, unparseSpecial bool) (string, error) {
	if t.typ == vocabNone {
		return "", nil
	}
	removeSpace := t.addSpacePrefix
	if removeSpecial && t.addBOS && len(ids) > 0 && ids[0] == t.bos {
		removeSpace = false
		ids = ids[1:]
	}
	if removeSpecial && t.addEOS && len(ids) > 0 && ids[len(ids)-1] == t.eos {
		ids = ids[:len(ids)-1]
	}
	var text []byte
	for _, id := range ids {
		lstrip := 0
		if removeSpace {
			lstrip = 1
		}
		p, err := t.TokenToPiece(id, lstrip, unparseSpecial)
		if err != nil {
			return "", err
		}
		removeSpace = false
		text = append(text, p...)
	}
	if t.cleanSpaces {
		text = cleanSpaces(text)
	}
	return string(text), nil
}

// Decode renders ids as text the way llama.cpp's common_detokenize(ctx, ids,
// true) does: Detokenize(ids, false, true).
func (t *Tokenizer) Decode(ids []int32) (string, error) {
	return t.Detokenize(ids, false, true)
}

// cleanSpaces is the clean_up_tokenization_spaces part of
// llama_vocab::impl::detokenize, three in-place passes over the bytes.
func cleanSpaces(text []byte) []byte {
	// " ?", " !", " .", " ,": drop the space.
	total1 := len(text)
	total := min(total1, 1)
	for i := 1; i < total1; i++ {
		x := text[i]
		if text[i-1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',') {
			total--
		}
		text[total] = x
		total++
	}
	// " ' ": drop both spaces.
	total2 := total
	total = min(total2, 1)
	for i := 1; i < total2; i++ {
		x := text[i]
		if x == '\'' && i+1 < total2 && text[i-1] == ' ' && text[i+1] == ' ' {
			total--
			i++
			text[i] = 0
		}
		text[total] = x
		total++
	}
	// " 's", " 'm", " 're", " 've": drop the space.
	total3 := total
	total = min(total3, 1)
	for i := 1; i < total3; i++ {
		x := text[i]
		if text[i-1] == ' ' && x == '\'' && i+1 < total3 {
			x1 := text[i+1]
			if x1 == 't' || x1 == 'd' {
				// kept
			} else if x1 == 's' || x1 == 'm' {
				total--
			} else if i+2 < total3 {
				x2 := text[i+2]
				if x1 == 'r' && x2 == 'e' || x1 == 'v' && x2 == 'e' {
					total--
				}
			}
		}
		text[total] = x
		total++
	}
	return text[:total]
}
