package main

import (
	"os"
	"strings"
	"testing"
)

// docBlock is one ```sh code block of a Markdown page.
type docBlock struct {
	Line  int      // 1-based line of the opening fence
	Needs []string // the fence's needs=a,b: features the block waits for
	Text  string   // the block's lines, newline-terminated
}

// shBlocks returns the ```sh blocks of the Markdown file at path, in order.
// A fence "```sh needs=compare-names" marks a block that needs a feature
// that may not exist yet; other words after "sh" are ignored.
func shBlocks(path string) ([]docBlock, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []docBlock
	var cur *docBlock
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			f := strings.Fields(strings.TrimPrefix(trimmed, "```"))
			if len(f) == 0 || f[0] != "sh" {
				// another language: skip to its closing fence
				cur = &docBlock{Line: -1}
				continue
			}
			cur = &docBlock{Line: i + 1}
			for _, w := range f[1:] {
				if v, ok := strings.CutPrefix(w, "needs="); ok {
					cur.Needs = append(cur.Needs, strings.Split(v, ",")...)
				}
			}
		case cur != nil && trimmed == "```":
			if cur.Line > 0 {
				out = append(out, *cur)
			}
			cur = nil
		case cur != nil:
			cur.Text += line + "\n"
		}
	}
	return out, nil
}

// runnable reports whether every feature b needs is in have.
func (b docBlock) runnable(have map[string]bool) bool {
	for _, n := range b.Needs {
		if !have[n] {
			return false
		}
	}
	return true
}

// TestEnginesDocBlocks checks the extraction of docs/engines.md's shell
// blocks: the walk-through's steps are there, in order, the compare with a
// names file marked as needing --names.
func TestEnginesDocBlocks(t *testing.T) {
	blocks, err := shBlocks("../../docs/engines.md")
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, b := range blocks {
		for _, step := range []string{"layerdiff fixture", "layerdiff dump", "numpy_llama.py", "layerdiff compare", "layerdiff show"} {
			if strings.Contains(b.Text, step) && (len(steps) == 0 || steps[len(steps)-1] != step) {
				steps = append(steps, step)
			}
		}
		if strings.Contains(b.Text, "--names \"") != (strings.Join(b.Needs, ",") == "compare-names") {
			t.Errorf("docs/engines.md:%d: a compare with a names file must be marked needs=compare-names (needs %v)", b.Line, b.Needs)
		}
	}
	got := strings.Join(steps, " | ")
	for _, want := range []string{"layerdiff fixture", "layerdiff dump", "numpy_llama.py", "layerdiff compare", "layerdiff show"} {
		if !strings.Contains(got, want) {
			t.Errorf("docs/engines.md has no block with %q (steps: %s)", want, got)
		}
	}
	if len(blocks) < 5 {
		t.Errorf("found %d sh blocks; the parser or the page changed", len(blocks))
	}
}

// TestShBlocks checks the fence parsing on a small page.
func TestShBlocks(t *testing.T) {
	page := "text\n```sh\na\nb\n```\n```python\nnot sh\n```\n  ```sh needs=x,y other\nc\n  ```\n```sh\n"
	p := t.TempDir() + "/p.md"
	if err := os.WriteFile(p, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	blocks, err := shBlocks(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 2 {
		t.Fatalf("got %d blocks, want 2 (an unclosed block is dropped): %+v", len(blocks), blocks)
	}
	if blocks[0].Line != 2 || blocks[0].Text != "a\nb\n" || len(blocks[0].Needs) != 0 {
		t.Errorf("block 0: %+v", blocks[0])
	}
	if blocks[1].Line != 9 || blocks[1].Text != "c\n" || strings.Join(blocks[1].Needs, ",") != "x,y" {
		t.Errorf("block 1: %+v", blocks[1])
	}
	if blocks[1].runnable(map[string]bool{"x": true}) || !blocks[1].runnable(map[string]bool{"x": true, "y": true}) {
		t.Error("runnable: want true only with every need")
	}
}
