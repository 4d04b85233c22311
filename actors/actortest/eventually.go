package actortest

import (
	"fmt"
	"testing"
	"time"
)

// Eventually polls cond every few milliseconds until it returns true, and
// fails the test if that does not happen within timeout. Use it instead of
// sleeping for asynchronous effects (timers, passivation, retries).
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			msg := "condition not met"
			if len(msgAndArgs) > 0 {
				if f, ok := msgAndArgs[0].(string); ok {
					msg = fmt.Sprintf(f, msgAndArgs[1:]...)
				}
			}
			t.Fatalf("eventually (after %v): %s", timeout, msg)
		}
		time.Sleep(wait)
		if wait < 20*time.Millisecond {
			wait *= 2
		}
	}
}
