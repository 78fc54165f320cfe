package reference

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// A dump is written into a hidden directory beside its target,
// ".NAME.partial-PID-RANDOM", and renamed into place when complete. A dump
// killed before that (SIGKILL, a crash, a power cut) leaves the directory
// behind; the next dump of the same target removes those whose process is
// gone.

// partialPattern is the os.MkdirTemp pattern of a partial dump of base
// written by this process.
func partialPattern(base string) string {
	return "." + base + ".partial-" + strconv.Itoa(os.Getpid()) + "-"
}

// CleanStalePartials removes the partial dumps of target (its hidden
// ".NAME.partial-PID-*" siblings) whose writing process no longer runs,
// and returns the paths it removed. Partial dumps of a running process
// (another dump of the same target) are left alone, as are names it does
// not recognise.
func CleanStalePartials(target string) ([]string, error) {
	target = filepath.Clean(target)
	parent, base := filepath.Dir(target), filepath.Base(target)
	ents, err := os.ReadDir(parent)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	prefix := "." + base + ".partial-"
	var removed []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		p := filepath.Join(parent, e.Name())
		if err := os.RemoveAll(p); err != nil {
			return removed, err
		}
		removed = append(removed, p)
	}
	return removed, nil
}

// processAlive reports whether a process with this id exists (signal 0:
// permission errors mean it does).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
