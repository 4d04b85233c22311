package loadgen

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// The verdicts of the scenarios. Each takes what a run observed and says,
// check by check, whether an invariant of the contract held; they do no
// I/O, so a test can hand each a deliberately wrong observation.

func pass(name, format string, a ...any) Check {
	return Check{Name: name, OK: true, Detail: fmt.Sprintf(format, a...)}
}

func failc(name, format string, a ...any) Check {
	return Check{Name: name, OK: false, Detail: fmt.Sprintf(format, a...)}
}

// HotSeatOutcome is what a hot-seat run saw.
type HotSeatOutcome struct {
	Fans        int
	Seats       int   // seats the fans shared; 0 is taken as 1
	Wins        []int // 200 answers per seat, in seat order; one entry a seat, needed when Seats > 1
	Successes   int   // 200 answers to the hold
	Conflicts   int   // 409 SEAT_UNAVAILABLE answers
	Other       int   // any other answer, or none
	SeatsListed int   // seats held by a 200 that available-seats still lists after the burst
	SeatErr     error
}

// CheckHotSeat: exactly one fan holds each seat, every other one is told
// 409 SEAT_UNAVAILABLE, and no held seat is still offered.
func CheckHotSeat(o HotSeatOutcome) []Check {
	var cs []Check
	seats := max(o.Seats, 1)
	switch {
	case seats == 1 && o.Successes == 1:
		cs = append(cs, pass("exactly one success", "1 of %d fans holds the seat", o.Fans))
	case seats == 1:
		cs = append(cs, failc("exactly one success", "%d of %d fans hold the seat (want exactly 1)", o.Successes, o.Fans))
	default:
		name := "exactly one success per seat"
		bad := slices.IndexFunc(o.Wins, func(n int) bool { return n != 1 })
		switch {
		case len(o.Wins) != seats:
			cs = append(cs, failc(name, "wins known for %d of %d seats", len(o.Wins), seats))
		case o.Successes != seats:
			cs = append(cs, failc(name, "%d of %d fans hold a seat of %d (want exactly %d)", o.Successes, o.Fans, seats, seats))
		case bad >= 0:
			cs = append(cs, failc(name, "seat %d of %d was held by %d fans", bad+1, seats, o.Wins[bad]))
		default:
			cs = append(cs, pass(name, "%d of %d fans hold a seat, one per seat of %d", o.Successes, o.Fans, seats))
		}
	}
	if o.Conflicts == o.Fans-seats && o.Other == 0 {
		cs = append(cs, pass("all others 409 SEAT_UNAVAILABLE", "%d answers 409 SEAT_UNAVAILABLE", o.Conflicts))
	} else {
		cs = append(cs, failc("all others 409 SEAT_UNAVAILABLE",
			"%d answers 409 SEAT_UNAVAILABLE and %d other answers or none, for %d losing fans", o.Conflicts, o.Other, o.Fans-seats))
	}
	switch {
	case o.SeatErr != nil:
		cs = append(cs, failc("seat no longer offered", "available-seats after the burst: %v", o.SeatErr))
	case o.Successes > 0 && o.SeatsListed > 0:
		cs = append(cs, failc("seat no longer offered", "available-seats still lists %d of the %d held seats", o.SeatsListed, o.Successes))
	case o.Successes > 0:
		cs = append(cs, pass("seat no longer offered", "available-seats lists none of the %d held seats", o.Successes))
	}
	return cs
}

// SoldOutOutcome is what a sold-out run saw.
type SoldOutOutcome struct {
	Seats    int               // seats on sale
	Holds    int               // 200 answers to holds, less those cancelled after a refused payment
	Payments int               // 200 answers to payments
	PaidBy   map[int64][]int64 // seat → fans whose payment for it succeeded
	Left     map[string]int    // date → seats available-seats still lists
	LeftErr  error
	Dates    int
}

