package http_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/concert/ticketing/node"
)

// TestRateLimits: user creation, token issue and token polling are limited
// per client address — 429 RATE_LIMITED with Retry-After past the allowance
// (a sixth of the minute's at once) — and each route has its own allowance.
func TestRateLimits(t *testing.T) {
	e := startNode(t, node.Config{AdminKey: adminKey, RateUsers: 12, RateTokenIssue: 6, RateTokenPoll: 18})

	// 12 a minute: 2 at once.
	alice, bob := e.user("alice"), e.user("bob")
	r := e.do("POST", "/users", map[string]any{"name": "carol"}, nil)
	e.fails(429, "RATE_LIMITED", r)
	after, err := strconv.Atoi(r.header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After %q", r.header.Get("Retry-After"))
	require.True(t, after >= 1 && after <= 5, "Retry-After %d: a new user every 5 s", after)

	// 6 a minute: 1 at once; polling is counted apart.
	tok := e.token(alice)
	e.fails(429, "RATE_LIMITED", e.do("POST", "/users/token", map[string]any{"userId": bob}, nil))
	for range 3 {
		e.ok(200, e.do("GET", "/users/token", nil, bearer(tok)))
	}
	e.fails(429, "RATE_LIMITED", e.do("GET", "/users/token", nil, bearer(tok)))

	// Other routes are not limited.
	for range 5 {
		e.ok(200, e.do("GET", fmt.Sprintf("/customers/point?userId=%d", alice), nil, nil))
	}
}

// TestRateLimitsTrustProxies: behind a trusted proxy, each client its
// X-Forwarded-For names has its own allowance; from an untrusted peer the
// header is ignored, so a client cannot escape its limit by forging it.
func TestRateLimitsTrustProxies(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	e := startNode(t, node.Config{AdminKey: adminKey, RateUsers: 6, TrustedProxies: loopback})
	for i := range 5 {
		// "client, proxy": the client is the last address not trusted.
		xff := hdr{"X-Forwarded-For", fmt.Sprintf("203.0.113.%d, 127.0.0.9", i+1)}
		e.ok(201, e.do("POST", "/users", map[string]any{"name": "fan"}, xff))
	}
	e.fails(429, "RATE_LIMITED", e.do("POST", "/users", map[string]any{"name": "fan"}, hdr{"X-Forwarded-For", "203.0.113.1"}))

	untrusting := startNode(t, node.Config{AdminKey: adminKey, RateUsers: 6,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	untrusting.ok(201, untrusting.do("POST", "/users", map[string]any{"name": "fan"}, hdr{"X-Forwarded-For", "203.0.113.1"}))
	untrusting.fails(429, "RATE_LIMITED", untrusting.do("POST", "/users", map[string]any{"name": "fan"}, hdr{"X-Forwarded-For", "203.0.113.2"}))
}

// TestTokenAskedAgainKeepsItsPlace: however often a user asks for a token,
// it has one place in line.
func TestTokenAskedAgainKeepsItsPlace(t *testing.T) {
	e := startNode(t, node.Config{AdminKey: adminKey, ActiveTokens: 1})
	first, waiting := e.user("first"), e.user("waiting")
	e.token(first)
	tok := e.ok(200, e.do("POST", "/users/token", map[string]any{"userId": waiting}, nil))
	require.Equal(t, "WAIT", tok["status"])
	other := e.user("other")
	e.ok(200, e.do("POST", "/users/token", map[string]any{"userId": other}, nil))
	for range 20 {
		again := e.ok(200, e.do("POST", "/users/token", map[string]any{"userId": waiting}, nil))
		require.Equal(t, tok["id"], again["id"], "one token per user")
		require.Equal(t, num(t, tok["position"]), num(t, again["position"]), "asking again keeps the place")
	}
	polled := e.ok(200, e.do("GET", "/users/token", nil, bearer(e.token(other))))
	require.Equal(t, int64(2), num(t, polled["position"]), "the user behind is still second")
	w, _ := e.n.Booking().QueueSizes()
	require.Equal(t, 2, w, "two in line")
}
