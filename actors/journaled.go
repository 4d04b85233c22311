package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// Journaled defaults.
const (
	// maxUnsent bounds the events an actor may have applied but not yet
	// handed to the journal (they wait behind its one write in flight);
	// beyond it commands are refused with STORE_UNAVAILABLE, state unchanged.
	maxUnsent = 10_000
	// enqueueRetry is the first wait before handing a refused write to the
	// journal again; it doubles up to enqueueRetryMax, with jitter.
	enqueueRetry    = 5 * time.Millisecond
	enqueueRetryMax = 500 * time.Millisecond
	// recoverTimeout bounds loading the snapshot and replaying the journal.
	recoverTimeout = 30 * time.Second
	// snapshotTimeout bounds one snapshot save.
	snapshotTimeout = 10 * time.Second
)

// JournaledOptions configures the event-sourcing mixin of one actor.
type JournaledOptions struct {
	ID            string        // stable identity in the journal, e.g. "seat/42"
	Journal       Journal       // where events and snapshots go
	Model         Model         // the actor's domain state
	SnapshotEvery int           // events between snapshots; ≤0 means never
	IdleTTL       time.Duration // passivate after this long (up to twice) without messages; 0 = never
	// CanPassivate, if set, vetoes passivation (e.g. while timers are armed).
	// An actor whose model has a reminder (Reminding) never passivates while
	// NextDue reports open work, whatever CanPassivate says.
	CanPassivate func() bool
	// Admission, if set, bounds the writes of all actors sharing it that
	// are queued in the journal at once; a command that would exceed it is
	// refused with STORE_UNAVAILABLE before it changes anything.
	Admission *Admission
	// SnapshotAdmission, if set, bounds the snapshots that all actors
	// sharing it capture, encode and save at once (see Admission). An actor
	// whose snapshot is due and finds no free slot captures nothing and
	// tries again at its next write: capturing is O(state), and a capture
	// the journal then refused (ErrSnapshotBusy) was repeated at every
	// write — 1,920 refused captures in 2 s of fresh-holds, when the 366
	// dates came due together for 2 writers (issue 8).
	SnapshotAdmission *Admission
	Logger            *slog.Logger
}

// Journaled is the event-sourcing mixin an actor embeds. It recovers the
// model (snapshot + events after it) when the actor starts, applies events at
// once so the next message sees them, writes them through the journal's group
// commit with at most one write in flight (so an actor's sequence never has
// gaps), and holds back every reply until the events it observed are durable.
//
// Every asynchronous completion (journal write, snapshot save, timer, a
// goroutine's result) carries the incarnation that started it; any other
// incarnation ignores it, so a new incarnation never takes an old one's
// results as its own. A failed write, a fence, or a panic puts the actor out
// of service: pending and later callers get STORE_UNAVAILABLE and the actor
// leaves, to be replaced by a fresh incarnation recovered from the journal.
type Journaled struct {
	opt         JournaledOptions
	incarnation uint64 // random, fixed for this instance's life
	self        *actor.PID
	root        *actor.RootContext
	manager     *actor.PID                // nil when not placed by a cluster.Local manager
	leave       func(recoveryFailed bool) // cluster.LeaverOf: nil exactly when manager is nil

	applied       int64 // last sequence number applied to the model
	durable       int64 // last sequence number known durable
	unsent        []persistence.Event
	inFlight      bool // a write is queued or running in the journal
	permit        bool // holds a slot of opt.Admission
	retryWait     time.Duration
	retrying      bool // a refused write waits for its retry timer
	sinceSnapshot int
	snapshotting  bool
	// snapshotAfter is the sinceSnapshot a snapshot waits for after a
	// save failed (0: none failed since the last save).
	snapshotAfter int
	waiting       []waiter
	broken        error // non-nil: out of service
	leaving       bool  // LeaveGranted received: stop once idle
	askedLeave    bool  // Leave sent, no grant or Stay since
	recoverFailed bool  // this incarnation could not recover
	reminder      reminderMark
	stats         JournaledStats
	observer      JournalObserver // opt.Journal, if it observes (metrics.go)
	fence         readFence       // holds messages until sure (readfence.go)
	activity      uint64          // messages handled, for the idle check
	idleTimer     *time.Timer     // the pending idle check (armIdle)
}

