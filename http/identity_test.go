package http_test

import (
	"fmt"
	stdhttp "net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/concert/ticketing/node"
)

// TestTrustedIdentity: with IDENTITY_HEADER set, every user route needs the
// gateway's identity and acts only for that user — by the userId it names
// or by the user its token belongs to — so knowing a user's id no longer
// gets that user's token, balance or seats.
func TestTrustedIdentity(t *testing.T) {
	e := startNode(t, node.Config{AdminKey: adminKey, IdentityHeader: "X-User-Id"})
	alice, bob := e.user("alice"), e.user("bob") // registration stays open
	as := func(u int64) hdr { return hdr{"X-User-Id", strconv.FormatInt(u, 10)} }
	concertID, _ := e.concert(100, 2, day(2))
	seat := e.freeSeats(concertID, day(2))[0]

	// A token only for its owner.
	e.fails(403, "IDENTITY_REQUIRED", e.do("POST", "/users/token", map[string]any{"userId": alice}, nil))
	for _, bad := range []string{"", "alice", "0", "-3", "+1", "1.5", "99999999999999999999"} {
		e.fails(403, "IDENTITY_REQUIRED", e.do("POST", "/users/token", map[string]any{"userId": alice}, hdr{"X-User-Id", bad}))
	}
	e.fails(403, "IDENTITY_MISMATCH", e.do("POST", "/users/token", map[string]any{"userId": alice}, as(bob)))
	tok := e.ok(200, e.do("POST", "/users/token", map[string]any{"userId": alice}, as(alice)))["token"].(string)

	// The token does not work for anyone else, even with the right userId.
	e.fails(403, "IDENTITY_MISMATCH", e.do("GET", "/users/token", nil, append(bearer(tok), as(bob)...)))
	e.ok(200, e.do("GET", "/users/token", nil, append(bearer(tok), as(alice)...)))
	hold := map[string]any{"userId": alice, "seatId": seat}
	e.fails(403, "IDENTITY_MISMATCH", e.do("POST", "/reservations", hold, append(bearer(tok), as(bob)...)))
	e.fails(403, "IDENTITY_REQUIRED", e.do("POST", "/reservations", hold, bearer(tok)))
	r := e.ok(200, e.do("POST", "/reservations", hold, append(bearer(tok), as(alice)...)))
	res := num(t, r["id"])
	path := fmt.Sprintf("/reservations/%d", res)
	e.fails(403, "IDENTITY_MISMATCH", e.do("GET", path, nil, append(bearer(tok), as(bob)...)))
	e.fails(403, "IDENTITY_MISMATCH", e.do("DELETE", path, nil, append(bearer(tok), as(bob)...)))
	e.ok(200, e.do("GET", path, nil, append(bearer(tok), as(alice)...)))

	// Wallets.
	point := fmt.Sprintf("/customers/point?userId=%d", alice)
	e.fails(403, "IDENTITY_REQUIRED", e.do("GET", point, nil, nil))
	e.fails(403, "IDENTITY_MISMATCH", e.do("GET", point, nil, as(bob)))
	e.fails(403, "IDENTITY_MISMATCH", e.do("PATCH", "/customers/point", map[string]any{"userId": alice, "chargeBalance": 100}, as(bob)))
	e.ok(200, e.do("PATCH", "/customers/point", map[string]any{"userId": alice, "chargeBalance": 100}, as(alice)))
	e.fails(403, "IDENTITY_MISMATCH", e.do("POST", "/payments", map[string]any{"reservationId": res, "amount": 100}, append(bearer(tok), as(bob)...)))
	p := e.ok(200, e.do("POST", "/payments", map[string]any{"reservationId": res, "amount": 100}, append(bearer(tok), as(alice)...)))
	require.Equal(t, int64(0), num(t, p["balance"]))

	// Token streams: only for the token's own user.
	btok := e.ok(200, e.do("POST", "/users/token", map[string]any{"userId": bob}, as(bob)))["token"].(string)
	e.fails(403, "IDENTITY_REQUIRED", e.do("GET", "/users/token/stream", nil, bearer(btok)))
	e.fails(403, "IDENTITY_MISMATCH", e.do("GET", "/users/token/stream", nil, append(bearer(btok), as(alice)...)))
	req, err := stdhttp.NewRequest("GET", e.base+"/users/token/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+btok)
	req.Header.Set("X-User-Id", strconv.FormatInt(bob, 10))
	stream, err := stdhttp.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, 200, stream.StatusCode, "the token's own user opens its stream")
	require.NoError(t, stream.Body.Close())

	// Catalog reads stay open.
	require.Equal(t, 200, e.do("GET", fmt.Sprintf("/concerts/%d/available-date", concertID), nil, nil).status)
}
