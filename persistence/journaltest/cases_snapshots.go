package journaltest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/concert/ticketing/persistence"
)

// snapshotKeepsHighestSeq: a snapshot replaces the stored one only if its
// Seq is higher; without pruning the events stay.
func snapshotKeepsHighestSeq(t *testing.T, open func(*testing.T, Config) Store) {
	s := open(t, Config{})
	ctx := ctxT(t)
	if _, ok, err := s.LoadSnapshot(ctx, "seat/7"); err != nil || ok {
		t.Fatalf("snapshot of a new actor: ok %v, err %v", ok, err)
	}
	mustAppend(t, s, "seat/7", events(1, 10, "E"), persistence.ReminderChange{})
	save := func(seq int64, payload string) {
		t.Helper()
		var p []byte
		if payload != "" {
			p = []byte(payload)
		}
		if err := s.SaveSnapshot(ctx, "seat/7", persistence.Snapshot{Seq: seq, Type: "State", Payload: p}); err != nil {
			t.Fatalf("save snapshot %d: %v", seq, err)
		}
	}
	load := func(wantSeq int64, wantPayload string) {
		t.Helper()
		got, ok, err := s.LoadSnapshot(ctx, "seat/7")
		if err != nil || !ok || got.Seq != wantSeq || got.Type != "State" || string(got.Payload) != wantPayload || got.Archive != nil {
			t.Fatalf("snapshot = %+v (ok %v, err %v), want seq %d payload %q", got, ok, err, wantSeq, wantPayload)
		}
	}
	save(6, "s6")
	save(4, "s4") // older: ignored
	load(6, "s6")
	save(6, "again") // not newer: ignored
	load(6, "s6")
	wantEvents(t, "after snapshot 6", replayAll(t, s, "seat/7", 6), events(7, 10, "E"))
	wantEvents(t, "without pruning", replayAll(t, s, "seat/7", 0), events(1, 10, "E"))
	save(10, "")
	load(10, "")
}

// archiveWrittenWithSnapshot: the records a snapshot archives are readable
// by key once it is saved, upserted by later snapshots, and not written by
// a snapshot that is not newer than the stored one.
func archiveWrittenWithSnapshot(t *testing.T, open func(*testing.T, Config) Store) {
	s := open(t, Config{})
	ctx := ctxT(t)
	mustAppend(t, s, "w", events(1, 5, "E"), persistence.ReminderChange{})
	mustAppend(t, s, "v", events(1, 1, "E"), persistence.ReminderChange{})
	rec := func(key int64, typ, payload string) persistence.Archived {
		return persistence.Archived{Key: key, Type: typ, Payload: []byte(payload)}
	}
	save := func(actor string, seq int64, archive ...persistence.Archived) {
		t.Helper()
		if err := s.SaveSnapshot(ctx, actor, persistence.Snapshot{Seq: seq, Type: "S", Payload: []byte("state"), Archive: archive}); err != nil {
			t.Fatalf("save snapshot %s %d: %v", actor, seq, err)
		}
	}
	want := func(actor string, key int64, w *persistence.Archived) {
		t.Helper()
		got, ok, err := s.LoadArchived(ctx, actor, key)
		if err != nil {
			t.Fatalf("load archived %s/%d: %v", actor, key, err)
		}
		if w == nil {
			if ok {
				t.Fatalf("archived %s/%d = %+v, want none", actor, key, got)
			}
			return
		}
		if !ok || got.Key != key || got.Type != w.Type || !bytes.Equal(got.Payload, w.Payload) {
			t.Fatalf("archived %s/%d = %+v (ok %v), want %+v", actor, key, got, ok, *w)
		}
	}

	r1, r2 := rec(1, "Reservation", "r1"), rec(2, "Payment", "")
	save("w", 3, r1, r2)
	want("w", 1, &r1)
	want("w", 2, &r2)
	want("w", 3, nil)
	want("v", 1, nil) // per actor

	save("w", 2, rec(3, "Reservation", "stale"), rec(1, "Reservation", "stale")) // older: nothing written
	want("w", 3, nil)
	want("w", 1, &r1)

	r1b := rec(1, "Reservation", "r1 again")
	save("w", 5, r1b)
	want("w", 1, &r1b)
	want("w", 2, &r2)
	save("v", 1, rec(1, "Other", "v1"))
	want("w", 1, &r1b)
}