// CheckSoldOut: holds = payments = seats, no seat sold twice, and
// available-seats offers nothing on any date.
func CheckSoldOut(o SoldOutOutcome) []Check {
	var cs []Check
	if o.Holds == o.Seats && o.Payments == o.Seats {
		cs = append(cs, pass("holds = payments = seats", "%d = %d = %d", o.Holds, o.Payments, o.Seats))
	} else {
		cs = append(cs, failc("holds = payments = seats", "holds %d, payments %d, seats %d", o.Holds, o.Payments, o.Seats))
	}
	var twice []string
	for seat, fans := range o.PaidBy {
		if len(fans) > 1 {
			twice = append(twice, fmt.Sprintf("seat %d by %v", seat, fans))
		}
	}
	sort.Strings(twice)
	if len(twice) == 0 && len(o.PaidBy) == o.Payments {
		cs = append(cs, pass("no seat sold twice", "%d seats, each paid once", len(o.PaidBy)))
	} else {
		cs = append(cs, failc("no seat sold twice", "%d seats paid by more than one fan: %s", len(twice), head(twice, 5)))
	}
	switch {
	case o.LeftErr != nil:
		cs = append(cs, failc("available-seats says 0 everywhere", "could not read it: %v", o.LeftErr))
	case len(o.Left) != o.Dates:
		cs = append(cs, failc("available-seats says 0 everywhere", "read %d of %d dates", len(o.Left), o.Dates))
	default:
		var bad []string
		total := 0
		for day, n := range o.Left {
			if n != 0 {
				bad = append(bad, fmt.Sprintf("%s: %d", day, n))
				total += n
			}
		}
		sort.Strings(bad)
		if len(bad) == 0 {
			cs = append(cs, pass("available-seats says 0 everywhere", "%d dates, no seat offered", o.Dates))
		} else {
			cs = append(cs, failc("available-seats says 0 everywhere", "%d seats still offered on %d dates (%s)", total, len(bad), head(bad, 5)))
		}
	}
	return cs
}

// WalletOutcome is what a wallet-storm run saw of one wallet.
type WalletOutcome struct {
	UserID  int64
	Charged int64 // sum of the charges answered 200 (each key once)
	Paid    int64 // sum of the payments answered 200
	// Unresolved is the sum of charges whose outcome stayed unknown
	// (no answer even after retries with the same key).
	Unresolved int64
	// UnresolvedPaid is the same for payments.
	UnresolvedPaid int64
	Balance        int64 // GET /customers/point at the end
	BalanceErr     error
	MinSeen        int64 // the lowest balance any answer showed
	// ReplayMismatches counts retries with the same Idempotency-Key and
	// body that did not answer the first answer's balance.
	ReplayMismatches int
	Replays          int
}

// CheckWallets: every balance is exact (charges − payments), money is
// conserved over all wallets (invariant 2), no balance was ever negative
// (invariant 4), and a replayed charge changed nothing.
func CheckWallets(ws []WalletOutcome) []Check {
	var inexact []string
	var charged, paid, balances, unresolved int64
	minSeen := int64(0)
	negative := 0
	replays, mismatches := 0, 0
	for _, w := range ws {
		if w.BalanceErr != nil {
			inexact = append(inexact, fmt.Sprintf("user %d: balance unreadable: %v", w.UserID, w.BalanceErr))
			continue
		}
		want := w.Charged - w.Paid
		if w.Balance < want-w.UnresolvedPaid || w.Balance > want+w.Unresolved {
			inexact = append(inexact, fmt.Sprintf("user %d: balance %d, charges %d − payments %d = %d", w.UserID, w.Balance, w.Charged, w.Paid, want))
		}
		charged += w.Charged
		paid += w.Paid
		balances += w.Balance
		unresolved += w.Unresolved + w.UnresolvedPaid
		if w.MinSeen < 0 || w.Balance < 0 {
			negative++
			minSeen = min(minSeen, w.MinSeen, w.Balance)
		}
		replays += w.Replays
		mismatches += w.ReplayMismatches
	}
	var cs []Check
	if len(inexact) == 0 {
		note := ""
		if unresolved > 0 {
			note = fmt.Sprintf(" (%d points of charges or payments never answered: allowed either way)", unresolved)
		}
		cs = append(cs, pass("every balance exact", "%d wallets = their charges − their payments%s", len(ws), note))
	} else {
		cs = append(cs, failc("every balance exact", "%d of %d wallets wrong: %s", len(inexact), len(ws), head(inexact, 4)))
	}
	if balances+paid >= charged-unresolved && balances+paid <= charged+unresolved {
		cs = append(cs, pass("money conserved", "charges %d = balances %d + payments %d", charged, balances, paid))
	} else {
		cs = append(cs, failc("money conserved", "charges %d ≠ balances %d + payments %d (difference %d)", charged, balances, paid, balances+paid-charged))
	}
	if negative == 0 {
		cs = append(cs, pass("never negative", "no answer showed a negative balance"))
	} else {
		cs = append(cs, failc("never negative", "%d wallets went negative (lowest %d)", negative, minSeen))
	}
	if mismatches == 0 {
		cs = append(cs, pass("replayed charge changes nothing", "%d retries with the same Idempotency-Key answered the first answer", replays))
	} else {
		cs = append(cs, failc("replayed charge changes nothing", "%d of %d retries with the same Idempotency-Key and body did not answer the first answer "+
			"(a 200 with a new balance is a second charge: does the server honour Idempotency-Key on PATCH /customers/point?)", mismatches, replays))
	}
	return cs
}

