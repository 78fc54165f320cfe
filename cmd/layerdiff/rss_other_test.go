//go:build !unix

package main

import "os"

// peakRSS returns 0: the peak resident set size is only read on Unix.
func peakRSS(*os.ProcessState) int64 { return 0 }
