//go:build llamacpp

// Command benchrun times one forward pass engine on a GGUF model for
// scripts/bench.sh: layerdiff's Go forward pass (ggml numerics) or the
// in-build llama.cpp, on the same deterministic tokens and thread count.
// Each engine runs in its own process so that its peak RSS (VmHWM) is its
// own. It prints one JSON object per timed repetition and a final summary
// line.
//
//	benchrun -engine go|llamacpp -model M.gguf -tokens 32 -threads 2 -reps 5
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// benchTokens returns n deterministic token ids in [1, vocab): BOS-like 1,
// then a fixed stride through the vocabulary.
func benchTokens(n, vocab int) []int32 {
	t := make([]int32, n)
	for i := range t {
		t[i] = int32(1 + (i*7919)%(vocab-1))
	}
	return t
}

// vmHWM returns the peak resident set size in kB from /proc/self/status.
func vmHWM() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("reading /proc/self/status: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			if len(f) < 2 {
				break
			}
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/self/status: no VmHWM line")
}

type result struct {
	Engine  string    `json:"engine"`
	Model   string    `json:"model"`
	Tokens  int       `json:"tokens"`
	Threads int       `json:"threads"`
	Warmup  float64   `json:"warmup_s"`
	Seconds []float64 `json:"seconds"`
	CPU     []float64 `json:"cpu_seconds"`
	Median  float64   `json:"median_s"`
	Min     float64   `json:"min_s"`
	Max     float64   `json:"max_s"`
	CPUMed  float64   `json:"cpu_median_s"`
	HWMkB   int64     `json:"peak_rss_kb"`
	Load    string    `json:"loadavg"`
}

func main() {
	engine := flag.String("engine", "go", "go or llamacpp")
	path := flag.String("model", "", "GGUF model")
	ntok := flag.Int("tokens", 32, "tokens per forward pass")
	threads := flag.Int("threads", 2, "threads (0: all cores)")
	kernels := flag.String("kernels", forward.KernelsAVX2, "kernel profile of the Go forward pass; native: the in-build llama.cpp's")
	reps := flag.Int("reps", 5, "timed repetitions (after one warm-up); 0: the warm-up pass only")
	cpuprof := flag.String("cpuprofile", "", "write a CPU profile of the timed repetitions to FILE")
	flag.Parse()
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchrun:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "benchrun:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if *kernels == "native" {
		*kernels = reference.KernelProfile(llamacpp.SystemInfo())
	}
	if err := run(*engine, *kernels, *path, *ntok, *threads, *reps); err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(engine, kernels, path string, ntok, threads, reps int) error {
	if path == "" || ntok < 1 || reps < 0 {
		return fmt.Errorf("need -model, -tokens >= 1 and -reps >= 0")
	}
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	var pass func() error
	switch engine {
	case "go":
		f, err := gguf.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		m, err := forward.Load(f)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		toks := benchTokens(ntok, m.Hparams.NVocab)
		opts := forward.DefaultOptions()
		opts.Threads = threads
		opts.Kernels = kernels
		pass = func() error {
			_, err := m.Run(toks, opts, nil)
			return err
		}
	case "llamacpp":
		llamacpp.SetVerbose(false)
		m, err := llamacpp.LoadModel(path)
		if err != nil {
			return err
		}
		defer m.Close()
		toks := benchTokens(ntok, m.NVocab())
		nctx := (ntok + 255) / 256 * 256
		c, err := llamacpp.NewContext(m, llamacpp.ContextOptions{NCtx: nctx, NBatch: nctx, Threads: threads, FlashAttn: "auto", TypeK: 1, TypeV: 1})
		if err != nil {
			return err
		}
		defer c.Close()
		none := func(string) bool { return false }
		pass = func() error { return c.Eval(toks, none, nil) }
	default:
		return fmt.Errorf("engine %q (want go or llamacpp)", engine)
	}
	r := result{Engine: engine, Model: path, Tokens: ntok, Threads: threads}
	if engine == "go" {
		r.Engine = "go/" + kernels
	}
	t0 := time.Now()
	if err := pass(); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	r.Warmup = time.Since(t0).Seconds()
	for i := 0; i < reps; i++ {
		c0 := cpuSeconds()
		t := time.Now()
		if err := pass(); err != nil {
			return fmt.Errorf("repetition %d: %w", i, err)
		}
		r.Seconds = append(r.Seconds, time.Since(t).Seconds())
		r.CPU = append(r.CPU, cpuSeconds()-c0)
	}
	if reps == 0 {
		// One cold pass, as a process that runs the model once does:
		// the caller times the whole process (bench.sh).
		r.Seconds = []float64{r.Warmup}
		r.CPU = []float64{cpuSeconds()}
	}
	s := append([]float64(nil), r.Seconds...)
	sort.Float64s(s)
	r.Min, r.Max = s[0], s[len(s)-1]
	r.Median = median(s)
	r.CPUMed = median(r.CPU)
	hwm, err := vmHWM()
	if err != nil {
		return err
	}
	r.HWMkB = hwm
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.Load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// median returns the median of v (sorted in place).
func median(v []float64) float64 {
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// cpuSeconds returns the user+system CPU time of the process so far: on a
// shared machine it shows the work done apart from the wait for a core
// (llama.cpp's threads spin at barriers, so its CPU time includes spinning).
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
