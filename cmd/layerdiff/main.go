// Command layerdiff finds where an LLM inference engine stops agreeing with
// llama.cpp. See README.md for the commands and their exit codes:
// 0 everything within tolerance, 1 divergence found, 2 bad input or usage.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"github.com/urfave/cli/v2"
)

// version is the layerdiff version written into dumps and reports.
var version = "0.1.0-dev"

// Exit codes.
const (
	exitAgree      = 0
	exitDivergence = 1
	exitBadInput   = 2
)

// divergenceError reports a completed comparison that found a divergence:
// the output is complete, the exit code is 1.
type divergenceError struct{ msg string }

func (e *divergenceError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	app := newApp()
	err := app.Run(permuteArgs(app, args))
	if err == nil {
		return exitAgree
	}
	var div *divergenceError
	if errors.As(err, &div) {
		if div.msg != "" {
			fmt.Fprintln(os.Stderr, "layerdiff:", div.msg)
		}
		return exitDivergence
	}
	fmt.Fprintln(os.Stderr, "layerdiff:", err)
	return exitBadInput
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "layerdiff",
		Usage:   "find the first layer and operation where an inference engine stops agreeing with llama.cpp",
		Version: version,
		// Errors are printed once, by run.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return fmt.Errorf("usage: %w", err)
		},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "cpuprofile", Hidden: true, Usage: "write a pprof CPU profile of the command to `FILE`"},
		},
		Before: func(c *cli.Context) error {
			p := c.String("cpuprofile")
			if p == "" {
				return nil
			}
			f, err := os.Create(p)
			if err != nil {
				return fmt.Errorf("--cpuprofile: %w", err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				f.Close()
				return fmt.Errorf("--cpuprofile %s: %w", p, err)
			}
			return nil
		},
		After: func(c *cli.Context) error {
			if c.String("cpuprofile") != "" {
				pprof.StopCPUProfile()
			}
			return nil
		},
		Commands: []*cli.Command{
			fixtureCommand(),
			inspectCommand(),
			showCommand(),
			dumpCommand(),
			runCommand(),
			compareCommand(),
			reportCommand(),
			baselineCommand(),
		},
	}
}

// tuneGC tunes the garbage collector for run and compare. The forward pass
// allocates a fresh tensor per graph node and compare releases each once
// it is measured (reference tensors are read into released ones' memory),
// so little is live (~20 MB for TinyLlama at 32 tokens) and the default
// GOGC=100 collects every few megabytes: GOGC=200 halves the collections. Measured, TinyLlama Q8_0, 32
// tokens, 2 threads, 9 interleaved runs: GOGC=50 1.50 s, 100 1.45 s, 200
// 1.37 s, 400 1.35 s, off 1.49 s (the page faults of a growing heap), peak
// RSS 1123 → 1146 MB (BENCHMARKS.md). A GOGC set by the user wins.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
}
