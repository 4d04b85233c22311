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
	a := newTokenEntry(1, 10, now.UnixNano())
	b := newTokenEntry(2, 20, now.UnixNano())
	if _, ok := tt.Check("a", now); ok {
		t.Fatal("an entry not published is visible")
	}
	tt.publish(digestOf("a"), a, messages.TokenStatus_TOKEN_WAIT, false)
	tt.publish(digestOf("b"), b, messages.TokenStatus_TOKEN_ACTIVE, false)
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

	tt.apply([]tokenChange{
		{token: "a", entry: a, status: messages.TokenStatus_TOKEN_ACTIVE},
		{token: "b", entry: b, status: messages.TokenStatus_TOKEN_EXPIRED, paid: true},
	})
	if tt.Waiting() != 0 || tt.Active() != 1 {
		t.Fatalf("waiting %d active %d", tt.Waiting(), tt.Active())
	}
	if got, _ := tt.Check("b", later); got.Status != messages.TokenStatus_TOKEN_EXPIRED || !got.PaidExpired {
		t.Fatalf("paid expiry: %+v", got)
	}
	// A new incarnation's entry replaces the old one, keeps the counters
	// right and inherits the last use.
	a2 := newTokenEntry(1, 10, now.UnixNano())
	a.last.Store(later.UnixNano())
	tt.publish(digestOf("a"), a2, messages.TokenStatus_TOKEN_WAIT, false)
	if tt.Waiting() != 1 || tt.Active() != 0 || a2.last.Load() != later.UnixNano() {
		t.Fatalf("after replace: waiting %d active %d last %d", tt.Waiting(), tt.Active(), a2.last.Load())
	}
	// Removing an entry that is no longer the token's does nothing.
	tt.unpublish(digestOf("a"), a)
	if _, ok := tt.Check("a", now); !ok || tt.Waiting() != 1 {
		t.Fatal("a stale entry removed the current one")
	}
	tt.retain(func(token string, _ *tokenEntry) bool { return token == "b" })
	if _, ok := tt.Check("a", now); ok || tt.Waiting() != 0 {
		t.Fatal("retain kept a")
	}
	tt.apply([]tokenChange{{token: "b", entry: b}})
	if _, ok := tt.Check("b", now); ok {
		t.Fatal("removed token found")
	}
}

// TestTokenTableTouchReports checks that ACTIVE checks list their entry for
// the queue manager once per collection, and that a use during a drain is
// not lost.
func TestTokenTableTouchReports(t *testing.T) {
	tt := NewTokenTable()
	now := wqNow()
	a := newTokenEntry(1, 10, now.UnixNano())
	w := newTokenEntry(2, 20, now.UnixNano())
	tt.publish(digestOf("a"), a, messages.TokenStatus_TOKEN_ACTIVE, false)
	tt.publish(digestOf("w"), w, messages.TokenStatus_TOKEN_WAIT, false)
	drain := func() []int64 {
		var ids []int64
		tt.drainTouched(func(e *tokenEntry) { ids = append(ids, e.tokenID) })
		return ids
	}
	if ids := drain(); len(ids) != 0 {
		t.Fatalf("reports before any use: %v", ids)
	}
	for i := range 100 {
		tt.Check("a", now.Add(time.Duration(i+1)*time.Second))
		tt.Check("w", now.Add(time.Duration(i+1)*time.Second))
	}
	if ids := drain(); fmt.Sprint(ids) != "[1]" {
		t.Fatalf("reports %v, want token 1 once", ids)
	}
	tt.Check("a", now.Add(time.Second)) // older: no use recorded
	if ids := drain(); len(ids) != 0 {
		t.Fatalf("an older check was reported: %v", ids)
	}
	// A use made while the entry is being drained is reported next time.
	tt.Check("a", now.Add(time.Hour))
	tt.drainTouched(func(e *tokenEntry) { tt.Check("a", now.Add(2*time.Hour)) })
	if ids := drain(); fmt.Sprint(ids) != "[1]" || a.last.Load() != now.Add(2*time.Hour).UnixNano() {
		t.Fatalf("reports %v last %v after a use during the drain", ids, a.last.Load())
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
		entries[i] = newTokenEntry(int64(i), int64(i), 0)
		tt.publish(digestOf(fmt.Sprintf("t%d", i)), entries[i], messages.TokenStatus_TOKEN_WAIT, false)
	}
	reported := 0
	for i := range n {
		tt.publish(digestOf(fmt.Sprintf("t%d", i)), entries[i], messages.TokenStatus_TOKEN_ACTIVE, false)
		if i%2 == 0 {
			tt.unpublish(digestOf(fmt.Sprintf("t%d", i)), entries[i])
		}
		if i%100 == 0 {
			tt.drainTouched(func(*tokenEntry) { reported++ })
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
		tt.publish(digestOf(tokens[i]), newTokenEntry(int64(i), int64(i), now.UnixNano()), st, false)
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
