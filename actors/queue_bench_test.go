package actors

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/messages"
)

// BenchmarkQueueSnapshot prints, for the queue with 10k, 100k and 1M fans
// waiting (plus a history of as many expired tokens, which must not count):
// snapshot bytes (the waiting tokens plus ExpiredKeep expired ones), the
// capture time on the actor's goroutine (the first after a start, and the
// usual one), the encoding
// time (off the actor) and the recovery time (decode, restore, publish the
// token table). Run it with
//
//	go test -run '^$' -bench BenchmarkQueueSnapshot -benchtime 3x ./actors/
//
// The 1M case is skipped with -short.
func BenchmarkQueueSnapshot(b *testing.B) {
	for _, c := range []struct {
		name string
		n    int
	}{{"10k", 10_000}, {"100k", 100_000}, {"1M", 1_000_000}} {
		n := c.n
		b.Run("waiting="+c.name, func(b *testing.B) {
			if n > 100_000 && testing.Short() {
				b.Skip("large case skipped in -short mode")
			}
			m := queueWithHistory(n, n, queueDefaultExpiredKeep)
			// The first capture after a start builds every token's stored
			// form; later ones rebuild only tokens changed since.
			start := time.Now()
			m.Snapshot()
			first := time.Since(start)
			var size int
			var capture, encode, recover time.Duration
			for b.Loop() {
				start := time.Now()
				snap := m.Snapshot()
				capture += time.Since(start)

				start = time.Now()
				payload, err := proto.Marshal(snap)
				if err != nil {
					b.Fatal(err)
				}
				encode += time.Since(start)
				size = len(payload)

				start = time.Now()
				var decoded messages.QueueSnapshot
				if err := proto.Unmarshal(payload, &decoded); err != nil {
					b.Fatal(err)
				}
				r := newQueueModel(m.config())
				if err := r.Restore(&decoded); err != nil {
					b.Fatal(err)
				}
				r.publishAll(NewTokenTable())
				recover += time.Since(start)
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(float64(first.Microseconds())/1000, "first-capture-ms")
			b.ReportMetric(float64(size), "snapshot-bytes")
			b.ReportMetric(ms(capture), "capture-ms")
			b.ReportMetric(ms(encode), "encode-ms")
			b.ReportMetric(ms(recover), "recover-ms")
		})
	}
}

// TestQueueSnapshotFollowsLiveTokens is the benchmark's setup at a trivial
// size: the snapshot holds the waiting tokens and the bounded expired set,
// not the history, and restores to the same state.
func TestQueueSnapshotFollowsLiveTokens(t *testing.T) {
	m := queueWithHistory(300, 2000, 50)
	snap := m.Snapshot().(*messages.QueueSnapshot)
	if got, want := len(snap.GetTokens()), 300+m.keepExpired; got != want {
		t.Fatalf("snapshot holds %d tokens, want %d", got, want)
	}
	r := newQueueModel(m.config())
	if err := r.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(r.Snapshot(), snap) {
		t.Fatal("restored state differs")
	}
}

// queueWithHistory builds a model with waiting WAIT tokens (one of them
// ACTIVE) after expired tokens have come and gone, keeping keep of them.
func queueWithHistory(waiting, expired, keep int) *queueModel {
	m := newQueueModel(QueueConfig{ActiveTokens: 1, ExpiredKeep: keep}.withDefaults())
	ms := wqNow().UnixMilli()
	id := int64(0)
	for range expired {
		id++
		m.Apply(&messages.TokenIssued{TokenId: id, UserId: id, Token: fmt.Sprintf("q6urq6urq6urq6u%07d", id), AtMs: ms})
		m.Apply(&messages.TokenExpired{TokenId: id, AtMs: ms, Reason: ExpiredReasonAbandoned})
	}
	for range waiting {
		id++
		m.Apply(&messages.TokenIssued{TokenId: id, UserId: id, Token: fmt.Sprintf("q6urq6urq6urq6u%07d", id), AtMs: ms})
	}
	m.Apply(&messages.TokenActivated{TokenId: int64(expired) + 1, AtMs: ms})
	return m
}

// config is the configuration m was built with.
func (m *queueModel) config() QueueConfig {
	return QueueConfig{ActiveTokens: m.activeTokens, TokenIdleTTL: m.tokenIdle, WaitIdleTTL: m.waitIdle,
		ExpiredRetention: m.retention, ExpiredKeep: m.keepExpired}.withDefaults()
}

// BenchmarkQueueIssueWithTokensHeld is the queue actor's work for one new
// fan's token — decide, apply its events, answer its place — with 10k,
// 100k and 1M tokens already held (all waiting: the line is as long as it
// gets), so that a cost growing with the line shows (issue 8: token issue
// flat from 10k to 1M tokens held). The journal write is not in it (see
// BenchmarkJournal). Run it with
//
//	go test -run '^$' -bench BenchmarkQueueIssueWithTokensHeld ./actors/
//
// The 1M case is skipped with -short.
func BenchmarkQueueIssueWithTokensHeld(b *testing.B) {
	for _, c := range []struct {
		name string
		n    int
	}{{"10k", 10_000}, {"100k", 100_000}, {"1M", 1_000_000}} {
		b.Run("held="+c.name, func(b *testing.B) {
			if c.n > 100_000 && testing.Short() {
				b.Skip("large case skipped in -short mode")
			}
			m := queueWithHistory(c.n, 0, queueDefaultExpiredKeep)
			random := rand.New(rand.NewPCG(1, 2))
			now := wqNow()
			user := int64(c.n) + 1
			for b.Loop() {
				user++
				events, secret, rej := m.decideIssue(&messages.IssueToken{UserId: user}, now, randReader{random})
				if rej != nil {
					b.Fatal(rej)
				}
				for _, e := range events {
					m.Apply(e)
				}
				if v := m.view(m.byToken[digestOf(secret)]); v.GetPosition() < int64(c.n) {
					b.Fatalf("new fan at place %d behind %d waiting", v.GetPosition(), c.n)
				}
			}
		})
	}
}

// randReader reads a seeded generator's bytes (the benchmark's tokens).
type randReader struct{ r *rand.Rand }

func (r randReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.r.Uint32())
	}
	return len(p), nil
}
