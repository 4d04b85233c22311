package clustertest

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestPausedQueueHostCallsNoTokenUnknown pauses (SIGSTOP) the node running
// the queue manager until the manager has moved, issues tokens through the
// other nodes, and resumes it: its copy of the manager is stale and its
// node has not seen the change yet, but none of those tokens may be
// answered 401 there (they were, by every request for up to 12 s, before
// the queue manager confirmed with the journal before calling a token
// unknown). Each token asks to read a reservation of another user, so an
// accepted token is 403 TOKEN_USER_MISMATCH; a retry (503) is allowed.
func TestPausedQueueHostCallsNoTokenUnknown(t *testing.T) {
	skipUnlessLong(t)
	c := newCluster(t, 3, longEnv...)
	c.startAll()
	paused := c.queueHost(c.nodes...)
	var others []*proc
	for _, p := range c.nodes {
		if p != paused {
			others = append(others, p)
		}
	}
	_, seats := c.concert(others[0], 1, 10)
	var owner struct{ ID int64 }
	c.must(201, others[0], "POST", "/users", "", map[string]any{"name": "owner"}, &owner)
	var ot struct{ Token string }
	c.must(200, others[0], "POST", "/users/token", "", map[string]any{"userId": owner.ID}, &ot)
	var r struct{ ID int64 }
	c.must(200, others[0], "POST", "/reservations", ot.Token, map[string]any{"userId": owner.ID, "seatId": seats[0]}, &r)
	probe := fmt.Sprintf("/reservations/%d", r.ID)
	const fans = 100
	ids := make([]int64, fans)
	for i := range ids {
		var u struct{ ID int64 }
		c.must(201, others[0], "POST", "/users", "", map[string]any{"name": fmt.Sprint("fan", i)}, &u)
		ids[i] = u.ID
	}

	if err := paused.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = paused.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	defer resume()
	waitFor(t, 60*time.Second, "the queue manager to move off the paused node", func() bool {
		return c.queueHost(others...) != nil
	})
	tokens := make([]string, fans)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				var tok struct{ Token string }
				if st, _ := c.call(others[i%2], "POST", "/users/token", "", map[string]any{"userId": ids[i]}, &tok); st == 200 {
					tokens[i] = tok.Token
					return
				}
			}
			t.Errorf("fan %d got no token from the new queue manager within 60 s", i)
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	resume()

	counts := map[string]int{}
	var mu sync.Mutex
	for range 10 {
		for i := range tokens {
			wg.Go(func() {
				st, body := c.call(paused, "GET", probe, tokens[i], nil, nil)
				mu.Lock()
				counts[fmt.Sprintf("%d %s", st, codeOf(body))]++
				mu.Unlock()
			})
		}
		wg.Wait()
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("the resumed node's answers to %d tokens issued while it was paused: %v", fans, counts)
	for k, n := range counts {
		if k != "403 TOKEN_USER_MISMATCH" && k != "503 STORE_UNAVAILABLE" {
			t.Errorf("%d answers %q, want 403 TOKEN_USER_MISMATCH (or a 503 to retry)", n, k)
		}
	}
	if counts["403 TOKEN_USER_MISMATCH"] == 0 {
		t.Error("the resumed node accepted none of the tokens")
	}
}
