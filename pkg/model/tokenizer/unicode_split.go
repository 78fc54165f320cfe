package tokenizer

import (
	"fmt"
	"strings"
)

// This file ports unicode_regex_split (llama.cpp src/unicode.cpp): the BPE
// pre-tokenizer. A list of regexes is applied in turn, each one splitting
// the pieces the previous ones produced. Regexes llama.cpp has hand-written
// code for (GPT-2, Llama 3, Kimi K2, AFMoE digits) use ports of that code;
// the others run on the ECMAScript engine of unicode_regex.go, over
// llama.cpp's "collapsed" text when they use \p{..} categories, exactly as
// llama.cpp feeds std::regex / std::wregex. The resulting words are mapped
// through GPT-2's byte-to-unicode table.

// Regexes with hand-written splitters, as unicode_regex_split_custom names them.
const (
	regexGPT2    = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
	regexLlama3a = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	regexLlama3b = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	regexKimiK2  = `\p{Han}+`
	regexAFMoE   = `\p{AFMoE_digits}`
)

// Bytes standing for code point categories in the collapsed text.
const (
	collapsedWhitespace = 0x0B
	collapsedOther      = 0xD0
)

// ucats is k_ucat_enum / k_ucat_cpt / k_ucat_map of unicode_regex_split.
var ucats = []struct {
	pat   string
	flag  cptFlags
	cpt   byte
	ascii string
}{
	{`\p{L}`, flagLetter, 0xD2, "A-Za-z"},
	{`\p{M}`, flagAccentMark, 0xD4, ""},
	{`\p{N}`, flagNumber, 0xD1, "0-9"},
	{`\p{P}`, flagPunctuation, 0xD3, `!-#%-*,-/:-;?-@\[-\]_\{\}`},
	{`\p{S}`, flagSymbol, 0xD5, `\$\+<->^` + "`" + `\|`},
}

func usesCategories(expr string) bool {
	for _, u := range ucats {
		if strings.Contains(expr, u.pat) {
			return true
		}
	}
	return false
}

// collapseRegex rewrites a regex for the collapsed text, as
// unicode_regex_split does: \p{X} becomes [<byte>ascii], or <byte>ascii
// inside a bracket.
func collapseRegex(expr string) (string, error) {
	for _, c := range cptsFromUTF8(expr) {
		if c >= 128 {
			return "", fmt.Errorf("regex %q includes both unicode categories and non-ASCII characters (llama.cpp refuses it)", expr)
		}
	}
	var b strings.Builder
	inside := false
	for i := 0; i < len(expr); i++ {
		if expr[i] == '[' && (i == 0 || expr[i-1] != '\\') {
			b.WriteByte('[')
			inside = true
			continue
		}
		if inside && expr[i] == ']' && expr[i-1] != '\\' {
			b.WriteByte(']')
			inside = false
			continue
		}
		if expr[i] == '\\' && i+4 < len(expr) && expr[i+1] == 'p' && expr[i+2] == '{' && expr[i+4] == '}' {
			pat := expr[i : i+5]
			found := false
			for _, u := range ucats {
				if u.pat == pat {
					if !inside {
						b.WriteByte('[')
					}
					b.WriteByte(u.cpt)
					b.WriteString(u.ascii)
					if !inside {
						b.WriteByte(']')
					}
					found = true
					break
				}
			}
			if found {
				i += 4
				continue
			}
		}
		b.WriteByte(expr[i])
	}
	return b.String(), nil
}

// splitFunc is a hand-written splitter: it splits each span of offsets
// (lengths in code points) of cpts and returns the new lengths.
type splitFunc func(cpts []uint32, offsets []int) []int

// splitRegex is one pre-tokenizer regex, ready to run.
type splitRegex struct {
	expr      string
	custom    splitFunc
	re        *ecmaRegex // nil when it does not compile (then only custom may run)
	reErr     error
	collapsed bool
}

// preSplitter is a compiled list of pre-tokenizer regexes.
type preSplitter struct {
	regexes []splitRegex
}

