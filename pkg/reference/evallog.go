package reference

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Log is a parsed llama.cpp eval-callback / llama-debug text log. The
// formats are described in docs/log-formats.md.
type Log struct {
	Path string
	// Prefix is the function name heading each tensor: "ggml_debug" (the
	// eval-callback example up to early 2026, llama-debug) or
	// "common_debug_cb_eval" (libcommon's printer, 2026).
	Prefix string
	// Layout is the indentation of the value blocks: "37-column" (the
	// historical layout) or "4-space" (2026); "" when no block was seen.
	Layout string

	Tensors []LogTensor

	Tokens     []int32 // token ids the log lists, nil if it lists none
	SystemInfo string  // text after "system_info: "
	ModelPath  string  // from "llama_model_loader: loaded meta data ... from PATH"
	// FlashAttn is "on" or "off" when the graph shows it (a FLASH_ATTN_EXT
	// node, or a kq_soft_max node) or the log says how "auto" resolved;
	// otherwise "".
	FlashAttn string
	// SumsPrintedOnly is set when the log's sums cover only the printed
	// elements (llama.cpp before August 2025, PR #15637); the sums of
	// tensors with elided elements are then dropped (HasSum false).
	SumsPrintedOnly bool

	Warnings []string
}

// LogTensor is one tensor of a log.
type LogTensor struct {
	Key  string   // unique key: name, or name + "#2", "#3"... for repeats
	Name string   // llama.cpp name
	Op   string   // ggml_op_desc as printed, e.g. "MUL_MAT", "SWIGLU"
	Type string   // ggml type name as printed, e.g. "f32", "f16", "q8_0"
	Ne   []int64  // shape in ggml order as printed (4 entries)
	Src  []string // names of src[0] and src[1] as printed (empty ones omitted)
	Line int      // 1-based line of the tensor's header
	// EndOffset is the byte offset just after the tensor's last needed
	// character (the last digit of its final sum, or the header's closing
	// brace for tensors printed without values).
	EndOffset int64
	// Partial holds the printed elements and the sum; nil when the log has
	// no values for the tensor (quantized types are not printed; a tensor
	// whose block was damaged is kept without values, with a warning).
	Partial *tensor.Partial
}

// ReadLog parses the log file at path.
func ReadLog(path string) (*Log, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseLog(f, path)
}

// ParseLog parses an eval-callback / llama-debug log read from r; name is
// used in errors and warnings.
//
// Damage never fails the whole log: garbage lines are skipped, a tensor
// whose block is malformed is kept without values, and a log cut short (the
// asynchronous logger often loses the end) yields every tensor up to the
// last complete one, with a warning naming the line and the tensor that was
// cut. ParseLog fails only on read errors and when no tensor at all is
// complete.
func ParseLog(r io.Reader, name string) (*Log, error) {
	p := &logParser{name: name, log: &Log{Path: name}, wantTokens: -1}
	if err := p.run(r); err != nil {
		return nil, err
	}
	return p.finish()
}

const (
	maxLogWarnings  = 50      // further warnings are counted, not listed
	maxLogPartialEl = 1 << 26 // bound on elements recorded per tensor
)

// maxLogLine bounds the lines the log reader keeps; longer ones are skipped
// as garbage (a variable so that tests can lower it).
var maxLogLine = 64 << 20

type logParser struct {
	name string
	log  *Log

	line    int    // current 1-based line number
	lineOff int64  // byte offset of the current line
	raw     string // current line without its line ending
	cur     *pendingTensor
	names   []string // names of all headers seen, for keys

	wantTokens   int // tokens announced by "number of input tokens = N", -1 if none pending
	tokenIDsNext bool
	nWarn        int
	lastDropped  bool // the last tensor before EOF was dropped
	trailing     bool // non-tensor lines followed the last tensor
}

type pendingTensor struct {
	t     LogTensor
	ne    [4]int64
	numel int64
	depth int
	// position within the nested blocks
	i3, i2, i1       int64
	elided2, elided1 bool
	awaitSum         bool
	idx              []int64
	vals             []float64
	minDec           int // fewest decimals seen among finite values, -1 none
	sum              float64
	sumDec           int
	hasSum           bool
	broken           string // why the block is unusable, "" if fine
}

func (p *logParser) warnf(line int, format string, args ...any) {
	p.nWarn++
	if p.nWarn > maxLogWarnings {
		return
	}
	p.log.Warnings = append(p.log.Warnings, fmt.Sprintf("%s:%d: %s", p.name, line, fmt.Sprintf(format, args...)))
}

