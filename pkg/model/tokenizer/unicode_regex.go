package tokenizer

import (
	"errors"
	"fmt"
	"strconv"
)

// This file is a small backtracking regular-expression engine with the
// ECMAScript semantics of libstdc++'s std::regex / std::wregex, which
// llama.cpp's unicode_regex_split_stl uses for every pre-tokenizer regex that
// has no hand-written splitter: ordered alternation, greedy (and lazy)
// quantifiers, lookahead, and the std::regex_iterator rules for empty
// matches. It supports the subset the llama.cpp regexes use: literals,
// escapes, bracket expressions with ranges and \s \d \w classes, groups,
// (?: ), (?= ), (?! ), ^, $, ., ?, *, +, {n}, {n,}, {n,m}.
//
// A regex runs over a slice of symbols: bytes for std::regex on llama.cpp's
// "collapsed" text (where char is signed, so ranges compare bytes as int8),
// or code points for std::wregex.

// reNode is one node of a parsed regex.
type reNode struct {
	op       reOp
	class    *reClass  // reClassOp
	subs     []*reNode // reSeq, reAlt
	sub      *reNode   // reRepeat, reLook
	min, max int       // reRepeat; max < 0 = unbounded
	greedy   bool      // reRepeat
	negate   bool      // reLook: (?!
}

type reOp uint8

const (
	reClassOp reOp = iota // one symbol in a class (literals are one-symbol classes)
	reSeq
	reAlt
	reRepeat
	reLook
	reBOL
	reEOL
	reAny
)

// reClass is a bracket expression or a single escaped/literal symbol.
type reClass struct {
	ranges  [][2]int32 // inclusive, already in comparison form (see cmp)
	classes []reNamed  // \s \d \w and their negations
	negate  bool
}

type reNamed struct {
	name byte // 's', 'd' or 'w'
	neg  bool
}

// ecmaRegex is a compiled regex.
type ecmaRegex struct {
	root *reNode
	// signedChars: symbols are bytes of a std::string, compared in ranges as
	// signed char (x86-64 char), as libstdc++'s _BracketMatcher does.
	signedChars bool
}

// cmp maps a symbol to the value range comparisons use.
func (re *ecmaRegex) cmp(c int32) int32 {
	if re.signedChars {
		return int32(int8(uint8(c)))
	}
	return c
}

// isNamed is regex_traits::isctype in the "C" locale: ASCII-only classes
// (llama.cpp replaces non-ASCII whitespace by 0x0B before matching).
func isNamed(name byte, c int32) bool {
	switch name {
	case 's':
		return c == ' ' || c >= '\t' && c <= '\r'
	case 'd':
		return c >= '0' && c <= '9'
	case 'w':
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
	}
	return false
}

func (re *ecmaRegex) classMatch(cl *reClass, c int32) bool {
	v := re.cmp(c)
	m := false
	for _, r := range cl.ranges {
		if r[0] <= v && v <= r[1] {
			m = true
			break
		}
	}
	if !m {
		for _, n := range cl.classes {
			if isNamed(n.name, c) != n.neg {
				m = true
				break
			}
		}
	}
	return m != cl.negate
}

// reParser parses a regex given as symbols.
type reParser struct {
	src  []int32
	pos  int
	re   *ecmaRegex
	expr string // for errors
}

var errRegexSyntax = errors.New("regex syntax error")

func (p *reParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w in %q at %d: %s", errRegexSyntax, p.expr, p.pos, fmt.Sprintf(format, args...))
}

// compileECMA compiles expr. With wide it runs on code points (std::wregex),
// else expr and the subject are bytes (std::regex).
func compileECMA(expr string, wide bool) (*ecmaRegex, error) {
	re := &ecmaRegex{signedChars: !wide}
	var src []int32
	if wide {
		for _, c := range cptsFromUTF8(expr) {
			src = append(src, int32(c))
		}
	} else {
		for i := 0; i < len(expr); i++ {
			src = append(src, int32(expr[i]))
		}
	}
	p := &reParser{src: src, re: re, expr: expr}
	n, err := p.alternation()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.src) {
		return nil, p.errorf("unbalanced )")
	}
	re.root = n
	return re, nil
}

