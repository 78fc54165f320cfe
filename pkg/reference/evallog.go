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
