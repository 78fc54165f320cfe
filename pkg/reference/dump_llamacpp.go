//go:build llamacpp

package reference

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// DumpOptions configures DumpLlamaCpp.
type DumpOptions struct {
	Model     string  // GGUF file
	Prompt    string  // tokenized by llama.cpp unless Tokens is set
	Tokens    []int32 // token ids to evaluate (takes precedence over Prompt)
	NoBOS     bool    // do not add BOS/EOS when tokenizing Prompt
	Out       string  // dump directory to create
	Force     bool    // replace an existing non-empty Out
	FlashAttn string  // "auto" (default), "on" or "off"
	KVType    string  // "f16" (default) or "f32"
	Batch     int     // tokens per llama_decode call; 0 = all at once
	Threads   int     // 0 = 2
	Filter    *regexp.Regexp
	Version   string    // layerdiff version written to the manifest
	Progress  io.Writer // progress lines (nil = none)
}

// DumpLlamaCpp runs the in-build llama.cpp on a model and a prompt and writes the full
// tensor of every graph node it computes into a dump directory (see
// docs/dump-format.md). The directory is built under a temporary name beside
// Out, the manifest is written last, and it is renamed into place when
// complete: an interrupted dump leaves nothing that looks complete.
func DumpLlamaCpp(o DumpOptions) (*Manifest, error) {
	if o.Model == "" || o.Out == "" {
		return nil, errors.New("dump: a model and an output directory are required")
	}
	if err := checkOutDir(o.Out, o.Force); err != nil {
		return nil, err
	}
	interrupted, stopWatch := watchInterrupt()
	defer stopWatch()
	kvType := 1
	switch o.KVType {
	case "", "f16":
		o.KVType = "f16"
	case "f32":
		kvType = 0
	default:
		return nil, fmt.Errorf("dump: --kv-type must be f16 or f32, not %q", o.KVType)
	}
	if o.FlashAttn == "" {
		o.FlashAttn = "auto"
	}
	if o.Threads <= 0 {
		o.Threads = 2
	}
	gf, err := gguf.Open(o.Model)
	if err != nil {
		return nil, err
	}
	defer gf.Close()
	sum, size, err := FileSHA256(o.Model)
	if err != nil {
		return nil, err
	}
	fp, err := ModelFingerprint(o.Model)
	if err != nil {
		return nil, err
	}
	m, err := llamacpp.LoadModel(o.Model)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	toks := o.Tokens
	if len(toks) == 0 {
		if o.Prompt == "" {
			return nil, errors.New("dump: give a prompt or token ids")
		}
		toks, err = m.Tokenize(o.Prompt, !o.NoBOS, false)
		if err != nil {
			return nil, err
		}
		if len(toks) == 0 {
			return nil, fmt.Errorf("dump: prompt %q gives no tokens", o.Prompt)
		}
	}
	nv := m.NVocab()
	for i, t := range toks {
		if t < 0 || int(t) >= nv {
			return nil, fmt.Errorf("dump: token %d at position %d is outside the vocabulary (0..%d)", t, i, nv-1)
		}
	}
	batch := o.Batch
	if batch <= 0 || batch > len(toks) {
		batch = len(toks)
	}
	nctx := (len(toks) + 255) / 256 * 256
	ctx, err := llamacpp.NewContext(m, llamacpp.ContextOptions{NCtx: nctx, NBatch: batch, Threads: o.Threads, FlashAttn: o.FlashAttn, TypeK: kvType, TypeV: kvType})
	if err != nil {
		return nil, err
	}
	defer ctx.Close()

	parent := filepath.Dir(filepath.Clean(o.Out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	if _, err := CleanStalePartials(o.Out); err != nil {
		return nil, fmt.Errorf("dump: removing a killed dump's leftovers: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, partialPattern(filepath.Base(o.Out)))
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()

	man := &Manifest{
		Format:             FormatName,
		FormatVersion:      FormatVersion,
		LayerdiffVersion:   o.Version,
		Created:            time.Now().UTC().Format(time.RFC3339),
		LlamaCppCommit:     llamacpp.Commit,
		LlamaCppSource:     llamacpp.ModuleVersion,
		SystemInfo:         llamacpp.SystemInfo(),
		ExtraBufts:         llamacpp.ExtraBufts(),
		Model:              ModelInfo{Path: o.Model, Size: size, SHA256: sum, Fingerprint: fp, Architecture: gf.Arch(), HParams: hparams(gf)},
		Prompt:             o.Prompt,
		Tokens:             toks,
		Threads:            o.Threads,
		FlashAttnRequested: o.FlashAttn,
		TypeK:              o.KVType,
		TypeV:              o.KVType,
		NCtx:               nctx,
		NBatch:             batch,
		NUBatch:            batch,
		OutputAll:          true,
	}
	d := &dumper{dir: tmp, man: man, filter: o.Filter, stored: map[[32]byte]string{}, progress: o.Progress, start: time.Now(), lastProgress: time.Now()}
	err = ctx.Eval(toks, nil, func(n *llamacpp.Node) error {
		if interrupted() {
			return errInterrupted
		}
		return d.node(n)
	})
	if interrupted() {
		return nil, fmt.Errorf("dump %s: %w; the partial dump was removed and %s was not written", o.Model, errInterrupted, o.Out)
	}
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", o.Model, err)
	}
	man.FlashAttn = "off"
	if d.sawFlashAttn {
		man.FlashAttn = "on"
	}
	// Cross-check: the result_output rows must be llama.cpp's logits.
	if err := d.checkLogits(ctx, len(toks), batch, nv); err != nil {
		return nil, err
	}
	if err := man.Write(tmp); err != nil {
		return nil, err
	}
	if interrupted() {
		return nil, fmt.Errorf("dump %s: %w; the partial dump was removed and %s was not written", o.Model, errInterrupted, o.Out)
	}
	if err := replaceDir(tmp, o.Out, o.Force); err != nil {
		return nil, err
	}
	done = true
	if d.progress != nil {
		fmt.Fprintf(d.progress, "dump: %d nodes (%d stored) in %s -> %s\n", len(man.Nodes), d.nStored, time.Since(d.start).Round(time.Millisecond), o.Out)
	}
	return man, nil
}

type dumper struct {
	dir          string
	man          *Manifest
	filter       *regexp.Regexp
	keys         KeyMaker
	first        string              // name of the graph's first node
	stored       map[[32]byte]string // content hash -> key of the node that stored it
	progress     io.Writer
	start        time.Time
	lastProgress time.Time
	nStored      int
	sawFlashAttn bool
	ubatch       int
	logits       []float32 // result_output of every micro-batch, in order
}

func (d *dumper) node(n *llamacpp.Node) error {
	if n.Op == "FLASH_ATTN_EXT" {
		d.sawFlashAttn = true
	}
	key := d.keys.Next(n.Name)
	// A graph starts again with its first node (inp_embd) for every
	// micro-batch.
	if d.first == "" {
		d.first = n.Name
	} else if n.Name == d.first {
		d.ubatch++
	}
	mn := ManifestNode{
		Index:    len(d.man.Nodes),
		Key:      key,
		Name:     n.Name,
		Op:       n.Op,
		Src:      n.Src,
		Type:     quant.Type(n.Type).String(),
		Ne:       []int64{n.Ne[0], n.Ne[1], n.Ne[2], n.Ne[3]},
		IsView:   n.IsView,
		ViewSrc:  n.ViewSrc,
		ViewOffs: n.ViewOffs,
		UBatch:   d.ubatch,
	}
	if n.Data != nil && (d.filter == nil || d.filter.MatchString(n.Name)) {
		vals, raw, descr, err := gather(n)
		if err != nil {
			return fmt.Errorf("node %d %q: %w", mn.Index, n.Name, err)
		}
		st := ComputeStats(vals)
		mn.Stats = &st
		h := sha256.Sum256(append([]byte(descr), raw...))
		if prev, ok := d.stored[h]; ok {
			mn.DataOf = prev
		} else {
			file := NodeFileName(mn.Index, key)
			if err := writeNPYFile(filepath.Join(d.dir, file), descr, NPYShape(mn.Ne), raw); err != nil {
				return err
			}
			mn.File = file
			d.stored[h] = key
			d.nStored++
		}
		if n.Name == "result_output" {
			// One per micro-batch, each with its tokens' rows.
			d.logits = append(d.logits, vals...)
		}
	}
	d.man.Nodes = append(d.man.Nodes, mn)
	if d.progress != nil && time.Since(d.lastProgress) > 2*time.Second {
		d.lastProgress = time.Now()
		fmt.Fprintf(d.progress, "dump: %d nodes, at %s\n", len(d.man.Nodes), n.Name)
	}
	return nil
}

// checkLogits compares the result_output rows of the dump (every
// micro-batch's, concatenated) with llama_get_logits_ith, which holds the
// last llama_decode call's: its batch of up to batch tokens.
func (d *dumper) checkLogits(ctx *llamacpp.Context, ntok, batch, nv int) error {
	if d.logits == nil {
		return nil // filtered out
	}
	if len(d.logits) != ntok*nv {
		return fmt.Errorf("dump: result_output has %d values, want %d tokens x %d", len(d.logits), ntok, nv)
	}
	first := (ntok - 1) / batch * batch
	for i := first; i < ntok; i++ {
		lg := ctx.Logits(i - first)
		for j, v := range lg {
			if math.Float32bits(v) != math.Float32bits(d.logits[i*nv+j]) {
				return fmt.Errorf("dump: result_output token %d logit %d is %v but llama_get_logits_ith gives %v", i, j, d.logits[i*nv+j], v)
			}
		}
	}
	return nil
}

// gather copies a node's strided data into ggml order (ne[0] fastest) and
// returns it as float32 values, the raw bytes to store and their npy dtype:
// F32 as <f4, F16 as <f2, I32 as <i4; other types are dequantized to <f4.
func gather(n *llamacpp.Node) ([]float32, []byte, string, error) {
	t := quant.Type(n.Type)
	if !t.Known() {
		return nil, nil, "", fmt.Errorf("unknown ggml type %d", n.Type)
	}
	bs := int64(t.BlockSize())
	ne := n.Ne
	if ne[0]%bs != 0 {
		return nil, nil, "", fmt.Errorf("row of %d values is not a multiple of the %s block size %d", ne[0], t, bs)
	}
	// ggml strides count blocks: nb[0] is the block size in bytes.
	raw, err := GatherGGML(n.Data, t.BlockBytes(), []int64{ne[0] / bs, ne[1], ne[2], ne[3]}, n.Nb[:])
	if err != nil {
		return nil, nil, "", err
	}
	nrows := ne[1] * ne[2] * ne[3]
	numel := int(ne[0] * nrows)
	vals := make([]float32, numel)
	switch t {
	case quant.F32:
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return vals, raw, "<f4", nil
	case quant.F16:
		for i := range vals {
			vals[i] = quant.F16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		return vals, raw, "<f2", nil
	case quant.I32:
		for i := range vals {
			vals[i] = float32(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
		return vals, raw, "<i4", nil
	}
	if err := quant.Dequantize(t, raw, vals); err != nil {
		return nil, nil, "", err
	}
	out := make([]byte, 4*numel)
	for i, v := range vals {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return vals, out, "<f4", nil
}

// hparams collects the scalar metadata of the model's architecture
// ("<arch>.*" keys) and general.file_type.
func hparams(f *gguf.File) map[string]any {
	out := map[string]any{}
	arch := f.Arch()
	for _, kv := range f.KVs {
		if len(kv.Key) > len(arch) && kv.Key[:len(arch)+1] == arch+"." || kv.Key == "general.file_type" {
			if _, isArr := kv.Value.(gguf.Array); isArr {
				continue
			}
			out[kv.Key] = kv.Value
		}
	}
	return out
}

// checkOutDir refuses an existing non-empty directory (or any existing file)
// unless force is set.
func checkOutDir(out string, force bool) error {
	st, err := os.Stat(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		if force {
			return fmt.Errorf("dump: %s is a file, not a directory; refusing to replace it even with --force", out)
		}
		return fmt.Errorf("dump: %s exists and is a file", out)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	if len(ents) > 0 && !force {
		return fmt.Errorf("dump: %s exists and is not empty; use --force to replace it", out)
	}
	return nil
}

// replaceDir renames the complete temporary dump tmp to out. An existing out
// (empty, or replaced under force) is first moved aside and removed only after
// the new dump is in place.
func replaceDir(tmp, out string, force bool) error {
	if _, err := os.Stat(out); err == nil {
		if err := checkOutDir(out, force); err != nil {
			return err
		}
		old := tmp + ".old"
		if err := os.Rename(out, old); err != nil {
			return fmt.Errorf("dump: moving the old %s aside: %w", out, err)
		}
		if err := os.Rename(tmp, out); err != nil {
			os.Rename(old, out)
			return fmt.Errorf("dump: renaming into %s: %w", out, err)
		}
		return os.RemoveAll(old)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("dump: renaming into %s: %w", out, err)
	}
	return nil
}

// errInterrupted is returned when SIGINT or SIGTERM stops a dump.
var errInterrupted = errors.New("interrupted")

// watchInterrupt catches SIGINT and SIGTERM until stop is called:
// interrupted reports whether one arrived. After the first signal the
// default action is restored, so a second one kills the process (leaving
// the partial directory, which has no manifest and a name unlike Out).
func watchInterrupt() (interrupted func() bool, stop func()) {
	var flag atomic.Bool
	sigc := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-sigc:
			flag.Store(true)
			signal.Stop(sigc)
		case <-done:
		}
	}()
	return flag.Load, func() {
		signal.Stop(sigc)
		close(done)
	}
}