// JournaledStats counts what an incarnation did, for tests and diagnostics.
type JournaledStats struct {
	Recovered       int64         // events replayed at start
	RecoveryTime    time.Duration // time to load the snapshot and replay
	SnapshotBytes   int           // size of the last snapshot saved
	Snapshots       int           // snapshots saved
	StaleDeliveries int           // completions dropped as another incarnation's
}

// reminderMark is what this incarnation last asked the journal to store as
// the actor's reminder; unknown until its first write (a recovered actor
// does not know what an earlier incarnation stored).
type reminderMark struct {
	known bool
	set   bool
	dueAt time.Time
}

// waiter is a reply or action held until sequence seq is durable.
type waiter struct {
	seq   int64
	to    *actor.PID
	reply any
	then  func()
}

// envelope carries an asynchronous completion to the incarnation that
// started it; fn runs on the actor's goroutine only if inc matches.
type envelope struct {
	inc uint64
	fn  func()
	// always runs fn even when the actor is out of service (the journal's
	// completion must still clear the write in flight so the actor leaves).
	always bool
}

// Reminding is implemented by models with work that must resume without
// client traffic (Orleans' reminders): NextDue returns the earliest time the
// actor has something to do, and false when it has no open work. The mixin
// keeps a durable reminder no later than that time, written with the events,
// and the node's ReminderService wakes the actor when it is due, e.g. after a
// crash. NextDue must be cheap: it runs after every write.
type Reminding interface {
	NextDue() (time.Time, bool)
}

// Sized is implemented by models whose snapshot grows with their state:
// SnapshotSize is the number of records a snapshot would hold now. Such a
// model is snapshotted no more often than every SnapshotSize()/2 events
// (and never more often than SnapshotEvery), so the O(n) capture and
// encoding of a snapshot costs O(1) per event, amortised, while a replay
// after a crash stays within about half the snapshot's size in events. (A
// queue of 60,000 tokens snapshotted every 500 events spent 10% of an
// on-sale's CPU on it: issue 8's profile.)
type Sized interface {
	SnapshotSize() int
}

// Archiving is implemented by models whose closed records leave the state:
// Snapshot must leave out the records Closed returns (copies, keyed by a
// stable id), which are written to the journal's archive in the same
// transaction as the snapshot; once that is durable, Forget drops them.
type Archiving interface {
	Closed() []ArchivedRecord
	Forget(keys []int64)
}

// ArchivedRecord is one record leaving a model's state for the archive.
type ArchivedRecord struct {
	Key    int64
	Record proto.Message
}

// NewJournaled builds the mixin; the actor must call Intercept first in its
// Receive, and defer Guard.
func NewJournaled(opt JournaledOptions) *Journaled {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	observer, _ := opt.Journal.(JournalObserver)
	return &Journaled{opt: opt, incarnation: rand.Uint64(), observer: observer}
}

// Incarnation is this instance's random tag, distinct for each activation.
func (j *Journaled) Incarnation() uint64 { return j.incarnation }

// Stats returns a copy of the incarnation's counters.
func (j *Journaled) Stats() JournaledStats { return j.stats }

// Guard turns a panic in the actor's Receive into a breakdown: the actor is
// taken out of service and replaced by a fresh incarnation, instead of being
// restarted in place by the supervisor with a half-changed model and the old
// incarnation's completions still in flight. Use as `defer j.Guard(ctx)`.
func (j *Journaled) Guard(ctx actor.Context) {
	r := recover()
	if r == nil {
		return
	}
	j.opt.Logger.Error("actor panicked; replacing it", "actor", j.opt.ID,
		"message", fmt.Sprintf("%T", ctx.Message()), "panic", r, "stack", string(debug.Stack()))
	if ctx.Sender() != nil && !j.isInternal(ctx.Message()) {
		ctx.Respond(unavailable(j.opt.ID, fmt.Errorf("panic: %v", r)))
	}
	j.breakDown(fmt.Errorf("%s panicked: %v", j.opt.ID, r))
}

