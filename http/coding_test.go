package http

import (
	"bytes"
	"compress/gzip"
	stdhttp "net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// gzipped compresses body.
func gzipped(t *testing.T, body string) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, err := w.Write([]byte(body))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return b.String()
}

// TestCompressedBodyRefused sends bodies in a content coding. Before, a
// gzip body was counted compressed by the 64 KiB limit and inflated by
// Ctx.Body with no limit: the bomb below (about 16 KiB of gzip, 16 MiB of
// JSON) was answered 200 and the charge applied. Every coding but identity
// is now 415 UNSUPPORTED_MEDIA_TYPE with Accept-Encoding: identity, on
// every route that takes a body, before the booking is called.
func TestCompressedBodyRefused(t *testing.T) {
	// A valid charge padded with a 16 MiB unknown field: served as JSON if
	// it were inflated, so only the refusal keeps the booking uncalled.
	bomb := gzipped(t, `{"userId":1,"chargeBalance":100,"pad":"`+strings.Repeat("x", 16<<20)+`"}`)
	require.Less(t, len(bomb), MaxBodyBytes, "the bomb must pass the wire limit")
	small := gzipped(t, `{"userId":1,"chargeBalance":100}`)
	plain := `{"userId":1,"chargeBalance":100}`
	auth := "Bearer t"
	for _, tt := range []struct {
		name, method, path, body, coding string
	}{
		{"charge gzip bomb", "PATCH", "/customers/point", bomb, "gzip"},
		{"charge small gzip", "PATCH", "/customers/point", small, "gzip"},
		{"charge GZIP in capitals", "PATCH", "/customers/point", small, "GZIP"},
		{"charge deflate", "PATCH", "/customers/point", plain, "deflate"},
		{"charge br", "PATCH", "/customers/point", plain, "br"},
		{"charge zstd", "PATCH", "/customers/point", plain, "zstd"},
		{"charge unknown coding", "PATCH", "/customers/point", plain, "x-made-up"},
		{"charge identity then gzip", "PATCH", "/customers/point", small, "identity, gzip"},
		{"user gzip", "POST", "/users", gzipped(t, `{"name":"ann"}`), "gzip"},
		{"token gzip", "POST", "/users/token", gzipped(t, `{"userId":1}`), "gzip"},
		{"admin gzip", "POST", "/admin/concerts", gzipped(t, `{"title":"t","dates":["2030-01-01"],"price":10}`), "gzip"},
		{"hold gzip", "POST", "/reservations", gzipped(t, `{"userId":1,"seatId":2}`), "gzip"},
		{"pay gzip", "POST", "/payments", gzipped(t, `{"reservationId":1,"amount":10}`), "gzip"},
		{"get with a coding", "GET", "/customers/point?userId=1", "", "gzip"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fb := &fakeBooking{}
			res, e := do(t, Config{Booking: fb, AdminKey: "k"}, tt.method, tt.path, tt.body,
				map[string]string{"Content-Encoding": tt.coding, "Authorization": auth, "X-Admin-Key": "k"})
			require.Equal(t, stdhttp.StatusUnsupportedMediaType, res.StatusCode, "body %+v", e)
			require.Equal(t, "UNSUPPORTED_MEDIA_TYPE", e.Code)
			require.Contains(t, e.Message, "Content-Encoding")
			require.Equal(t, "identity", res.Header.Get("Accept-Encoding"))
			require.Empty(t, fb.last, "the booking must not be called")
		})
	}
}

// TestIdentityCodingServed: no coding, or identity named in any case, is
// served as before.
func TestIdentityCodingServed(t *testing.T) {
	for _, coding := range []string{"", "identity", "Identity", " identity , IDENTITY "} {
		t.Run("coding "+coding, func(t *testing.T) {
			fb := &fakeBooking{}
			header := map[string]string{}
			if coding != "" {
				header["Content-Encoding"] = coding
			}
			res, e := do(t, Config{Booking: fb}, "PATCH", "/customers/point", `{"userId":1,"chargeBalance":100}`, header)
			require.Equal(t, stdhttp.StatusOK, res.StatusCode, "body %+v", e)
			require.Equal(t, "Charge", fb.last)
		})
	}
}

// TestSecondContentEncodingRefused: a coding in a second Content-Encoding
// line is seen too, whatever the first says.
func TestSecondContentEncodingRefused(t *testing.T) {
	addr := serveFake(t, Config{Booking: &fakeBooking{}})
	body := gzipped(t, `{"name":"ann"}`)
	res, raw, _, _ := rawExchange(t, addr, "POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Content-Encoding: identity\r\nContent-Encoding: gzip\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	require.Equal(t, stdhttp.StatusUnsupportedMediaType, res.StatusCode, "body %s", raw)
}