func newPreSplitter(exprs []string) (*preSplitter, error) {
	ps := &preSplitter{}
	for _, e := range exprs {
		r := splitRegex{expr: e}
		switch e {
		case regexGPT2:
			r.custom = splitGPT2
		case regexLlama3a, regexLlama3b:
			r.custom = splitLlama3
		case regexKimiK2:
			r.custom = splitKimiK2
		case regexAFMoE:
			r.custom = splitAFMoE
		}
		if usesCategories(e) {
			r.collapsed = true
			c, err := collapseRegex(e)
			if err == nil {
				r.re, err = compileECMA(c, false)
			}
			r.reErr = err
		} else {
			r.re, r.reErr = compileECMA(e, true)
		}
		if r.reErr != nil && r.custom == nil {
			return nil, fmt.Errorf("pre-tokenizer regex %q: %w", e, r.reErr)
		}
		ps.regexes = append(ps.regexes, r)
	}
	return ps, nil
}

// split is unicode_regex_split: the words of text, byte-encoded.
func (ps *preSplitter) split(text string) ([]string, error) {
	cpts := cptsFromUTF8(text)
	var collapsed, wide []int32
	offsets := []int{len(cpts)}
	for _, r := range ps.regexes {
		if r.custom != nil {
			if tmp := r.custom(cpts, offsets); len(tmp) > 0 {
				offsets = tmp
				continue
			}
		}
		if r.reErr != nil {
			return nil, fmt.Errorf("pre-tokenizer regex %q: %w", r.expr, r.reErr)
		}
		var subject []int32
		if r.collapsed {
			if collapsed == nil {
				collapsed = collapseText(cpts)
			}
			subject = collapsed
		} else {
			if wide == nil {
				wide = make([]int32, len(cpts))
				for i, c := range cpts {
					wide[i] = int32(c)
					if c > 0x7F && flagsOf(c).isWhitespace() {
						wide[i] = collapsedWhitespace
					}
				}
			}
			subject = wide
		}
		var err error
		if offsets, err = splitSTL(r.re, subject, offsets); err != nil {
			return nil, fmt.Errorf("pre-tokenizer regex %q: %w", r.expr, err)
		}
	}
	words := make([]string, 0, len(offsets))
	start := 0
	var buf []byte
	for _, n := range offsets {
		buf = buf[:0]
		for _, c := range cpts[start : start+n] {
			var err error
			if buf, err = appendCpt(buf, c); err != nil {
				return nil, err
			}
		}
		start += n
		// unicode_byte_encoding_process: bytes through GPT-2's table.
		var w strings.Builder
		for _, b := range buf {
			w.WriteString(byteToUnicode[b])
		}
		words = append(words, w.String())
	}
	return words, nil
}

// collapseText maps every code point to one byte as unicode_regex_split does
// for std::regex: ASCII stays, other whitespace becomes 0x0B, the categories
// L N P M S become 0xD2 0xD1 0xD3 0xD4 0xD5, anything else 0xD0.
func collapseText(cpts []uint32) []int32 {
	out := make([]int32, len(cpts))
	for i, c := range cpts {
		if c < 128 {
			out[i] = int32(c)
			continue
		}
		f := flagsOf(c)
		out[i] = collapsedOther
		if f.isWhitespace() {
			out[i] = collapsedWhitespace
			continue
		}
		for _, u := range ucats {
			if f.category() == u.flag {
				out[i] = int32(u.cpt)
				break
			}
		}
	}
	return out
}

// splitSTL is unicode_regex_split_stl: within each span, every regex match
// and every gap between matches becomes a piece (empty matches included).
func splitSTL(re *ecmaRegex, subject []int32, offsets []int) ([]int, error) {
	out := make([]int, 0, len(offsets))
	start := 0
	for _, n := range offsets {
		matches, err := re.findAll(subject[start : start+n])
		if err != nil {
			return nil, err
		}
		idx := 0
		for _, m := range matches {
			if m[0] > idx {
				out = append(out, m[0]-idx)
			}
			out = append(out, m[1]-m[0])
			idx = m[1]
		}
		if idx < n {
			out = append(out, n-idx)
		}
		start += n
	}
	return out, nil
}

// spanCursor holds the helpers the hand-written splitters share: code points
// and flags of one span (zero flags and outOfRange beyond it) and the piece
// being emitted.
type spanCursor struct {
	cpts     []uint32
	ini, end int
	prevEnd  int
	out      []int
}

const outOfRange = 0xFFFFFFFF

func (s *spanCursor) cpt(pos int) uint32 {
	if s.ini <= pos && pos < s.end {
		return s.cpts[pos]
	}
	return outOfRange
}

func (s *spanCursor) flags(pos int) cptFlags {
	if s.ini <= pos && pos < s.end {
		return flagsOf(s.cpts[pos])
	}
	return 0
}

