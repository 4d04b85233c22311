package actors

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concert/ticketing/messages"
)

func TestTokenTable(t *testing.T) {
	tt := NewTokenTable()
	now := wqNow()
	if _, ok := tt.Check("nope", now); ok {
		t.Fatal("unknown token found")
	}
	a := tt.put("a", 1, 10, messages.TokenStatus_TOKEN_WAIT, false, now.UnixNano())
	b := tt.put("b", 2, 20, messages.TokenStatus_TOKEN_ACTIVE, false, now.UnixNano())
	if tt.Waiting() != 1 || tt.Active() != 1 {
		t.Fatalf("waiting %d active %d", tt.Waiting(), tt.Active())
	}

	// A check of a WAIT token is not a use.
	later := now.Add(time.Minute)
	got, ok := tt.Check("a", later)
	if !ok || got != (TokenCheck{TokenID: 1, UserID: 10, Status: messages.TokenStatus_TOKEN_WAIT}) {
		t.Fatalf("check a: %+v %v", got, ok)
	}
	if a.last.Load() != now.UnixNano() {
		t.Fatal("a WAIT check counted as a use")
	}
	// A check of an ACTIVE token is, and never moves the clock back.
	if got, _ := tt.Check("b", later); got.Status != messages.TokenStatus_TOKEN_ACTIVE || got.UserID != 20 {
		t.Fatalf("check b: %+v", got)
	}
	if b.last.Load() != later.UnixNano() {
		t.Fatal("an ACTIVE check was not recorded")
	}
	tt.Check("b", now)
	if b.last.Load() != later.UnixNano() {
		t.Fatal("an older check moved the last use back")
	}

	tt.setStatus(a, messages.TokenStatus_TOKEN_ACTIVE, false)
	tt.setStatus(b, messages.TokenStatus_TOKEN_EXPIRED, true)
	if tt.Waiting() != 0 || tt.Active() != 1 {
		t.Fatalf("waiting %d active %d", tt.Waiting(), tt.Active())
	}
	if got, _ := tt.Check("b", later); got.Status != messages.TokenStatus_TOKEN_EXPIRED || !got.PaidExpired {
		t.Fatalf("paid expiry: %+v", got)
	}
	// Replacing an entry keeps the counters right.
	tt.put("a", 1, 10, messages.TokenStatus_TOKEN_WAIT, false, now.UnixNano())
	if tt.Waiting() != 1 || tt.Active() != 0 {
		t.Fatalf("after replace: waiting %d active %d", tt.Waiting(), tt.Active())
	}
	tt.retain(func(token string) bool { return token == "b" })
	if _, ok := tt.Check("a", now); ok || tt.Waiting() != 0 {
		t.Fatal("retain kept a")
	}
	tt.remove("b")
	if _, ok := tt.Check("b", now); ok {
		t.Fatal("removed token found")
	}
}

// TestTokenTableConcurrent races readers against the single writer.
func TestTokenTableConcurrent(t *testing.T) {
	tt := NewTokenTable()
	const n = 2000
	start := make(chan struct{})
	var done atomic.Bool
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			<-start
			for i := 0; !done.Load(); i++ {
				tt.Check(fmt.Sprintf("t%d", (i*7+r)%n), time.Now())
				tt.Waiting()
			}
		})
	}
	close(start)
	entries := make([]*tokenEntry, n)
	for i := range n {
		entries[i] = tt.put(fmt.Sprintf("t%d", i), int64(i), int64(i), messages.TokenStatus_TOKEN_WAIT, false, 0)
	}
	for i := range n {
		tt.setStatus(entries[i], messages.TokenStatus_TOKEN_ACTIVE, false)
		if i%2 == 0 {
			tt.remove(fmt.Sprintf("t%d", i))
		}
	}
	done.Store(true)
	wg.Wait()
	if tt.Waiting() != 0 || tt.Active() != n/2 {
		t.Fatalf("waiting %d active %d", tt.Waiting(), tt.Active())
	}
}

// BenchmarkTokenTableCheck measures validation on the request path: many
// goroutines checking ACTIVE tokens among 100,000 live ones.
func BenchmarkTokenTableCheck(b *testing.B) {
	tt := NewTokenTable()
	const n = 100_000
	tokens := make([]string, n)
	now := time.Now()
	for i := range tokens {
		tokens[i] = fmt.Sprintf("tok-%032x", i*2654435761)
		st := messages.TokenStatus_TOKEN_WAIT
		if i%10 == 0 {
			st = messages.TokenStatus_TOKEN_ACTIVE
		}
		tt.put(tokens[i], int64(i), int64(i), st, false, now.UnixNano())
	}
	var seed atomic.Int64
	b.SetParallelism(16) // many goroutines per core, as under HTTP load
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(7919))
		for pb.Next() {
			i += 10 // mostly ACTIVE tokens: the ones that record a use
			if _, ok := tt.Check(tokens[i%n], time.Now()); !ok {
				b.Error("token not found")
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
}
