package pipeline

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/model/tokenizer"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// RunOptions configure Run.
type RunOptions struct {
	CompareOptions
	// Prompt is tokenized by layerdiff's tokenizer when the reference does
	// not record token ids; Tokens, when set, are used instead.
	Prompt string
	Tokens []int32
	NoBOS  bool
	// Numerics is "ggml" (default) or "f64".
	Numerics string
	// Kernels is the kernel profile the ggml numerics emulate
	// (forward.KernelProfiles); "" chooses the reference's own (see
	// ChooseKernels).
	Kernels string
	// CrossKernel is "auto" (or ""), "on" or "off". In the cross-kernel
	// mode (cross.go) each op is judged from the reference's own inputs
	// against bounds for differing kernels. "auto" uses it when the ggml
	// numerics cannot emulate the reference's kernel profile, the reference
	// has full tensors, and the policy is nil or the ggml mode's.
	CrossKernel string
	// FlashAttn is "auto" (follow the reference; llama.cpp's CPU default,
	// on, when it does not say), "on" or "off".
	FlashAttn string
	// KVType is "auto" or "" (the reference's, when a dump records it;
	// else f16), "f16" or "f32".
	KVType  string
	Threads int
	// Inject perturbs named activations of the forward pass.
	Inject []Injection
	// Isolate recomputes every op from the reference's inputs, not only the
	// ops up to the first divergence.
	Isolate bool
	// NodeFilter limits which forward nodes are kept in memory (nil: all).
	NodeFilter *regexp.Regexp
	// HashModel checks the model file by its full SHA-256 (seconds for
	// gigabytes) against the reference's sha256, instead of by the cheap
	// fingerprint (reference.ModelFingerprint), and records it in the
	// report.
	HashModel bool
	// FullHashLimit is the model size up to which the whole file is hashed
	// anyway when the reference records a sha256 (exact, and cheap for
	// small files); 0 means FullHashBytes, negative never.
	FullHashLimit int64
	// Timings, when set, is told how long each phase took: "load" (open,
	// model check, tokens), "forward", "compare" (the compare runs while
	// the forward pass does; this is the time it took beyond the forward
	// pass, blame included).
	Timings func(phase string, d time.Duration)
}

