package tokenizer

import "fmt"

// symbol is llm_symbol: a span [off, off+n) of the text being merged, in a
// doubly linked list (prev/next are indices, -1 at the ends). n == 0 marks
// a symbol merged into its left neighbour.
type symbol struct {
	prev, next int
	off, n     int
}

// spmBigram is llm_bigram_spm.
type spmBigram struct {
	left, right int
	score       float32
	size        int
}

// spmLess is llm_bigram_spm::comparator: the queue pops the highest score,
// and the leftmost of equal scores.
func spmLess(l, r spmBigram) bool {
	return l.score < r.score || (l.score == r.score && l.left > r.left)
}

// spmTokenize is llm_tokenizer_spm_session::tokenize on text whose spaces
// are already escaped to U+2581: start from UTF-8 characters, repeatedly
// merge the adjacent pair that forms the highest-scoring token, then emit
// each symbol as its token or, failing that, as byte tokens.
func (t *Tokenizer) spmTokenize(text string, out []int32) ([]int32, error) {
	if text == "" {
		return out, nil
	}
	var syms []symbol
	for off := 0; off < len(text); {
		n := min(utf8Len(text[off]), len(text)-off)
		next := len(syms) + 1
		if off+n == len(text) {
			next = -1
		}
		syms = append(syms, symbol{prev: len(syms) - 1, next: next, off: off, n: n})
		off += n
	}
	var queue []spmBigram
	tryAdd := func(left, right int) {
		if left == -1 || right == -1 {
			return
		}
		s := text[syms[left].off : syms[left].off+syms[left].n+syms[right].n]
		id, ok := t.toID[s]
		if !ok {
			return
		}
		queue = append(queue, spmBigram{left: left, right: right, score: t.tokens[id].score, size: len(s)})
		stdPushHeap(queue, spmLess)
	}
	for i := 1; i < len(syms); i++ {
		tryAdd(i-1, i)
	}
	for len(queue) > 0 {
		stdPopHeap(queue, spmLess)
		b := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		l, r := &syms[b.left], &syms[b.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != b.size {
			continue // one side was merged since
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = b.left
		}
		tryAdd(l.prev, b.left)
		tryAdd(b.left, l.next)
	}
	// resegment: llama.cpp also keeps a rev_merge map, but it only holds
	// texts that are tokens, and it is only consulted for texts that are
	// not, so every symbol is either a token or spelled as bytes.
	for i := 0; i != -1; i = syms[i].next {
		s := text[syms[i].off : syms[i].off+syms[i].n]
		if id, ok := t.toID[s]; ok {
			out = append(out, id)
			continue
		}
		for j := 0; j < len(s); j++ {
			id, err := t.byteToken(s[j])
			if err != nil {
				return nil, err
			}
			out = append(out, id)
		}
	}
	return out, nil
}

// byteToken is llama_vocab::byte_to_token for SentencePiece: the <0xXX>
// token, else a token that is the byte itself (as a C string, so for 0x00
// the empty string, which no token is).
func (t *Tokenizer) byteToken(b byte) (int32, error) {
	const hex = "0123456789ABCDEF"
	if id, ok := t.toID[string([]byte{'<', '0', 'x', hex[b>>4], hex[b&15], '>'})]; ok {
		return id, nil
	}
	if b != 0 {
		if id, ok := t.toID[string([]byte{b})]; ok {
			return id, nil
		}
	}
	return 0, fmt.Errorf("tokenizer: no byte token for 0x%02X (llama.cpp throws std::out_of_range)", b)
}