func (j *Journaled) isInternal(msg any) bool {
	switch msg.(type) {
	case *envelope, actor.SystemMessage, actor.AutoReceiveMessage:
		return true
	}
	return false
}

// Intercept handles the mixin's own messages and returns true when the actor
// must not look at the message. On *actor.Started it recovers the model and
// returns false, so the actor can re-arm its timers.
func (j *Journaled) Intercept(ctx actor.Context) bool {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		j.self = ctx.Self()
		j.root = ctx.ActorSystem().Root
		j.manager, j.leave = cluster.ManagerOf(ctx), cluster.LeaverOf(ctx)
		j.fenceStart(ctx)
		if err := j.recover(); err != nil {
			j.opt.Logger.Warn("recovery failed", "actor", j.opt.ID, "err", err)
			j.recoverFailed = true
			j.breakDown(err)
			return true
		}
		j.armIdle()
		return false
	case *envelope:
		if msg.inc != j.incarnation {
			j.stats.StaleDeliveries++
			return true
		}
		if j.broken == nil || msg.always {
			msg.fn()
		}
		return true
	case *cluster.LeaveGranted:
		if j.broken == nil && (j.hasOpenWork() || (j.opt.CanPassivate != nil && !j.opt.CanPassivate())) {
			// Work arrived between asking to leave and the grant: stay, so
			// its timers and sagas are not lost.
			if j.manager != nil {
				ctx.Request(j.manager, &cluster.Stay{})
			}
			j.askedLeave = false
			j.armIdle()
			return true
		}
		j.leaving = true
		j.stopIfDone()
		return true
	case *actor.Stopped:
		// Stopped with replies still waiting (the node is shutting down, or
		// the actor was stopped from outside): their outcome is unknown to
		// this incarnation, so say so now rather than let callers time out.
		for _, w := range j.waiting {
			if w.to != nil {
				j.root.Send(w.to, unavailable(j.opt.ID, nil))
			}
		}
		j.waiting = nil
		j.releasePermit()
		j.fenceRelease(nil)
		if j.idleTimer != nil {
			j.idleTimer.Stop()
		}
		return false
	case actor.SystemMessage, actor.AutoReceiveMessage:
		return false
	}
	if j.broken != nil {
		// A message that reached this incarnation after it broke down is
		// not its to refuse: the successor can serve it. Only after a failed
		// recovery is it refused, so callers back off with the manager.
		if j.recoverFailed || !cluster.HandBack(ctx) {
			if ctx.Sender() != nil {
				ctx.Respond(unavailable(j.opt.ID, j.broken))
			}
		}
		return true
	}
	j.activity++
	if _, ok := ctx.Message().(*messages.Wake); ok {
		j.onWake()
		j.Reply(ctx, &messages.Wake{})
		return true
	}
	return j.fenceHold(ctx)
}

// armIdle starts the idle check (IdleTTL > 0): the actor passivates once a
// whole IdleTTL passed without a message while it was idle, so between one
// and two IdleTTLs after its last message. It is the actor's own timer,
// delivered through its mailbox, rather than Proto.Actor's receive timeout,
// whose timer goroutine writes the actor context's fields while the actor
// runs (a data race the race detector reports) and which stops and re-arms
// a timer on every message.
func (j *Journaled) armIdle() {
	if j.opt.IdleTTL <= 0 {
		return
	}
	if j.idleTimer != nil {
		j.idleTimer.Stop()
	}
	seen := j.activity
	j.idleTimer = j.After(j.opt.IdleTTL, func() {
		j.idleTimer = nil
		if j.activity == seen && j.idle() && !j.askedLeave && !j.hasOpenWork() && (j.opt.CanPassivate == nil || j.opt.CanPassivate()) {
			j.leaveSelf()
			return
		}
		j.armIdle()
	})
}

