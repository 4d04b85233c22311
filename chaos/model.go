package chaos

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/anishathalye/porcupine"
)

// The sequential specifications the histories are checked against: one
// seat, one wallet. Both are nondeterministic only where the client cannot
// tell what happened: an operation whose outcome is Unknown steps to "it
// happened" and to "it did not" (and, having no return, may be placed at
// any moment after its call — including after every other operation, which
// is "never").
//
// States are immutable values, encoded as canonical strings so that
// porcupine compares and hashes them cheaply.

// Reservation statuses as the API shows them.
const (
	stHeld      = "HELD"
	stConfirmed = "CONFIRMED"
	stCancelled = "CANCELLED"
)

// seatState is one seat: every reservation made on it and its status. At
// most one is HELD or CONFIRMED (the seat's holder). A hold whose answer was
// lost is kept under a negative id (-1 - its operation id): its reservation
// id was never seen.
type seatState map[int64]string

func decodeSeat(s string) seatState {
	st := seatState{}
	if s == "" {
		return st
	}
	for _, part := range strings.Split(s, ";") {
		id, status, _ := strings.Cut(part, "=")
		n, _ := strconv.ParseInt(id, 10, 64)
		st[n] = status
	}
	return st
}

func (st seatState) encode() string {
	ids := slices.Sorted(maps.Keys(st))
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, "%d=%s", id, st[id])
	}
	return b.String()
}

// holder returns the reservation holding the seat (0 when free).
func (st seatState) holder() int64 {
	for id, s := range st {
		if s == stHeld || s == stConfirmed {
			return id
		}
	}
	return 0
}

func (st seatState) with(id int64, status string) string {
	next := maps.Clone(st)
	next[id] = status
	return next.encode()
}

func (st seatState) without(id int64) string {
	next := maps.Clone(st)
	delete(next, id)
	return next.encode()
}

// seatInput is one operation as the seat sees it.
type seatInput struct {
	op *Op
	// phantom: the undo of a hold whose answer was lost (the service
	// cancels a hold whose user slot failed; the hold may also be the one
	// the process died holding). It may free the seat, or not.
	phantom bool
	// free: for a seats read, whether this seat was listed free.
	free bool
}

// unknownHoldID is the stand-in id of a hold whose answer was lost.
func unknownHoldID(op *Op) int64 { return -1 - int64(op.ID) }

// tokenCodes are refusals of the token check, made before any actor is
// asked: the operation changed nothing, whatever the state.
var tokenCodes = map[string]bool{
	"TOKEN_INVALID": true, "TOKEN_NOT_ACTIVE": true, "TOKEN_USER_MISMATCH": true,
}

// seatStep is the specification of one seat.
func seatStep(state, input, _ any) []any {
	st := decodeSeat(state.(string))
	in := input.(seatInput)
	op := in.op
	same := []any{state}
	none := []any{}
	holder := st.holder()
	if in.phantom {
		id := unknownHoldID(op)
		if st[id] == stHeld {
			return []any{state, st.without(id)}
		}
		return same
	}
	if op.Outcome == Fail && tokenCodes[op.Code] {
		return same
	}
	switch op.Kind {
	case KindSeats:
		if in.free == (holder == 0) {
			return same
		}
		return none
	case KindHold:
		switch op.Outcome {
		case OK:
			if _, seen := st[op.ResID]; holder == 0 && !seen {
				return []any{st.with(op.ResID, stHeld)}
			}
			return none
		case Unknown:
			if holder == 0 {
				return []any{state, st.with(unknownHoldID(op), stHeld)}
			}
			return same
		}
		if op.Code == "SEAT_UNAVAILABLE" {
			if holder != 0 {
				return same
			}
			return none
		}
		return same // HOLD_LIMIT and the like: refused before any change
	case KindCancel:
		cur := st[op.Res]
		switch op.Outcome {
		case OK:
			switch cur {
			case stHeld:
				return []any{st.with(op.Res, stCancelled)}
			case stCancelled:
				return same
			}
			return none
		case Unknown:
			if cur == stHeld {
				return []any{state, st.with(op.Res, stCancelled)}
			}
			return same
		}
		switch op.Code {
		case "ALREADY_PAID":
			return when(cur == stConfirmed, same)
		case "PAYMENT_IN_PROGRESS":
			return when(cur == stHeld, same)
		case "HOLD_EXPIRED", "RESERVATION_NOT_FOUND":
			return none // holds outlive the run; the reservation was made
		}
		return same
	case KindPay:
		cur := st[op.Res]
		switch op.Outcome {
		case OK:
			switch {
			case cur == stHeld:
				return []any{st.with(op.Res, stConfirmed)}
			case cur == stConfirmed && op.Key != "":
				return same // a retry answered from the wallet's record
			}
			return none
		case Unknown:
			if cur == stHeld {
				return []any{state, st.with(op.Res, stConfirmed)}
			}
			return same
		}
		switch op.Code {
		case "ALREADY_PAID":
			return when(cur == stConfirmed, same)
		case "RESERVATION_CANCELLED":
			return when(cur == stCancelled, same)
		case "INSUFFICIENT_BALANCE", "PAYMENT_IN_PROGRESS":
			return when(cur == stHeld, same)
		case "HOLD_EXPIRED", "RESERVATION_NOT_FOUND":
			return none
		}
		return same // AMOUNT_MISMATCH, IDEMPOTENCY_KEY_REUSED: refused before any change
	case KindReservation:
		switch op.Outcome {
		case OK:
			return when(st[op.Res] == op.ResStatus, same)
		case Fail:
			if op.Code == "RESERVATION_NOT_FOUND" {
				return none // every reservation read was made
			}
		}
		return same
	}
	return same
}

