package reference

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

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