func (p *logParser) run(r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<16)
	var buf []byte
	var off, lineLen int64
	tooLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		lineLen += int64(len(chunk))
		if errors.Is(err, bufio.ErrBufferFull) {
			if !tooLong && len(buf)+len(chunk) <= maxLogLine {
				buf = append(buf, chunk...)
			} else {
				tooLong, buf = true, buf[:0]
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading %s: %w", p.name, err)
		}
		line := chunk
		if len(buf) > 0 {
			buf = append(buf, chunk...)
			line = buf
		}
		if lineLen > 0 {
			p.line++
			p.lineOff = off
			terminated := len(line) > 0 && line[len(line)-1] == '\n'
			content := line
			if terminated {
				content = content[:len(content)-1]
			}
			if len(content) > 0 && content[len(content)-1] == '\r' {
				content = content[:len(content)-1]
			}
			if tooLong {
				p.garbage(fmt.Sprintf("line longer than %d bytes", maxLogLine))
			} else {
				p.handle(string(content), terminated)
			}
		}
		off += lineLen
		lineLen, tooLong, buf = 0, false, buf[:0]
		if err != nil { // io.EOF
			return nil
		}
	}
}

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

// printedTypes are the ggml types the eval callback prints values of.
var printedTypes = map[string]bool{"f32": true, "f16": true, "bf16": true, "i8": true, "i16": true, "i32": true, "i64": true}

func (p *logParser) handle(raw string, terminated bool) {
	p.raw = raw
	s := cleanLine(raw)
	tr := strings.TrimSpace(s)
	if strings.Contains(s, " = (") {
		if h, ok := parseHeader(s); ok {
			p.header(h, raw)
			return
		}
	}
	if p.cur == nil {
		p.outside(tr, terminated)
		return
	}
	c := p.cur
	if c.broken != "" {
		return // skip until the next header
	}
	if !terminated && !isCompleteSumLine(tr, c) {
		return // a cut last line: the tensor stays incomplete
	}
	switch {
	case tr == "[":
		p.open(c, s)
	case tr == "]" || tr == "],":
		p.close(c)
	case tr == "...," || tr == "...":
		p.elide(c)
	case strings.HasPrefix(tr, "[") && (strings.HasSuffix(tr, "],") || strings.HasSuffix(tr, "]")):
		p.row(c, tr)
	case strings.HasPrefix(tr, "sum"):
		p.sumLine(c, tr)
	default:
		p.warnf(p.line, "skipping unexpected line inside tensor %q (header at line %d): %q", c.t.Name, c.t.Line, clip(tr))
	}
}

