package pipeline

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// checkFixture writes a small F32 fixture and returns its path, SHA-256
// and fingerprint.
func checkFixture(t *testing.T) (path, sha, fp string) {
	t.Helper()
	c := fixture.Default("llama")
	c.Embd, c.FF, c.Heads, c.KVHeads, c.VocabSize = 64, 128, 4, 2, 300
	path = filepath.Join(t.TempDir(), "m.gguf")
	if err := fixture.Generate(c, path); err != nil {
		t.Fatal(err)
	}
	sha, _, err := reference.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	if fp, err = reference.ModelFingerprint(path); err != nil {
		t.Fatal(err)
	}
	return path, sha, fp
}

// TestCheckModel checks which identity checkModel computes for each kind of
// reference, and when it warns.
func TestCheckModel(t *testing.T) {
	path, sha, fp := checkFixture(t)
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const (
		otherSHA = "0000000000000000000000000000000000000000000000000000000000000000"
		otherFP  = "v1:1111111111111111111111111111111111111111111111111111111111111111"
		futureFP = "v2:2222222222222222222222222222222222222222222222222222222222222222"
	)
	cases := []struct {
		name      string
		refSHA    string
		refFP     string
		full      bool   // --hash-model
		limit     int64  // hash the whole file up to this size (0: never)
		wantSHA   bool   // our SHA-256 computed
		wantFP    bool   // our fingerprint computed
		wantWarn  string // prefix of the warning; "" none
		wantNames []string
	}{
		{name: "neither recorded (text log): nothing read"},
		{name: "neither recorded, --hash-model", full: true, wantSHA: true},
		{name: "fingerprint matches", refSHA: sha, refFP: fp, wantFP: true},
		{name: "fingerprint differs", refSHA: sha, refFP: otherFP, wantFP: true,
			wantWarn: "MODEL MISMATCH", wantNames: []string{"fingerprint " + otherFP, "fingerprint " + fp}},
		{name: "fingerprint only, matches", refFP: fp, wantFP: true},
		{name: "sha256 only (older dump), matches", refSHA: sha, wantSHA: true},
		{name: "sha256 only (older dump), differs", refSHA: otherSHA, wantSHA: true,
			wantWarn: "MODEL MISMATCH", wantNames: []string{"sha256 " + otherSHA, "sha256 " + sha}},
		{name: "--hash-model: sha256 decides over a matching fingerprint", refSHA: otherSHA, refFP: fp, full: true, wantSHA: true,
			wantWarn: "MODEL MISMATCH", wantNames: []string{"sha256 " + otherSHA}},
		{name: "--hash-model: sha256 matches", refSHA: sha, refFP: otherFP, full: true, wantSHA: true},
		{name: "--hash-model, fingerprint only", refFP: otherFP, full: true, wantSHA: true, wantFP: true,
			wantWarn: "MODEL MISMATCH", wantNames: []string{"fingerprint " + otherFP}},
		{name: "without --hash-model a stale sha256 is not read", refSHA: otherSHA, refFP: fp, wantFP: true},
		{name: "fingerprint of another version, sha256 recorded", refSHA: sha, refFP: futureFP, wantSHA: true},
		{name: "fingerprint of another version only", refFP: futureFP,
			wantWarn: "model not checked", wantNames: []string{futureFP}},
		{name: "fingerprint of another version only, --hash-model", refFP: futureFP, full: true, wantSHA: true,
			wantWarn: "model not checked", wantNames: []string{futureFP}},
		{name: "small file: hashed whole, matches", refSHA: sha, refFP: fp, limit: 1 << 30, wantSHA: true},
		{name: "small file: a change the fingerprint cannot see is caught by the sha256", refSHA: otherSHA, refFP: fp, limit: 1 << 30, wantSHA: true,
			wantWarn: "MODEL MISMATCH", wantNames: []string{"sha256 " + otherSHA, "sha256 " + sha}},
		{name: "small file, fingerprint only: fingerprint", refFP: fp, limit: 1 << 30, wantFP: true},
		{name: "file above the limit: fingerprint", refSHA: sha, refFP: fp, limit: 1000, wantFP: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			info := reference.Info{ModelPath: "ref.gguf", ModelSHA256: c.refSHA, ModelFingerprint: c.refFP}
			id, err := checkModel(info, f, c.full, c.limit)
			if err != nil {
				t.Fatal(err)
			}
			if (id.sha256 != "") != c.wantSHA || (id.sha256 != "" && id.sha256 != sha) {
				t.Errorf("our sha256 %q, want computed = %v (%s)", id.sha256, c.wantSHA, sha)
			}
			if (id.fingerprint != "") != c.wantFP || (id.fingerprint != "" && id.fingerprint != fp) {
				t.Errorf("our fingerprint %q, want computed = %v (%s)", id.fingerprint, c.wantFP, fp)
			}
			switch {
			case c.wantWarn == "" && id.warning != "":
				t.Errorf("unexpected warning %q", id.warning)
			case c.wantWarn != "" && !strings.HasPrefix(id.warning, c.wantWarn):
				t.Errorf("warning %q, want one starting %q", id.warning, c.wantWarn)
			}
			for _, s := range c.wantNames {
				if !strings.Contains(id.warning, s) {
					t.Errorf("warning %q does not name %q", id.warning, s)
				}
			}
		})
	}
}

