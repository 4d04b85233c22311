package pgtest

import (
	"os"
	"strconv"
	"syscall"
)

// keepDescriptorsFromChildren marks every open descriptor of this process
// above stderr close-on-exec, so a server started from it holds none of
// them. Go opens its own files close-on-exec, but a process can be handed
// descriptors that are not: a fuzzing worker gets its pipes to the
// coordinator as descriptors 3 and 4. A PostgreSQL started from such a
// worker kept both pipes open after the worker was stopped, so the
// coordinator never saw them close and `go test -fuzz` hung until the
// test binary's timeout (chaos.TestShortFuzzRuns, 2 December 2026).
func keepDescriptorsFromChildren() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return // not Linux: nothing to read the list from
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}