func (p *reParser) peek() (int32, bool) {
	if p.pos < len(p.src) {
		return p.src[p.pos], true
	}
	return 0, false
}

func (p *reParser) alternation() (*reNode, error) {
	var alts []*reNode
	for {
		s, err := p.sequence()
		if err != nil {
			return nil, err
		}
		alts = append(alts, s)
		if c, ok := p.peek(); ok && c == '|' {
			p.pos++
			continue
		}
		break
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return &reNode{op: reAlt, subs: alts}, nil
}

func (p *reParser) sequence() (*reNode, error) {
	seq := &reNode{op: reSeq}
	for {
		c, ok := p.peek()
		if !ok || c == '|' || c == ')' {
			return seq, nil
		}
		atom, err := p.atom()
		if err != nil {
			return nil, err
		}
		atom, err = p.quantifier(atom)
		if err != nil {
			return nil, err
		}
		seq.subs = append(seq.subs, atom)
	}
}

func (p *reParser) quantifier(atom *reNode) (*reNode, error) {
	c, ok := p.peek()
	if !ok {
		return atom, nil
	}
	min, max := 0, 0
	switch c {
	case '*':
		min, max = 0, -1
		p.pos++
	case '+':
		min, max = 1, -1
		p.pos++
	case '?':
		min, max = 0, 1
		p.pos++
	case '{':
		p.pos++
		var err error
		if min, err = p.number(); err != nil {
			return nil, err
		}
		max = min
		if c, ok := p.peek(); ok && c == ',' {
			p.pos++
			max = -1
			if c, ok := p.peek(); ok && c != '}' {
				if max, err = p.number(); err != nil {
					return nil, err
				}
				if max < min {
					return nil, p.errorf("bad interval {%d,%d}", min, max)
				}
			}
		}
		if c, ok := p.peek(); !ok || c != '}' {
			return nil, p.errorf("unterminated interval")
		}
		p.pos++
	default:
		return atom, nil
	}
	if atom.op == reBOL || atom.op == reEOL || atom.op == reLook {
		return nil, p.errorf("nothing to repeat")
	}
	greedy := true
	if c, ok := p.peek(); ok && c == '?' {
		greedy = false
		p.pos++
	}
	return &reNode{op: reRepeat, sub: atom, min: min, max: max, greedy: greedy}, nil
}

func (p *reParser) number() (int, error) {
	start := p.pos
	for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
		p.pos++
	}
	if p.pos == start || p.pos-start > 6 {
		return 0, p.errorf("bad number in interval")
	}
	var s []byte
	for _, c := range p.src[start:p.pos] {
		s = append(s, byte(c))
	}
	n, err := strconv.Atoi(string(s))
	if err != nil {
		return 0, p.errorf("bad number in interval")
	}
	return n, nil
}

func (p *reParser) literal(c int32) *reNode {
	v := p.re.cmp(c)
	return &reNode{op: reClassOp, class: &reClass{ranges: [][2]int32{{v, v}}}}
}

func (p *reParser) atom() (*reNode, error) {
	c := p.src[p.pos]
	p.pos++
	switch c {
	case '(':
		n := &reNode{op: reSeq}
		look, neg := false, false
		if p.pos+1 < len(p.src) && p.src[p.pos] == '?' {
			switch p.src[p.pos+1] {
			case ':':
			case '=':
				look = true
			case '!':
				look, neg = true, true
			default:
				return nil, p.errorf("unsupported group (?%c", p.src[p.pos+1])
			}
			p.pos += 2
		}
		sub, err := p.alternation()
		if err != nil {
			return nil, err
		}
		if c, ok := p.peek(); !ok || c != ')' {
			return nil, p.errorf("missing )")
		}
		p.pos++
		if look {
			return &reNode{op: reLook, sub: sub, negate: neg}, nil
		}
		n.subs = []*reNode{sub}
		return n, nil
	case '[':
		return p.bracket()
	case '.':
		return &reNode{op: reAny}, nil
	case '^':
		return &reNode{op: reBOL}, nil
	case '$':
		return &reNode{op: reEOL}, nil
	case '*', '+', '?':
		return nil, p.errorf("nothing to repeat")
	case '{':
		return nil, p.errorf("unexpected {")
	case '\\':
		lit, named, err := p.escape(false)
		if err != nil {
			return nil, err
		}
		if named != nil {
			return &reNode{op: reClassOp, class: &reClass{classes: []reNamed{*named}}}, nil
		}
		return p.literal(lit), nil
	}
	return p.literal(c), nil
}