// pruneAndFenceAfterPruning: with pruning, a snapshot deletes the events it
// covers; a new incarnation recovers from the snapshot and the events after
// it; and an append at or below the snapshot is still fenced (with its
// reminder change), alone or batched with other actors' calls.
func pruneAndFenceAfterPruning(t *testing.T, open func(*testing.T, Config) Store) {
	s := open(t, Config{PruneAfterSnapshot: true})
	ctx := ctxT(t)
	due := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	mustAppend(t, s, "p", events(1, 10, "E"), persistence.ReminderChange{})
	// A snapshot prunes the events up to the snapshot it replaces, so one
	// snapshot interval stays behind the latest one.
	if err := s.SaveSnapshot(ctx, "p", persistence.Snapshot{Seq: 4, Type: "S"}); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, "after the first snapshot", replayAll(t, s, "p", 0), events(1, 10, "E"))
	if err := s.SaveSnapshot(ctx, "p", persistence.Snapshot{Seq: 6, Type: "S"}); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, "after pruning", replayAll(t, s, "p", 0), events(5, 10, "E"))

	wantFenced(t, "seq 5 (pruned)", appendWait(t, s, "p", events(5, 5, "Zombie"), set(due)))
	wantFenced(t, "seq 6 (pruned, the snapshot's)", appendWait(t, s, "p", events(6, 6, "Zombie"), set(due)))
	wantFenced(t, "seq 6..7", appendWait(t, s, "p", events(6, 7, "Zombie"), persistence.ReminderChange{}))
	wantFenced(t, "seq 10..11", appendWait(t, s, "p", events(10, 11, "Zombie"), persistence.ReminderChange{}))
	wantReminders(t, "after fenced calls", dueAll(t, s))

	// Batched with a healthy call of another actor.
	var zombie, other *call
	inOneBatch(t, s, func() {
		zombie = start(t, s, "p", events(3, 4, "Zombie"), set(due))
		other = start(t, s, "q", events(1, 1, "E"), set(due))
	})
	wantFenced(t, "seq 3..4 in a batch", zombie.wait(t))
	if err := other.wait(t); err != nil {
		t.Fatalf("q beside a fenced call: %v", err)
	}
	wantReminders(t, "after batch", dueAll(t, s), persistence.Reminder{ActorID: "q", DueAt: due})

	mustAppend(t, s, "p", nil, set(due)) // reminder-only: never fenced
	mustAppend(t, s, "p", events(11, 11, "E"), persistence.ReminderChange{})

	// A new incarnation recovers exactly.
	snap, ok, err := s.LoadSnapshot(ctx, "p")
	if err != nil || !ok || snap.Seq != 6 {
		t.Fatalf("snapshot %+v ok %v err %v", snap, ok, err)
	}
	wantEvents(t, "recovery", replayAll(t, s, "p", snap.Seq), events(7, 11, "E"))

	if err := s.SaveSnapshot(ctx, "p", persistence.Snapshot{Seq: 11, Type: "S"}); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, "after pruning up to the replaced snapshot", replayAll(t, s, "p", 0), events(7, 11, "E"))
	wantFenced(t, "seq 11 after pruning", appendWait(t, s, "p", events(11, 11, "Zombie"), persistence.ReminderChange{}))
	mustAppend(t, s, "p", events(12, 12, "E"), persistence.ReminderChange{})
	wantEvents(t, "p", replayAll(t, s, "p", 11), events(12, 12, "E"))
	// An older snapshot is ignored.
	if err := s.SaveSnapshot(ctx, "p", persistence.Snapshot{Seq: 12, Type: "S"}); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "p", events(13, 13, "E"), persistence.ReminderChange{})
	if err := s.SaveSnapshot(ctx, "p", persistence.Snapshot{Seq: 11, Type: "S"}); err != nil {
		t.Fatal(err)
	}
	if snap, _, err := s.LoadSnapshot(ctx, "p"); err != nil || snap.Seq != 12 {
		t.Fatalf("snapshot after an older save: %+v, %v", snap, err)
	}
	wantEvents(t, "after an older snapshot", replayAll(t, s, "p", 0), events(12, 13, "E"))
}

// snapshotBusy: beyond the allowed concurrent SaveSnapshot calls, a call is
// refused at once with ErrSnapshotBusy (not ErrUnavailable) and writes
// nothing; once the writers are free it goes through.
func snapshotBusy(t *testing.T, open func(*testing.T, Config) Store) {
	s := open(t, Config{SnapshotWriters: 2})
	st, ok := s.(SnapshotStaller)
	if !ok {
		t.Skip("store cannot stall snapshot writers")
	}
	mustAppend(t, s, "busy", events(1, 1, "E"), persistence.ReminderChange{})
	release := st.OccupySnapshotWriters(t)
	// If the call waited for a slot instead, it would wait for release:
	// the context turns that into a failure instead of a hang.
	ctx := ctxT(t)
	err := s.SaveSnapshot(ctx, "busy", persistence.Snapshot{Seq: 1, Type: "S", Archive: []persistence.Archived{{Key: 1, Type: "R"}}})
	if !errors.Is(err, persistence.ErrSnapshotBusy) || errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("save beyond the writers: %v, want ErrSnapshotBusy only", err)
	}
	release()
	if _, ok, err := s.LoadSnapshot(ctx, "busy"); ok || err != nil {
		t.Fatalf("refused snapshot stored: ok %v, err %v", ok, err)
	}
	if _, ok, err := s.LoadArchived(ctx, "busy", 1); ok || err != nil {
		t.Fatalf("refused snapshot's archive stored: ok %v, err %v", ok, err)
	}
	if err := s.SaveSnapshot(ctx, "busy", persistence.Snapshot{Seq: 1, Type: "S"}); err != nil {
		t.Fatalf("save after release: %v", err)
	}
}