// isCompleteSumLine reports whether an unterminated last line is a final
// sum line with all its digits ("%f" prints 6 decimals).
func isCompleteSumLine(tr string, c *pendingTensor) bool {
	if !c.awaitSum || c.i3+1 != c.ne[3] {
		return false
	}
	key, val, ok := strings.Cut(tr, "=")
	if !ok || strings.TrimSpace(key) != "sum" {
		return false
	}
	v, dec, ok := parseLogFloat(strings.TrimSpace(val))
	if !ok {
		return false
	}
	return math.IsNaN(v) || math.IsInf(v, 0) || dec >= 6
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// outside handles a line between tensors: metadata or garbage.
func (p *logParser) outside(tr string, terminated bool) {
	if !terminated {
		// An unterminated last line is where the log was cut (perhaps
		// inside the next header), not output that followed the last
		// tensor: it does not show that the log ended normally.
		return
	}
	if len(p.log.Tensors) > 0 && tr != "" && !strings.HasPrefix(tr, "sum_sq") {
		p.trailing = true
	}
	if p.wantTokens > 0 {
		if v, err := strconv.ParseInt(tr, 10, 32); err == nil {
			p.log.Tokens = append(p.log.Tokens, int32(v))
			p.wantTokens--
			return
		}
		p.warnf(p.line, "expected %d more token ids after \"number of input tokens\"", p.wantTokens)
		p.wantTokens = -1
	}
	if p.tokenIDsNext {
		p.tokenIDsNext = false
		if ids := tokenPieceRe.FindAllStringSubmatch(tr, -1); len(ids) > 0 && p.log.Tokens == nil {
			for _, m := range ids {
				v, _ := strconv.ParseInt(m[1], 10, 32)
				p.log.Tokens = append(p.log.Tokens, int32(v))
			}
			return
		}
	}
	switch {
	case strings.HasPrefix(tr, "system_info: "):
		p.log.SystemInfo = strings.TrimPrefix(tr, "system_info: ")
	case strings.HasPrefix(tr, "number of input tokens = "):
		n, err := strconv.Atoi(strings.TrimPrefix(tr, "number of input tokens = "))
		if err == nil && n >= 0 && n < 1<<24 {
			p.log.Tokens = make([]int32, 0, min(n, 1<<16))
			p.wantTokens = n
		}
	case strings.HasPrefix(tr, "Token ids (") && strings.HasSuffix(tr, "):"):
		p.tokenIDsNext = true
	case strings.HasPrefix(tr, "llama_model_loader: loaded meta data"):
		if i := strings.LastIndex(tr, " from "); i >= 0 {
			path := tr[i+6:]
			if j := strings.LastIndex(path, " (version"); j >= 0 {
				path = path[:j]
			}
			p.log.ModelPath = path
		}
	case strings.Contains(tr, "Flash Attention was auto, set to enabled"):
		p.log.FlashAttn = "on"
	case strings.Contains(tr, "Flash Attention was auto, set to disabled"):
		p.log.FlashAttn = "off"
	}
}

// tokenPieceRe finds "(id)" after each piece of llama-debug's
// "piece(id) piece(id) ..." line.
var tokenPieceRe = regexp.MustCompile(`\((-?[0-9]+)\)(?: |$)`)

func (p *logParser) header(h logHeader, raw string) {
	if c := p.cur; c != nil {
		if c.broken == "" {
			p.warnf(p.line, "tensor %q (header at line %d) is incomplete: interrupted by the next tensor header; kept without values", c.t.Name, c.t.Line)
		}
		p.commit(c, false)
	}
	p.trailing = false
	field := h.field
	name := field
	if len(field) <= 24 {
		name = strings.TrimLeft(field, " ")
		// %24s pads on the left, hiding the leading space of ggml's
		// " (view)"-style names of unnamed sources; restore it.
		if strings.HasPrefix(name, "(") && len(name) < len(field) {
			name = " " + name
		}
	}
	c := &pendingTensor{minDec: -1}
	c.t = LogTensor{Name: name, Type: h.typ, Op: h.op, Line: p.line}
	if p.log.Prefix == "" {
		p.log.Prefix = h.prefix
	}
	ne, err := parseNe(h.ne)
	if err != nil {
		c.broken = fmt.Sprintf("bad shape {%s}: %v", h.ne, err)
	} else if len(ne) > 4 {
		c.broken = fmt.Sprintf("shape {%s} has more than 4 dimensions", h.ne)
		ne = ne[:4]
	}
	c.t.Ne = ne
	for i := range c.ne {
		c.ne[i] = 1
	}
	copy(c.ne[:], ne)
	c.numel = 1
	for _, d := range c.ne {
		if d < 0 || (d > 0 && c.numel > (1<<62)/d) {
			c.broken = fmt.Sprintf("shape {%s} out of range", h.ne)
			c.numel = 0
			break
		}
		c.numel *= d
	}
	c.t.Src = parseSrcs(h.args)
	p.names = append(p.names, name)
	p.cur = c
	// The header's closing brace is the last character of the match.
	c.t.EndOffset = p.lineOff + int64(strings.LastIndex(raw, "}")) + 1
	if c.broken != "" {
		p.warnf(p.line, "tensor %q: %s; kept without values", name, c.broken)
		return
	}
	if !printedTypes[c.t.Type] || c.ne[3] == 0 {
		// Nothing follows: the callback prints no values of quantized
		// types, and no block at all when ne[3] is 0.
		p.commit(c, true)
	}
}

func parseNe(s string) ([]int64, error) {
	parts := strings.Split(s, ", ")
	ne := make([]int64, len(parts))
	for i, f := range parts {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, err
		}
		if v < 0 {
			return nil, fmt.Errorf("negative dimension %d", v)
		}
		ne[i] = v
	}
	return ne, nil
}

