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
