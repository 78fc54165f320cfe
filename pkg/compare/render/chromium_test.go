package render

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromium returns a headless Chromium binary, or skips. In CI (CI=true)
// .ci/run installs Debian's chromium, and a missing browser is a failure.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LAYERDIFF_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but no chromium on PATH (.ci/run installs it)")
	}
	t.Skip("no chromium on PATH")
	return ""
}

// runChromium runs headless Chromium with a fresh profile and no network
// chatter, returning stdout.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.Bytes()
}

// TestHTMLInChromium loads each golden scenario's HTML report in headless
// Chromium: the parsed DOM must hold the verdict, the SVG plot with one mark
// per measured tensor, and the tables; and the page must render to a PNG.
func TestHTMLInChromium(t *testing.T) {
	bin := chromium(t)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			rep := sc.build(t)
			var buf bytes.Buffer
			if err := HTML(&buf, rep); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			page := filepath.Join(dir, "report.html")
			if err := os.WriteFile(page, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			dom := string(runChromium(t, bin, "--dump-dom", "file://"+page))
			if !strings.Contains(dom, "<h1>layerdiff") {
				t.Errorf("DOM has no heading:\n%.400s", dom)
			}
			verdict := strings.ToUpper(string(rep.Verdict))
			if !regexp.MustCompile(`class="verdict[^"]*">` + verdict).MatchString(dom) {
				t.Errorf("DOM does not show the verdict %s", verdict)
			}
			measured := false
			for _, r := range rep.Tensors {
				measured = measured || r.Metrics != nil
			}
			if measured && !strings.Contains(dom, "<svg") {
				t.Error("DOM has no SVG plot")
			}
			if n := strings.Count(dom, "<tr"); n < len(rep.Tensors)/2 {
				t.Errorf("DOM has %d table rows for %d tensors", n, len(rep.Tensors))
			}
			if strings.Contains(dom, "http://") && !strings.Contains(dom, "http://www.w3.org/2000/svg") {
				t.Error("page refers to an external resource")
			}
			shot := filepath.Join(dir, "shot.png")
			runChromium(t, bin, "--screenshot="+shot, "--window-size=1200,900", "file://"+page)
			png, err := os.ReadFile(shot)
			if err != nil {
				t.Fatal(err)
			}
			if len(png) < 1000 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
				t.Errorf("screenshot is %d bytes, not a PNG", len(png))
			}
		})
	}
}