// parseSrcs splits "src0{ne}, src1{ne}}" (or "src0{ne}, }" or ", }").
func parseSrcs(args string) []string {
	args = strings.TrimSuffix(args, "}")
	var srcs []string
	rest := args
	if strings.HasPrefix(args, ", ") {
		rest = args[2:]
	} else if m := srcRe.FindStringSubmatch(args); m != nil {
		srcs = append(srcs, m[1])
		rest = m[3]
	} else {
		return []string{args}
	}
	if rest != "" {
		if i := strings.LastIndexByte(rest, '{'); i >= 0 && strings.HasSuffix(rest, "}") {
			rest = rest[:i]
		}
		srcs = append(srcs, rest)
	}
	return srcs
}

func (p *logParser) fail(c *pendingTensor, format string, args ...any) {
	c.broken = fmt.Sprintf(format, args...)
	p.warnf(p.line, "tensor %q (header at line %d): %s; kept without values", c.t.Name, c.t.Line, c.broken)
}

func (p *logParser) open(c *pendingTensor, s string) {
	if p.log.Layout == "" {
		switch ind := len(s) - len(strings.TrimLeft(s, " ")); {
		case ind == 4:
			p.log.Layout = "4-space"
		case ind == 37:
			p.log.Layout = "37-column"
		default:
			p.log.Layout = fmt.Sprintf("%d-column", ind)
		}
	}
	switch c.depth {
	case 0:
		if c.awaitSum || c.i3 >= c.ne[3] {
			p.fail(c, "unexpected '[': more blocks than ne[3] = %d", c.ne[3])
			return
		}
		c.i2, c.elided2 = 0, false
	case 1:
		if c.i2 >= c.ne[2] {
			p.fail(c, "unexpected '[': more blocks than ne[2] = %d", c.ne[2])
			return
		}
		c.i1, c.elided1 = 0, false
	default:
		p.fail(c, "unexpected '[' at depth %d", c.depth)
		return
	}
	c.depth++
}

func (p *logParser) close(c *pendingTensor) {
	switch c.depth {
	case 2:
		if c.i1 != c.ne[1] {
			p.fail(c, "block closed after %d of ne[1] = %d rows", c.i1, c.ne[1])
			return
		}
		c.i2++
	case 1:
		if c.i2 != c.ne[2] {
			p.fail(c, "block closed after %d of ne[2] = %d blocks", c.i2, c.ne[2])
			return
		}
		c.awaitSum = true
	default:
		p.fail(c, "unexpected ']'")
		return
	}
	c.depth--
}

func (p *logParser) elide(c *pendingTensor) {
	var i *int64
	var ne int64
	var done *bool
	switch c.depth {
	case 1:
		i, ne, done = &c.i2, c.ne[2], &c.elided2
	case 2:
		i, ne, done = &c.i1, c.ne[1], &c.elided1
	default:
		p.fail(c, "unexpected '...,' at depth %d", c.depth)
		return
	}
	n := *i
	if *done || n == 0 || ne <= 2*n {
		p.fail(c, "unexpected '...,' after %d of %d entries", n, ne)
		return
	}
	*done = true
	*i = ne - n
}

func (p *logParser) row(c *pendingTensor, tr string) {
	if c.depth != 2 || c.i1 >= c.ne[1] {
		p.fail(c, "unexpected row (depth %d, row %d of ne[1] = %d)", c.depth, c.i1, c.ne[1])
		return
	}
	inner := strings.TrimPrefix(tr, "[")
	inner = strings.TrimSuffix(strings.TrimSuffix(inner, ","), "]")
	var toks []string
	if strings.TrimSpace(inner) != "" {
		toks = strings.Split(inner, ",")
	}
	ne0 := c.ne[0]
	before, after, elided := 0, 0, false
	for _, t := range toks {
		if strings.TrimSpace(t) == "..." {
			if elided {
				p.fail(c, "two '...' in one row")
				return
			}
			elided = true
			continue
		}
		if elided {
			after++
		} else {
			before++
		}
	}
	switch {
	case elided && (before != after || before == 0 || ne0 <= int64(2*before)):
		p.fail(c, "row has %d values, '...', %d values; does not fit ne[0] = %d", before, after, ne0)
		return
	case !elided && int64(before) != ne0:
		p.fail(c, "row has %d values, want ne[0] = %d", before, ne0)
		return
	}
	if len(c.idx)+before+after > maxLogPartialEl {
		p.fail(c, "more than %d printed elements", maxLogPartialEl)
		return
	}
	base := c.ne[0] * (c.i1 + c.ne[1]*(c.i2+c.ne[2]*c.i3))
	i0 := int64(0)
	for _, t := range toks {
		t = strings.TrimSpace(t)
		if t == "..." {
			i0 = ne0 - int64(after)
			continue
		}
		v, dec, ok := parseLogFloat(t)
		if !ok {
			p.fail(c, "bad value %q", clip(t))
			return
		}
		if !math.IsNaN(v) && !math.IsInf(v, 0) && (c.minDec < 0 || dec < c.minDec) {
			c.minDec = dec
		}
		c.idx = append(c.idx, base+i0)
		c.vals = append(c.vals, v)
		i0++
	}
	c.i1++
}

