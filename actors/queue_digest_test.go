package actors

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// TestQueueStoresNoSecret: a token's secret reaches its caller only; the
// journal and the snapshots hold its SHA-256. Asking again re-issues a
// fresh secret for the same token and place, and a restart keeps exactly
// the latest secret working.
func TestQueueStoresNoSecret(t *testing.T) {
	j := actortest.NewMemJournal()
	clock := newWQClock()
	cfg := QueueConfig{ActiveTokens: 1, TokenIdleTTL: time.Hour, WaitIdleTTL: time.Hour, SnapshotEvery: 3}
	h := startQueue(t, j, clock, cfg)
	var secrets []string
	for u := int64(1); u <= 4; u++ {
		secrets = append(secrets, h.issue(t, u).GetToken())
	}
	first := h.issue(t, 3) // user 3 asks again: same token, new secret
	if _, err := h.get(t, secrets[2]); err == nil {
		t.Fatal("the secret replaced by asking again still works")
	}
	secrets = append(secrets, first.GetToken())
	latest := first.GetToken()
	if st, pos := h.status(t, latest); st != tsWait || pos != 2 {
		t.Fatalf("asked again: %v at %d, want WAIT at 2", st, pos)
	}
	actortest.Eventually(t, 5*time.Second, func() bool { _, ok := j.Snapshot(queueJournalPrefix + "main"); return ok }, "a snapshot")
	h.stop()

	// Nothing stored holds a secret.
	var stored [][]byte
	for _, e := range j.Events(queueJournalPrefix + "main") {
		stored = append(stored, e.Payload)
	}
	snap, _ := j.Snapshot(queueJournalPrefix + "main")
	stored = append(stored, snap.Payload)
	for _, s := range secrets {
		for _, b := range stored {
			if bytes.Contains(b, []byte(s)) {
				t.Fatalf("secret %q is stored", s)
			}
		}
	}

	// After a restart the latest secret works, the replaced one does not.
	h2 := startQueue(t, j, clock, cfg)
	if st, pos := h2.status(t, latest); st != tsWait || pos != 2 {
		t.Fatalf("after a restart: %v at %d", st, pos)
	}
	if _, err := h2.get(t, secrets[2]); err == nil {
		t.Fatal("the replaced secret works after a restart")
	}
	if c, ok := h2.tokens.Check(secrets[0], clock.Now()); !ok || c.Status != tsActive || c.UserID != 1 {
		t.Fatalf("table after a restart: %+v %v", c, ok)
	}
}

// TestQueueReplaysSecretsOfOldEvents: events journaled before digests hold
// the secret itself; replay digests it, so those tokens keep working.
func TestQueueReplaysSecretsOfOldEvents(t *testing.T) {
	j := actortest.NewMemJournal()
	var events []persistence.Event
	for i, m := range []proto.Message{
		&messages.TokenIssued{TokenId: 1, UserId: 7, Token: "legacy-secret-one", AtMs: wqNow().UnixMilli()},
		&messages.TokenActivated{TokenId: 1, AtMs: wqNow().UnixMilli()},
	} {
		typ, payload, err := encode(m)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, persistence.Event{Seq: int64(i + 1), Type: typ, Payload: payload})
	}
	done := make(chan error, 1)
	if err := j.AppendAsync(queueJournalPrefix+"main", events, persistence.ReminderChange{}, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	clock := newWQClock()
	h := startQueue(t, j, clock, QueueConfig{TokenIdleTTL: time.Hour, WaitIdleTTL: time.Hour})
	if st, _ := h.status(t, "legacy-secret-one"); st != tsActive {
		t.Fatalf("a token of an old event: %v", st)
	}
	if c, ok := h.tokens.Check("legacy-secret-one", clock.Now()); !ok || c.UserID != 7 {
		t.Fatalf("table: %+v %v", c, ok)
	}
}
