package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// JournaledOptions configures the event-sourcing mixin of one actor.
type JournaledOptions struct {
	ID            string        // stable identity in the journal, e.g. "seat/42"
	Journal       Journal       // where events and snapshots go
	Model         Model         // the actor's domain state
	SnapshotEvery int           // events between snapshots; ≤0 means never
	IdleTTL       time.Duration // passivate after this long without messages; 0 = never
	// CanPassivate, if set, vetoes passivation (e.g. while timers are armed).
	CanPassivate func() bool
	Logger       *slog.Logger
}

// Journaled is the event-sourcing mixin an actor embeds. It recovers the
// model (snapshot + events after it) when the actor starts, applies events at
// once so the next message sees them, writes them through the journal's group
// commit with at most one write in flight (so an actor's sequence never has
// gaps), and holds back every reply until the events it observed are durable.
// A failed write or a fence puts the actor out of service: pending and later
// callers get STORE_UNAVAILABLE and the actor leaves, to be recovered from
// the journal by its next incarnation.
type Journaled struct {
	opt  JournaledOptions
	self *actor.PID
	root *actor.RootContext

	applied       int64 // last sequence number applied to the model
	durable       int64 // last sequence number known durable
	unsent        []persistence.Event
	inFlight      bool
	sinceSnapshot int
	waiting       []waiter
	broken        error // non-nil: out of service
	leaving       bool  // LeaveGranted received: stop once idle
}

// waiter is a reply or action held until sequence seq is durable.
type waiter struct {
	seq   int64
	to    *actor.PID
	reply any
	then  func()
}

// persisted reports the outcome of one journal write to the actor.
type persisted struct {
	upTo  int64
	count int
	err   error
}

// NewJournaled builds the mixin; the actor must call Intercept first in its
// Receive.
func NewJournaled(opt JournaledOptions) *Journaled {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Journaled{opt: opt}
}

// Intercept handles the mixin's own messages and returns true when the actor
// must not look at the message. On *actor.Started it recovers the model and
// returns false, so the actor can re-arm its timers.
func (j *Journaled) Intercept(ctx actor.Context) bool {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		j.self = ctx.Self()
		j.root = ctx.ActorSystem().Root
		if err := j.recover(); err != nil {
			j.breakDown(ctx, err)
			return true
		}
		if j.opt.IdleTTL > 0 {
			ctx.SetReceiveTimeout(j.opt.IdleTTL)
		}
		return false
	case *persisted:
		j.onPersisted(ctx, msg)
		return true
	case *actor.ReceiveTimeout:
		if j.idle() && (j.opt.CanPassivate == nil || j.opt.CanPassivate()) {
			j.leave(ctx)
		} else if j.opt.IdleTTL > 0 {
			// Proto.Actor cancels the receive timeout when it fires: arm it
			// again, or a vetoed actor would never passivate later.
			ctx.SetReceiveTimeout(j.opt.IdleTTL)
		}
		return true
	case *cluster.LeaveGranted:
		j.leaving = true
		j.stopIfDone(ctx)
		return true
	case actor.SystemMessage, actor.AutoReceiveMessage:
		return false
	}
	if j.broken != nil {
		if ctx.Sender() != nil {
			ctx.Respond(unavailable(j.opt.ID, j.broken))
		}
		return true
	}
	return false
}

// Persist applies events to the model now and queues them for the journal.
func (j *Journaled) Persist(events ...proto.Message) {
	for _, e := range events {
		typ, payload, err := encode(e)
		if err != nil {
			// Our own generated messages always encode; a failure is a bug.
			panic(fmt.Sprintf("persist %s: %v", j.opt.ID, err))
		}
		j.opt.Model.Apply(e)
		j.applied++
		j.unsent = append(j.unsent, persistence.Event{Seq: j.applied, Type: typ, Payload: payload})
	}
	j.flush()
}

// Reply answers the current message's sender once everything applied so far
// is durable — a rejection too, since it may rest on state not yet written.
func (j *Journaled) Reply(ctx actor.Context, reply any) {
	j.ReplyTo(ctx.Sender(), reply)
}

// ReplyTo is Reply to an explicit recipient (nil is ignored).
func (j *Journaled) ReplyTo(to *actor.PID, reply any) {
	if to == nil {
		return
	}
	if j.applied == j.durable {
		j.root.Send(to, reply)
		return
	}
	j.waiting = append(j.waiting, waiter{seq: j.applied, to: to, reply: reply})
}

// AfterDurable runs fn (on the actor's goroutine) once everything applied so
// far is durable. It never runs if the write fails.
func (j *Journaled) AfterDurable(fn func()) {
	if j.applied == j.durable {
		fn()
		return
	}
	j.waiting = append(j.waiting, waiter{seq: j.applied, then: fn})
}

// Broken reports whether the actor is out of service.
func (j *Journaled) Broken() bool { return j.broken != nil }

