//go:build llamacpp && !linux

package cdump_test

import "testing"

// captureStderr runs f. Redirecting file descriptor 2 is implemented for
// Linux only; elsewhere it returns "" and false, and the tests check exit
// statuses but not messages.
func captureStderr(t *testing.T, f func()) (string, bool) {
	t.Helper()
	f()
	return "", false
}

// captureOutput runs f and returns "", "", false (see captureStderr).
func captureOutput(t *testing.T, f func()) (stdout, stderr string, ok bool) {
	t.Helper()
	f()
	return "", "", false
}

// onTerminal returns "", false without running f: pseudo-terminals are
// only opened on Linux.
func onTerminal(t *testing.T, f func()) (string, bool) {
	t.Helper()
	return "", false
}
