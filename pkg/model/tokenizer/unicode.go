package tokenizer

import (
	"fmt"
	"sort"
	"sync"
)

// This file ports the parts of llama.cpp's src/unicode.cpp that its
// tokenizers use: llama.cpp's own UTF-8 decoder (which differs from Go's on
// invalid input), its code point category flags (built from the tables of
// unicode-data.cpp, ported to unicode_data.go, rather than from Go's unicode
// package, whose Unicode version and whitespace set differ), unicode_tolower
// and the GPT-2 byte-to-unicode mapping.

// cptFlags is llama.cpp's unicode_cpt_flags packed as in its uint16 form.
type cptFlags uint16

// Flag bits of unicode_cpt_flags (unicode.h).
const (
	flagUndefined   cptFlags = 0x0001
	flagNumber      cptFlags = 0x0002 // \p{N}
	flagLetter      cptFlags = 0x0004 // \p{L}
	flagSeparator   cptFlags = 0x0008 // \p{Z}
	flagAccentMark  cptFlags = 0x0010 // \p{M}
	flagPunctuation cptFlags = 0x0020 // \p{P}
	flagSymbol      cptFlags = 0x0040 // \p{S}
	flagControl     cptFlags = 0x0080 // \p{C}
	flagCategories  cptFlags = 0x00FF
	flagWhitespace  cptFlags = 0x0100 // \s
	flagLowercase   cptFlags = 0x0200
	flagUppercase   cptFlags = 0x0400
	flagNFD         cptFlags = 0x0800
)

func (f cptFlags) isNumber() bool      { return f&flagNumber != 0 }
func (f cptFlags) isLetter() bool      { return f&flagLetter != 0 }
func (f cptFlags) isWhitespace() bool  { return f&flagWhitespace != 0 }
func (f cptFlags) isPunctuation() bool { return f&flagPunctuation != 0 }
func (f cptFlags) isSymbol() bool      { return f&flagSymbol != 0 }
func (f cptFlags) isAccentMark() bool  { return f&flagAccentMark != 0 }
func (f cptFlags) category() cptFlags  { return f & flagCategories }

// maxCodepoints is MAX_CODEPOINTS of unicode-data.h.
const maxCodepoints = 0x110000

// cptFlagsTable expands unicodeFlagRuns into one entry per code point, as
// unicode_cpt_flags_array does.
var cptFlagsTable = sync.OnceValue(func() []cptFlags {
	t := make([]cptFlags, maxCodepoints)
	for i, r := range unicodeFlagRuns {
		end := uint32(maxCodepoints)
		if i+1 < len(unicodeFlagRuns) {
			end = unicodeFlagRuns[i+1].start
		}
		for c := r.start; c < end; c++ {
			t[c] = cptFlags(r.flags)
		}
	}
	return t
})

// flagsOf is unicode_cpt_flags_from_cpt: code points beyond the table are
// UNDEFINED.
func flagsOf(cpt uint32) cptFlags {
	if cpt < maxCodepoints {
		return cptFlagsTable()[cpt]
	}
	return flagUndefined
}

// toLower is unicode_tolower: a binary search of llama.cpp's lowercase map.
func toLower(cpt uint32) uint32 {
	i := sort.Search(len(unicodeMapLowercase), func(i int) bool { return unicodeMapLowercase[i][0] >= cpt })
	if i < len(unicodeMapLowercase) && unicodeMapLowercase[i][0] == cpt {
		return unicodeMapLowercase[i][1]
	}
	return cpt
}

// isHan is unicode_cpt_is_han.
func isHan(cpt uint32) bool {
	switch {
	case cpt >= 0x4E00 && cpt <= 0x9FFF,
		cpt >= 0x3400 && cpt <= 0x4DBF,
		cpt >= 0x20000 && cpt <= 0x2A6DF,
		cpt >= 0x2A700 && cpt <= 0x2B73F,
		cpt >= 0x2B740 && cpt <= 0x2B81F,
		cpt >= 0x2B820 && cpt <= 0x2CEAF,
		cpt >= 0x2CEB0 && cpt <= 0x2EBEF,
		cpt >= 0xF900 && cpt <= 0xFAFF,
		cpt >= 0x2F800 && cpt <= 0x2FA1F:
		return true
	}
	return false
}