// add ends the current piece at end and returns its length.
func (s *spanCursor) add(end int) int {
	n := end - s.prevEnd
	if n > 0 {
		s.out = append(s.out, n)
	}
	s.prevEnd = end
	return n
}

// forSpans runs f on each span of offsets.
func forSpans(cpts []uint32, offsets []int, f func(s *spanCursor)) []int {
	s := &spanCursor{cpts: cpts, out: make([]int, 0, len(offsets))}
	start := 0
	for _, n := range offsets {
		s.ini, s.end, s.prevEnd = start, start+n, start
		start += n
		f(s)
	}
	return s.out
}

// contraction matches 's 't 'm 'd 're 've 'll at pos (a quote), lowercasing
// the letters when fold, and returns its length or 0.
func (s *spanCursor) contraction(pos int, fold bool) int {
	if s.cpt(pos) != '\'' || pos+1 >= s.end {
		return 0
	}
	lower := func(c uint32) uint32 {
		if fold {
			return toLower(c)
		}
		return c
	}
	n1 := lower(s.cpt(pos + 1))
	if n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd' {
		return 2
	}
	if pos+2 < s.end {
		n2 := lower(s.cpt(pos + 2))
		if n1 == 'r' && n2 == 'e' || n1 == 'v' && n2 == 'e' || n1 == 'l' && n2 == 'l' {
			return 3
		}
	}
	return 0
}

// whitespaceTail handles the trailing alternatives \s*[\r\n]+ (when
// newlines), \s+(?!\S) and \s+ at pos, and otherwise emits one code point.
func (s *spanCursor) whitespaceTail(pos int, newlines bool) int {
	nws, lastRN := 0, 0
	for s.flags(pos + nws).isWhitespace() {
		if c := s.cpt(pos + nws); newlines && (c == '\r' || c == '\n') {
			lastRN = pos + nws + 1
		}
		nws++
	}
	if lastRN > 0 {
		s.add(lastRN)
		return lastRN
	}
	if nws > 1 && s.cpt(pos+nws) != outOfRange {
		pos += nws - 1
		s.add(pos)
		return pos
	}
	if nws > 0 {
		pos += nws
		s.add(pos)
		return pos
	}
	pos++
	s.add(pos)
	return pos
}

// splitGPT2 is unicode_regex_split_custom_gpt2:
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func splitGPT2(cpts []uint32, offsets []int) []int {
	return forSpans(cpts, offsets, func(s *spanCursor) {
		for pos := s.ini; pos < s.end; {
			c := s.cpt(pos)
			f := s.flags(pos)
			if n := s.contraction(pos, false); n > 0 {
				pos += s.add(pos + n)
				continue
			}
			f2 := f
			if c == ' ' {
				f2 = s.flags(pos + 1)
			}
			sp := 0
			if c == ' ' {
				sp = 1
			}
			if f2.isLetter() {
				pos += sp
				for f2.isLetter() {
					pos++
					f2 = s.flags(pos)
				}
				s.add(pos)
				continue
			}
			if f2.isNumber() {
				pos += sp
				for f2.isNumber() {
					pos++
					f2 = s.flags(pos)
				}
				s.add(pos)
				continue
			}
			if !(f2.isWhitespace() || f2.isLetter() || f2.isNumber()) && f2 != 0 {
				pos += sp
				for !(f2.isWhitespace() || f2.isLetter() || f2.isNumber()) && f2 != 0 {
					pos++
					f2 = s.flags(pos)
				}
				s.add(pos)
				continue
			}
			pos = s.whitespaceTail(pos, false)
		}
	})
}