func (p *logParser) sumLine(c *pendingTensor, tr string) {
	key, val, ok := strings.Cut(tr, "=")
	key = strings.TrimSpace(key)
	if !ok || (key != "sum" && key != "sum_sq") {
		p.warnf(p.line, "skipping unexpected line inside tensor %q (header at line %d): %q", c.t.Name, c.t.Line, clip(tr))
		return
	}
	if key == "sum_sq" {
		return
	}
	if !c.awaitSum || c.depth != 0 {
		p.fail(c, "unexpected sum line")
		return
	}
	v, dec, ok := parseLogFloat(strings.TrimSpace(val))
	if !ok {
		p.fail(c, "bad sum %q", clip(strings.TrimSpace(val)))
		return
	}
	c.sum, c.sumDec, c.hasSum = v, dec, true
	c.awaitSum = false
	c.i3++
	if c.i3 == c.ne[3] {
		c.t.EndOffset = p.lineOff + int64(len(strings.TrimRight(p.raw, " ")))
		p.commit(c, true)
	}
}

// commit adds the current tensor to the log; complete reports whether its
// block was read to the end.
func (p *logParser) commit(c *pendingTensor, complete bool) {
	p.cur = nil
	t := c.t
	if complete && c.broken == "" && printedTypes[t.Type] {
		q := 1e-4
		if c.minDec >= 0 {
			q = math.Pow(10, -float64(c.minDec))
		}
		t.Partial = &tensor.Partial{
			Index:      c.idx,
			Values:     c.vals,
			Quantum:    q,
			Sum:        c.sum,
			HasSum:     c.hasSum,
			SumQuantum: math.Pow(10, -float64(c.sumDec)),
		}
		if !c.hasSum {
			t.Partial.SumQuantum = 0
		}
	}
	p.log.Tensors = append(p.log.Tensors, t)
}

// parseLogFloat parses a value printed by "%12.4f" or "%f": a decimal
// number, or nan/inf in the spellings of glibc ("nan", "-nan", "inf") and
// MSVC ("-nan(ind)", "1.#INF", "1.#QNAN"). dec is the number of decimals.
func parseLogFloat(s string) (v float64, dec int, ok bool) {
	body := s
	if body != "" && (body[0] == '-' || body[0] == '+') {
		body = body[1:]
	}
	if body == "" {
		return 0, 0, false
	}
	if body[0] >= '0' && body[0] <= '9' && !strings.HasPrefix(body, "1.#") {
		dot := -1
		for i := 0; i < len(body); i++ {
			switch c := body[i]; {
			case c == '.' && dot < 0:
				dot = i
			case c < '0' || c > '9':
				return 0, 0, false
			}
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, 0, false
		}
		if dot >= 0 {
			dec = len(body) - dot - 1
		}
		return v, dec, true
	}
	lb := strings.ToLower(body)
	switch {
	case lb == "nan" || strings.HasPrefix(lb, "nan(") && strings.HasSuffix(lb, ")") ||
		strings.HasPrefix(lb, "1.#qnan") || strings.HasPrefix(lb, "1.#ind") || strings.HasPrefix(lb, "1.#snan"):
		return math.NaN(), 0, true
	case lb == "inf" || lb == "infinity" || strings.HasPrefix(lb, "1.#inf"):
		if s[0] == '-' {
			return math.Inf(-1), 0, true
		}
		return math.Inf(1), 0, true
	}
	return 0, 0, false
}