func (j *Journaled) flush() {
	if j.inFlight || len(j.unsent) == 0 || j.broken != nil {
		return
	}
	events := j.unsent
	j.unsent = nil
	j.inFlight = true
	upTo, count := events[len(events)-1].Seq, len(events)
	self, root := j.self, j.root
	j.opt.Journal.AppendAsync(j.opt.ID, events, func(err error) {
		root.Send(self, &persisted{upTo: upTo, count: count, err: err})
	})
}

func (j *Journaled) onPersisted(ctx actor.Context, p *persisted) {
	j.inFlight = false
	if p.err != nil {
		j.breakDown(ctx, p.err)
		return
	}
	j.durable = p.upTo
	j.sinceSnapshot += p.count
	j.release()
	j.flush()
	j.maybeSnapshot()
	j.stopIfDone(ctx)
}

// release sends the replies and runs the actions whose events are durable.
func (j *Journaled) release() {
	n := 0
	for _, w := range j.waiting {
		if w.seq > j.durable {
			break
		}
		n++
		if w.then != nil {
			w.then()
		} else {
			j.root.Send(w.to, w.reply)
		}
	}
	// Clear the released entries: an idle actor must not keep its last
	// replies (and their callers' futures) reachable.
	clear(j.waiting[:n])
	j.waiting = j.waiting[n:]
	if len(j.waiting) == 0 {
		j.waiting = nil
	}
}

func (j *Journaled) maybeSnapshot() {
	if j.opt.SnapshotEvery <= 0 || j.sinceSnapshot < j.opt.SnapshotEvery || j.applied != j.durable {
		return
	}
	j.sinceSnapshot = 0
	typ, payload, err := encode(j.opt.Model.Snapshot())
	if err != nil {
		j.opt.Logger.Error("snapshot encode", "actor", j.opt.ID, "err", err)
		return
	}
	snap := persistence.Snapshot{Seq: j.durable, Type: typ, Payload: payload}
	journal, id, logger := j.opt.Journal, j.opt.ID, j.opt.Logger
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// A lost snapshot costs only a longer replay: the events are durable.
		if err := journal.SaveSnapshot(ctx, id, snap); err != nil {
			logger.Warn("snapshot save failed", "actor", id, "err", err)
		}
	}()
}

func (j *Journaled) recover() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	snap, ok, err := j.opt.Journal.LoadSnapshot(ctx, j.opt.ID)
	if err != nil {
		return fmt.Errorf("recover %s: %w", j.opt.ID, err)
	}
	if ok {
		m, err := decode(snap.Type, snap.Payload)
		if err != nil {
			return fmt.Errorf("recover %s: snapshot: %w", j.opt.ID, err)
		}
		if err := j.opt.Model.Restore(m); err != nil {
			return fmt.Errorf("recover %s: restore: %w", j.opt.ID, err)
		}
		j.applied = snap.Seq
	}
	err = j.opt.Journal.Replay(ctx, j.opt.ID, j.applied, func(e persistence.Event) error {
		if e.Seq != j.applied+1 {
			return fmt.Errorf("gap in journal: seq %d after %d", e.Seq, j.applied)
		}
		m, err := decode(e.Type, e.Payload)
		if err != nil {
			return err
		}
		j.opt.Model.Apply(m)
		j.applied = e.Seq
		j.sinceSnapshot++
		return nil
	})
	if err != nil {
		return fmt.Errorf("recover %s: replay: %w", j.opt.ID, err)
	}
	j.durable = j.applied
	return nil
}

// breakDown takes the actor out of service: every held reply becomes
// STORE_UNAVAILABLE and the actor asks to leave; the next incarnation
// recovers what is really in the journal.
func (j *Journaled) breakDown(ctx actor.Context, err error) {
	if j.broken == nil {
		j.broken = err
		if errors.Is(err, persistence.ErrFenced) {
			j.opt.Logger.Warn("actor fenced by another incarnation", "actor", j.opt.ID, "err", err)
		}
	}
	rej := unavailable(j.opt.ID, err)
	for _, w := range j.waiting {
		if w.to != nil {
			j.root.Send(w.to, rej)
		}
	}
	j.waiting = nil
	j.unsent = nil
	if !j.inFlight {
		j.leave(ctx)
	}
}

func (j *Journaled) idle() bool {
	return !j.inFlight && len(j.unsent) == 0 && len(j.waiting) == 0
}

func (j *Journaled) leave(ctx actor.Context) {
	manager := cluster.ManagerOf(ctx)
	if manager == nil {
		// Not placed by a manager (spawned directly): nobody forwards to
		// it, so it can stop at once.
		ctx.Stop(ctx.Self())
		return
	}
	ctx.Request(manager, &cluster.Leave{})
}

func (j *Journaled) stopIfDone(ctx actor.Context) {
	if j.leaving && !j.inFlight {
		ctx.Stop(ctx.Self())
	} else if j.broken != nil && !j.inFlight && !j.leaving {
		j.leave(ctx)
	}
}

func unavailable(id string, err error) *messages.Rejection {
	return messages.Reject(messages.CodeStoreUnavailable, "%s cannot write its journal: %v", id, err)
}