// Run evaluates the model with layerdiff's forward pass on the reference's
// tokens and compares every activation with the reference.
func Run(ref reference.Source, modelPath string, o RunOptions) (*compare.Report, error) {
	start := time.Now()
	phase := func(name string) {
		if o.Timings != nil {
			now := time.Now()
			o.Timings(name, now.Sub(start))
			start = now
		}
	}
	info := ref.Describe()
	f, err := gguf.Open(modelPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	limit := o.FullHashLimit
	if limit == 0 {
		limit = FullHashBytes
	}
	if err := checkStructure(ref, f); err != nil {
		return nil, err
	}
	ident, err := checkModel(info, f, o.HashModel, limit)
	if err != nil {
		return nil, err
	}
	m, err := forward.Load(f)
	if err != nil {
		return nil, err
	}
	toks, err := runTokens(f, info, o)
	if err != nil {
		return nil, err
	}
	fo := forward.DefaultOptions()
	fo.Threads = o.Threads
	if fo.UBatches, err = microBatches(info.Path, ref.Nodes(), len(toks)); err != nil {
		return nil, err
	}
	if o.Numerics != "" {
		fo.Numerics = o.Numerics
	}
	refKernels := reference.KernelProfile(info.SystemInfo)
	kc, err := ChooseKernels(o.Kernels, refKernels)
	if err != nil {
		return nil, err
	}
	fo.Kernels = kc.Emulated
	cross, err := useCrossKernel(o, kc, fo.Numerics, ref.Nodes())
	if err != nil {
		return nil, err
	}
	switch o.FlashAttn {
	case "", "auto":
		fo.FlashAttn = info.FlashAttn != "off"
	case "on":
		fo.FlashAttn = true
	case "off":
		fo.FlashAttn = false
	default:
		return nil, fmt.Errorf("--flash-attn must be auto, on or off, not %q", o.FlashAttn)
	}
	kv := o.KVType
	if kv == "" || kv == "auto" {
		kv = refKVType(ref)
	}
	switch kv {
	case "", "f16":
		fo.KVType = quant.F16
	case "f32":
		fo.KVType = quant.F32
	default:
		if o.KVType == "" || o.KVType == "auto" {
			return nil, fmt.Errorf("the reference's KV cache type %s is not one layerdiff's forward pass has (f16, f32)", kv)
		}
		return nil, fmt.Errorf("--kv-type must be auto, f16 or f32, not %q", kv)
	}
	inj, err := newInjector(o.Inject)
	if err != nil {
		return nil, err
	}
	if inj != nil {
		fo.Inject = inj
	}
	nodes, err := m.Nodes(len(toks), fo)
	if err != nil {
		return nil, err
	}
	// The forward pass runs while Compare measures: each activation is
	// compared as soon as it is computed and then released, so memory holds
	// a few activations instead of all of them.
	ours := newStreamSide(nodes, o.NodeFilter)
	var rec forward.Recorder = ours
	var crossInj *crossInjector
	if cross {
		// Every op from the reference's inputs: the run records our op's
		// output and passes the reference's value on.
		crossInj = &crossInjector{user: inj, keys: offerKeys{keys: nodeKeys{filter: o.NodeFilter}}, ref: SideOf(ref)}
		crossInj.target = crossTargets(ref.Nodes(), crossInj.ref, ours.nodes)
		fo.Inject = crossInj
		rec = crossRecorder{streamSide: ours, inj: crossInj}
	}
	ours.regen = func(key string) (*tensor.Tensor, error) {
		ro := fo
		if inj != nil {
			// A fresh injector: the blamer may be using the run's.
			fresh, err := newInjector(o.Inject)
			if err != nil {
				return nil, err
			}
			ro.Inject = fresh
		}
		return recomputeOne(m, toks, ro, o.NodeFilter, key)
	}
	if cross {
		ours.regen = nil // a released local result is not recomputed
	}
	phase("load")
	fwdStart := time.Now()
	fwdDone := make(chan struct{})
	var fwdErr error
	var fwdTime time.Duration
	go func() {
		defer close(fwdDone)
		_, fwdErr = m.Run(toks, fo, rec)
		fwdTime = time.Since(fwdStart)
		if fwdErr == nil && inj != nil {
			// Checked now: the blamer's runs reset the injector.
			fwdErr = inj.unused()
		}
		ours.finish(fwdErr)
	}()
	// waitForward returns once the forward pass has ended, with its error.
	waitForward := func() error {
		<-fwdDone
		return fwdErr
	}

	warn := append([]string(nil), o.Warnings...)
	warn = append(warn, info.Warnings...)
	if ident.warning != "" {
		warn = append([]string{ident.warning}, warn...)
	}
	emulated := fo.Kernels
	if fo.Numerics == forward.NumericsF64 {
		emulated = "" // the exact computation emulates no kernels
	}
	label := forwardLabel(fo.Numerics, emulated, cross, len(o.Inject) > 0)
	switch {
	case fo.Numerics == forward.NumericsF64:
	case cross:
		warn = append(warn, fmt.Sprintf("reference kernels %s, emulated kernels %s: cross-kernel mode, each op judged from the reference's own inputs against the bounds of docs/tolerance.md", kc.Reference, kc.Emulated))
	case kc.Note != "":
		warn = append(warn, kc.Note)
	}
	meta := compare.Meta{
		Reference: sourceMeta(ref, ""),
		Other:     compare.Source{Label: label, Format: "forward", Model: modelPath, ModelSHA256: ident.sha256, ModelFingerprint: ident.fingerprint, Kernels: emulated},
		Tokens:    toks,
		Prompt:    info.Prompt,
		Tool:      o.Tool,
	}
	if meta.Prompt == "" {
		meta.Prompt = o.Prompt
	}
	pol := o.Policy
	if cross {
		var force compare.Override
		if pol != nil {
			force = pol.Force
		}
		pol = CrossKernelPolicy(ref.Nodes(), f, len(toks), kc.Reference, kc.Emulated, force)
	}
	if pol == nil {
		pol, err = compare.DefaultPolicy(fo.Numerics)
		if err != nil {
			ours.halt()
			<-fwdDone
			return nil, err
		}
	}
	blamer := o.Blamer
	if blamer == nil {
		iso := &isolationBlamer{model: m, tokens: toks, opts: fo, user: inj, all: o.Isolate, filter: o.NodeFilter}
		blamer = iso
		if cross {
			blamer = &crossBlamer{iso: iso}
		}
	}
	// Blame only after the forward pass: the isolation run must not share
	// the injector or the CPUs with it, and a failed pass is Run's error.
	afterForward := compare.BlamerFunc(func(d *compare.Divergence, env *compare.BlameEnv) (*compare.Blame, error) {
		if err := waitForward(); err != nil {
			return nil, err
		}
		return blamer.Blame(d, env)
	})
	// A flash-attention reference against a forward pass without it
	// (--flash-attn off): the reference's attention nodes are derived.
	var ourNames []string
	for _, n := range ours.nodes {
		ourNames = append(ourNames, n.Name)
	}
	cmpRef, dw := withDerivedAttention(ref, ourNames)
	warn = append(warn, dw...)
	rep, err := compare.Compare(SideOf(cmpRef), ours, compare.Options{
		Policy: pol, Meta: meta, Filter: o.Filter, Blamer: afterForward, Warnings: warn,
	})
	if err != nil {
		ours.halt()
	}
	<-fwdDone
	if o.Timings != nil {
		o.Timings("forward", fwdTime)
		o.Timings("compare", time.Since(fwdStart)-fwdTime)
	}
	if err != nil {
		return nil, err
	}
	if fwdErr != nil {
		return nil, fwdErr
	}
	if !cross && fo.Numerics == forward.NumericsGGML {
		kernelHint(rep, kc)
	}
	nameAdvice(rep, "reference", info.Path)
	if crossInj != nil && crossInj.err != nil {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("cross-kernel mode: a reference tensor could not be read, so its op's successors were computed from layerdiff's value: %v", crossInj.err))
	}
	return rep, nil
}

