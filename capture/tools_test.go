package capture_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/internal/testtools"
	"time"
)

// python and cargo find the kits' tools (a skip without them, a failure
// under CI, where .ci/run installs them).
var (
	python = testtools.NumpyPython
	cargo  = testtools.Cargo
)

// run runs a command in dir and returns its combined output; it fails the
// test on a non-zero exit unless wantErr.
func run(t *testing.T, dir string, wantErr bool, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if (err != nil) != wantErr {
		t.Fatalf("%s %s: err %v (want error %v)\n%s", name, strings.Join(args, " "), err, wantErr, out.String())
	}
	return out.String()
}