// SurgeAnswer is one POST /users/token answer of a queue-surge run.
type SurgeAnswer struct {
	User     int    // index of the user in the run
	Token    string // "" if the request failed
	Status   string // ACTIVE or WAIT
	Position int64
}

// SurgeOutcome is what a queue-surge run saw.
type SurgeOutcome struct {
	Users   int
	Answers []SurgeAnswer // every answer, duplicates included
	// ActiveLimit is ACTIVE_TOKENS if known (else 0); ActiveBefore the
	// active count before the surge; MaxActive the highest queue_active
	// the sampler saw during it (-1: not sampled).
	ActiveLimit  int64
	ActiveBefore int64
	MaxActive    int64
	// HeldAdded is how many tokens (waiting and active) the server held
	// after the surge more than before it (-1: not read).
	HeldAdded int64
	// Order is the order of the run's waiting users in line after the
	// surge (user indexes by position, first in line first), from a poll
	// of every waiting token; OrderErr if the poll failed.
	Order    []int
	OrderErr error
	// Sent and Recv are, by user, when its first request was sent and
	// when its first answer came (any common clock): a user answered
	// before another one's first request was sent was served first, for
	// sure.
	Sent, Recv []int64
	// Admission: after Freed tokens were expired by payments, Admitted
	// are the users of the head of Order found ACTIVE, in line order (nil:
	// not checked). They must be the first of the line, at least Freed.
	Freed    int
	Admitted []int
	// AdmittedBehind counts users found ACTIVE at the back of the line.
	AdmittedBehind int
}