// Post returns a function that runs fn on this incarnation's goroutine
// later; if the actor has been replaced meanwhile, fn is dropped. Safe to
// call from any goroutine (a journal callback, a timer, a request).
func (j *Journaled) Post() func(fn func()) {
	self, root, inc := j.self, j.root, j.incarnation
	return func(fn func()) { root.Send(self, &envelope{inc: inc, fn: fn}) }
}

// After runs fn on this incarnation after d, unless the returned timer is
// stopped first or the actor was replaced.
func (j *Journaled) After(d time.Duration, fn func()) *time.Timer {
	post := j.Post()
	return time.AfterFunc(d, func() { post(fn) })
}

// Persist applies events to the model now and queues them for the journal.
// It changes nothing and returns a rejection when the events cannot be
// stored (INVALID_REQUEST: they do not encode, e.g. a string that is not
// UTF-8) or not now (STORE_UNAVAILABLE: the actor is out of service or the
// journal is overloaded); the caller answers with that rejection, at once
// (Refuse). Persist may be called from an AfterDurable action.
func (j *Journaled) Persist(events ...proto.Message) *messages.Rejection {
	if j.broken != nil {
		return unavailable(j.opt.ID, j.broken)
	}
	if len(events) == 0 {
		return nil
	}
	// The refusals first: encoding is O(events), and a caller refused for
	// a backlog or a full admission may well try again at its next message.
	if j.retrying || len(j.unsent)+len(events) > maxUnsent {
		j.refused(RefusedBacklog)
		return overloaded(j.opt.ID)
	}
	admitted := false
	if j.needsPermit() {
		if !j.opt.Admission.tryAcquire() {
			j.refused(RefusedAdmission)
			return overloaded(j.opt.ID)
		}
		admitted = true
	}
	rows := make([]persistence.Event, len(events))
	for i, e := range events {
		typ, payload, err := encode(e)
		if err != nil {
			if admitted {
				j.opt.Admission.release()
			}
			j.opt.Logger.Warn("event cannot be stored", "actor", j.opt.ID, "err", err)
			return messages.Reject(messages.CodeInvalidRequest, "the request holds text that cannot be stored")
		}
		rows[i] = persistence.Event{Seq: j.applied + int64(i) + 1, Type: typ, Payload: payload}
	}
	if admitted {
		j.permit = true
	}
	for _, e := range events {
		j.opt.Model.Apply(e)
	}
	if j.observer != nil {
		j.observer.Persisted(j.opt.ID, events)
	}
	j.applied += int64(len(rows))
	j.unsent = append(j.unsent, rows...)
	j.flush()
	return nil
}

// Refusing reports whether a Persist now would be refused for load (a
// refused write awaits its retry, or the node's write admission is full),
// so an actor can skip building events that would only be thrown away.
// A hint: another actor may free an admission slot a moment later.
func (j *Journaled) Refusing() bool {
	return j.retrying || (j.needsPermit() && j.opt.Admission.full())
}

// needsPermit reports whether a write now must first take a slot of the
// node's write admission (none held, none in flight).
func (j *Journaled) needsPermit() bool {
	return !j.inFlight && !j.permit && j.opt.Admission != nil
}

// Refuse answers the current message's sender at once with a rejection
// that rests on no state — a Persist refusal (nothing changed) — instead of
// holding it behind earlier writes as Reply does.
func (j *Journaled) Refuse(ctx actor.Context, rej *messages.Rejection) {
	if ctx.Sender() != nil {
		ctx.Respond(rej)
	}
}

// Reply answers the current message's sender once everything applied so far
// is durable — a rejection too, since it may rest on state not yet written.
func (j *Journaled) Reply(ctx actor.Context, reply any) {
	j.ReplyTo(ctx.Sender(), reply)
}

// ReplyTo is Reply to an explicit recipient (nil is ignored).
func (j *Journaled) ReplyTo(to *actor.PID, reply any) { j.ReplyAt(j.applied, to, reply) }

// Applied returns the sequence number of the last event applied to the
// model (durable or not yet).
func (j *Journaled) Applied() int64 { return j.applied }

