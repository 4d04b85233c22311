package actors

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/persistence"
)

// The read fence. Writes are fenced by the journal (an append at a taken
// sequence number fails), reads are not: during a membership change
// Proto.Actor can run two copies of a grain, and a copy that has not written
// since it recovered could answer from what it recovered while the other
// copy has written and acknowledged since. So a copy answers nothing until
// it is sure it holds the latest history:
//
//   - Under cluster.Local (one copy per identity, one node) it always is:
//     no placement, no fence, no cost.
//   - A copy that recovered after its node's topology had settled (every
//     member seen to report the same member list, cluster.Placement) is
//     sure from the start: any copy that served before has been stopped by
//     its node, so its acknowledged writes were all in what we recovered,
//     and no other copy can serve until a topology in which this node does
//     not own the actor settles, which first stops this copy. This is
//     steady state, a cluster of one included: no query at all.
//   - A copy activated while the topology was unsettled (right after a
//     node left or joined) holds every message it receives — reads and
//     writes alike, in arrival order — until the topology settles, then
//     asks the journal for its latest sequence number (Journal.LastSeq).
//     If that is what the copy has, it is sure from then on and the held
//     messages are processed; if another copy wrote meanwhile it breaks
//     down as on a fenced write, handing the held messages to its successor
//     (which recovers the other copy's writes). One query serves every
//     message held when it starts, and the PostgreSQL journal answers the
//     queries of all actors waiting at that moment with one statement, so a
//     storm of reads after a failover costs a query per actor at most once,
//     in few round trips.
//
// Messages handled by the mixin itself (completions, timers, Wake) are not
// held: writes they cause are fenced by the journal.
type readFence struct {
	placement cluster.Placement // nil: no fence
	handBack  func(msg any, sender *actor.PID) bool
	sure      bool
	held      []heldMessage
	checking  bool      // a settle wait, a query or a retry is pending
	since     time.Time // when the first message was held
	// asked are the messages ConfirmLatest held (by identity), each with
	// the number of queries started before it was; passed, those a query
	// started after them has since confirmed.
	asked  map[proto.Message]int
	passed map[proto.Message]struct{}
	stats  ReadFenceStats
}

// ReadFenceStats counts what an incarnation's read fence did.
type ReadFenceStats struct {
	Held    int // messages held until the copy was sure
	Queries int // LastSeq queries made
	Fenced  bool
}

type heldMessage struct {
	msg    any
	sender *actor.PID
}

// fenceCheckTimeout bounds one LastSeq query.
const fenceCheckTimeout = 5 * time.Second

// fenceRetry is the wait before confirming again while the copy's own write
// is in flight (the journal's answer could not tell it from another's).
const fenceRetry = 2 * time.Millisecond

// errReadFenced is the breakdown of a copy that found another's writes.
var errReadFenced = fmt.Errorf("%w: another incarnation wrote since this one recovered (read fence)", persistence.ErrFenced)

// FenceStats returns the read fence's counters for this incarnation.
func (j *Journaled) FenceStats() ReadFenceStats { return j.fence.stats }

// ConfirmLatest is for an answer that a stale copy would get wrong in the
// worst way: "no such thing" (a token issued, or a record written, by
// another copy since this one recovered). A copy that was sure could have
// been paused (a stopped process, a long stall) while another copy took
// over and wrote, and its node may not have seen the topology change yet.
// It reports true when the copy may answer from its state: there is no
// placement (one copy per identity), or the journal confirmed, after the
// message ctx is processing arrived, that the copy holds the latest
// history. Otherwise it holds the message, asks the journal, and reports
// false: the caller answers nothing now. The message comes back through the
// mailbox once confirmed, or goes to the successor if another copy wrote
// meanwhile. One query serves every message held when it starts.
func (j *Journaled) ConfirmLatest(ctx actor.Context) bool {
	f := &j.fence
	msg, ok := ctx.Message().(proto.Message)
	if f.placement == nil || !ok {
		return true
	}
	if _, ok := f.passed[msg]; ok {
		delete(f.passed, msg)
		return true
	}
	if f.asked == nil {
		f.asked, f.passed = map[proto.Message]int{}, map[proto.Message]struct{}{}
	}
	// A query already under way may have read the journal before the
	// write this message is about: only a later one confirms it.
	f.asked[msg] = f.stats.Queries
	f.sure = false
	j.fenceHold(ctx)
	return false
}

// fenceStart runs on Started, before recovery: a copy whose node's
// topology is settled now will recover the latest history.
func (j *Journaled) fenceStart(ctx actor.Context) {
	j.fence.placement = cluster.PlacementOf(ctx)
	if j.fence.placement == nil {
		j.fence.sure = true
		return
	}
	j.fence.handBack = cluster.HandBackHeldFunc(ctx)
	_, j.fence.sure = j.fence.placement.Settled()
}

