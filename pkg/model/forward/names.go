package forward

import (
	"regexp"
	"strings"
)

// Version is the llama.cpp whose graph and arithmetic this package
// reproduces: the copy inside the Go module github.com/ollama/ollama
// v0.17.4.
const Version = "llama.cpp ec98e2002 (github.com/ollama/ollama v0.17.4, December 2025)"

// NameAlias relates a node name of Version to the name the same node has
// in another llama.cpp version. Names are patterns: "L" stands for the
// layer number and "N" for a node index (unnamed nodes are "node_N", N
// counting every node before them, so N differs between versions whenever
// the node count does).
type NameAlias struct {
	Ours    string // name in Version, e.g. "Qcur-L (reshaped)"
	Theirs  string // name in the other version, e.g. "Qcur-L"; "" when the node does not exist there
	Op      string // ggml op of the node
	Version string // the other version
	Note    string
}

// Versions of llama.cpp named in NameAliases.
const (
	// Version2026 is llama.cpp as of August 2026 (d32676d77 of a fork of
	// ggml-org/llama.cpp), the build behind shared/llamacpp's logs.
	Version2026 = "2026-08 (d32676d77)"
	// Version2024 is llama.cpp of mid-2024 (llm_build_kqv/llm_build_ffn in
	// src/llama.cpp), whose names many logs in the wild still show. Read
	// from that code, not checked against a build here.
	Version2024 = "2024 (llm_build_kqv era)"
)

// NameAliases lists every known difference between Version's node names
// and other versions' (see docs/names.md for how each was established).
var NameAliases = []NameAlias{
	{Ours: "inp_embd", Theirs: "embd", Op: "GET_ROWS", Version: Version2026,
		Note: "build_inp_embd names the embeddings \"embd\""},
	{Ours: "Qcur-L (reshaped)", Theirs: "Qcur-L", Op: "RESHAPE", Version: Version2026,
		Note: "the reshape is renamed by cb, so Qcur-L names the MUL_MAT, the RESHAPE and the ROPE"},
	{Ours: "Kcur-L (reshaped)", Theirs: "Kcur-L", Op: "RESHAPE", Version: Version2026,
		Note: "as Qcur"},
	{Ours: "__fattn__-L", Theirs: "node_N", Op: "FLASH_ATTN_EXT", Version: Version2026,
		Note: "the flash-attention node is unnamed"},
	{Ours: " (copy)", Theirs: "", Op: "CPY", Version: Version2026,
		Note: "the F16 copy of the KQ mask (flash attention, first layer) is gone: the mask is built in F16, so later node_N indices are one lower"},
	{Ours: "ffn_swiglu-L", Theirs: "ffn_silu-L", Op: "SWIGLU", Version: Version2024,
		Note: "SiLU and the gate product were two ops: ffn_silu-L (SILU of ffn_gate) then ffn_gate_par-L (MUL by ffn_up)"},
	{Ours: "kq_soft_max-L", Theirs: "kq_soft_max_ext-L", Op: "SOFT_MAX", Version: Version2024},
	{Ours: "kqv-L (permuted)", Theirs: "kqv_merged-L", Op: "PERMUTE", Version: Version2024},
	{Ours: "kqv_out-L", Theirs: "kqv_merged_cont-L", Op: "CONT", Version: Version2024,
		Note: "without flash attention"},
	{Ours: "attn_out-L", Theirs: "kqv_out-L", Op: "MUL_MAT", Version: Version2024,
		Note: "llm_build_kv named the output projection kqv_out: the same name now means its input"},
}

var aliasPattern = regexp.MustCompile(`-[0-9]+`)

// AliasesFor returns the names that the node named name (a name of
// Version) has in other llama.cpp versions, most recent first. Names with a
// "node_N" alias need alignment by position; it is returned literally as
// "node_N".
func AliasesFor(name string) []string {
	layer := ""
	pat := name
	if m := aliasPattern.FindStringIndex(name); m != nil {
		layer = name[m[0]+1 : m[1]]
		pat = name[:m[0]] + "-L" + name[m[1]:]
	}
	var out []string
	for _, a := range NameAliases {
		if a.Ours == pat && a.Theirs != "" {
			out = append(out, strings.Replace(a.Theirs, "-L", "-"+layer, 1))
		}
	}
	return out
}
