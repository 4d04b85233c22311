package pgtest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// ownerFile, in a server's directory, is locked (flock, shared) by every
// process that uses the server: the one that started it, and the test
// binaries it handed the server to (envOwner). The lock goes with the last
// of them, however it ends, and in whatever PID namespace it ran. The file
// also holds the starter's PID, for people.
const ownerFile = "owner.lock"

// envOwner names the environment variable that carries the owner file of
// the server in EnvURL to the test binaries a binary starts.
const envOwner = "PGTEST_OWNER_FILE"

// reaped makes reapOrphans run once per process at the first start.
var reaped sync.Once

// lockOwner creates dir's owner file already locked: it is written under
// another name, locked, then renamed, so a reaper never finds it unlocked.
func lockOwner(dir string) (*os.File, error) {
	tmp := filepath.Join(dir, ownerFile+".new")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", tmp, err)
	}
	if _, err := f.WriteString(strconv.Itoa(os.Getpid())); err != nil {
		f.Close()
		return nil, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, ownerFile)); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// joinOwner takes a shared lock on the owner file this process was handed
// (envOwner), so the server it uses is not reaped while it runs; the lock
// lasts as long as the process. It does nothing when none was handed.
func joinOwner() error {
	path := os.Getenv(envOwner)
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("pgtest: the server handed over in %s is gone: %w", envOwner, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		return fmt.Errorf("pgtest: lock %s: %w", path, err)
	}
	shared.joined = f // held until the process ends
	return nil
}

// reapOrphans stops and removes the servers under os.TempDir() that no
// process uses any more: those whose owner file nobody holds locked. A test
// binary killed before Close — by its -timeout, or a fuzzing worker stopped
// by its coordinator — leaves its server running (pg_ctl detaches it), and
// on a machine that runs the suite again and again those servers pile up.
// A directory without an owner file (one being created, or left by an
// older pgtest) is left alone, and so is one whose server cannot be
// stopped.
func reapOrphans() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-*"))
	for _, dir := range dirs {
		reapIfOrphan(dir)
	}
}

// reapIfOrphan stops and removes the server in dir if its owner file can
// be locked exclusively.
func reapIfOrphan(dir string) {
	f, err := os.Open(filepath.Join(dir, ownerFile))
	if err != nil {
		return
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return // in use
	}
	orphan, err := serverIn(dir)
	if err != nil {
		return
	}
	orphan.running = true
	switch postmasterOf(orphan.dataDir()) {
	case postmasterUnknown:
		return // cannot tell: keep everything
	case postmasterRunning:
		if orphan.Stop() != nil {
			return // still running: keep its files
		}
	}
	// Not running (or stopped now): a postmaster.pid left by a server that
	// died names a PID that may since be another process's, so pg_ctl
	// (which would signal it) is not asked.
	_ = os.RemoveAll(dir)
}

// Postmaster states for postmasterOf.
const (
	postmasterGone    = iota // no postmaster.pid, or its PID is not this directory's server
	postmasterRunning        // its PID is alive and works in dataDir
	postmasterUnknown        // the PID's working directory could not be read
)

// postmasterOf tells whether the server of dataDir runs: the PID in its
// postmaster.pid must be alive and have dataDir as its working directory
// (the postmaster changes into it), not merely exist.
func postmasterOf(dataDir string) int {
	pid, err := postmasterPID(dataDir)
	if err != nil {
		return postmasterGone
	}
	cwd, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "cwd"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return postmasterGone
	case err != nil:
		return postmasterUnknown
	case cwd == dataDir:
		return postmasterRunning
	}
	if real, err := filepath.EvalSymlinks(dataDir); err == nil && real == cwd {
		return postmasterRunning
	}
	return postmasterGone
}

// postmasterPID is the PID on the first line of dataDir's postmaster.pid.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err == nil && pid <= 0 {
		err = fmt.Errorf("postmaster.pid of %s: PID %d", dataDir, pid)
	}
	return pid, err
}