// fenceHold holds the message ctx is processing, and reports true, while
// the copy is not sure it has the latest history.
func (j *Journaled) fenceHold(ctx actor.Context) bool {
	if j.fence.sure {
		return false
	}
	if len(j.fence.held) == 0 && j.fence.stats.Held == 0 {
		j.fence.since = time.Now()
	}
	j.fence.held = append(j.fence.held, heldMessage{msg: ctx.Message(), sender: ctx.Sender()})
	j.fence.stats.Held++
	j.fenceCheck()
	return true
}

// fenceCheck starts what makes the copy sure, unless it is under way.
func (j *Journaled) fenceCheck() {
	f := &j.fence
	if f.checking || f.sure || j.broken != nil || len(f.held) == 0 {
		return
	}
	post := j.Post()
	version, settled := f.placement.Settled()
	if !settled {
		f.checking = true
		f.placement.WhenSettled(version, func() {
			post(func() {
				f.checking = false
				j.fenceCheck()
			})
		})
		return
	}
	if !f.placement.Owned() {
		j.fenceBreak(fmt.Errorf("%s: this node no longer owns it", j.opt.ID))
		return
	}
	f.checking = true
	if j.inFlight || j.retrying || len(j.unsent) > 0 {
		// A row the query finds above what is durable could be our own.
		j.After(fenceRetry, func() {
			f.checking = false
			j.fenceCheck()
		})
		return
	}
	f.stats.Queries++
	query := f.stats.Queries
	journal, id, have := j.opt.Journal, j.opt.ID, j.durable
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), fenceCheckTimeout)
		defer cancel()
		latest, err := journal.LastSeq(ctx, id)
		post(func() { j.fenceChecked(query, have, latest, err) })
	}()
}

// fenceChecked takes the journal's answer to the query-th query: latest is
// the highest sequence number stored when the copy had have durable.
func (j *Journaled) fenceChecked(query int, have, latest int64, err error) {
	f := &j.fence
	f.checking = false
	switch {
	case err != nil:
		// Not known to be stale, only unable to tell: refuse what was held
		// (nothing of it ran) and confirm again with the next message.
		j.opt.Logger.Warn("read fence: journal unavailable", "actor", j.opt.ID, "err", err)
		rej := unavailable(j.opt.ID, err)
		for _, h := range f.held {
			if m, ok := h.msg.(proto.Message); ok {
				delete(f.asked, m)
			}
			if h.sender != nil {
				j.root.Send(h.sender, rej)
			}
		}
		f.held = nil
	case latest > j.durable && latest <= j.applied && (j.inFlight || j.retrying || len(j.unsent) > 0):
		// Our own write started meanwhile: the rows may be ours. Ask again
		// once it is through.
		f.checking = true
		j.After(fenceRetry, func() {
			f.checking = false
			j.fenceCheck()
		})
	case latest <= max(have, j.durable):
		f.sure = true
		held := f.held
		f.held = nil
		j.opt.Logger.Debug("read fence: confirmed", "actor", j.opt.ID, "held", f.stats.Held,
			"queries", f.stats.Queries, "waited", time.Since(f.since))
		// Process them now, in order, ahead of nothing: they go through the
		// mailbox again (and the grain's ownership check).
		for _, h := range held {
			if m, ok := h.msg.(proto.Message); ok {
				if before, ok := f.asked[m]; ok && before < query {
					delete(f.asked, m)
					f.passed[m] = struct{}{}
				}
			}
			if h.sender != nil {
				j.root.RequestWithCustomSender(j.self, h.msg, h.sender)
			} else {
				j.root.Send(j.self, h.msg)
			}
		}
	default:
		f.stats.Fenced = true
		j.fenceBreak(fmt.Errorf("%w: %s has seq %d, the journal %d", errReadFenced, j.opt.ID, j.durable, latest))
	}
}

// fenceBreak takes the copy out of service and hands what it held to its
// successor.
func (j *Journaled) fenceBreak(err error) {
	j.fenceRelease(err)
	j.breakDown(err)
}

// fenceRelease hands every held message to the next incarnation, or
// answers it STORE_UNAVAILABLE when it cannot be handed back.
func (j *Journaled) fenceRelease(err error) {
	held := j.fence.held
	j.fence.held = nil
	for _, h := range held {
		if j.fence.handBack != nil && j.fence.handBack(h.msg, h.sender) {
			continue
		}
		if h.sender != nil && j.root != nil {
			j.root.Send(h.sender, unavailable(j.opt.ID, err))
		}
	}
}
