package reference

import "strings"

// CDumperName is how the standalone C dumper (tools/llamacpp-dump) begins
// the layerdiff_version it writes: "layerdiff-dump.c 3".
const CDumperName = "layerdiff-dump.c"

// ProducerName names the program that wrote the dump, for reports:
//   - the manifest's producer, when set (another engine's capture kit);
//   - "layerdiff-dump.c N (standalone C dumper)" for the C dumper;
//   - "layerdiff V (built-in dumper)" when layerdiff_version is a layerdiff
//     version ("0.1.0", "v0.1.0", "(devel)");
//   - else layerdiff_version itself (another writer names itself there);
//   - "" when the manifest says nothing.
func (m *Manifest) ProducerName() string {
	v := strings.TrimSpace(m.LayerdiffVersion)
	switch {
	case strings.TrimSpace(m.Producer) != "":
		return strings.TrimSpace(m.Producer)
	case strings.HasPrefix(v, CDumperName):
		return v + " (standalone C dumper)"
	case isLayerdiffVersion(v):
		return "layerdiff " + v + " (built-in dumper)"
	}
	return v
}

// EngineName names what computed the dump's values: "llama.cpp COMMIT"
// when llamacpp_commit is set, "llama.cpp" for layerdiff's own dumpers
// without a commit, the producer for another writer; "" when unknown.
func (m *Manifest) EngineName() string {
	v := strings.TrimSpace(m.LayerdiffVersion)
	switch c := strings.TrimSpace(m.LlamaCppCommit); {
	case c != "":
		return "llama.cpp " + c
	case strings.TrimSpace(m.Producer) != "":
		return strings.TrimSpace(m.Producer)
	case strings.HasPrefix(v, CDumperName), isLayerdiffVersion(v):
		return "llama.cpp"
	}
	return v
}

// isLayerdiffVersion tells a version string layerdiff's Go dumper writes:
// a module version ("v0.1.0", "0.1.0-dev") or "(devel)".
func isLayerdiffVersion(v string) bool {
	if v == "(devel)" {
		return true
	}
	v = strings.TrimPrefix(v, "v")
	return v != "" && v[0] >= '0' && v[0] <= '9' && !strings.ContainsAny(v, " \t")
}
