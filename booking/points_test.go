package booking

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// recordingRouter answers every request with an empty wallet result and
// remembers the last message.
type recordingRouter struct{ last proto.Message }

func (r *recordingRouter) Request(_ context.Context, _, _ string, msg proto.Message) (proto.Message, error) {
	r.last = msg
	return &messages.WalletResult{Balance: 42}, nil
}

// knownUsers is a Catalog whose every user exists.
type knownUsers struct{ Catalog }

func (knownUsers) User(_ context.Context, id int64) (persistence.User, error) {
	return persistence.User{ID: id, CreatedAt: time.Unix(0, 0)}, nil
}

// TestChargePassesIdempotencyKey: the key of a charge travels to the
// wallet in ChargePoints.IdempotencyKey (the wallet deduplicates by it).
func TestChargePassesIdempotencyKey(t *testing.T) {
	r := &recordingRouter{}
	s := New(Config{Catalog: knownUsers{}, Router: r})
	for _, key := range []string{"charge-1", ""} {
		balance, err := s.Charge(context.Background(), 7, 100, key)
		if err != nil || balance != 42 {
			t.Fatalf("Charge(key %q) = %d, %v", key, balance, err)
		}
		c, ok := r.last.(*messages.ChargePoints)
		if !ok {
			t.Fatalf("sent %T, want *messages.ChargePoints", r.last)
		}
		if c.GetUserId() != 7 || c.GetAmount() != 100 || c.GetIdempotencyKey() != key {
			t.Errorf("sent %v, want user 7, amount 100, key %q", c, key)
		}
	}
}
