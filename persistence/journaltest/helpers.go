package journaltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concert/ticketing/persistence"
)

// callTimeout bounds the wait for a done, or for a call that must not
// block; it is only reached when the store is broken.
const callTimeout = 30 * time.Second

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// events returns events from..to of type typ with payloads "typ-seq".
func events(from, to int64, typ string) []persistence.Event {
	var out []persistence.Event
	for s := from; s <= to; s++ {
		out = append(out, persistence.Event{Seq: s, Type: typ, Payload: fmt.Appendf(nil, "%s-%d", typ, s)})
	}
	return out
}

// call is one AppendAsync call whose done is being watched.
type call struct {
	refused error         // AppendAsync's synchronous error
	result  chan error    // done's error, when accepted
	dones   *atomic.Int32 // how many times done ran
}

// start makes an AppendAsync call that checks done's contract: done runs
// only after AppendAsync returned (so never on the caller's goroutine, or
// it would wait forever for the return), and, if the call was refused,
// never.
func start(t *testing.T, s Store, actor string, evs []persistence.Event, rem persistence.ReminderChange) *call {
	t.Helper()
	c := &call{result: make(chan error, 1), dones: new(atomic.Int32)}
	returned := make(chan struct{})
	refusedCh := make(chan error, 1)
	go func() {
		refusedCh <- s.AppendAsync(actor, evs, rem, func(err error) {
			select {
			case <-returned:
			case <-time.After(callTimeout):
				err = errors.New("journaltest: done ran on the caller's goroutine (AppendAsync had not returned)")
			}
			if c.dones.Add(1) == 1 {
				c.result <- err
			}
		})
	}()
	select {
	case c.refused = <-refusedCh:
	case <-time.After(callTimeout):
		t.Fatalf("AppendAsync %s blocked for %v", actor, callTimeout)
	}
	close(returned)
	t.Cleanup(func() {
		want := int32(1)
		if c.refused != nil {
			want = 0
		}
		if n := c.dones.Load(); n > want {
			t.Errorf("append %s: done ran %d times (refused: %v)", actor, n, c.refused)
		}
	})
	return c
}

// wait returns the call's refusal, or done's error.
func (c *call) wait(t *testing.T) error {
	t.Helper()
	if c.refused != nil {
		return c.refused
	}
	select {
	case err := <-c.result:
		return err
	case <-time.After(callTimeout):
		t.Fatalf("done not called within %v", callTimeout)
		return nil
	}
}

// appendWait makes one call and returns its refusal or outcome.
func appendWait(t *testing.T, s Store, actor string, evs []persistence.Event, rem persistence.ReminderChange) error {
	t.Helper()
	return start(t, s, actor, evs, rem).wait(t)
}

// mustAppend makes one call that must succeed.
func mustAppend(t *testing.T, s Store, actor string, evs []persistence.Event, rem persistence.ReminderChange) {
	t.Helper()
	if err := appendWait(t, s, actor, evs, rem); err != nil {
		t.Fatalf("append %s: %v", actor, err)
	}
}

// wantFenced checks that err is ErrFenced and nothing else.
func wantFenced(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, persistence.ErrFenced) || errors.Is(err, persistence.ErrUnavailable) || errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("%s: %v, want ErrFenced only", what, err)
	}
}

func replayAll(t *testing.T, s Store, actor string, after int64) []persistence.Event {
	t.Helper()
	var got []persistence.Event
	if err := s.Replay(ctxT(t), actor, after, func(e persistence.Event) error {
		got = append(got, e)
		return nil
	}); err != nil {
		t.Fatalf("replay %s after %d: %v", actor, after, err)
	}
	return got
}

// wantEvents checks that got equals want, seq, type and payload.
func wantEvents(t *testing.T, what string, got, want []persistence.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events %s, want %d %s", what, len(got), seqsOf(got), len(want), seqsOf(want))
	}
	for i := range want {
		if got[i].Seq != want[i].Seq || got[i].Type != want[i].Type || !bytes.Equal(got[i].Payload, want[i].Payload) {
			t.Fatalf("%s: event %d = {%d %s %q}, want {%d %s %q}", what, i,
				got[i].Seq, got[i].Type, got[i].Payload, want[i].Seq, want[i].Type, want[i].Payload)
		}
	}
}

func seqsOf(evs []persistence.Event) string {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return fmt.Sprint(out)
}

// inOneBatch runs fn inside s's InOneBatch if s batches, or directly.
func inOneBatch(t *testing.T, s Store, fn func()) {
	t.Helper()
	if b, ok := s.(Batcher); ok {
		b.InOneBatch(t, fn)
		return
	}
	fn()
}

// set and clearRem build reminder changes.
func set(due time.Time) persistence.ReminderChange {
	return persistence.ReminderChange{Set: true, DueAt: due}
}

var clearRem = persistence.ReminderChange{Clear: true}

// dueAll returns every reminder due before the far future.
func dueAll(t *testing.T, s Store) []persistence.Reminder {
	t.Helper()
	got, err := s.DueReminders(ctxT(t), farFuture, 1000)
	if err != nil {
		t.Fatalf("due reminders: %v", err)
	}
	return got
}

var farFuture = time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)

// wantReminders checks got against want (actor ids and due times at
// microsecond precision, in order).
func wantReminders(t *testing.T, what string, got []persistence.Reminder, want ...persistence.Reminder) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = got[i].ActorID == want[i].ActorID && got[i].DueAt.Equal(want[i].DueAt.Truncate(time.Microsecond))
	}
	if !ok {
		t.Fatalf("%s: reminders %v, want %v", what, got, want)
	}
}
