package http

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	stdhttp "net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// TestEveryCodeHasAStatus reads messages/rejection.go so that a code added
// there without a status here fails.
func TestEveryCodeHasAStatus(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../messages/rejection.go", nil, 0)
	require.NoError(t, err)
	var codes []string
	ast.Inspect(f, func(n ast.Node) bool {
		if v, ok := n.(*ast.ValueSpec); ok && len(v.Values) == 1 {
			if lit, ok := v.Values[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				s, _ := strconv.Unquote(lit.Value)
				codes = append(codes, s)
			}
		}
		return true
	})
	require.NotEmpty(t, codes)
	for _, c := range codes {
		require.Contains(t, statusOfCode, c)
	}
	require.Len(t, statusOfCode, len(codes))
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		code   string
		status int
	}{
		{messages.CodeInvalidRequest, 400},
		{messages.CodeUserNotFound, 404},
		{messages.CodeTokenInvalid, 401},
		{messages.CodeTokenNotActive, 401},
		{messages.CodeTokenUserMismatch, 403},
		{messages.CodeConcertNotFound, 404},
		{messages.CodeDateNotFound, 404},
		{messages.CodeAdminKeyInvalid, 401},
		{messages.CodeSeatUnavailable, 409},
		{messages.CodeSeatNotFound, 404},
		{messages.CodeHoldLimit, 409},
		{messages.CodeInvalidAmount, 400},
		{messages.CodeBalanceLimit, 409},
		{messages.CodeAmountMismatch, 400},
		{messages.CodeReservationNotFound, 404},
		{messages.CodeHoldExpired, 409},
		{messages.CodeAlreadyPaid, 409},
		{messages.CodeInsufficientBalance, 409},
		{messages.CodeIdempotencyKeyReused, 409},
		{messages.CodeReservationCancelled, 409},
		{messages.CodePaymentInProgress, 409},
		{messages.CodeStoreUnavailable, 503},
		{messages.CodePayloadTooLarge, 413},
		{messages.CodeNotFound, 404},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			// Through the whole app, wrapped as a caller might wrap it.
			err := fmt.Errorf("op: %w", messages.Reject(tt.code, "because"))
			res, e := do(t, Config{Booking: &fakeBooking{err: err}}, "POST", "/payments",
				`{"reservationId":1,"amount":1}`, map[string]string{"Authorization": "Bearer t"})
			require.Equal(t, tt.status, res.StatusCode)
			require.Equal(t, tt.code, e.Code)
			if tt.status == 503 {
				require.Equal(t, unavailableMessage, e.Message, "a 503 has the one public message")
			} else {
				require.Equal(t, "because", e.Message)
			}
			if tt.status == 503 || tt.code == messages.CodePaymentInProgress {
				require.Equal(t, "1", res.Header.Get("Retry-After"))
			}
		})
	}
}

func TestOutageAndBugMapping(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"store down", fmt.Errorf("catalog user 1: %w", persistence.ErrUnavailable), 503, messages.CodeStoreUnavailable},
		{"actor timeout", fmt.Errorf("request seat/1: %w", cluster.ErrTimeout), 503, messages.CodeStoreUnavailable},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), 503, messages.CodeStoreUnavailable},
		{"unknown rejection code", messages.Reject("WHAT", "?"), 500, codeInternal},
		{"bug", errors.New("nil map"), 500, codeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, e := do(t, Config{Booking: &fakeBooking{err: tt.err}}, "GET", "/customers/point?userId=1", "", nil)
			require.Equal(t, tt.status, res.StatusCode)
			require.Equal(t, tt.code, e.Code)
			if tt.status == 503 {
				require.Equal(t, "1", res.Header.Get("Retry-After"))
			}
			if tt.status == 500 {
				require.Equal(t, "internal error", e.Message, "no internals leak")
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	down := func(context.Context) error { return persistence.ErrUnavailable }
	res, e := do(t, Config{Booking: &fakeBooking{}, Ready: down}, "GET", "/readyz", "", nil)
	require.Equal(t, stdhttp.StatusServiceUnavailable, res.StatusCode)
	require.Equal(t, messages.CodeStoreUnavailable, e.Code)
	require.Equal(t, "1", res.Header.Get("Retry-After"))
}

// TestUnavailableHidesCause: a 503 carries one fixed message whatever its
// cause said (a driver error names users, databases and hosts); the cause
// goes to the log.
func TestUnavailableHidesCause(t *testing.T) {
	const secret = `dial tcp 10.0.0.7:5432: password authentication failed for user "concert" database "prod"`
	for _, err := range []error{
		messages.Reject(messages.CodeStoreUnavailable, "wallet/1 cannot write its journal: %s", secret),
		fmt.Errorf("catalog user 1: %w: %s", persistence.ErrUnavailable, secret),
		fmt.Errorf("request seat/1: %w (%s)", cluster.ErrTimeout, secret),
	} {
		var logged bytes.Buffer
		res, e := do(t, Config{Booking: &fakeBooking{err: err}, Logger: slog.New(slog.NewTextHandler(&logged, nil))},
			"GET", "/customers/point?userId=1", "", nil)
		require.Equal(t, 503, res.StatusCode)
		require.Equal(t, messages.CodeStoreUnavailable, e.Code)
		require.Equal(t, unavailableMessage, e.Message)
		require.Equal(t, "1", res.Header.Get("Retry-After"))
		require.Contains(t, logged.String(), "password authentication failed", "the cause is logged")
	}
}
