package http

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRepeatedSingleHeadersRefused sends each header the service reads as
// one value twice. Before, the first copy won silently while a proxy in
// front may have checked or logged the other; now each is 400
// INVALID_REQUEST naming the header, and the booking is not called.
func TestRepeatedSingleHeadersRefused(t *testing.T) {
	for _, tt := range []struct {
		name, method, path, body, header string
		values                           []string
		cfg                              Config
	}{
		{"Authorization", "GET", "/users/token", "", "Authorization", []string{"Bearer t", "Bearer u"}, Config{}},
		{"Authorization the same twice", "GET", "/users/token", "", "Authorization", []string{"Bearer t", "Bearer t"}, Config{}},
		{"X-Admin-Key", "POST", "/admin/concerts", `{"title":"t","dates":["2030-01-01"],"price":10}`,
			"X-Admin-Key", []string{"k", "x"}, Config{AdminKey: "k"}},
		{"Idempotency-Key on a charge", "PATCH", "/customers/point", `{"userId":1,"chargeBalance":100}`,
			"Idempotency-Key", []string{"a", "b"}, Config{}},
		{"Idempotency-Key on a payment", "POST", "/payments", `{"reservationId":1,"amount":10}`,
			"Idempotency-Key", []string{"a", "b"}, Config{}},
		{"the gateway's identity", "GET", "/customers/point?userId=1", "", "X-User-Id", []string{"1", "2"},
			Config{IdentityHeader: "X-User-Id"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fb := &fakeBooking{}
			cfg := tt.cfg
			cfg.Booking, cfg.Logger = fb, slog.New(slog.DiscardHandler)
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			if tt.header != "Authorization" {
				req.Header.Set("Authorization", "Bearer t")
			}
			for _, v := range tt.values {
				req.Header.Add(tt.header, v)
			}
			res, err := New(cfg).Test(req, -1)
			require.NoError(t, err)
			defer res.Body.Close()
			raw, err := io.ReadAll(res.Body)
			require.NoError(t, err)
			require.Equal(t, 400, res.StatusCode, "body %s", raw)
			var e apiError
			require.NoError(t, json.Unmarshal(raw, &e))
			require.Equal(t, "INVALID_REQUEST", e.Code)
			require.Contains(t, e.Message, tt.header)
			require.Empty(t, fb.last, "the booking must not be called")
		})
	}
}
