package reference

import (
	"regexp"
	"strings"
)

// logHeader is a parsed tensor header line,
// "PREFIX: %24s = (%s) %10s(%s, %s}) = {%s}" (see docs/log-formats.md).
type logHeader struct {
	prefix, field, typ, op, args, ne string
}

// parseHeader parses a header line; ok is false for anything else.
func parseHeader(s string) (h logHeader, ok bool) {
	i := strings.Index(s, ": ")
	if i <= 0 || !isIdent(s[:i]) {
		return h, false
	}
	h.prefix = s[:i]
	rest := s[i+2:]
	j := strings.Index(rest, " = (")
	if j < 0 {
		return h, false
	}
	h.field = rest[:j]
	rest = rest[j+4:]
	k := strings.IndexByte(rest, ')')
	if k <= 0 || !isIdent(rest[:k]) || k+1 >= len(rest) || rest[k+1] != ' ' {
		return h, false
	}
	h.typ = rest[:k]
	rest = strings.TrimLeft(rest[k+1:], " ")
	l := strings.IndexByte(rest, '(')
	if l <= 0 || !isIdent(rest[:l]) {
		return h, false
	}
	h.op = rest[:l]
	rest = strings.TrimRight(rest[l+1:], " ")
	m := strings.LastIndex(rest, ") = {")
	if m < 0 || !strings.HasSuffix(rest, "}") {
		return h, false
	}
	h.args = rest[:m]
	h.ne = rest[m+5 : len(rest)-1]
	if h.ne == "" {
		return h, false
	}
	for _, c := range []byte(h.ne) {
		if (c < '0' || c > '9') && c != ',' && c != ' ' && c != '-' {
			return h, false
		}
	}
	return h, true
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// srcRe splits the printed sources "A{n, n, n, n}, B{n, n, n, n}".
var srcRe = regexp.MustCompile(`^(.*?)\{(-?[0-9]+(?:, -?[0-9]+)*)\}, (.*)$`)

// logPrefixRe matches the prefix common/log.cpp puts before each entry when
// timestamps are on: "0.00.068.170 I " (minutes, seconds, ms, µs, level).
var logPrefixRe = regexp.MustCompile(`[0-9]+\.[0-9]{2}\.[0-9]{3}\.[0-9]{3} [A-Z] `)

// linePrefixRe matches that prefix at the start of a line, capturing the
// minutes.
var linePrefixRe = regexp.MustCompile(`^([0-9]+)\.[0-9]{2}\.[0-9]{3}\.[0-9]{3} [A-Z] `)

// ansiRe matches colour codes, and a code cut short at the end of a line.
var ansiRe = regexp.MustCompile("\x1b(?:\\[[0-9;]*m|\\[?[0-9;]*$)")

// cleanLine removes log prefixes and colour codes, wherever they are: the
// logger prefixes every entry, and llama-debug prints each value of a row
// as its own entry, so a prefix can be glued to the digits of the value
// before it ("-0.19370.00.068.300 D , "). The minutes field has no fixed
// width, so the minutes of the prefix that starts the line are used to cut
// the glued ones exactly.
func cleanLine(s string) string {
	if strings.IndexByte(s, 0x1b) >= 0 {
		s = ansiRe.ReplaceAllString(s, "")
	}
	if !hasLogPrefix(s) {
		return s
	}
	if m := linePrefixRe.FindStringSubmatch(s); m != nil {
		s = s[len(m[0]):]
		if hasLogPrefix(s) {
			s = stripPrefixes(s, m[1])
		}
	}
	if hasLogPrefix(s) {
		s = logPrefixRe.ReplaceAllString(s, "")
	}
	return s
}

// stripPrefixes removes every "MIN.ss.mmm.uuu X " with the given minutes,
// leftmost first.
func stripPrefixes(s, minutes string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, minutes+".")
		if i < 0 {
			break
		}
		if t := s[i+len(minutes):]; isPrefixTail(t) {
			b.WriteString(s[:i])
			s = t[len(".ss.mmm.uuu X "):]
			continue
		}
		b.WriteString(s[:i+1])
		s = s[i+1:]
	}
	b.WriteString(s)
	return b.String()
}

// isPrefixTail reports whether t starts with ".ss.mmm.uuu X ".
func isPrefixTail(t string) bool {
	const pat = ".dd.ddd.ddd X "
	if len(t) < len(pat) {
		return false
	}
	for i := 0; i < len(pat); i++ {
		c := t[i]
		switch pat[i] {
		case 'd':
			if c < '0' || c > '9' {
				return false
			}
		case 'X':
			if c < 'A' || c > 'Z' {
				return false
			}
		default:
			if c != pat[i] {
				return false
			}
		}
	}
	return true
}

// hasLogPrefix is a fast pre-check for logPrefixRe: a digit, a space, an
// upper-case letter and a space. Value rows have no upper-case letters.
func hasLogPrefix(s string) bool {
	for {
		i := strings.IndexAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
		if i < 0 {
			return false
		}
		if i >= 2 && i+1 < len(s) && s[i-1] == ' ' && s[i+1] == ' ' && s[i-2] >= '0' && s[i-2] <= '9' {
			return true
		}
		s = s[i+1:]
	}
}