// escape parses the escape after a backslash: a literal symbol, or a named
// class (\d \D \s \S \w \W).
func (p *reParser) escape(inBracket bool) (int32, *reNamed, error) {
	c, ok := p.peek()
	if !ok {
		return 0, nil, p.errorf("trailing backslash")
	}
	p.pos++
	switch c {
	case 'd', 's', 'w':
		return 0, &reNamed{name: byte(c)}, nil
	case 'D', 'S', 'W':
		return 0, &reNamed{name: byte(c) + 'a' - 'A', neg: true}, nil
	case 'n':
		return '\n', nil, nil
	case 'r':
		return '\r', nil, nil
	case 't':
		return '\t', nil, nil
	case 'f':
		return '\f', nil, nil
	case 'v':
		return '\v', nil, nil
	case '0':
		return 0, nil, nil
	case 'b':
		if inBracket {
			return '\b', nil, nil
		}
		return 0, nil, p.errorf("word boundaries are not supported")
	case 'x', 'u':
		n := 2
		if c == 'u' {
			n = 4
		}
		if p.pos+n > len(p.src) {
			return 0, nil, p.errorf("short hex escape")
		}
		v := int32(0)
		for _, h := range p.src[p.pos : p.pos+n] {
			d, err := strconv.ParseUint(string(rune(h)), 16, 8)
			if err != nil {
				return 0, nil, p.errorf("bad hex escape")
			}
			v = v<<4 | int32(d)
		}
		p.pos += n
		return v, nil, nil
	}
	if c >= '1' && c <= '9' {
		return 0, nil, p.errorf("back-references are not supported")
	}
	return c, nil, nil // identity escape
}

func (p *reParser) bracket() (*reNode, error) {
	cl := &reClass{}
	if c, ok := p.peek(); ok && c == '^' {
		cl.negate = true
		p.pos++
	}
	// item reads one bracket item: a symbol or a named class.
	item := func() (int32, *reNamed, error) {
		c := p.src[p.pos]
		p.pos++
		if c == '\\' {
			return p.escape(true)
		}
		if c == '[' && p.pos < len(p.src) && (p.src[p.pos] == ':' || p.src[p.pos] == '.' || p.src[p.pos] == '=') {
			return 0, nil, p.errorf("POSIX bracket classes are not supported")
		}
		return c, nil, nil
	}
	for {
		c, ok := p.peek()
		if !ok {
			return nil, p.errorf("missing ]")
		}
		if c == ']' {
			p.pos++
			return &reNode{op: reClassOp, class: cl}, nil
		}
		lo, named, err := item()
		if err != nil {
			return nil, err
		}
		if named != nil {
			cl.classes = append(cl.classes, *named)
			continue
		}
		// A range lo-hi, unless '-' is last in the bracket.
		if p.pos+1 < len(p.src) && p.src[p.pos] == '-' && p.src[p.pos+1] != ']' {
			p.pos++
			hi, named, err := item()
			if err != nil {
				return nil, err
			}
			if named != nil {
				return nil, p.errorf("class in range")
			}
			l, h := p.re.cmp(lo), p.re.cmp(hi)
			if l > h {
				return nil, p.errorf("bad range")
			}
			cl.ranges = append(cl.ranges, [2]int32{l, h})
			continue
		}
		v := p.re.cmp(lo)
		cl.ranges = append(cl.ranges, [2]int32{v, v})
	}
}

// reMatcher runs a regex on one subject.
type reMatcher struct {
	re      *ecmaRegex
	s       []int32
	notNull bool // match_not_null: an empty match (and empty lookahead body) fails
	steps   int
	limit   int
}