// kernelHint explains a first divergence that looks like a kernel
// difference rather than a bug — a tiny nmse over a few elements, or in an
// op whose reductions kernels order differently — and names the mode that
// judges it (a reference recorded by another build or CPU than its
// system_info says, or one without system_info).
func kernelHint(rep *compare.Report, kc KernelChoice) {
	d := rep.FirstDivergence
	if d == nil || rep.Blame == nil || d.Row >= len(rep.Tensors) {
		return
	}
	row := rep.Tensors[d.Row]
	m := row.Metrics
	if m == nil || row.Partial || m.N == 0 || float64(m.NMSE) > 1e-8 {
		return
	}
	op := row.Op
	reduces := strings.Contains(op, "MUL_MAT") || op == "FLASH_ATTN_EXT" || op == "SOFT_MAX" || strings.Contains(op, "GLU") || op == "RMS_NORM" || op == "SUM_ROWS"
	few := m.Mismatches*100 <= m.N
	if !reduces && !few {
		return
	}
	text := fmt.Sprintf("%s (%s) differs by nmse %s in %d of %d elements: the size of a last-bit difference between kernels, not of a wrong op. Reference kernels %s, emulated %s",
		row.Name, op, compare.FormatFloat(float64(m.NMSE), 2), m.Mismatches, m.N, kc.Reference, kc.Emulated)
	if kc.Exact {
		text += "; if the reference ran another build or CPU than its system_info says, judge with --mode cross-kernel (docs/tolerance.md)"
	} else {
		text += "; --mode cross-kernel judges each op from the reference's inputs (docs/tolerance.md)"
	}
	rep.Blame.Hints = append([]compare.Hint{{Kind: "kernel-difference", Text: text, Value: m.NMSE}}, rep.Blame.Hints...)
}

// refKVType is the K cache type a dump records ("" when the reference
// does not say: logs, .npy directories).
func refKVType(ref reference.Source) string {
	if d, ok := ref.(*reference.Dump); ok && d.Manifest != nil {
		return d.Manifest.TypeK
	}
	return ""
}