// CheckSurge: one token per user (the server holds one token per
// answered user, a repeated request answers the same place in line, no two
// users share a secret); the active count never above ACTIVE_TOKENS; the
// line keeps the order the requests were served in; freed slots go to the
// head of the line.
//
// A repeated request answers the user's token with a fresh secret, so
// secrets are not compared across one user's answers; places are.
func CheckSurge(o SurgeOutcome) []Check {
	var cs []Check
	firstOf := map[int]SurgeAnswer{}
	owner := map[string]int{}
	var dupDiff, shared []string
	activeAnswers := int64(0)
	for _, a := range o.Answers {
		if a.Token == "" {
			continue
		}
		if u, ok := owner[a.Token]; ok && u != a.User {
			shared = append(shared, fmt.Sprintf("users %d and %d share %s…", u, a.User, short(a.Token)))
		}
		owner[a.Token] = a.User
		if f, ok := firstOf[a.User]; ok {
			// The token may have been admitted between the two answers;
			// two answers that both wait must give one place.
			if f.Status == "WAIT" && a.Status == "WAIT" && f.Position != a.Position {
				dupDiff = append(dupDiff, fmt.Sprintf("user %d waits at positions %d and %d", a.User, f.Position, a.Position))
			}
			continue
		}
		firstOf[a.User] = a
		if a.Status == "ACTIVE" {
			activeAnswers++
		}
	}
	answered := int64(len(firstOf))
	switch {
	case len(dupDiff) > 0 || len(shared) > 0:
		cs = append(cs, failc("one token per user", "%s", head(append(dupDiff, shared...), 4)))
	case o.HeldAdded >= 0 && o.HeldAdded != answered:
		cs = append(cs, failc("one token per user", "%d users answered, but the server holds %d more tokens than before", answered, o.HeldAdded))
	case o.HeldAdded >= 0:
		cs = append(cs, pass("one token per user", "%d users answered, %d more tokens held; repeated requests answered the same place", answered, o.HeldAdded))
	default:
		cs = append(cs, pass("one token per user", "%d users answered; repeated requests answered the same place (tokens held not read)", answered))
	}

	switch {
	case o.ActiveLimit > 0 && o.MaxActive > o.ActiveLimit:
		cs = append(cs, failc("active never above ACTIVE_TOKENS", "queue_active reached %d, ACTIVE_TOKENS is %d", o.MaxActive, o.ActiveLimit))
	case o.ActiveLimit > 0 && o.ActiveBefore+activeAnswers > o.ActiveLimit:
		cs = append(cs, failc("active never above ACTIVE_TOKENS", "%d tokens issued ACTIVE with %d active before, ACTIVE_TOKENS is %d",
			activeAnswers, o.ActiveBefore, o.ActiveLimit))
	case o.ActiveLimit > 0:
		cs = append(cs, pass("active never above ACTIVE_TOKENS", "at most %d active (sampled), %d issued ACTIVE, ACTIVE_TOKENS %d",
			max(o.MaxActive, 0), activeAnswers, o.ActiveLimit))
	default:
		cs = append(cs, pass("active never above ACTIVE_TOKENS", "ACTIVE_TOKENS unknown (pass -active-tokens): at most %d active (sampled), %d issued ACTIVE",
			max(o.MaxActive, 0), activeAnswers))
	}

	if o.OrderErr != nil {
		cs = append(cs, failc("FIFO order", "could not poll the line: %v", o.OrderErr))
	} else if len(o.Sent) == o.Users && len(o.Recv) == o.Users {
		var bad []string
		// In line, nobody may stand ahead of a user who was served before
		// it asked: walk the line from the back, keeping the earliest
		// answer seen behind.
		earliest, behind := int64(1<<62), -1
		for i := len(o.Order) - 1; i >= 0; i-- {
			u := o.Order[i]
			if behind >= 0 && o.Sent[u] > earliest {
				bad = append(bad, fmt.Sprintf("user %d is ahead of user %d, which was served before it asked", u, behind))
			}
			if o.Recv[u] < earliest {
				earliest, behind = o.Recv[u], u
			}
		}
		// And no user may be made ACTIVE at once after one was told to WAIT.
		firsts := make([]SurgeAnswer, 0, len(o.Answers))
		seen := map[int]bool{}
		for _, a := range o.Answers {
			if a.Token != "" && !seen[a.User] {
				seen[a.User] = true
				firsts = append(firsts, a)
			}
		}
		firstWait, waiter := int64(1<<62), -1
		for _, a := range firsts {
			if a.Status == "WAIT" && o.Recv[a.User] < firstWait {
				firstWait, waiter = o.Recv[a.User], a.User
			}
		}
		for _, a := range firsts {
			if a.Status == "ACTIVE" && o.Sent[a.User] > firstWait {
				bad = append(bad, fmt.Sprintf("user %d was made ACTIVE though user %d was told to WAIT before it asked", a.User, waiter))
			}
		}
		if len(bad) == 0 {
			cs = append(cs, pass("FIFO order", "%d waiting users stand in line in the order they were served", len(o.Order)))
		} else {
			cs = append(cs, failc("FIFO order", "%d inversions: %s", len(bad), head(bad, 3)))
		}
	}

	if o.Admitted != nil || o.Freed > 0 {
		headOf := o.Order[:min(len(o.Admitted), len(o.Order))]
		switch {
		case o.AdmittedBehind > 0:
			cs = append(cs, failc("admission from the head", "%d tokens freed; %d users from the back of the line became ACTIVE, %d from its head",
				o.Freed, o.AdmittedBehind, len(o.Admitted)))
		case !slices.Equal(o.Admitted, headOf):
			cs = append(cs, failc("admission from the head", "%d tokens freed; admitted users %s, but the head of the line was %s",
				o.Freed, head(intStrings(o.Admitted), 8), head(intStrings(headOf), 8)))
		case len(o.Admitted) < o.Freed:
			cs = append(cs, failc("admission from the head", "%d tokens freed, only %d waiting users admitted", o.Freed, len(o.Admitted)))
		default:
			cs = append(cs, pass("admission from the head", "%d tokens freed, the first %d in line became ACTIVE", o.Freed, len(o.Admitted)))
		}
	}
	return cs
}

// JourneyOutcome is what a journey run saw.
type JourneyOutcome struct {
	Fans     int
	Payments int   // 200 answers to payments
	Price    int64 // of every seat
	// SeatsSold is the seats on sale less those available-seats still
	// offers after the run.
	SeatsSold int
	SeatsErr  error
	// Debits is the sum over fans of charged − balance at the end.
	Debits    int64
	DebitsErr error
	// Wrong lists fans whose balance is not charged − (price if paid).
	Wrong []string
}

