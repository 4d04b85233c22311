package http

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkHoldHandler measures the HTTP layer of the hold path alone
// (routing, metrics, decoding, encoding) against a booking fake, without
// the network: one POST /reservations and one DELETE /reservations/:id per
// op, as in BenchmarkHoldPath.
//
//	go test ./http -run '^$' -bench HoldHandler -benchmem
func BenchmarkHoldHandler(b *testing.B) {
	app := New(Config{Booking: &fakeBooking{}})
	handler := app.Handler()
	var hold, cancel fasthttp.RequestCtx
	hold.Request.Header.SetMethod(fasthttp.MethodPost)
	hold.Request.SetRequestURI("/reservations")
	hold.Request.Header.Set("Authorization", "Bearer 0123456789abcdef0123456789abcdef")
	hold.Request.Header.SetContentType("application/json")
	hold.Request.SetBodyString(`{"userId":123,"seatId":4567}`)
	cancel.Request.Header.SetMethod(fasthttp.MethodDelete)
	cancel.Request.SetRequestURI("/reservations/4294967297")
	cancel.Request.Header.Set("Authorization", "Bearer 0123456789abcdef0123456789abcdef")
	b.ReportAllocs()
	for b.Loop() {
		hold.Response.Reset()
		handler(&hold)
		cancel.Response.Reset()
		handler(&cancel)
		if hold.Response.StatusCode() != 200 || cancel.Response.StatusCode() != 200 {
			b.Fatalf("status %d, %d: %s", hold.Response.StatusCode(), cancel.Response.StatusCode(), hold.Response.Body())
		}
	}
}
