package http_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/concert/ticketing/node"
)

// metricValue is the value of one series of a /metrics text (the sum over
// the series that match, so a name alone sums its labels); false when none
// matches.
func metricValue(text, name, labels string) (float64, bool) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
	sum, found := 0.0, false
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		if labels != "" && !strings.Contains(m[1], labels) {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		sum, found = sum+v, true
	}
	return sum, found
}

// TestE2EOperatorMetrics drives a little of everything — tokens through the
// line, holds, a cancel, a hold that expires, a payment, a refused payment,
// top-ups, a token stream, snapshots — and checks that /metrics carries
// every operator series with the counts that traffic implies.
func TestE2EOperatorMetrics(t *testing.T) {
	e := startNode(t, node.Config{AdminKey: adminKey, ActiveTokens: 1, HoldTTL: 5 * time.Second, // long enough to pay on a busy 2-core machine under -race
		SnapshotEvery: 3, StreamInterval: 20 * time.Millisecond})
	concertID, _ := e.concert(1000, 10, day(1))
	seats := e.freeSeats(concertID, day(1))
	alice, bob := e.user("alice"), e.user("bob")
	ta, tb := e.token(alice), e.token(bob) // bob waits behind alice
	s := e.openStream(tb)
	s.want(`{"status":"WAIT","position":1}`)
	e.charge(alice, 1500)

	r := e.ok(200, e.hold(ta, alice, seats[0]))
	e.ok(200, e.do("DELETE", fmt.Sprintf("/reservations/%d", num(t, r["id"])), nil, bearer(ta)))
	r = e.ok(200, e.hold(ta, alice, seats[1]))
	e.ok(200, e.pay(ta, num(t, r["id"]), 1000)) // alice's token expires: bob is admitted
	s.want(`{"status":"ACTIVE","position":0}`)

	r = e.ok(200, e.hold(tb, bob, seats[2]))
	e.fails(409, "INSUFFICIENT_BALANCE", e.pay(tb, num(t, r["id"]), 1000)) // bob has no points
	e.ok(200, e.hold(tb, bob, seats[3]))                                   // left to expire
	e.charge(bob, 10)

	var text string
	scrape := func() string { return string(e.do("GET", "/metrics", nil, nil).raw) }
	atLeast := func(name, labels string, want float64) bool {
		v, ok := metricValue(text, name, labels)
		return ok && v >= want
	}
	waitFor(t, 20*time.Second, "hold expiries and snapshots in /metrics", func() bool {
		text = scrape()
		return atLeast("seat_hold_expiries_total", "", 2) && atLeast("snapshot_size_bytes_count", `kind="seat"`, 1)
	})

	for _, c := range []struct {
		name, labels string
		min          float64
	}{
		// business counters
		{"seat_holds_total", "", 4},
		{"seat_hold_cancels_total", "", 1},
		{"seat_hold_expiries_total", "", 2},
		{"seat_payments_started_total", "", 2},
		{"seat_payments_confirmed_total", "", 1},
		{"seat_payment_aborts_total", `code="INSUFFICIENT_BALANCE"`, 1},
		{"wallet_charges_total", "", 2},
		{"wallet_charged_points_total", "", 1510},
		{"wallet_debits_total", "", 1},
		{"wallet_debited_points_total", "", 1000},
		{"queue_tokens_issued_total", "", 2},
		{"queue_admissions_total", "", 2},
		{"queue_token_expiries_total", `reason="paid"`, 1},
		{"queue_token_expiries_total", `reason="idle"`, 0},
		{"queue_token_expiries_total", `reason="abandoned"`, 0},
		{"queue_waiting", "", 0},
		{"queue_active", "", 1},
		{"actor_overload_refusals_total", `kind="seat",reason="admission"`, 0},
		{"actor_overload_refusals_total", `kind="wallet",reason="backlog"`, 0},
		// store
		{"store_errors_total", `op="append",reason="unavailable"`, 0},
		{"store_errors_total", `op="catalog",reason="unavailable"`, 0},
		{"db_pool_acquired_connections", "", 0},
		{"db_pool_idle_connections", "", 0},
		{"db_pool_total_connections", "", 1},
		{"db_pool_max_connections", "", 16},
		{"db_pool_acquires_total", "", 1},
		{"db_pool_empty_acquires_total", "", 0},
		{"db_pool_acquire_wait_seconds_total", "", 0},
		{"db_pool_acquire_duration_seconds_total", "", 0},
		{"snapshot_size_bytes_count", `kind="seat"`, 1},
		{"snapshot_size_bytes_sum", `kind="seat"`, 1},
		{"snapshot_last_size_bytes", `kind="seat"`, 1},
		{"snapshot_save_duration_seconds_count", `kind="seat"`, 1},
		{"actor_recovery_duration_seconds_count", `kind="queue"`, 1},
		{"actor_recovery_duration_seconds_count", `kind="seat"`, 1},
		{"actor_recovery_duration_seconds_count", `kind="wallet"`, 2},
		{"actor_recovered_events_total", `kind="queue"`, 0},
		// journal (kept) and streams
		{"journal_batch_size_count", "", 1},
		{"journal_batch_seconds_count", "", 1},
		{"journal_append_errors_total", "", 0},
		{"token_streams_open", "", 1},
		{"token_streams_opened_total", "", 1},
		{"token_stream_events_total", "", 2},
		{"token_stream_heartbeats_total", "", 0},
		{"token_streams_refused_total", "", 0},
	} {
		v, ok := metricValue(text, c.name, c.labels)
		require.True(t, ok, "/metrics lacks %s{%s}", c.name, c.labels)
		require.GreaterOrEqual(t, v, c.min, "%s{%s}", c.name, c.labels)
	}
	// Every counter of ours ends in _total; no series of ours without HELP.
	for _, name := range regexp.MustCompile(`(?m)^# TYPE (\S+) counter$`).FindAllStringSubmatch(text, -1) {
		require.True(t, strings.HasSuffix(name[1], "_total"), "counter %s", name[1])
	}
}
