//go:build llamacpp

package forward

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/forward/internal/ggmlref"
)

// checkBitsRange compares a Go port with libm on every float32 whose bits lie
// in [lo, hi), in chunks.
func checkBitsRange(t *testing.T, name string, lo, hi uint32, ref func(lo uint32, out []uint32), got func(float32) float32) {
	t.Helper()
	const chunk = 1 << 22
	buf := make([]uint32, chunk)
	bad := 0
	for base := uint64(lo); base < uint64(hi); base += chunk {
		n := uint64(chunk)
		if base+n > uint64(hi) {
			n = uint64(hi) - base
		}
		ref(uint32(base), buf[:n])
		for i := uint64(0); i < n; i++ {
			x := math.Float32frombits(uint32(base + i))
			g := math.Float32bits(got(x))
			if g != buf[i] && !(math.IsNaN(float64(x))) {
				if bad < 10 {
					t.Errorf("%s(%g [%08x]) = %08x, libm %08x", name, x, uint32(base+i), g, buf[i])
				}
				bad++
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d mismatches in [%08x, %08x)", name, bad, lo, hi)
	}
}

func TestExpfMatchesLibm(t *testing.T) {
	// Every float32 in [-104, 89] and a margin: positive and negative halves.
	lo, hi := math.Float32bits(0), math.Float32bits(89)
	if !exhaustive() {
		hi = lo + 1<<24
	}
	checkBitsRange(t, "expf", lo, hi, ggmlref.ExpfBits, Expf)
	lo, hi = math.Float32bits(float32(math.Copysign(0, -1))), math.Float32bits(-105)
	if !exhaustive() {
		hi = lo + 1<<24
	}
	checkBitsRange(t, "expf", lo, hi, ggmlref.ExpfBits, Expf)
}

func TestSincosfMatchesLibm(t *testing.T) {
	// RoPE angles are pos*theta_scale^i: [0, n_ctx) in practice; test
	// [0, 2^17) fully (and negatives up to -1000) plus samples above.
	sin := func(x float32) float32 { s, _ := Sincosf(x); return s }
	cos := func(x float32) float32 { _, c := Sincosf(x); return c }
	for _, r := range [][2]float32{{0, 1 << 17}, {float32(math.Copysign(0, -1)), -1000}} {
		lo, hi := math.Float32bits(r[0]), math.Float32bits(r[1])
		if !exhaustive() {
			hi = lo + 1<<22
		}
		refS := func(lo uint32, out []uint32) { c := make([]uint32, len(out)); ggmlref.SincosfBits(lo, out, c) }
		refC := func(lo uint32, out []uint32) { s := make([]uint32, len(out)); ggmlref.SincosfBits(lo, s, out) }
		checkBitsRange(t, "sinf", lo, hi, refS, sin)
		checkBitsRange(t, "cosf", lo, hi, refC, cos)
	}
}

func TestPowfMatchesLibm(t *testing.T) {
	// RoPE: powf(base, -2/n_dims) for every plausible base and n_dims, and
	// a grid.
	var xs, ys []float32
	for _, base := range []float32{10000, 500000, 1000000, 5000000, 100000, 10000000, 1e4 * 1.5, 75000, 8000000, 2} {
		for nd := 2; nd <= 1024; nd += 2 {
			xs = append(xs, base)
			ys = append(ys, -2.0/float32(nd))
		}
	}
	for i := 0; i < 200000; i++ {
		x := float32(i)*0.37 + 0.001
		xs = append(xs, x)
		ys = append(ys, float32(i%997)/97-5)
	}
	want := ggmlref.Powf(xs, ys)
	bad := 0
	for i := range xs {
		if g := Powf(xs[i], ys[i]); math.Float32bits(g) != math.Float32bits(want[i]) {
			if bad < 10 {
				t.Errorf("powf(%g, %g) = %g, libm %g", xs[i], ys[i], g, want[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("powf: %d of %d mismatches", bad, len(xs))
	}
}

// TestLibmGoldenCapture finds inputs where glibc's expf and sincosf are not
// correctly rounded and, with -update, writes them to libm_golden_test.go
// (the pure-Go TestLibmGolden then pins the ports to glibc without cgo).
func TestLibmGoldenCapture(t *testing.T) {
	type g struct {
		fn      string
		x, want uint32
	}
	var found []g
	const n = 1 << 20
	buf := make([]uint32, n)
	lo := math.Float32bits(1)
	ggmlref.ExpfBits(lo, buf)
	cnt := 0
	for i := uint32(0); i < n && cnt < 8; i++ {
		x := math.Float32frombits(lo + i)
		if buf[i] != math.Float32bits(float32(math.Exp(float64(x)))) {
			found = append(found, g{"expf", lo + i, buf[i]})
			cnt++
		}
	}
	s, c := make([]uint32, n), make([]uint32, n)
	lo = math.Float32bits(3)
	ggmlref.SincosfBits(lo, s, c)
	cs, cc := 0, 0
	for i := uint32(0); i < n && (cs < 8 || cc < 8); i++ {
		x := float64(math.Float32frombits(lo + i))
		if cs < 8 && s[i] != math.Float32bits(float32(math.Sin(x))) {
			found = append(found, g{"sinf", lo + i, s[i]})
			cs++
		}
		if cc < 8 && c[i] != math.Float32bits(float32(math.Cos(x))) {
			found = append(found, g{"cosf", lo + i, c[i]})
			cc++
		}
	}
	if len(found) == 0 {
		t.Fatal("libm is correctly rounded on every input tried: nothing to pin")
	}
	var sb strings.Builder
	sb.WriteString("package forward\n\n// libmGolden are results of glibc 2.36's expf and sincosf (x86-64, FMA\n// variants) that differ from the correctly rounded value, captured by\n// TestLibmGoldenCapture (llamacpp tag, -update).\nvar libmGolden = []struct {\n\tfn      string\n\tx, want uint32\n}{\n")
	for _, f := range found {
		fmt.Fprintf(&sb, "\t{%q, 0x%08x, 0x%08x},\n", f.fn, f.x, f.want)
	}
	sb.WriteString("}\n")
	if *updateGolden {
		if err := os.WriteFile("libm_golden_test.go", []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, f := range found {
		ok := false
		for _, l := range libmGolden {
			if l.fn == f.fn && l.x == f.x && l.want == f.want {
				ok = true
			}
		}
		if !ok {
			t.Errorf("libm_golden_test.go lacks %v (run with -update)", f)
		}
	}
}

// exhaustive reports whether LAYERDIFF_EXHAUSTIVE asks for the full float32
// ranges (about two minutes) instead of 2^24-value samples.
func exhaustive() bool { return os.Getenv("LAYERDIFF_EXHAUSTIVE") != "" }

func TestLogfMatchesLibm(t *testing.T) {
	// YaRN: logf of RoPE scaling factors (≥ 1) and of 1/freq_scale; every
	// positive float32 when exhaustive, a slice above 1 otherwise, and the
	// special values.
	lo, hi := uint32(0), uint32(0x7f800001)
	if !exhaustive() {
		lo, hi = math.Float32bits(1), math.Float32bits(1)+1<<22
	}
	checkBitsRange(t, "logf", lo, hi, ggmlref.LogfBits, Logf)
	checkBitsRange(t, "logf", 0, 1<<16, ggmlref.LogfBits, Logf) // subnormals
	checkBitsRange(t, "logf", 0x7f7fff00, 0x7f800001, ggmlref.LogfBits, Logf)
	checkBitsRange(t, "logf", 0x80000000, 0x80000100, ggmlref.LogfBits, Logf)
}
