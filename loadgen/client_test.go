package loadgen

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseID(t *testing.T) {
	tests := []struct {
		body string
		id   int64
		ok   bool
	}{
		{`{"id":42,"userId":7,"seatId":9}`, 42, true},
		{`{"userId":7,"seatId":9,"id": 1234567890123}`, 1234567890123, true},
		{"{\n  \"id\" :\t5\n}", 5, true},
		{`{"userId":7}`, 0, false},
		{`{"id":"x"}`, 0, false},
		{`{"id":99999999999999999999}`, 0, false},
		{``, 0, false},
	}
	for _, tt := range tests {
		id, ok := parseID([]byte(tt.body))
		if id != tt.id || ok != tt.ok {
			t.Errorf("parseID(%s) = %d, %v; want %d, %v", tt.body, id, ok, tt.id, tt.ok)
		}
	}
}

func TestParseCodeAndKeys(t *testing.T) {
	if got := parseCode([]byte(`{"code": "SEAT_UNAVAILABLE", "message": "x"}`)); got != "SEAT_UNAVAILABLE" {
		t.Errorf("parseCode = %q", got)
	}
	if got := parseCode([]byte(`<html>`)); got != "" {
		t.Errorf("parseCode(html) = %q", got)
	}
	if got := outcomeKey(409, "HOLD_LIMIT"); got != "HTTP 409 HOLD_LIMIT" {
		t.Errorf("outcomeKey = %q", got)
	}
	if got := outcomeKey(502, ""); got != "HTTP 502" {
		t.Errorf("outcomeKey = %q", got)
	}
}

func TestSetupFailsClearlyWhenTokensWait(t *testing.T) {
	_, url := startFake(t, 5)
	c := testClient(t, url, 16)
	_, err := Setup(context.Background(), c, SetupConfig{Dates: 2, SeatsPerDate: 3, Users: 8, TokenWait: 300 * time.Millisecond})
	if !errors.Is(err, ErrTokensNotActive) {
		t.Fatalf("Setup error = %v, want ErrTokensNotActive", err)
	}
	if !strings.Contains(err.Error(), "ACTIVE_TOKENS of at least 8") || !strings.Contains(err.Error(), "put a token of this run in line (position") {
		t.Errorf("error does not say what to do: %v", err)
	}
}

func TestSetupWrongAdminKey(t *testing.T) {
	_, url := startFake(t, 5)
	u, _ := CheckTarget(url, false)
	c := NewClient(u, ClientOptions{AdminKey: "wrong"})
	_, err := Setup(context.Background(), c, SetupConfig{Dates: 1, SeatsPerDate: 3, Users: 1})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "ADMIN_KEY_INVALID" {
		t.Fatalf("Setup error = %v, want ADMIN_KEY_INVALID", err)
	}
}

func TestRunHoldsAgainstFake(t *testing.T) {
	_, url := startFake(t, 100)
	c := testClient(t, url, 100)
	fx, err := Setup(context.Background(), c, SetupConfig{Dates: 5, SeatsPerDate: 4, Users: 40})
	if err != nil {
		t.Fatal(err)
	}
	if len(fx.Dates) != 5 || len(fx.Dates[0].Seats) != 4 || len(fx.Users) != 40 || fx.Users[0].Token == "" {
		t.Fatalf("fixture = %+v", fx)
	}
	for _, rate := range []float64{0, 500} {
		var progress int
		r, err := RunHolds(context.Background(), c, fx, HoldsConfig{Duration: 500 * time.Millisecond, Rate: rate,
			OnProgress: func(Progress) { progress++ }})
		if err != nil {
			t.Fatal(err)
		}
		if r.Holds == 0 || r.Attempts != r.Holds+r.Conflicts+r.ErrorCount() || r.Cancels != r.Holds {
			t.Errorf("rate %v: attempts %d holds %d conflicts %d cancels %d errors %v",
				rate, r.Attempts, r.Holds, r.Conflicts, r.Cancels, r.Errors)
		}
		if r.HoldLatency.Count != r.Attempts || r.Machine == "" || progress == 0 {
			t.Errorf("rate %v: latency count %d, machine %q, progress %d", rate, r.HoldLatency.Count, r.Machine, progress)
		}
		if rate > 0 && (r.Attempts < 200 || r.Attempts > 251) {
			t.Errorf("open loop at %v/s for 0.5s sent %d holds", rate, r.Attempts)
		}
	}
}

func TestRunHotAgainstFake(t *testing.T) {
	_, url := startFake(t, 300)
	c := testClient(t, url, 64)
	fx, err := Setup(context.Background(), c, SetupConfig{Dates: 1, SeatsPerDate: 10, Users: 300})
	if err != nil {
		t.Fatal(err)
	}
	r, err := RunHot(context.Background(), c, fx, HotConfig{Workers: 50})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.Winners != 10 || !r.SoldOut || r.SeatsLeft != 0 || r.SellOutSeconds <= 0 {
		t.Errorf("result = %+v", r)
	}
}

func TestRunHotDetectsOversell(t *testing.T) {
	f, url := startFake(t, 300)
	f.oversell = true
	c := testClient(t, url, 64)
	fx, err := Setup(context.Background(), c, SetupConfig{Dates: 1, SeatsPerDate: 5, Users: 300})
	if err != nil {
		t.Fatal(err)
	}
	r, err := RunHot(context.Background(), c, fx, HotConfig{Workers: 100})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() || r.Winners <= 5 || !strings.Contains(strings.Join(r.Violations, "\n"), "OVERSOLD") {
		t.Errorf("a server that double-sells passed: winners %d, violations %v", r.Winners, r.Violations)
	}
}

// TestMeasureBurst: every unit sends one GET at once and the rate is the
// units over the time to the last answer.
func TestMeasureBurst(t *testing.T) {
	_, url := startFake(t, 100)
	c := testClient(t, url, 64)
	b, err := MeasureBurst(context.Background(), c, "/healthz", 50, func(i int) int64 { return int64(i + 1) })
	if err != nil {
		t.Fatal(err)
	}
	if b.Requests != 50 || b.Conns != 50 || len(b.Errors) > 0 || b.Seconds <= 0 ||
		math.Abs(b.RequestsPerSec-50/b.Seconds) > 1e-6 || b.Latency.Count != 50 {
		t.Errorf("burst %+v", b)
	}
	if _, err := MeasureBurst(context.Background(), c, "/no-such-route", 5, func(int) int64 { return 0 }); err == nil {
		t.Error("a burst with no 200 answer reported no error")
	}
}
