// Package chaos is the apparatus that looks for the next fault by itself: it
// runs a mixed load against a real concertd process, kills the process with
// SIGKILL at random moments (a fixed seed) and restarts it, records every
// request and its answer — or its absence — as a history, and checks the
// history twice:
//
//   - against the contract's invariants (docs/CONTRACT.md): no seat held or
//     sold twice, money conserved exactly, no negative balance, every 200
//     still there after the restarts (CheckInvariants);
//   - for linearizability of every seat and every wallet with porcupine
//     (CheckLinearizable), where a request cut by a kill, or answered 503,
//     is an operation whose outcome is unknown: it may take effect at any
//     moment after it was sent, or never.
//
// A failing history is saved as JSON with porcupine's HTML drawing of each
// partition that is not linearizable (Report.Save).
package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"
)

// Kind is what an operation does.
type Kind string

// Operation kinds. Only those that touch a seat or a wallet are checked for
// linearizability; tokens and user creation are recorded for the record.
const (
	KindUser        Kind = "user"        // POST /users
	KindToken       Kind = "token"       // POST /users/token
	KindCharge      Kind = "charge"      // PATCH /customers/point
	KindBalance     Kind = "balance"     // GET /customers/point
	KindHold        Kind = "hold"        // POST /reservations
	KindCancel      Kind = "cancel"      // DELETE /reservations/{id}
	KindPay         Kind = "pay"         // POST /payments
	KindReservation Kind = "reservation" // GET /reservations/{id}
	KindSeats       Kind = "seats"       // GET /concerts/{id}/available-seats
)

// Outcome is how an operation ended, as far as the client can tell.
type Outcome string

const (
	// OK: a 2xx answer; the change happened and is durable.
	OK Outcome = "ok"
	// Fail: a definite refusal (4xx); nothing changed.
	Fail Outcome = "fail"
	// Unknown: no answer (the process was killed, the connection cut) or a
	// 503/5xx; the change may have happened, then or later, or not at all.
	Unknown Outcome = "unknown"
	// Refused: the connection was refused; the request was never sent.
	Refused Outcome = "refused"
)

// Op is one request and its answer.
type Op struct {
	ID     int  `json:"id"`
	Client int  `json:"client"`
	Kind   Kind `json:"kind"`
	// Epoch counts the server processes started before the call (1 for the
	// first), so an operation can be placed between kills.
	Epoch int `json:"epoch"`
	// Call and Return are nanoseconds since the run started.
	Call   int64 `json:"call"`
	Return int64 `json:"return"`

	// Input.
	User   int64  `json:"user,omitempty"`
	Seat   int64  `json:"seat,omitempty"`
	Option int64  `json:"option,omitempty"` // the seat's date (concert option)
	Res    int64  `json:"res,omitempty"`    // reservation id (cancel, pay, read)
	Amount int64  `json:"amount,omitempty"` // charge or payment amount
	Key    string `json:"key,omitempty"`    // Idempotency-Key
	Final  bool   `json:"final,omitempty"`  // a read of the final check

	// Answer.
	Outcome Outcome `json:"outcome"`
	Status  int     `json:"status,omitempty"`
	// RetryAfter is the Retry-After header of a 503 or 429.
	RetryAfter string `json:"retryAfter,omitempty"`
	Code       string `json:"code,omitempty"`
	Err        string `json:"err,omitempty"`
	Balance    int64  `json:"balance,omitempty"` // charge, payment, balance read
	// ResID and ResStatus: the reservation a hold made or a read found.
	ResID     int64   `json:"resId,omitempty"`
	ResStatus string  `json:"resStatus,omitempty"`
	ResSeat   int64   `json:"resSeat,omitempty"`
	Price     int64   `json:"price,omitempty"`
	Free      []int64 `json:"free,omitempty"` // seats read: the free seat ids of Option
}

// effective reports whether the operation may have changed something.
func (o *Op) effective() bool { return o.Outcome == OK || o.Outcome == Unknown }

func (o *Op) String() string {
	s := fmt.Sprintf("#%d c%d e%d %s", o.ID, o.Client, o.Epoch, o.Kind)
	if o.User != 0 {
		s += fmt.Sprintf(" user=%d", o.User)
	}
	if o.Seat != 0 {
		s += fmt.Sprintf(" seat=%d", o.Seat)
	}
	if o.Res != 0 {
		s += fmt.Sprintf(" res=%d", o.Res)
	}
	if o.Amount != 0 {
		s += fmt.Sprintf(" amount=%d", o.Amount)
	}
	if o.Key != "" {
		s += " key=" + o.Key
	}
	s += " → " + string(o.Outcome)
	if o.Code != "" {
		s += " " + o.Code
	}
	switch o.Kind {
	case KindCharge, KindBalance, KindPay:
		if o.Outcome == OK {
			s += fmt.Sprintf(" balance=%d", o.Balance)
		}
	case KindHold, KindReservation, KindCancel:
		if o.ResID != 0 {
			s += fmt.Sprintf(" res=%d %s", o.ResID, o.ResStatus)
		}
	}
	return s
}

// History records operations from many goroutines.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []*Op
	epoch int
}

// NewHistory starts an empty history; its clock starts now.
func NewHistory() *History { return &History{start: time.Now()} }

// now is the history's clock: monotonic nanoseconds since it started.
func (h *History) now() int64 { return int64(time.Since(h.start)) }

// SetEpoch records that server process number e (1-based) was started.
func (h *History) SetEpoch(e int) {
	h.mu.Lock()
	h.epoch = e
	h.mu.Unlock()
}

// begin stamps op's call time and epoch; finish records it with its return
// time.
func (h *History) begin(op *Op) {
	h.mu.Lock()
	op.Epoch = h.epoch
	h.mu.Unlock()
	op.Call = h.now()
}

func (h *History) finish(op *Op) {
	op.Return = h.now()
	h.mu.Lock()
	op.ID = len(h.ops)
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns the recorded operations in call order.
func (h *History) Ops() []*Op {
	h.mu.Lock()
	ops := append([]*Op(nil), h.ops...)
	h.mu.Unlock()
	sort.SliceStable(ops, func(i, k int) bool { return ops[i].Call < ops[k].Call })
	return ops
}

// Len is the number of operations recorded so far.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ops)
}

// SaveOps writes ops as JSON to path.
func SaveOps(path string, ops []*Op) error {
	b, err := json.MarshalIndent(ops, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// LoadOps reads a history saved by SaveOps (to check it again).
func LoadOps(path string) ([]*Op, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ops []*Op
	if err := json.Unmarshal(b, &ops); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ops, nil
}
