package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/concert/ticketing/cluster/clusterpb"
)

// The queue manager's side of the token feed (see TokenFeed). Its epoch is
// its incarnation; every durable change it publishes into its own node's
// table is also pushed, numbered, to the feeds of the other nodes. A
// snapshot is read from its own table, which shows exactly the published
// (durable) state at the current number, so a node never sees a change the
// journal does not hold.

// feedState is one queue manager incarnation's subscribers and numbering.
type feedState struct {
	epoch uint64
	seq   int64
	subs  map[string]*feedSub // by feed actor (address/id)
}

type feedSub struct {
	pid  *actor.PID
	seen time.Time
	// snapshotAt is when this incarnation last sent the node a snapshot
	// (asked for, or because it reported an older epoch); zero for never.
	snapshotAt time.Time
}

// feedStarted runs once the incarnation has published its recovered state.
func (q *queueActor) feedStarted(ctx actor.Context) {
	if q.cfg.Feed == nil {
		return
	}
	q.feed = feedState{epoch: q.j.Incarnation(), subs: map[string]*feedSub{}}
	q.cfg.Feed.local.Store(q.feed.epoch)
}

// feedStopped tells this node's feed the manager no longer runs here.
func (q *queueActor) feedStopped() {
	if q.cfg.Feed != nil && q.feed.epoch != 0 {
		q.cfg.Feed.local.CompareAndSwap(q.feed.epoch, 0)
		q.cfg.Feed.Resync()
	}
}

// feedPublish pushes changes just published into the table (durable) to
// every other node.
func (q *queueActor) feedPublish(changes []tokenChange) {
	if q.cfg.Feed == nil || q.feed.epoch == 0 || len(changes) == 0 {
		return
	}
	q.feed.seq++
	up := &clusterpb.FeedUpdate{Epoch: q.feed.epoch, Seq: q.feed.seq, SentUnixNano: time.Now().UnixNano(),
		Changes: make([]*clusterpb.FeedToken, 0, len(changes))}
	for _, c := range changes {
		if c.rekeyedFrom != "" {
			// A fresh secret: the old key leaves, the new one comes.
			up.Changes = append(up.Changes, &clusterpb.FeedToken{Token: c.rekeyedFrom, TokenId: c.entry.tokenID, UserId: c.entry.userID})
		}
		ft := feedToken(c.token, c.entry)
		ft.Status = int32(c.status)
		ft.Paid = c.paid
		up.Changes = append(up.Changes, ft)
	}
	root, now := q.j.root, time.Now()
	for addr, s := range q.feed.subs {
		if now.Sub(s.seen) > feedSubscriberTTL {
			delete(q.feed.subs, addr) // a node that stopped subscribing
			continue
		}
		root.Send(s.pid, up)
	}
}

// receiveFeed answers the feed's messages; false for any other message.
func (q *queueActor) receiveFeed(ctx actor.Context, msg any) bool {
	switch m := msg.(type) {
	case *clusterpb.FeedSubscribe:
		if q.cfg.Feed == nil || q.feed.epoch == 0 {
			ctx.Respond(&clusterpb.FeedSubscribed{})
			return true
		}
		self := ctx.Self().GetAddress()
		// This node's own feed stands aside (the table is the manager's).
		own := m.GetAddress() == self && m.GetId() == q.cfg.Feed.pid.GetId()
		snapshot := !own && (m.GetResync() || m.GetEpoch() != q.feed.epoch)
		ctx.Respond(&clusterpb.FeedSubscribed{Epoch: q.feed.epoch, Seq: q.feed.seq, Owner: self, Snapshot: snapshot})
		if own {
			return true
		}
		key, now := m.GetAddress()+"/"+m.GetId(), time.Now()
		s := q.feed.subs[key]
		if s == nil {
			s = &feedSub{pid: actor.NewPID(m.GetAddress(), m.GetId())}
			q.feed.subs[key] = s
		}
		s.seen = now
		// A node still applying the snapshot it was sent (a million tokens
		// take longer than the second between its subscriptions) reports
		// the older epoch again: it is not sent another, O(tokens) on both
		// sides, unless it asks (Resync) or the grace has passed (lost).
		if snapshot && (m.GetResync() || s.snapshotAt.IsZero() || now.Sub(s.snapshotAt) > feedSnapshotGrace) {
			s.snapshotAt = now
			q.sendSnapshot(s.pid)
		}
	case *clusterpb.FeedLookup:
		var entry clusterpb.FeedEntry
		if q.cfg.Feed != nil {
			entry.Epoch, entry.Seq = q.feed.epoch, q.feed.seq
			// A check from another node: it counts as a use, like a check
			// here. It names the token by its key (the digest of its
			// secret): secrets do not cross the cluster.
			if _, ok := q.cfg.Tokens.checkKey(m.GetToken(), q.cfg.Now()); ok {
				entry.Found = true
				entry.Token = feedToken(m.GetToken(), q.cfg.Tokens.entry(m.GetToken()))
			} else if !q.j.ConfirmLatest(ctx) {
				return true // held: "not found" from a stale copy would be a 401
			}
		}
		ctx.Respond(&entry)
	case *clusterpb.FeedTouches:
		ids, at := m.GetTokenIds(), m.GetAtMs()
		for i, id := range ids {
			t := q.model.byID[id]
			if t == nil || i >= len(at) {
				continue
			}
			// touch records a use of a live token (not of an expired one).
			q.model.touch(t, time.UnixMilli(at[i]))
		}
		ctx.Respond(&clusterpb.FeedTouched{})
	default:
		return false
	}
	return true
}

// sendSnapshot pushes the published state, in chunks, to one node.
func (q *queueActor) sendSnapshot(pid *actor.PID) {
	tokens := q.cfg.Tokens.snapshotFeed()
	root := q.j.root
	for i := 0; i == 0 || i < len(tokens); i += feedSnapshotChunk {
		end := min(i+feedSnapshotChunk, len(tokens))
		root.Send(pid, &clusterpb.FeedSnapshot{
			Epoch: q.feed.epoch, Seq: q.feed.seq, Tokens: tokens[i:end],
			First: i == 0, Last: end == len(tokens),
		})
	}
}