// ReplyAt answers to once the events up to seq (an earlier Applied) are
// durable: for a reply that rests on that change alone, so it need not wait
// for the events applied since. A nil recipient is ignored.
func (j *Journaled) ReplyAt(seq int64, to *actor.PID, reply any) {
	switch {
	case to == nil:
	case seq <= j.durable:
		j.root.Send(to, reply)
	case j.broken != nil:
		// Its events will never be durable in this incarnation.
		j.root.Send(to, unavailable(j.opt.ID, j.broken))
	default:
		// release answers waiters in order of seq and stops at the first
		// one not yet durable, so the list stays sorted.
		i := sort.Search(len(j.waiting), func(i int) bool { return j.waiting[i].seq > seq })
		j.waiting = slices.Insert(j.waiting, i, waiter{seq: seq, to: to, reply: reply})
	}
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

// Durable reports whether everything applied so far is durable.
func (j *Journaled) Durable() bool { return j.applied == j.durable }

// hasOpenWork reports whether the model says work is pending (Reminding).
func (j *Journaled) hasOpenWork() bool {
	r, ok := j.opt.Model.(Reminding)
	if !ok {
		return false
	}
	_, open := r.NextDue()
	return open
}

// reminderChange is the update that keeps the stored reminder no later than
// the model's next due time. A later due time is left alone (an early wake
// is harmless and saves a write per hold); onWake moves it forward.
func (j *Journaled) reminderChange() persistence.ReminderChange {
	r, ok := j.opt.Model.(Reminding)
	if !ok {
		return persistence.ReminderChange{}
	}
	due, open := r.NextDue()
	switch {
	case open && (!j.reminder.known || !j.reminder.set || due.Before(j.reminder.dueAt)):
		j.reminder = reminderMark{known: true, set: true, dueAt: due}
		return persistence.ReminderChange{Set: true, DueAt: due}
	case !open && (!j.reminder.known || j.reminder.set):
		j.reminder = reminderMark{known: true}
		return persistence.ReminderChange{Clear: true}
	}
	return persistence.ReminderChange{}
}

// onWake moves a reminder that is past but whose work is later (or gone),
// so the reminder service stops waking a live actor for nothing.
func (j *Journaled) onWake() {
	r, ok := j.opt.Model.(Reminding)
	if !ok {
		return
	}
	due, open := r.NextDue()
	if j.reminder.known && j.reminder.set && open && !due.After(j.reminder.dueAt) {
		return
	}
	// Unknown or stale: the next write stores what the model says then.
	j.reminder = reminderMark{}
	if !j.inFlight && !j.retrying {
		j.inFlight = true
		j.send(nil)
	}
}

func (j *Journaled) flush() {
	if j.inFlight || j.retrying || len(j.unsent) == 0 || j.broken != nil {
		return
	}
	events := j.unsent
	j.unsent = nil
	j.inFlight = true
	j.send(events)
}

// send hands one write (events, possibly none, plus the reminder change) to
// the journal; a refusal keeps the events and retries after a backoff.
func (j *Journaled) send(events []persistence.Event) {
	upTo := j.durable
	if len(events) > 0 {
		upTo = events[len(events)-1].Seq
	}
	count := len(events)
	self, root, inc := j.self, j.root, j.incarnation
	err := j.opt.Journal.AppendAsync(j.opt.ID, events, j.reminderChange(), func(err error) {
		root.Send(self, &envelope{inc: inc, always: true, fn: func() { j.onPersisted(upTo, count, err) }})
	})
	if err == nil {
		return
	}
	j.inFlight = false
	if !errors.Is(err, persistence.ErrUnavailable) {
		// Invalid rows are our bug, not the client's: nothing was written.
		j.breakDown(err)
		return
	}
	// Not queued, nothing written: keep the events, retry with backoff.
	j.reminder = reminderMark{} // unknown: rewrite on the next write
	j.unsent = append(events, j.unsent...)
	j.retrying = true
	j.retryWait = min(max(2*j.retryWait, enqueueRetry), enqueueRetryMax)
	wait := j.retryWait/2 + rand.N(j.retryWait/2+1)
	j.After(wait, func() {
		j.retrying = false
		j.flush()
	})
}

func (j *Journaled) onPersisted(upTo int64, count int, err error) {
	j.inFlight = false
	if j.broken != nil {
		j.releasePermit()
		j.stopIfDone()
		return
	}
	if err != nil {
		j.breakDown(err)
		return
	}
	j.retryWait = 0
	j.durable = max(j.durable, upTo)
	j.sinceSnapshot += count
	j.release()
	j.flush()
	if !j.inFlight {
		j.releasePermit()
	}
	j.maybeSnapshot()
	j.stopIfDone()
}

func (j *Journaled) releasePermit() {
	if j.permit && j.opt.Admission != nil {
		j.permit = false
		j.opt.Admission.release()
	}
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
		if j.broken != nil {
			return // an action broke the actor; breakDown answered the rest
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

// maybeSnapshot captures a snapshot on the actor's goroutine and encodes
// and saves it on another (hashicorp/raft's two-phase snapshot): the model's
// Snapshot must return values it will not mutate afterwards.
func (j *Journaled) maybeSnapshot() {
	if j.opt.SnapshotEvery <= 0 || j.sinceSnapshot < max(j.opt.SnapshotEvery, j.snapshotAfter) || j.applied != j.durable || j.snapshotting {
		return
	}
	if sized, ok := j.opt.Model.(Sized); ok && j.sinceSnapshot < sized.SnapshotSize()/2 {
		return
	}
	slots := j.opt.SnapshotAdmission
	if slots != nil && !slots.tryAcquire() {
		return
	}
	saving := false
	defer func() {
		// A capture that panicked (Guard replaces the actor) gives its
		// slot back: two such panics would stop every snapshot of the node.
		if slots != nil && !saving {
			slots.release()
		}
	}()
	state := j.opt.Model.Snapshot()
	var closed []ArchivedRecord
	if a, ok := j.opt.Model.(Archiving); ok {
		closed = a.Closed()
	}
	saving = true
	seq, since := j.durable, j.sinceSnapshot
	j.sinceSnapshot = 0
	j.snapshotting = true
	journal, id, logger, post := j.opt.Journal, j.opt.ID, j.opt.Logger, j.Post()
	go func() {
		size, err := saveSnapshot(journal, id, seq, state, closed)
		if slots != nil {
			slots.release()
		}
		post(func() { j.onSnapshotSaved(since, size, closed, err) })
		if err != nil && !errors.Is(err, persistence.ErrSnapshotBusy) {
			// A lost snapshot costs only a longer replay: the events are durable.
			logger.Warn("snapshot save failed", "actor", id, "err", err)
		}
	}()
}

func saveSnapshot(journal Journal, id string, seq int64, state proto.Message, closed []ArchivedRecord) (int, error) {
	typ, payload, err := encode(state)
	if err != nil {
		return 0, fmt.Errorf("snapshot %s: %w", id, err)
	}
	snap := persistence.Snapshot{Seq: seq, Type: typ, Payload: payload}
	for _, c := range closed {
		t, p, err := encode(c.Record)
		if err != nil {
			return 0, fmt.Errorf("snapshot %s: archive %d: %w", id, c.Key, err)
		}
		snap.Archive = append(snap.Archive, persistence.Archived{Key: c.Key, Type: t, Payload: p})
	}
	ctx, cancel := context.WithTimeout(context.Background(), snapshotTimeout)
	defer cancel()
	if err := journal.SaveSnapshot(ctx, id, snap); err != nil {
		return 0, err
	}
	return len(payload), nil
}

func (j *Journaled) onSnapshotSaved(since, size int, closed []ArchivedRecord, err error) {
	j.snapshotting = false
	if err != nil {
		// Try again later: the events since then still count. A quarter
		// of the interval's events pass first, so an O(state) capture the
		// journal refused (busy: other actors' saves hold its writers) or
		// failed is not repeated at every write.
		j.sinceSnapshot += since
		j.snapshotAfter = j.sinceSnapshot + max(1, j.opt.SnapshotEvery/4)
		return
	}
	j.snapshotAfter = 0
	j.stats.Snapshots++
	j.stats.SnapshotBytes = size
	defer j.maybeSnapshot() // events written meanwhile may be due for the next one
	if a, ok := j.opt.Model.(Archiving); ok && len(closed) > 0 {
		keys := make([]int64, len(closed))
		for i, c := range closed {
			keys[i] = c.Key
		}
		a.Forget(keys)
	}
}

func (j *Journaled) recover() error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), recoverTimeout)
	defer cancel()
	restore := func(snap persistence.Snapshot) error {
		m, err := decode(snap.Type, snap.Payload)
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		if err := j.opt.Model.Restore(m); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		j.applied = snap.Seq
		return nil
	}
	apply := func(e persistence.Event) error {
		if e.Seq != j.applied+1 {
			return fmt.Errorf("replay: gap in journal: seq %d after %d", e.Seq, j.applied)
		}
		m, err := decode(e.Type, e.Payload)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		j.opt.Model.Apply(m)
		j.applied = e.Seq
		j.sinceSnapshot++
		j.stats.Recovered++
		return nil
	}
	if err := j.opt.Journal.Recover(ctx, j.opt.ID, restore, apply); err != nil {
		return fmt.Errorf("recover %s: %w", j.opt.ID, err)
	}
	j.durable = j.applied
	// Whatever reminder is stored, this incarnation has not written it: the
	// first write sets it from the recovered state.
	j.reminder = reminderMark{}
	j.stats.RecoveryTime = time.Since(start)
	if j.observer != nil {
		j.observer.Recovered(j.opt.ID, j.stats.RecoveryTime, j.stats.Recovered)
	}
	return nil
}

