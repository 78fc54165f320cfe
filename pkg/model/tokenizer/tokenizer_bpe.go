package tokenizer

// bpeBigram is llm_bigram_bpe.
type bpeBigram struct {
	left, right int
	text        string
	rank        int
}

// bpeLess is llm_bigram_bpe::comparator: the queue pops the lowest merge
// rank, and the leftmost of equal ranks.
func bpeLess(l, r bpeBigram) bool {
	return l.rank > r.rank || (l.rank == r.rank && l.left > r.left)
}

// bpeTokenize is llm_tokenizer_bpe_session::tokenize: split text into
// byte-encoded words with the pre-tokenizer, merge each word's characters by
// merge rank, and emit each piece as its token (a piece that is not a token
// is spelled byte by byte with single-byte tokens, which byte-level
// vocabularies do not have, so it is dropped, as in llama.cpp).
func (t *Tokenizer) bpeTokenize(text string, out []int32) ([]int32, error) {
	words, err := t.split.split(text)
	if err != nil {
		return nil, err
	}
	var syms []symbol
	var queue []bpeBigram
	for _, w := range words {
		syms = syms[:0]
		queue = queue[:0]
		if t.ignoreMerges {
			if _, ok := t.toID[w]; ok {
				syms = append(syms, symbol{prev: -1, next: -1, off: 0, n: len(w)})
			}
		}
		if len(syms) == 0 {
			for off := 0; off < len(w); {
				n := min(utf8Len(w[off]), len(w)-off)
				next := len(syms) + 1
				if off+n == len(w) {
					next = -1
				}
				syms = append(syms, symbol{prev: len(syms) - 1, next: next, off: off, n: n})
				off += n
			}
		}
		add := func(left, right int) {
			if left == -1 || right == -1 {
				return
			}
			l := w[syms[left].off : syms[left].off+syms[left].n]
			r := w[syms[right].off : syms[right].off+syms[right].n]
			rank, ok := t.bpeRanks[mergePair{l, r}]
			if !ok {
				return
			}
			queue = append(queue, bpeBigram{left: left, right: right, text: l + r, rank: rank})
			stdPushHeap(queue, bpeLess)
		}
		for i := 1; i < len(syms); i++ {
			add(i-1, i)
		}
		for len(queue) > 0 {
			stdPopHeap(queue, bpeLess)
			b := queue[len(queue)-1]
			queue = queue[:len(queue)-1]
			l, r := &syms[b.left], &syms[b.right]
			if l.n == 0 || r.n == 0 {
				continue
			}
			if w[l.off:l.off+l.n]+w[r.off:r.off+r.n] != b.text {
				continue // outdated
			}
			l.n += r.n
			r.n = 0
			l.next = r.next
			if r.next >= 0 {
				syms[r.next].prev = b.left
			}
			add(l.prev, b.left)
			add(b.left, l.next)
		}
		for _, s := range syms {
			if s.n == 0 {
				continue
			}
			piece := w[s.off : s.off+s.n]
			if id, ok := t.toID[piece]; ok {
				out = append(out, id)
				continue
			}
			for j := 0; j < len(piece); j++ {
				if id, ok := t.toID[piece[j:j+1]]; ok {
					out = append(out, id)
				}
			}
		}
	}
	return out, nil
}
