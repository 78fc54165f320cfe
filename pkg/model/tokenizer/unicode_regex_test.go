package tokenizer

import (
	"fmt"
	"slices"
	"testing"
)

func symbols(s string, wide bool) []int32 {
	var out []int32
	if wide {
		for _, c := range cptsFromUTF8(s) {
			out = append(out, int32(c))
		}
		return out
	}
	for i := 0; i < len(s); i++ {
		out = append(out, int32(s[i]))
	}
	return out
}

// TestECMARegex checks the engine against what ECMAScript (and libstdc++'s
// std::regex_iterator) gives for the constructs llama.cpp's regexes use.
func TestECMARegex(t *testing.T) {
	tests := []struct {
		re, text string
		wide     bool
		want     [][2]int
	}{
		// Ordered alternation: the first alternative that matches wins, even
		// if a later one is longer.
		{`a|ab`, "ab", true, [][2]int{{0, 1}}},
		{`ab|a`, "ab", true, [][2]int{{0, 2}}},
		// Greedy repetition with backtracking into a lookahead.
		{`\s+(?!\S)`, "a   b", true, [][2]int{{1, 3}}},
		{`\s+(?!\S)|\s+`, "a   b  ", true, [][2]int{{1, 3}, {3, 4}, {5, 7}}},
		{`\d{1,3}`, "12345678", true, [][2]int{{0, 3}, {3, 6}, {6, 8}}},
		{`\d{2,}`, "1 22 333", true, [][2]int{{2, 4}, {5, 8}}},
		{`x*?y`, "xxy", true, [][2]int{{0, 3}}},
		// Empty matches: the iterator retries non-empty at the same place,
		// then steps on (superbpe's digit-group lookahead).
		{`(?=(\d{3})+(?!\d))`, "1234567", true, [][2]int{{1, 1}, {4, 4}}},
		{`a*`, "baa", true, [][2]int{{0, 0}, {1, 3}, {3, 3}}},
		// $ is the end of the subject; ^ its start.
		{`\s+$`, "a  b  ", true, [][2]int{{4, 6}}},
		{`^a`, "aa", true, [][2]int{{0, 1}}},
		// Bracket expressions: ranges, negation, escapes, classes.
		{`[^(\s|.,!?…)]+`, "hi, you…ok", true, [][2]int{{0, 2}, {4, 7}, {8, 10}}},
		{`[\[-\]]+`, "a[\\]b", true, [][2]int{{1, 4}}},
		{`[a\-z]+`, "b-az", true, [][2]int{{1, 4}}},
		{`[-a]+|b`, "-ab", true, [][2]int{{0, 2}, {2, 3}}},
		{`[!-/:-@]+`, "a!/:@b", true, [][2]int{{1, 5}}},
		{`((?=[A-Za-z])([^a-z]))+`, "ABc1D", true, [][2]int{{0, 2}, {4, 5}}},
		{`(IMGIMG)((A|B|C){1,4})Z`, "xIMGIMGABZ", true, [][2]int{{1, 10}}},
		// \s in the "C" locale is ASCII only; non-ASCII spaces are mapped to
		// 0x0B by llama.cpp before matching.
		{`\s+`, "a\u00A0\v b", true, [][2]int{{2, 4}}},
		// Byte mode: ranges compare signed chars, so 0xD2 is not in 0-9.
		{"[\xD2A-Za-z]+", "a\xD2\xD1b", false, [][2]int{{0, 2}, {3, 4}}},
		{"[^\\s\xD2A-Za-z\xD10-9]+", "a\xD0\xD5 !b", false, [][2]int{{1, 3}, {4, 5}}},
		{"[\xD10-9]{1,3}", "1\xD13\xD1", false, [][2]int{{0, 3}, {3, 4}}},
	}
	for _, tc := range tests {
		re, err := compileECMA(tc.re, tc.wide)
		if err != nil {
			t.Errorf("compile %q: %v", tc.re, err)
			continue
		}
		got, err := re.findAll(symbols(tc.text, tc.wide))
		if err != nil {
			t.Errorf("%q on %q: %v", tc.re, tc.text, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("%q on %q: %v, want %v", tc.re, tc.text, got, tc.want)
		}
	}
}

func TestECMARegexErrors(t *testing.T) {
	for _, re := range []string{`(`, `)`, `[a`, `a{2,1}`, `*a`, `a{x}`, `\1`, `[z-a]`, `(?<x)`, `\p{Han}+`, `\`} {
		if _, err := compileECMA(re, true); err == nil {
			t.Errorf("compile %q: no error", re)
		}
	}
}

// TestPreRegexesCompile checks every pre-tokenizer regex compiles the way
// llama.cpp will run it.
func TestPreRegexesCompile(t *testing.T) {
	for name, exprs := range preRegexes {
		ps, err := newPreSplitter(exprs)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		words, err := ps.split("Hello, world! It's 12345 ünïcödé 日本語 🦙\n\n  x")
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(words) == 0 {
			t.Errorf("%s: no words", name)
		}
	}
}

// TestCustomSplittersMatchRegex checks the hand-written GPT-2 and Llama 3
// splitters against the regex engine running the same regex on the
// collapsed text, where llama.cpp's two implementations agree.
func TestCustomSplittersMatchRegex(t *testing.T) {
	texts := []string{
		"Hello world", " Hello  world ", "it's we'RE I'LL", "a\n\n b\r\n c", "12345 678", "   ", "x  \n  y",
		"!!! ?? ...", "naïve café", "日本語テキスト", "\t\tfoo\t", "a1b2c3", "'s 'S", " 'll", "🦙🚀 ok",
	}
	for _, tc := range []struct {
		expr   string
		custom splitFunc
	}{
		{regexGPT2, splitGPT2},
		{regexLlama3b, splitLlama3},
	} {
		c, err := collapseRegex(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		re, err := compileECMA(c, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range texts {
			cpts := cptsFromUTF8(s)
			want, err := splitSTL(re, collapseText(cpts), []int{len(cpts)})
			if err != nil {
				t.Fatal(err)
			}
			got := tc.custom(cpts, []int{len(cpts)})
			if !slices.Equal(got, want) {
				t.Errorf("%.20q… on %q: custom %v, regex %v", tc.expr, s, got, want)
			}
		}
	}
}

func TestUTF8Decoding(t *testing.T) {
	tests := []struct {
		in   string
		want []uint32
	}{
		{"aé日🦙", []uint32{'a', 0xE9, 0x65E5, 0x1F999}},
		{"\xff", []uint32{0xFFFD}},
		{"\x80a", []uint32{0xFFFD, 'a'}},
		{"\xc3", []uint32{0xFFFD}},             // truncated
		{"\xe6\x97", []uint32{0xFFFD, 0xFFFD}}, // truncated: each byte replaced
		{"\xc0\x80", []uint32{0}},              // overlong form accepted
		{"\xed\xa0\x80", []uint32{0xD800}},     // surrogate accepted
		{"\xf7\xbf\xbf\xbf", []uint32{0x1FFFFF}},
		{"\xf8\x88\x80\x80\x80", []uint32{0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}},
	}
	for _, tc := range tests {
		if got := cptsFromUTF8(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("cptsFromUTF8(%q) = %X, want %X", tc.in, got, tc.want)
		}
	}
	if _, err := appendCpt(nil, 0x110000); err == nil {
		t.Error("appendCpt(0x110000): no error")
	}
	if b, _ := appendCpt(nil, 0xD800); string(b) != "\xed\xa0\x80" {
		t.Errorf("appendCpt(0xD800) = %q", b)
	}
}

func TestByteToUnicode(t *testing.T) {
	if byteToUnicode[' '] != "Ġ" || byteToUnicode['\n'] != "Ċ" || byteToUnicode['a'] != "a" || byteToUnicode[0xAD] != "Ń" {
		t.Errorf("byteToUnicode: space %q newline %q a %q 0xAD %q", byteToUnicode[' '], byteToUnicode['\n'], byteToUnicode['a'], byteToUnicode[0xAD])
	}
	for b := range 256 {
		if unicodeToByte[byteToUnicode[b]] != byte(b) {
			t.Errorf("byte %#x does not round-trip", b)
		}
	}
}

// FuzzECMARegex compiles arbitrary patterns and runs them on arbitrary text:
// no panics, and matches lie inside the subject in order.
func FuzzECMARegex(f *testing.F) {
	for _, exprs := range preRegexes {
		for _, e := range exprs {
			f.Add(e, "Hello, world! 123 日本 'll  \n", true)
		}
	}
	f.Add("[\xD2A-Za-z]+|\\s+(?!\\S)", "ab \xD2 c", false)
	f.Add("(a|b)*?c{2,3}$", "ababcc", true)
	f.Fuzz(func(t *testing.T, expr, text string, wide bool) {
		if len(expr) > 200 || len(text) > 200 {
			return
		}
		re, err := compileECMA(expr, wide)
		if err != nil {
			return
		}
		subj := symbols(text, wide)
		spans, err := re.findAll(subj)
		if err != nil {
			return
		}
		prev := 0
		for _, s := range spans {
			if s[0] < prev || s[1] < s[0] || s[1] > len(subj) {
				t.Fatalf("%q on %q: bad spans %v", expr, text, spans)
			}
			prev = s[1]
		}
	})
}