// CheckJourney: seats sold = payments = debits.
func CheckJourney(o JourneyOutcome) []Check {
	var cs []Check
	switch {
	case o.SeatsErr != nil:
		cs = append(cs, failc("seats sold = payments", "could not read available-seats: %v", o.SeatsErr))
	case o.SeatsSold == o.Payments:
		cs = append(cs, pass("seats sold = payments", "%d = %d", o.SeatsSold, o.Payments))
	default:
		cs = append(cs, failc("seats sold = payments", "%d seats gone from available-seats, %d payments", o.SeatsSold, o.Payments))
	}
	switch {
	case o.DebitsErr != nil:
		cs = append(cs, failc("payments = debits", "could not read the balances: %v", o.DebitsErr))
	case o.Debits == int64(o.Payments)*o.Price && len(o.Wrong) == 0:
		cs = append(cs, pass("payments = debits", "%d payments × %d = %d points debited", o.Payments, o.Price, o.Debits))
	default:
		cs = append(cs, failc("payments = debits", "%d payments × %d = %d, but %d points debited; %s",
			o.Payments, o.Price, int64(o.Payments)*o.Price, o.Debits, head(o.Wrong, 4)))
	}
	return cs
}

// HoldsOutcome is what a holds run saw after it.
type HoldsOutcome struct {
	Holds, Cancels int64
	Seats          int // seats of the fixture
	Free           int // seats available-seats lists after the run
	FreeErr        error
}

// CheckHolds: every hold was cancelled, so every seat is free again.
func CheckHolds(o HoldsOutcome) []Check {
	switch {
	case o.FreeErr != nil:
		return []Check{failc("every seat free again", "could not read available-seats: %v", o.FreeErr)}
	case o.Cancels < o.Holds:
		return []Check{pass("every seat free again", "not checked: %d holds were not cancelled (see errors)", o.Holds-o.Cancels)}
	case o.Free == o.Seats:
		return []Check{pass("every seat free again", "%d holds cancelled, %d of %d seats free", o.Cancels, o.Free, o.Seats)}
	}
	return []Check{failc("every seat free again", "%d holds cancelled, but %d of %d seats are free", o.Cancels, o.Free, o.Seats)}
}

// FreshHoldsOutcome is what a fresh-holds run saw: each seat was tried at
// most once, and nothing freed a held seat.
type FreshHoldsOutcome struct {
	Seats int // seats of the fixture
	Holds int // answered 200
	// Unknown counts the holds that got no answer or a 5xx: each may have
	// taken its seat.
	Unknown int
	// Free is how many seats available-seats lists after the run, over
	// DatesRead of Dates dates; FreeErr if it could not be read.
	Free             int
	Dates, DatesRead int
	FreeErr          error
	// HeldOffered are the seats answered 200 that available-seats still
	// lists.
	HeldOffered []int64
}

// CheckFreshHolds: every hold answered 200 shows as held (its seat is no
// longer offered), and the seats no longer offered are as many as the 200s
// (more only by holds whose answer never came or was a 5xx).
func CheckFreshHolds(o FreshHoldsOutcome) []Check {
	const held, count = "every acknowledged hold held", "200s = seats no longer offered"
	switch {
	case o.FreeErr != nil:
		return []Check{failc(held, "could not read available-seats: %v", o.FreeErr), failc(count, "not checked")}
	case o.DatesRead != o.Dates:
		return []Check{failc(held, "read %d of %d dates", o.DatesRead, o.Dates), failc(count, "not checked")}
	}
	var cs []Check
	if len(o.HeldOffered) == 0 {
		cs = append(cs, pass(held, "none of the %d seats answered 200 is offered by available-seats (%d dates read)", o.Holds, o.Dates))
	} else {
		ids := make([]string, len(o.HeldOffered))
		for i, id := range o.HeldOffered {
			ids[i] = i64toa(id)
		}
		cs = append(cs, failc(held, "%d of the %d seats answered 200 are still offered: seats %s", len(o.HeldOffered), o.Holds, head(ids, 5)))
	}
	gone := o.Seats - o.Free
	switch {
	case gone == o.Holds:
		cs = append(cs, pass(count, "%d = %d of %d seats", o.Holds, gone, o.Seats))
	case gone > o.Holds && gone <= o.Holds+o.Unknown:
		cs = append(cs, pass(count, "%d 200s, %d seats gone of %d: %d holds got no answer or a 5xx, which may have held their seat",
			o.Holds, gone, o.Seats, o.Unknown))
	default:
		cs = append(cs, failc(count, "%d 200s (and %d holds without an answer), but %d of %d seats are no longer offered",
			o.Holds, o.Unknown, gone, o.Seats))
	}
	return cs
}

func head(xs []string, n int) string {
	if len(xs) <= n {
		return strings.Join(xs, "; ")
	}
	return strings.Join(xs[:n], "; ") + fmt.Sprintf("; … (%d more)", len(xs)-n)
}

func intStrings(xs []int) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = itoa(x)
	}
	return out
}

func short(tok string) string {
	if len(tok) > 8 {
		return tok[:8]
	}
	return tok
}
