package actortest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/concert/ticketing/persistence"
)

func appendSync(t *testing.T, j *MemJournal, id string, seqs ...int64) error {
	t.Helper()
	events := make([]persistence.Event, len(seqs))
	for i, s := range seqs {
		events[i] = persistence.Event{Seq: s, Type: "t", Payload: []byte{byte(s)}}
	}
	// done blocks until AppendAsync has returned: if done ran on the
	// caller's goroutine, AppendAsync would never return and the test would
	// time out below.
	caller := make(chan struct{})
	done := make(chan error, 1)
	j.AppendAsync(id, events, func(err error) {
		<-caller
		done <- err
	})
	close(caller)
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("done never called")
		return nil
	}
}

func seqs(j *MemJournal, id string, after int64) []int64 {
	var out []int64
	_ = j.Replay(context.Background(), id, after, func(e persistence.Event) error {
		out = append(out, e.Seq)
		return nil
	})
	return out
}

func TestMemJournalContract(t *testing.T) {
	j := NewMemJournal()
	if err := appendSync(t, j, "a", 1, 2, 3); err != nil {
		t.Fatal(err)
	}
	if err := appendSync(t, j, "b", 1); err != nil {
		t.Fatal(err)
	}
	// A call that claims an existing seq is fenced and keeps nothing.
	if err := appendSync(t, j, "a", 3, 4); !errors.Is(err, persistence.ErrFenced) {
		t.Fatalf("got %v, want ErrFenced", err)
	}
	if got := seqs(j, "a", 0); len(got) != 3 {
		t.Fatalf("seqs %v after a fenced call", got)
	}
	if err := appendSync(t, j, "a", 5, 7); err == nil {
		t.Fatal("non-contiguous call accepted")
	}
	if err := appendSync(t, j, "a", 4, 5); err != nil {
		t.Fatal(err)
	}
	if got := seqs(j, "a", 2); len(got) != 3 || got[0] != 3 || got[2] != 5 {
		t.Fatalf("replay after 2: %v", got)
	}

	j.FailNext(errors.New("boom"))
	if err := appendSync(t, j, "a", 6); err == nil || err.Error() == "" {
		t.Fatal("FailNext ignored")
	}
	if err := appendSync(t, j, "a", 6); err != nil {
		t.Fatalf("FailNext must fail one call only: %v", err)
	}

	j.SetDown(true)
	if err := appendSync(t, j, "a", 7); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("down: %v", err)
	}
	if err := j.Replay(context.Background(), "a", 0, func(persistence.Event) error { return nil }); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("replay while down: %v", err)
	}
	if _, _, err := j.LoadSnapshot(context.Background(), "a"); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("load snapshot while down: %v", err)
	}
	j.SetDown(false)
	if got := seqs(j, "a", 0); len(got) != 6 {
		t.Fatalf("seqs %v", got)
	}

	ctx := context.Background()
	if _, ok, err := j.LoadSnapshot(ctx, "a"); ok || err != nil {
		t.Fatalf("snapshot before any: %v %v", ok, err)
	}
	for _, seq := range []int64{4, 2, 6} {
		if err := j.SaveSnapshot(ctx, "a", persistence.Snapshot{Seq: seq, Type: "s"}); err != nil {
			t.Fatal(err)
		}
	}
	if s, ok, _ := j.LoadSnapshot(ctx, "a"); !ok || s.Seq != 6 {
		t.Fatalf("snapshot %v, want the newest (6)", s)
	}

	j.Delay(20 * time.Millisecond)
	began := time.Now()
	if err := appendSync(t, j, "a", 7); err != nil || time.Since(began) < 20*time.Millisecond {
		t.Fatalf("delayed append: %v after %v", err, time.Since(began))
	}
}