// useCrossKernel decides whether Run judges in the cross-kernel mode.
func useCrossKernel(o RunOptions, kc KernelChoice, numerics string, nodes []reference.NodeInfo) (bool, error) {
	switch o.CrossKernel {
	case "", "auto":
		return numerics == forward.NumericsGGML && !kc.Exact && hasFullData(nodes) &&
			(o.Policy == nil || o.Policy.Mode == compare.ModeGGML), nil
	case "on":
		if numerics != forward.NumericsGGML {
			return false, fmt.Errorf("the cross-kernel mode judges the ggml numerics, not %s", numerics)
		}
		if !hasFullData(nodes) {
			return false, fmt.Errorf("the cross-kernel mode needs a reference with full tensors (a dump or an .npy directory), not a text log")
		}
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("cross-kernel must be auto, on or off, not %q", o.CrossKernel)
}

// graphRuns counts how many times a reference's graph starts: the nodes
// named like its first node (inp_embd), one per micro-batch (a prompt
// split over llama_decode calls or n_ubatch, or generated tokens).
func graphRuns(nodes []reference.NodeInfo) (int, string) {
	if len(nodes) == 0 {
		return 0, ""
	}
	first := nodes[0].Name
	n := 0
	for _, nd := range nodes {
		if nd.Name == first {
			n++
		}
	}
	return n, first
}

// microBatches returns the token counts of the reference's micro-batches,
// read from the shape {n_embd, T} of each graph's first node, for the
// forward pass to split the same way; nil when the graph ran once. The
// counts must add up to the prompt's tokens (a log that also decodes
// generated tokens does not).
func microBatches(path string, nodes []reference.NodeInfo, nTokens int) ([]int, error) {
	n, first := graphRuns(nodes)
	if n <= 1 {
		return nil, nil
	}
	var sizes []int
	sum := 0
	for _, nd := range nodes {
		if nd.Name != first {
			continue
		}
		ne := tensor.Trim(nd.Ne)
		t := int64(1)
		if len(ne) >= 2 {
			t = ne[1]
		}
		if len(ne) > 2 || t <= 0 || t > int64(nTokens) {
			return nil, fmt.Errorf("%s: the graph starts %d times (at %q, one micro-batch each), but %q has shape %s, not {n_embd, tokens}", path, n, first, first, tensor.ShapeString(nd.Ne))
		}
		sizes = append(sizes, int(t))
		sum += int(t)
	}
	if sum != nTokens {
		return nil, fmt.Errorf("%s: the graph starts %d times (at %q) for %d tokens in all, not the prompt's %d: the reference decoded more than the prompt (generated tokens?); make it with the prompt alone", path, n, first, sum, nTokens)
	}
	return sizes, nil
}

// FullHashBytes is the default RunOptions.FullHashLimit: the model size up
// to which run checks the whole file's SHA-256 (when the reference records
// one) instead of the fingerprint.
const FullHashBytes = 256 << 20

// modelIdentity is what Run learned about the identity of its model file.
type modelIdentity struct {
	sha256      string // our file's SHA-256, "" when not computed
	fingerprint string // our file's fingerprint, "" when not computed
	warning     string // "MODEL MISMATCH: ...", or a note that no check was possible; "" when none
}

// checkModel compares the model file f with the one the reference was made
// from, as cheaply as the reference allows:
//
//   - full (--hash-model): the whole file's SHA-256, compared with the
//     reference's sha256 when it records one (else with its fingerprint);
//   - the file is at most fullLimit bytes and the reference records a
//     sha256: the whole file's SHA-256 (exact, cheap at that size);
//   - the reference records a fingerprint: ours, by reading the metadata
//     and a few KiB per tensor;
//   - it records only a sha256 (dumps older than fingerprints): the whole
//     file's SHA-256;
//   - it records neither (text logs, .npy directories): nothing is read.
//
// A fingerprint of a version this layerdiff does not compute is treated as
// absent.
func checkModel(info reference.Info, f *gguf.File, full bool, fullLimit int64) (modelIdentity, error) {
	var id modelIdentity
	refFP := info.ModelFingerprint
	if refFP != "" && !strings.HasPrefix(refFP, reference.FingerprintVersion+":") {
		if info.ModelSHA256 == "" {
			id.warning = fmt.Sprintf("model not checked: the reference records a model fingerprint of another version (%s), this layerdiff computes %s", refFP, reference.FingerprintVersion)
		}
		refFP = ""
	}
	// A small file is hashed whole when the reference has its sha256: exact,
	// and cheaper than a tenth of a second; the fingerprint's sampling is
	// for the gigabytes.
	small := info.ModelSHA256 != "" && f.Size <= fullLimit
	bySHA := full || small || (refFP == "" && info.ModelSHA256 != "")
	if bySHA {
		sha, _, err := reference.FileSHA256(f.Path)
		if err != nil {
			return id, err
		}
		id.sha256 = sha
		if info.ModelSHA256 != "" {
			if sha != info.ModelSHA256 {
				id.warning = fmt.Sprintf("MODEL MISMATCH: the reference was made from %s (sha256 %s), not from %s (sha256 %s)", info.ModelPath, info.ModelSHA256, f.Path, sha)
			}
			return id, nil
		}
	}
	if refFP == "" {
		return id, nil
	}
	r, err := os.Open(f.Path)
	if err != nil {
		return id, fmt.Errorf("model fingerprint: %w", err)
	}
	defer r.Close()
	fp, err := reference.FingerprintFile(f, r)
	if err != nil {
		return id, err
	}
	id.fingerprint = fp
	if fp != refFP {
		id.warning = fmt.Sprintf("MODEL MISMATCH: the reference was made from %s (fingerprint %s), not from %s (fingerprint %s)", info.ModelPath, refFP, f.Path, fp)
	}
	return id, nil
}

// structuralKeys are the hyperparameters ("<arch>." + key) that fix a
// model's graph: a model that differs in one of them is not the dump's,
// perturbed, but another model, whose graph cannot be compared.
var structuralKeys = []string{"block_count", "embedding_length", "feed_forward_length", "attention.head_count", "attention.head_count_kv",
	"attention.key_length", "attention.value_length", "rope.dimension_count", "vocab_size", "expert_count", "expert_used_count"}

// checkStructure refuses a model whose graph-shaping hyperparameters
// differ from those the reference dump records (a different model, not a
// perturbed one: a changed weight, RoPE base or epsilon, or the same graph
// under another architecture's name, is only a MODEL MISMATCH warning). References that record none
// (logs, .npy directories) are not checked.
func checkStructure(ref reference.Source, f *gguf.File) error {
	d, ok := ref.(*reference.Dump)
	if !ok || d.Manifest == nil || d.Manifest.Model.Architecture == "" {
		return nil
	}
	mi := d.Manifest.Model
	arch := f.Arch()
	var diffs []string
	for _, k := range structuralKeys {
		rv, inRef := mi.HParams[mi.Architecture+"."+k]
		want, ok := rv.(float64) // JSON numbers
		if !inRef || !ok {
			continue
		}
		key := arch + "." + k
		got, err := f.Int(key)
		if !f.Has(key) || err != nil {
			continue // optional keys (vocab_size) are derived when absent
		}
		if float64(got) != want {
			diffs = append(diffs, fmt.Sprintf("%s %g, not %d", k, want, got))
		}
	}
	if len(diffs) > 0 && mi.Architecture != arch {
		// (the same graph under another architecture's name is a RoPE or
		// naming bug to find, not another model)
		diffs = append([]string{fmt.Sprintf("architecture %s, not %s", mi.Architecture, arch)}, diffs...)
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("wrong model: %s was made from %s (%s); %s is another model, whose graph cannot be compared with it", d.Describe().Path, mi.Path, strings.Join(diffs, ", "), f.Path)
}

// runTokens picks the token ids: the caller's, else the reference's, else
// the prompt tokenized by layerdiff's tokenizer.
func runTokens(f *gguf.File, info reference.Info, o RunOptions) ([]int32, error) {
	if len(o.Tokens) > 0 {
		if len(info.Tokens) > 0 && !sameTokens(o.Tokens, info.Tokens) {
			return nil, &TokenMismatchError{A: info.Path + " (reference)", B: "--tokens", TokA: info.Tokens, TokB: o.Tokens}
		}
		return o.Tokens, nil
	}
	var fromPrompt []int32
	if o.Prompt != "" {
		v, err := tokenizer.VocabFromGGUF(f)
		if err != nil {
			return nil, err
		}
		tk, err := tokenizer.NewTokenizer(v)
		if err != nil {
			return nil, err
		}
		fromPrompt, err = tk.Encode(o.Prompt, !o.NoBOS, false)
		if err != nil {
			return nil, fmt.Errorf("tokenizing the prompt: %w", err)
		}
	}
	if len(info.Tokens) > 0 {
		if fromPrompt != nil && !sameTokens(fromPrompt, info.Tokens) {
			return nil, &TokenMismatchError{A: info.Path + " (reference)", B: "--prompt tokenized by layerdiff", TokA: info.Tokens, TokB: fromPrompt}
		}
		return info.Tokens, nil
	}
	if fromPrompt == nil {
		return nil, ErrNoTokens
	}
	return fromPrompt, nil
}
