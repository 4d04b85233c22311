package actors

import (
	"context"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/cluster/clusterpb"
	"github.com/concert/ticketing/messages"
)

// newQueueFenceNode is a fenceNode running a copy of the queue manager
// (with its node's token feed) on a journal shared with another node, on a
// settled topology it owns.
func newQueueFenceNode(t *testing.T, journal Journal) *fenceNode {
	t.Helper()
	system := actor.NewActorSystem(actor.WithLoggerFactory(seatQuietLoggerFactory))
	table := NewTokenTable()
	feed := NewTokenFeed(TokenFeedConfig{Table: table, System: system})
	n := newFenceNodeOf(t, system, true, "queue", NewQueueProducer(QueueConfig{Journal: journal, Tokens: table,
		Feed: feed, ActiveTokens: 10, TokenIdleTTL: time.Hour, WaitIdleTTL: time.Hour, Logger: seatQuietLogger()}))
	feed.cfg.Router = n.local
	t.Cleanup(feed.Stop) // before the node's own cleanup
	return n
}

// askQueue sends msg to n's copy of the queue manager, again while it
// answers STORE_UNAVAILABLE (a copy fenced by the other's writes is
// replaced).
func askQueue(t *testing.T, n *fenceNode, msg proto.Message) (proto.Message, error) {
	t.Helper()
	var res proto.Message
	var err error
	actortest.Eventually(t, 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err = n.local.Request(ctx, "queue", "main", msg)
		return wqCode(err) != messages.CodeStoreUnavailable
	}, "an answer other than STORE_UNAVAILABLE")
	return res, err
}

// TestStaleQueueCopyDoesNotCallATokenUnknown: a copy of the queue manager
// that was sure of its history (recovered on a settled topology) can still
// be stale: its node was paused while another copy took over and issued
// tokens, and the node has not seen the topology change yet (found by
// SIGSTOP-ing the manager's node in a 3-node cluster: every token issued
// meanwhile was 401 there). Asked about such a token — a poll, a lookup
// from the node's token feed, an expiry — it must not answer "unknown": it
// confirms with the journal, finds the other copy's writes, and its
// successor answers. A token nobody issued is still unknown.
func TestStaleQueueCopyDoesNotCallATokenUnknown(t *testing.T) {
	journal := &fenceCountingJournal{Journal: actortest.NewMemJournal()}
	stale, other := newQueueFenceNode(t, journal), newQueueFenceNode(t, journal)
	if _, err := askQueue(t, stale, &messages.Wake{}); err != nil { // recovered, sure, then "paused"
		t.Fatal(err)
	}
	cases := []struct {
		name string
		ask  func(secret string) proto.Message
		ok   func(proto.Message) bool
	}{
		{"poll", func(s string) proto.Message { return &messages.GetToken{Token: s} },
			func(res proto.Message) bool { _, ok := res.(*messages.TokenResult); return ok }},
		{"feed lookup", func(s string) proto.Message { return &clusterpb.FeedLookup{Token: digestOf(s)} },
			func(res proto.Message) bool { return res.(*clusterpb.FeedEntry).GetFound() }},
		{"expiry", func(s string) proto.Message { return &messages.ExpireToken{Token: s, Reason: ExpiredReasonPaid} },
			func(res proto.Message) bool { _, ok := res.(*messages.TokenResult); return ok }},
	}
	for i, c := range cases {
		issued, err := askQueue(t, other, &messages.IssueToken{UserId: int64(i + 1)})
		if err != nil {
			t.Fatal(err)
		}
		tok := issued.(*messages.TokenResult).GetToken()
		before := stale.made.Load()
		if res, err := askQueue(t, stale, c.ask(tok.GetToken())); err != nil || !c.ok(res) {
			t.Fatalf("%s of a token another copy issued: %v %v", c.name, res, err)
		}
		if stale.made.Load() != before+1 {
			t.Fatalf("%s: %d incarnations after, want the stale one replaced", c.name, stale.made.Load()-before)
		}
		// The successor is sure and up to date: a later write by the other
		// copy makes it stale again, for the next case.
	}
	queries := journal.lastSeq.Load()
	if res, err := askQueue(t, stale, &messages.GetToken{Token: "never-issued"}); wqCode(err) != messages.CodeTokenInvalid {
		t.Fatalf("a token nobody issued: %v %v, want TOKEN_INVALID", res, err)
	}
	if journal.lastSeq.Load() <= queries {
		t.Fatal("a token called unknown without confirming with the journal")
	}
}