// splitLlama3 is unicode_regex_split_custom_llama3:
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func splitLlama3(cpts []uint32, offsets []int) []int {
	return forSpans(cpts, offsets, func(s *spanCursor) {
		for pos := s.ini; pos < s.end; {
			c := s.cpt(pos)
			f := s.flags(pos)
			if n := s.contraction(pos, true); n > 0 {
				pos += s.add(pos + n)
				continue
			}
			// [^\r\n\p{L}\p{N}]?\p{L}+
			if !(c == '\r' || c == '\n' || f.isNumber()) {
				if f.isLetter() || s.flags(pos+1).isLetter() {
					pos++
					for s.flags(pos).isLetter() {
						pos++
					}
					s.add(pos)
					continue
				}
			}
			// \p{N}{1,3}
			if f.isNumber() {
				ini := pos
				for s.flags(pos).isNumber() {
					pos++
					if pos-ini >= 3 {
						s.add(pos)
						ini = pos
					}
				}
				s.add(pos)
				continue
			}
			// <space>?[^\s\p{L}\p{N}]+[\r\n]*  (llama.cpp tests the flags of
			// pos itself, not of pos+1, for being defined)
			f2 := f
			if c == ' ' {
				f2 = s.flags(pos + 1)
			}
			if !(f2.isWhitespace() || f2.isLetter() || f2.isNumber()) && f != 0 {
				if c == ' ' {
					pos++
				}
				for !(f2.isWhitespace() || f2.isLetter() || f2.isNumber()) && f2 != 0 {
					pos++
					f2 = s.flags(pos)
				}
				for c2 := s.cpt(pos); c2 == '\r' || c2 == '\n'; c2 = s.cpt(pos) {
					pos++
				}
				s.add(pos)
				continue
			}
			pos = s.whitespaceTail(pos, true)
		}
	})
}

// splitKimiK2 is unicode_regex_split_custom_kimi_k2.
func splitKimiK2(cpts []uint32, offsets []int) []int {
	return forSpans(cpts, offsets, func(s *spanCursor) {
		letter := func(pos int) bool { return s.flags(pos).isLetter() && !isHan(s.cpt(pos)) }
		for pos := s.ini; pos < s.end; {
			c := s.cpt(pos)
			f := s.flags(pos)
			// [\p{Han}]+
			if isHan(c) {
				for isHan(s.cpt(pos)) {
					pos++
				}
				s.add(pos)
				continue
			}
			leadable := !(c == '\r' || c == '\n' || f.isLetter() || f.isNumber())
			if (f.isLetter() && !isHan(c)) || (leadable && letter(pos+1)) {
				lead := false
				if leadable {
					lead = true
					pos++
				}
				has := false
				for letter(pos) {
					has = true
					pos++
				}
				if has || (!lead && letter(pos)) {
					if !has {
						pos++
					}
					for letter(pos) {
						pos++
					}
					if s.cpt(pos) == '\'' && pos+1 < s.end {
						n1 := toLower(s.cpt(pos + 1))
						if n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd' {
							pos += 2
						} else if pos+2 < s.end {
							n2 := toLower(s.cpt(pos + 2))
							if n1 == 'r' && n2 == 'e' || n1 == 'v' && n2 == 'e' || n1 == 'l' && n2 == 'l' {
								pos += 3
							}
						}
					}
					s.add(pos)
					continue
				} else if lead {
					pos--
				}
			}
			// \p{N}{1,3}
			if f.isNumber() {
				ini := pos
				for s.flags(pos).isNumber() {
					pos++
					if pos-ini >= 3 {
						s.add(pos)
						ini = pos
					}
				}
				s.add(pos)
				continue
			}
			// ?[^\s\p{L}\p{N}]+[\r\n]*
			f2 := f
			if c == ' ' {
				f2 = s.flags(pos + 1)
			}
			if !(f2.isWhitespace() || f2.isLetter() || f2.isNumber()) && f2 != 0 {
				if c == ' ' {
					pos++
				}
				for !(f2.isWhitespace() || f2.isLetter() || f2.isNumber()) && f2 != 0 {
					pos++
					f2 = s.flags(pos)
				}
				for c2 := s.cpt(pos); c2 == '\r' || c2 == '\n'; c2 = s.cpt(pos) {
					pos++
				}
				s.add(pos)
				continue
			}
			pos = s.whitespaceTail(pos, true)
		}
	})
}

// splitAFMoE is unicode_regex_split_custom_afmoe: digit runs split into a
// leading group of len%3 digits and then groups of three; everything else
// stays in the pieces between them.
func splitAFMoE(cpts []uint32, offsets []int) []int {
	return forSpans(cpts, offsets, func(s *spanCursor) {
		for pos := s.ini; pos < s.end; {
			if !s.flags(pos).isNumber() {
				pos++
				continue
			}
			start, n := pos, 0
			for s.flags(pos).isNumber() && pos < s.end {
				n++
				pos++
			}
			cur := start
			if r := n % 3; r > 0 {
				s.add(cur + r)
				cur += r
			}
			for cur < start+n {
				s.add(cur + 3)
				cur += 3
			}
		}
		if s.prevEnd < s.end {
			s.add(s.end)
		}
	})
}
