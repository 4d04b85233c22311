package persistence

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestErrorReason(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{fmt.Errorf("user 7: %w", ErrNotFound), ""},
		{context.Canceled, ""},
		{fmt.Errorf("x: %w", ErrFenced), "fenced"},
		{ErrSnapshotBusy, "busy"},
		{fmt.Errorf("append: %w", ErrOverloaded), "overloaded"},
		{ErrInvalid, "invalid"},
		{unavailable(context.DeadlineExceeded), "timeout"},
		{unavailable(errors.New("connection refused")), "unavailable"},
		{unavailable(context.Canceled), "unavailable"},
		{errors.New("syntax error at or near"), "other"},
	} {
		if got := errorReason(c.err); got != c.want {
			t.Errorf("errorReason(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