// refused tells the observer of an overload refusal.
func (j *Journaled) refused(reason string) {
	if j.observer != nil {
		j.observer.Refused(j.opt.ID, reason)
	}
}

// breakDown takes the actor out of service: every held reply becomes
// STORE_UNAVAILABLE and the actor asks to leave once no write is in flight;
// the next incarnation recovers what is really in the journal.
func (j *Journaled) breakDown(err error) {
	if j.broken == nil {
		j.broken = err
		if errors.Is(err, persistence.ErrFenced) {
			j.opt.Logger.Warn("actor fenced by another incarnation", "actor", j.opt.ID, "err", err)
		} else {
			j.opt.Logger.Warn("actor out of service", "actor", j.opt.ID, "err", err)
		}
	}
	// Leave before answering the waiting callers, so a caller's next
	// message reaches the manager after the Leave and is held for the
	// successor instead of being forwarded here.
	if !j.askedLeave && !j.leaving && j.self != nil {
		j.leaveSelf()
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
		j.releasePermit()
	}
	j.stopIfDone()
}

func (j *Journaled) idle() bool {
	return !j.inFlight && !j.retrying && len(j.unsent) == 0 && len(j.waiting) == 0 && !j.snapshotting
}

// leaveSelf asks the manager to stop forwarding (cluster.Leave); an actor
// not placed by a manager stops at once.
func (j *Journaled) leaveSelf() {
	j.askedLeave = true
	if j.manager == nil {
		j.root.Stop(j.self)
		return
	}
	j.leave(j.recoverFailed)
}

// stopIfDone makes a broken actor ask to leave at once (so new messages
// are held for its successor), and stops a granted one once no write is in
// flight (its completion must not reach a successor on the same PID).
func (j *Journaled) stopIfDone() {
	if j.self == nil {
		return
	}
	if j.broken != nil && !j.askedLeave && !j.leaving {
		j.leaveSelf()
	}
	if j.leaving && !j.inFlight {
		j.root.Stop(j.self)
	}
}

// unavailable is the rejection of a command the actor cannot serve; the
// cause is logged, not sent, as it may hold store details.
func unavailable(id string, _ error) *messages.Rejection {
	return messages.Reject(messages.CodeStoreUnavailable, "%s is temporarily unavailable; retry shortly", id)
}

func overloaded(id string) *messages.Rejection {
	return messages.Reject(messages.CodeStoreUnavailable, "%s is overloaded; retry shortly", id)
}