func when(ok bool, states []any) []any {
	if ok {
		return states
	}
	return []any{}
}

// walletState is one wallet: its balance and the Idempotency-Keys it
// recorded (a charge: "c:amount:balance"; a payment:
// "p:reservation:amount:balance").
type walletState struct {
	balance int64
	keys    map[string]string
}

func decodeWallet(s string) walletState {
	head, rest, _ := strings.Cut(s, "|")
	w := walletState{keys: map[string]string{}}
	w.balance, _ = strconv.ParseInt(head, 10, 64)
	if rest != "" {
		for _, kv := range strings.Split(rest, "\x1f") {
			k, v, _ := strings.Cut(kv, "\x1e")
			w.keys[k] = v
		}
	}
	return w
}

func (w walletState) encode() string {
	var b strings.Builder
	b.WriteString(strconv.FormatInt(w.balance, 10))
	b.WriteByte('|')
	for i, k := range slices.Sorted(maps.Keys(w.keys)) {
		if i > 0 {
			b.WriteByte('\x1f')
		}
		b.WriteString(k)
		b.WriteByte('\x1e')
		b.WriteString(w.keys[k])
	}
	return b.String()
}

// after returns the state with balance b and, if key is not empty, key
// recorded as rec.
func (w walletState) after(b int64, key, rec string) string {
	next := walletState{balance: b, keys: w.keys}
	if key != "" {
		next.keys = maps.Clone(w.keys)
		next.keys[key] = rec
	}
	return next.encode()
}

// walletStep is the specification of one wallet.
func walletStep(state, input, _ any) []any {
	w := decodeWallet(state.(string))
	op := input.(seatInput).op
	same := []any{state}
	if op.Outcome == Fail && tokenCodes[op.Code] {
		return same
	}
	rec, keyed := "", op.Key != ""
	var recorded string
	if keyed {
		recorded = w.keys[op.Key]
	}
	switch op.Kind {
	case KindBalance:
		if op.Outcome == OK {
			return when(op.Balance == w.balance, same)
		}
		return same
	case KindCharge:
		rec = fmt.Sprintf("c:%d:", op.Amount)
		switch op.Outcome {
		case OK:
			if recorded != "" {
				// A retry: the first answer again, nothing added.
				return when(recorded == rec+strconv.FormatInt(op.Balance, 10), same)
			}
			b := w.balance + op.Amount
			return when(op.Balance == b, []any{w.after(b, op.Key, rec+strconv.FormatInt(b, 10))})
		case Unknown:
			if recorded != "" {
				return same
			}
			b := w.balance + op.Amount
			return []any{state, w.after(b, op.Key, rec+strconv.FormatInt(b, 10))}
		}
		if op.Code == "IDEMPOTENCY_KEY_REUSED" {
			return when(recorded != "" && !strings.HasPrefix(recorded, rec), same)
		}
		return same
	case KindPay:
		rec = fmt.Sprintf("p:%d:%d:", op.Res, op.Amount)
		switch op.Outcome {
		case OK:
			if recorded != "" {
				return when(recorded == rec+strconv.FormatInt(op.Balance, 10), same)
			}
			b := w.balance - op.Amount
			return when(b >= 0 && op.Balance == b, []any{w.after(b, op.Key, rec+strconv.FormatInt(b, 10))})
		case Unknown:
			b := w.balance - op.Amount
			if recorded != "" || b < 0 {
				return same
			}
			return []any{state, w.after(b, op.Key, rec+strconv.FormatInt(b, 10))}
		}
		switch op.Code {
		case "INSUFFICIENT_BALANCE":
			return when(w.balance < op.Amount, same)
		case "IDEMPOTENCY_KEY_REUSED":
			return when(recorded != "" && !strings.HasPrefix(recorded, rec), same)
		}
		return same
	}
	return same
}

func hashString(s any) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s.(string)))
	return h.Sum64()
}

func describe(input, _ any) string {
	in := input.(seatInput)
	if in.phantom {
		return fmt.Sprintf("maybe-undo hold #%d", in.op.ID)
	}
	s := in.op.String()
	if in.op.Kind == KindSeats {
		s = fmt.Sprintf("#%d %s seat %d free=%v", in.op.ID, in.op.Kind, in.op.Seat, in.free)
	}
	return s
}

// SeatModel is the porcupine model of one seat. Its state is seatState's
// encoding; "" is a seat never held.
var SeatModel = (&porcupine.NondeterministicModel{
	Init:              func() []any { return []any{""} },
	Step:              seatStep,
	Equal:             func(a, b any) bool { return a == b },
	Hash:              hashString,
	DescribeOperation: describe,
	DescribeState: func(s any) string {
		if s == "" {
			return "free"
		}
		return s.(string)
	},
}).ToModel()

// WalletModel is the porcupine model of one wallet, which starts at 0.
var WalletModel = (&porcupine.NondeterministicModel{
	Init:              func() []any { return []any{walletState{}.encode()} },
	Step:              walletStep,
	Equal:             func(a, b any) bool { return a == b },
	Hash:              hashString,
	DescribeOperation: describe,
	DescribeState: func(s any) string {
		w := decodeWallet(s.(string))
		return fmt.Sprintf("balance %d, %d keys", w.balance, len(w.keys))
	},
}).ToModel()
