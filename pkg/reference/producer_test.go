package reference

import "testing"

func TestProducerAndEngine(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		version, commit, producer string
		wantProducer, wantEngine  string
	}{
		{"built-in dumper", "0.1.0-dev", "ec98e2002", "", "layerdiff 0.1.0-dev (built-in dumper)", "llama.cpp ec98e2002"},
		{"built-in, module version", "v0.2.1", "b6123", "", "layerdiff v0.2.1 (built-in dumper)", "llama.cpp b6123"},
		{"built-in, devel", "(devel)", "", "", "layerdiff (devel) (built-in dumper)", "llama.cpp"},
		{"C dumper", "layerdiff-dump.c 3", "d32676d77", "", "layerdiff-dump.c 3 (standalone C dumper)", "llama.cpp d32676d77"},
		{"C dumper without a commit", "layerdiff-dump.c 3", "", "", "layerdiff-dump.c 3 (standalone C dumper)", "llama.cpp"},
		{"third party with a producer", "", "", "my-engine 0.3 (layerdiff capture/python 1)", "my-engine 0.3 (layerdiff capture/python 1)", "my-engine 0.3 (layerdiff capture/python 1)"},
		{"producer wins over the version", "1.0", "", " rust-kit 2 ", "rust-kit 2", "rust-kit 2"},
		{"third party in layerdiff_version", "my-engine 0.3", "", "", "my-engine 0.3", "my-engine 0.3"},
		{"nothing said", "", "", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &Manifest{LayerdiffVersion: tc.version, LlamaCppCommit: tc.commit, Producer: tc.producer}
			if got := m.ProducerName(); got != tc.wantProducer {
				t.Errorf("ProducerName %q, want %q", got, tc.wantProducer)
			}
			if got := m.EngineName(); got != tc.wantEngine {
				t.Errorf("EngineName %q, want %q", got, tc.wantEngine)
			}
		})
	}
}

// TestManifestProducerField: the optional producer is read from JSON and
// describes the dump's engine and producer.
func TestManifestProducerField(t *testing.T) {
	m, err := decodeManifest([]byte(`{"format": "layerdiff-dump", "format_version": 1, "layerdiff_version": "", "producer": "my-engine 0.3 (layerdiff capture/python 1)", "nodes": []}`), "manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	if m.Producer != "my-engine 0.3 (layerdiff capture/python 1)" {
		t.Errorf("producer %q", m.Producer)
	}
	d := &Dump{Dir: "engine", Manifest: m}
	if info := d.Describe(); info.Producer != m.Producer || info.Engine != m.Producer || info.Format != "layerdiff-dump v1" {
		t.Errorf("Describe: engine %q, producer %q, format %q", info.Engine, info.Producer, info.Format)
	}
}
