package http_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/concert/ticketing/node"
)

// TestE2EChargeIdempotencyKey: a charge retried with its Idempotency-Key —
// also concurrently, as a client retrying after a cut connection would —
// adds once and answers the first balance; the same key with another
// amount is refused; a key of 255 Korean characters is a valid key, 256 is
// not, and a key that is not UTF-8 is refused before anything changes.
func TestE2EChargeIdempotencyKey(t *testing.T) {
	e := startNode(t, node.Config{ActorIdleTTL: 0})
	u := e.user("charger")
	e.charge(u, 100)
	chargeWith := func(key string, amount int64) reply {
		return e.do("PATCH", "/customers/point", map[string]any{"userId": u, "chargeBalance": amount}, hdr{"Idempotency-Key", key})
	}
	first := num(t, e.ok(200, chargeWith("top-up-1", 500))["balance"])
	if first != 600 {
		t.Fatalf("first charge: balance %d, want 600", first)
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := chargeWith("top-up-1", 500)
			if r.status != 200 || !strings.Contains(string(r.raw), `"balance":600`) {
				t.Errorf("retry: %d %s, want 200 with the first balance 600", r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	e.fails(409, "IDEMPOTENCY_KEY_REUSED", chargeWith("top-up-1", 501))
	if b := e.balance(u); b != 600 {
		t.Fatalf("balance %d after retries, want 600 (added once)", b)
	}
	korean := strings.Repeat("가", 255)
	e.ok(200, chargeWith(korean, 7))
	e.ok(200, chargeWith(korean, 7))
	if b := e.balance(u); b != 607 {
		t.Fatalf("balance %d, want 607", b)
	}
	e.fails(400, "INVALID_REQUEST", chargeWith(strings.Repeat("가", 256), 7))
	e.fails(400, "INVALID_REQUEST", e.do("PATCH", "/customers/point",
		map[string]any{"userId": u, "chargeBalance": 1}, hdr{"Idempotency-Key", "pay-\xff\xfe"}))
	if b := e.balance(u); b != 607 {
		t.Fatalf("balance %d after refused charges, want 607", b)
	}
}