// finish handles the end of input, assigns keys and runs the checks that
// need the whole log.
func (p *logParser) finish() (*Log, error) {
	l := p.log
	if c := p.cur; c != nil {
		p.cur = nil
		if c.broken == "" {
			p.warnf(p.line, "log ends inside tensor %q (header at line %d): cut at line %d; the %d tensors before it are complete, this one is dropped",
				c.t.Name, c.t.Line, p.line, len(l.Tensors))
		} else {
			p.warnf(p.line, "log ends inside damaged tensor %q (header at line %d); dropped", c.t.Name, c.t.Line)
		}
		p.lastDropped = true
	}
	keys := UniqueKeys(p.names)
	for i := range l.Tensors {
		l.Tensors[i].Key = keys[i]
	}
	complete := 0
	for _, t := range l.Tensors {
		if t.Partial != nil || !printedTypes[t.Type] {
			complete++
		}
	}
	if complete == 0 {
		why := "no tensor header found"
		if len(p.names) > 0 {
			why = fmt.Sprintf("%d tensor header(s) but no complete tensor", len(p.names))
		}
		msg := fmt.Sprintf("not a usable llama.cpp eval-callback log: %s", why)
		if len(l.Warnings) > 0 {
			msg += " (" + l.Warnings[len(l.Warnings)-1] + ")"
		}
		return nil, fileErr(p.name, "%s", msg)
	}
	if p.wantTokens > 0 {
		p.warnf(p.line, "log lists %d of the announced token ids", len(l.Tokens))
	}
	if !p.lastDropped && !p.trailing && len(l.Tensors) > 0 {
		if last := l.Tensors[len(l.Tensors)-1]; last.Name != "result_output" && last.Name != "result_norm" {
			p.warnf(last.Line, "log ends after tensor %q with nothing after it; llama.cpp logs usually end with result_output, so the end may be lost", last.Name)
		}
	}
	p.detectPrintedOnlySums()
	for _, t := range l.Tensors {
		switch {
		case t.Op == "FLASH_ATTN_EXT":
			l.FlashAttn = "on"
		case t.Op == "SOFT_MAX" && strings.HasPrefix(t.Name, "kq_soft_max") && l.FlashAttn == "":
			l.FlashAttn = "off"
		}
	}
	if p.nWarn > maxLogWarnings {
		l.Warnings = append(l.Warnings, fmt.Sprintf("%s: %d more warnings not shown", p.name, p.nWarn-maxLogWarnings))
	}
	return l, nil
}

// detectPrintedOnlySums recognizes logs from before llama.cpp summed every
// element: if the sum of every elided tensor equals the sum of its printed
// values (within printing precision), and at least one such tensor is not
// trivially zero, the sums of elided tensors are meaningless and dropped.
func (p *logParser) detectPrintedOnlySums() {
	full, printedOnly := 0, 0
	for _, t := range p.log.Tensors {
		pt := t.Partial
		if pt == nil || !pt.HasSum || math.IsNaN(pt.Sum) || math.IsInf(pt.Sum, 0) || int64(len(pt.Index)) >= tensor.Numel(t.Ne) {
			continue
		}
		var s, abs float64
		for _, v := range pt.Values {
			s += v
			abs += math.Abs(v)
		}
		if math.IsNaN(s) || math.IsInf(s, 0) {
			continue
		}
		tol := 0.5*pt.Quantum*float64(len(pt.Values)) + 0.5*pt.SumQuantum + 1e-6*abs
		switch {
		case math.Abs(pt.Sum-s) > tol:
			full++
		case s != 0 || pt.Sum != 0:
			printedOnly++
		}
	}
	if full > 0 || printedOnly == 0 {
		return
	}
	p.log.SumsPrintedOnly = true
	for i := range p.log.Tensors {
		t := &p.log.Tensors[i]
		if t.Partial != nil && int64(len(t.Partial.Index)) < tensor.Numel(t.Ne) {
			t.Partial.HasSum = false
		}
	}
	p.log.Warnings = append(p.log.Warnings, fmt.Sprintf("%s: the sums in this log cover only the printed elements (llama.cpp before August 2025); sums of elided tensors are ignored", p.name))
}

// garbage handles an unusable line.
func (p *logParser) garbage(why string) {
	if c := p.cur; c != nil && c.broken == "" {
		p.fail(c, "%s", why)
		return
	}
	p.warnf(p.line, "skipping line: %s", why)
}

// logLooksLike reports whether the first bytes of a file look like an
// eval-callback log (a tensor header within them).
func logLooksLike(head []byte) bool {
	for _, ln := range bytes.Split(head, []byte{'\n'}) {
		s := cleanLine(strings.TrimRight(string(ln), "\r"))
		if _, ok := parseHeader(s); ok {
			return true
		}
	}
	return false
}