// regexStepsPerSymbol bounds the backtracking work of one findAll so that a
// pathological input cannot hang the tokenizer (llama.cpp's std::regex would
// take quadratic time or overflow its stack instead).
const regexStepsPerSymbol = 20_000

var errRegexComplexity = errors.New("regex backtracking limit exceeded")

// match tries n at pos and calls k with the end position of each way n can
// match, in ECMAScript priority order, until k accepts.
func (m *reMatcher) match(n *reNode, pos int, k func(int) bool) bool {
	m.steps++
	if m.steps > m.limit {
		return false
	}
	switch n.op {
	case reClassOp:
		if pos < len(m.s) && m.re.classMatch(n.class, m.s[pos]) {
			return k(pos + 1)
		}
		return false
	case reAny:
		if pos < len(m.s) {
			c := m.s[pos]
			if c != '\n' && c != '\r' && (m.re.signedChars || c != 0x2028 && c != 0x2029) {
				return k(pos + 1)
			}
		}
		return false
	case reBOL:
		if pos == 0 {
			return k(pos)
		}
		return false
	case reEOL:
		if pos == len(m.s) {
			return k(pos)
		}
		return false
	case reSeq:
		return m.seq(n.subs, pos, k)
	case reAlt:
		for _, a := range n.subs {
			if m.match(a, pos, k) {
				return true
			}
		}
		return false
	case reRepeat:
		return m.repeat(n, 0, pos, k)
	case reLook:
		start := pos
		found := m.match(n.sub, pos, func(e int) bool { return !(m.notNull && e == start) })
		if found != n.negate {
			return k(pos)
		}
		return false
	}
	return false
}

func (m *reMatcher) seq(subs []*reNode, pos int, k func(int) bool) bool {
	if len(subs) == 0 {
		return k(pos)
	}
	return m.match(subs[0], pos, func(p int) bool { return m.seq(subs[1:], p, k) })
}

// repeat matches the count-th and later iterations of n. As in ECMAScript, an
// optional iteration that matches the empty string fails.
func (m *reMatcher) repeat(n *reNode, count, pos int, k func(int) bool) bool {
	if count < n.min {
		return m.match(n.sub, pos, func(p int) bool { return m.repeat(n, count+1, p, k) })
	}
	more := func() bool {
		if n.max >= 0 && count >= n.max {
			return false
		}
		return m.match(n.sub, pos, func(p int) bool { return p != pos && m.repeat(n, count+1, p, k) })
	}
	if n.greedy {
		return more() || k(pos)
	}
	return k(pos) || more()
}

// searchAt is regex_search with match_continuous at from: the end of the
// first match starting exactly at from, or -1.
func (m *reMatcher) searchAt(from int) int {
	end := -1
	m.match(m.re.root, from, func(e int) bool {
		if m.notNull && e == from {
			return false
		}
		end = e
		return true
	})
	return end
}

// search is regex_search: the leftmost match starting at or after from
// (the end of the subject included).
func (m *reMatcher) search(from int) (start, end int) {
	for s := from; s <= len(m.s); s++ {
		if e := m.searchAt(s); e >= 0 {
			return s, e
		}
	}
	return -1, -1
}

// findAll returns the [start, end) spans std::regex_iterator visits on s.
func (re *ecmaRegex) findAll(s []int32) ([][2]int, error) {
	m := &reMatcher{re: re, s: s, limit: 10_000_000 + regexStepsPerSymbol*len(s)}
	var out [][2]int
	start, end := m.search(0)
	for start >= 0 {
		out = append(out, [2]int{start, end})
		next := end
		if start == end {
			if end == len(s) {
				break
			}
			// Retry at the same place for a non-empty match, else step on.
			m.notNull = true
			e := m.searchAt(end)
			m.notNull = false
			if e >= 0 {
				start, end = next, e
				continue
			}
			next++
		}
		start, end = m.search(next)
	}
	if m.steps > m.limit {
		return nil, errRegexComplexity
	}
	return out, nil
}
