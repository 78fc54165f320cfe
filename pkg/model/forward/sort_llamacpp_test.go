//go:build llamacpp

package forward

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// stdSortArgsort is a C++ program ordering indices as ggml's ARGSORT
// (descending, std::sort with cmp_argsort's comparison), one array per
// input line ("n x0 x1 ..."), one order per output line.
const stdSortArgsort = `#include <algorithm>
#include <cstdio>
#include <cstdint>
#include <vector>
int main() {
    int n;
    while (scanf("%d", &n) == 1) {
        std::vector<float> x(n);
        for (int i = 0; i < n; i++) scanf("%f", &x[i]);
        std::vector<int32_t> idx(n);
        for (int i = 0; i < n; i++) idx[i] = i;
        std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return x[a] > x[b]; });
        for (int i = 0; i < n; i++) printf("%d ", idx[i]);
        printf("\n");
    }
}
`

// TestSortArgsMatchesStdSort compares sortArgs with the C++ compiler's
// std::sort (the libstdc++ the in-build llama.cpp links) on 3000 arrays
// of 1 to 300 keys, most with many ties: the order ARGSORT leaves equal
// probabilities in, for any number of experts.
func TestSortArgsMatchesStdSort(t *testing.T) {
	cxx := os.Getenv("CXX")
	if cxx == "" {
		cxx = "g++"
	}
	if _, err := exec.LookPath(cxx); err != nil {
		t.Skipf("no C++ compiler: %v", err)
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "argsort.cpp"), filepath.Join(dir, "argsort")
	if err := os.WriteFile(src, []byte(stdSortArgsort), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cxx, "-O2", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cxx, err, out)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	var in bytes.Buffer
	var want []string
	for c := 0; c < 3000; c++ {
		n := 1 + rng.IntN(300)
		levels := 1 + rng.IntN(6)
		if c%3 == 0 {
			levels = 1 << 20 // (almost) distinct
		}
		x := make([]float32, n)
		fmt.Fprintf(&in, "%d", n)
		for i := range x {
			x[i] = float32(rng.IntN(levels)) / 8 // exact in decimal
			fmt.Fprintf(&in, " %g", x[i])
		}
		in.WriteString("\n")
		idx := make([]int32, n)
		for i := range idx {
			idx[i] = int32(i)
		}
		sortArgs(idx, func(a, b int32) bool { return x[a] > x[b] })
		var sb strings.Builder
		for _, v := range idx {
			fmt.Fprintf(&sb, "%d ", v)
		}
		want = append(want, sb.String())
	}
	cmd := exec.Command(bin)
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d orders, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("array %d: std::sort gives %s, sortArgs %s", i, got[i], want[i])
		}
	}
}
