package pgtest

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// ownerFile, in a server's directory, holds the PID of the process that
// started the server.
const ownerFile = "owner.pid"

// reaped makes reapOrphans run once per process.
var reaped sync.Once

// writeOwner records this process as the owner of the server in dir.
func writeOwner(dir string) error {
	return os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644)
}

// reapOrphans stops and removes the servers under os.TempDir() whose owner
// process is gone. A test binary killed before Close — by its -timeout, or
// a fuzzing worker stopped by its coordinator — leaves its server running
// (pg_ctl detaches it), and on a machine that runs the suite again and
// again those servers pile up. A directory without an owner file (one
// being created, or left by an older pgtest) is left alone, and so is one
// whose owner's PID answers, even if it was reused.
func reapOrphans() {
	binDir, err := findBinDir()
	if err != nil {
		return
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		if cred, err = postgresCredential(); err != nil {
			return
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		orphan := &Server{binDir: binDir, dir: dir, cred: cred, running: true}
		_ = orphan.Close() // pg_ctl fails harmlessly when nothing runs there
	}
}