// infoSource is a reference that describes itself as info and lists one
// node without values.
type infoSource struct{ info reference.Info }

func (s *infoSource) Describe() reference.Info { return s.info }

func (s *infoSource) Nodes() []reference.NodeInfo {
	return []reference.NodeInfo{{Key: "inp_embd", Name: "inp_embd", Op: "GET_ROWS", Type: "f32", Ne: []int64{64, 3}, Data: reference.NoData}}
}

func (s *infoSource) Load(key string) (*tensor.Tensor, error) {
	return nil, reference.ErrNoData
}

// TestRunModelCheck checks that Run puts a fingerprint mismatch first
// among the report's warnings and records both fingerprints, and that a
// matching fingerprint neither warns nor hashes the whole file.
func TestRunModelCheck(t *testing.T) {
	path, sha, fp := checkFixture(t)
	const wrong = "v1:1111111111111111111111111111111111111111111111111111111111111111"
	for _, c := range []struct {
		name     string
		refFP    string
		hash     bool
		mismatch bool
	}{
		{"right fingerprint", fp, false, false},
		{"wrong fingerprint", wrong, false, true},
		{"right fingerprint, --hash-model", fp, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ref := &infoSource{reference.Info{Kind: reference.KindDump, Path: "mem", Tokens: []int32{1, 5, 9},
				ModelPath: "ref.gguf", ModelSHA256: sha, ModelFingerprint: c.refFP}}
			rep, err := Run(ref, path, RunOptions{Threads: 1, HashModel: c.hash, FullHashLimit: -1})
			if err != nil {
				t.Fatal(err)
			}
			all := strings.Join(rep.Warnings, "\n")
			if got := strings.Contains(all, "MODEL MISMATCH"); got != c.mismatch {
				t.Errorf("MODEL MISMATCH warned = %v, want %v; warnings:\n%s", got, c.mismatch, all)
			}
			if c.mismatch && (len(rep.Warnings) == 0 || !strings.Contains(rep.Warnings[0], "fingerprint "+wrong) || !strings.Contains(rep.Warnings[0], "fingerprint "+fp)) {
				t.Errorf("first warning does not name both fingerprints; warnings:\n%s", all)
			}
			// --hash-model checks (and records) the sha256 instead of the
			// fingerprint.
			wantSHA, wantFP := "", fp
			if c.hash {
				wantSHA, wantFP = sha, ""
			}
			if rep.Meta.Reference.ModelFingerprint != c.refFP || rep.Meta.Other.ModelFingerprint != wantFP {
				t.Errorf("report fingerprints: reference %q, other %q; want %q, %q", rep.Meta.Reference.ModelFingerprint, rep.Meta.Other.ModelFingerprint, c.refFP, wantFP)
			}
			if rep.Meta.Other.ModelSHA256 != wantSHA {
				t.Errorf("our model_sha256 %q, want %q", rep.Meta.Other.ModelSHA256, wantSHA)
			}
		})
	}
}

// TestCheckStructure: a model of another graph shape than the dump records
// is refused with one line naming the differences; the same model, one
// with another RoPE base or epsilon (a perturbation) or the same graph
// under another architecture's name is not.
func TestCheckStructure(t *testing.T) {
	gen := func(edit func(*fixture.Config)) *gguf.File {
		c := fixture.Default("llama")
		c.Embd, c.FF, c.Heads, c.KVHeads, c.VocabSize = 64, 128, 4, 2, 300
		edit(&c)
		path := filepath.Join(t.TempDir(), "m.gguf")
		if err := fixture.Generate(c, path); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	base := gen(func(*fixture.Config) {})
	hp := map[string]any{}
	for _, kv := range base.KVs {
		if strings.HasPrefix(kv.Key, "llama.") {
			if v, err := base.Int(kv.Key); err == nil {
				hp[kv.Key] = float64(v) // as a manifest read from JSON holds it
			}
		}
	}
	dump := &reference.Dump{Dir: "d", Manifest: &reference.Manifest{Model: reference.ModelInfo{Path: "m.gguf", Architecture: "llama", HParams: hp}}}
	for _, c := range []struct {
		name string
		edit func(*fixture.Config)
		want string // "" for accepted
	}{
		{"same", func(*fixture.Config) {}, ""},
		{"rope base", func(c *fixture.Config) { c.RopeBase = 20000 }, ""},
		{"rms eps", func(c *fixture.Config) { c.RMSEps = 1e-3 }, ""},
		{"layers", func(c *fixture.Config) { c.Layers = 3 }, "block_count 2, not 3"},
		{"heads", func(c *fixture.Config) { c.Heads, c.KVHeads = 8, 4 }, "attention.head_count 4, not 8, attention.head_count_kv 2, not 4"},
		// the same graph under another name: a rope-mode bug to find
		{"architecture only", func(c *fixture.Config) { c.Arch = "qwen2" }, ""},
		{"architecture and layers", func(c *fixture.Config) { c.Arch, c.Layers = "qwen2", 3 }, "architecture llama, not qwen2, block_count 2, not 3"},
	} {
		err := checkStructure(dump, gen(c.edit))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "wrong model: ")):
			t.Errorf("%s: %v, want a wrong-model error saying %q", c.name, err, c.want)
		}
	}
}