// utf8Len is unicode_len_utf8: the sequence length announced by a lead byte
// (1 for continuation bytes).
func utf8Len(b byte) int {
	return [16]int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4}[b>>4]
}

// replacementChar is what llama.cpp decodes an invalid byte to.
const replacementChar = 0xFFFD

// decodeCpt is unicode_cpt_from_utf8: it accepts overlong forms, surrogates
// and values up to 0x1FFFFF, and reports ok=false where llama.cpp throws.
func decodeCpt(s string, off int) (cpt uint32, n int, ok bool) {
	b0 := s[off]
	cont := func(i int) bool { return off+i < len(s) && s[off+i]&0xC0 == 0x80 }
	switch {
	case b0&0x80 == 0:
		return uint32(b0), 1, true
	case b0&0x40 == 0:
		return 0, 0, false
	case b0&0x20 == 0:
		if !cont(1) {
			return 0, 0, false
		}
		return uint32(b0&0x1F)<<6 | uint32(s[off+1]&0x3F), 2, true
	case b0&0x10 == 0:
		if !cont(1) || !cont(2) {
			return 0, 0, false
		}
		return uint32(b0&0x0F)<<12 | uint32(s[off+1]&0x3F)<<6 | uint32(s[off+2]&0x3F), 3, true
	case b0&0x08 == 0:
		if !cont(1) || !cont(2) || !cont(3) {
			return 0, 0, false
		}
		return uint32(b0&0x07)<<18 | uint32(s[off+1]&0x3F)<<12 | uint32(s[off+2]&0x3F)<<6 | uint32(s[off+3]&0x3F), 4, true
	}
	return 0, 0, false
}

// cptsFromUTF8 is unicode_cpts_from_utf8: every byte that does not start a
// sequence llama.cpp accepts becomes U+FFFD and decoding resumes at the next
// byte.
func cptsFromUTF8(s string) []uint32 {
	out := make([]uint32, 0, len(s))
	for off := 0; off < len(s); {
		c, n, ok := decodeCpt(s, off)
		if !ok {
			out = append(out, replacementChar)
			off++
			continue
		}
		out = append(out, c)
		off += n
	}
	return out
}

// appendCpt is unicode_cpt_to_utf8 appending to dst. Like llama.cpp it encodes
// surrogates, and fails for code points above U+10FFFF.
func appendCpt(dst []byte, cpt uint32) ([]byte, error) {
	switch {
	case cpt <= 0x7F:
		return append(dst, byte(cpt)), nil
	case cpt <= 0x7FF:
		return append(dst, 0xC0|byte(cpt>>6&0x1F), 0x80|byte(cpt&0x3F)), nil
	case cpt <= 0xFFFF:
		return append(dst, 0xE0|byte(cpt>>12&0x0F), 0x80|byte(cpt>>6&0x3F), 0x80|byte(cpt&0x3F)), nil
	case cpt <= 0x10FFFF:
		return append(dst, 0xF0|byte(cpt>>18&0x07), 0x80|byte(cpt>>12&0x3F), 0x80|byte(cpt>>6&0x3F), 0x80|byte(cpt&0x3F)), nil
	}
	return dst, fmt.Errorf("invalid code point U+%X (llama.cpp's unicode_cpt_to_utf8 throws)", cpt)
}

// byteToUnicode is GPT-2's bytes_to_unicode as unicode_byte_to_utf8_map
// builds it: printable bytes map to themselves, the others to U+0100 onwards.
var byteToUnicode, unicodeToByte = func() ([256]string, map[string]byte) {
	var enc [256]string
	dec := make(map[string]byte, 256)
	keep := func(c int) bool { return c >= 0x21 && c <= 0x7E || c >= 0xA1 && c <= 0xAC || c >= 0xAE && c <= 0xFF }
	n := 0
	for c := 0; c < 256; c++ {
		cpt := uint32(c)
		if !keep(c) {
			cpt = uint32(256 + n)
			n++
		}
		b, _ := appendCpt(nil, cpt)
		enc[c] = string(b)
		dec[string(b)] = byte(c)
	}
	return enc, dec
}()
