package tokenizer

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

var updateUnicode = flag.Bool("update-unicode", false, "regenerate unicode_data.go from llama.cpp's unicode-data.cpp")

// llamaCppSrc finds llama.cpp's src directory inside the ollama module that
// go.mod requires, or skips the test.
func llamaCppSrc(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/ollama/ollama").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Skipf("ollama module source not available: %v", err)
	}
	src := filepath.Join(dir, "llama", "llama.cpp", "src")
	if _, err := os.Stat(filepath.Join(src, "unicode-data.cpp")); err != nil {
		t.Skipf("llama.cpp source not available: %v", err)
	}
	return src
}

// llamaUnicodeData holds the tables of unicode-data.cpp.
type llamaUnicodeData struct {
	rangesFlags [][2]uint32
	whitespace  []uint32
	lowercase   [][2]uint32
	uppercase   [][2]uint32
	nfd         [][3]uint32
}

func parseUnicodeData(t *testing.T, path string) *llamaUnicodeData {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hex := regexp.MustCompile(`0x[0-9A-Fa-f]+`)
	d := &llamaUnicodeData{}
	section := ""
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		switch {
		case strings.Contains(s, "unicode_ranges_flags"):
			section = "flags"
			continue
		case strings.Contains(s, "unicode_set_whitespace"):
			section = "ws"
			continue
		case strings.Contains(s, "unicode_map_lowercase"):
			section = "lower"
			continue
		case strings.Contains(s, "unicode_map_uppercase"):
			section = "upper"
			continue
		case strings.Contains(s, "unicode_ranges_nfd"):
			section = "nfd"
			continue
		case strings.HasPrefix(s, "};"):
			section = ""
			continue
		}
		if section == "" {
			continue
		}
		var v []uint32
		for _, h := range hex.FindAllString(s, -1) {
			x, err := strconv.ParseUint(h[2:], 16, 32)
			if err != nil {
				t.Fatalf("%s:%d: %v", path, line, err)
			}
			v = append(v, uint32(x))
		}
		want := map[string]int{"flags": 2, "ws": 1, "lower": 2, "upper": 2, "nfd": 3}[section]
		if len(v) == 0 {
			continue
		}
		if len(v) != want {
			t.Fatalf("%s:%d: %d numbers in %s entry, want %d: %q", path, line, len(v), section, want, s)
		}
		switch section {
		case "flags":
			d.rangesFlags = append(d.rangesFlags, [2]uint32{v[0], v[1]})
		case "ws":
			d.whitespace = append(d.whitespace, v[0])
		case "lower":
			d.lowercase = append(d.lowercase, [2]uint32{v[0], v[1]})
		case "upper":
			d.uppercase = append(d.uppercase, [2]uint32{v[0], v[1]})
		case "nfd":
			d.nfd = append(d.nfd, [3]uint32{v[0], v[1], v[2]})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(d.rangesFlags) < 100 || len(d.whitespace) == 0 || len(d.lowercase) < 100 || len(d.uppercase) < 100 || len(d.nfd) < 100 {
		t.Fatalf("%s: tables look truncated: %d ranges, %d whitespace, %d lower, %d upper, %d nfd", path,
			len(d.rangesFlags), len(d.whitespace), len(d.lowercase), len(d.uppercase), len(d.nfd))
	}
	return d
}

// flagsArray is unicode_cpt_flags_array.
func (d *llamaUnicodeData) flagsArray(t *testing.T) []cptFlags {
	a := make([]cptFlags, maxCodepoints)
	for i := range a {
		a[i] = flagUndefined
	}
	if d.rangesFlags[0][0] != 0 || d.rangesFlags[len(d.rangesFlags)-1][0] != maxCodepoints {
		t.Fatalf("ranges do not span [0, %#x]", maxCodepoints)
	}
	for i := 1; i < len(d.rangesFlags); i++ {
		for c := d.rangesFlags[i-1][0]; c < d.rangesFlags[i][0]; c++ {
			a[c] = cptFlags(d.rangesFlags[i-1][1])
		}
	}
	for _, c := range d.whitespace {
		a[c] |= flagWhitespace
	}
	for _, p := range d.lowercase {
		a[p[1]] |= flagLowercase
	}
	for _, p := range d.uppercase {
		a[p[1]] |= flagUppercase
	}
	for _, r := range d.nfd {
		a[r[2]] |= flagNFD
	}
	return a
}

// TestUnicodeData checks that the ported tables give llama.cpp's flags for
// every code point and its lowercase map, and regenerates unicode_data.go
// with -update-unicode.
func TestUnicodeData(t *testing.T) {
	src := llamaCppSrc(t)
	d := parseUnicodeData(t, filepath.Join(src, "unicode-data.cpp"))
	want := d.flagsArray(t)
	if *updateUnicode {
		writeUnicodeData(t, want, d.lowercase)
		t.Log("unicode_data.go rewritten; run the test again to check it")
		return
	}
	bad := 0
	for c := uint32(0); c < maxCodepoints; c++ {
		if got := flagsOf(c); got != want[c] {
			if bad++; bad <= 10 {
				t.Errorf("U+%04X: flags %#04x, llama.cpp %#04x", c, got, want[c])
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d code points differ (regenerate with -update-unicode)", bad)
	}
	if len(unicodeMapLowercase) != len(d.lowercase) {
		t.Fatalf("%d lowercase pairs, llama.cpp has %d", len(unicodeMapLowercase), len(d.lowercase))
	}
	for i, p := range d.lowercase {
		if unicodeMapLowercase[i] != p {
			t.Fatalf("lowercase pair %d: %v, llama.cpp %v", i, unicodeMapLowercase[i], p)
		}
		if i > 0 && d.lowercase[i-1][0] >= p[0] {
			t.Fatalf("llama.cpp's lowercase map is not strictly ascending at %d", i)
		}
	}
	for _, c := range []uint32{maxCodepoints, 0x1FFFFF, 0xFFFFFFFF} {
		if flagsOf(c) != flagUndefined {
			t.Errorf("flags of %#x: %#x, want UNDEFINED", c, flagsOf(c))
		}
	}
}

func writeUnicodeData(t *testing.T, flags []cptFlags, lower [][2]uint32) {
	var b bytes.Buffer
	b.WriteString("// Code generated by TestUnicodeData -update-unicode from llama.cpp's src/unicode-data.cpp; DO NOT EDIT.\n\n")
	b.WriteString("package model\n\n")
	b.WriteString("// flagRun gives the flags of the code points from start to the next run's start.\n")
	b.WriteString("type flagRun struct {\n\tstart uint32\n\tflags uint16\n}\n\n")
	b.WriteString("// unicodeFlagRuns is unicode_cpt_flags_array (unicode_ranges_flags with the\n")
	b.WriteString("// whitespace, lowercase, uppercase and NFD bits applied), run-length encoded.\n")
	b.WriteString("var unicodeFlagRuns = [...]flagRun{\n")
	n := 0
	for c := 0; c < len(flags); c++ {
		if c > 0 && flags[c] == flags[c-1] {
			continue
		}
		fmt.Fprintf(&b, "{0x%06X, 0x%04X},", c, uint16(flags[c]))
		if n++; n%5 == 0 {
			b.WriteString("\n")
		} else {
			b.WriteString(" ")
		}
	}
	b.WriteString("\n}\n\n")
	b.WriteString("// unicodeMapLowercase is unicode_map_lowercase, ascending by code point.\n")
	b.WriteString("var unicodeMapLowercase = [...][2]uint32{\n")
	for i, p := range lower {
		fmt.Fprintf(&b, "{0x%06X, 0x%06X},", p[0], p[1])
		if (i+1)%5 == 0 {
			b.WriteString("\n")
		} else {
			b.WriteString(" ")
		}
	}
	b.WriteString("\n}\n")
	out, err := format.Source(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("unicode_data.go", out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestUnicodeDiffersFromGo records why the tables are ported: llama.cpp's
// unicode-data.cpp is Unicode 15.1, and Go's unicode package may be another
// version (15.0 in Go 1.26), so their categories differ on some code points,
// which changes how a pre-tokenizer splits text.
func TestUnicodeDiffersFromGo(t *testing.T) {
	tests := []struct {
		cpt    rune
		flags  cptFlags
		reason string
	}{
		{0x2EBF0, flagLetter, "CJK Unified Ideographs Extension I (Unicode 15.1) is \\p{L}"},
		{0x2FFC, flagSymbol, "ideographic description character added in Unicode 15.1 is \\p{S}"},
		{0x31EF, flagSymbol, "CJK stroke added in Unicode 15.1 is \\p{S}"},
		{0x85, flagControl | flagWhitespace, "NEXT LINE is a control and \\s"},
		{0xA0, flagSeparator | flagWhitespace, "NO-BREAK SPACE is \\p{Z} and \\s"},
		{0x200B, flagControl, "ZERO WIDTH SPACE is a format control, not \\s"},
		{0x0041, flagLetter | flagUppercase | flagNFD, "A"},
	}
	for _, tc := range tests {
		if got := flagsOf(uint32(tc.cpt)); got != tc.flags {
			t.Errorf("U+%04X (%s): flags %#x, want %#x", tc.cpt, tc.reason, got, tc.flags)
		}
	}
	// Count the code points where Go and llama.cpp disagree on the
	// categories the pre-tokenizers use.
	diff := map[string]int{}
	for c := rune(0); c < maxCodepoints; c++ {
		f := flagsOf(uint32(c))
		if f.isLetter() != unicode.IsLetter(c) {
			diff["L"]++
		}
		if f.isNumber() != unicode.IsNumber(c) {
			diff["N"]++
		}
		if f.isPunctuation() != unicode.IsPunct(c) {
			diff["P"]++
		}
		if f.isSymbol() != unicode.IsSymbol(c) {
			diff["S"]++
		}
		if f.isAccentMark() != unicode.IsMark(c) {
			diff["M"]++
		}
		if f.isWhitespace() != unicode.IsSpace(c) {
			diff["space"]++
		}
	}
	t.Logf("code points where Go's unicode %s and llama.cpp's tables differ: %v", unicode.Version, diff)
}
