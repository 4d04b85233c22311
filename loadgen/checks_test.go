package loadgen

import (
	"errors"
	"strings"
	"testing"
)

// verdict returns the named check of cs, failing the test if absent.
func verdict(t *testing.T, cs []Check, name string) Check {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, cs)
	return Check{}
}

func wantOK(t *testing.T, cs []Check) {
	t.Helper()
	for _, c := range cs {
		if !c.OK {
			t.Errorf("a correct run fails %q: %s", c.Name, c.Detail)
		}
	}
}

func wantFail(t *testing.T, cs []Check, name, detail string) {
	t.Helper()
	c := verdict(t, cs, name)
	if c.OK {
		t.Errorf("a wrong run passes %q: %s", name, c.Detail)
	}
	if !strings.Contains(c.Detail, detail) {
		t.Errorf("%q says %q, want it to say %q", name, c.Detail, detail)
	}
}

func TestCheckHotSeat(t *testing.T) {
	good := HotSeatOutcome{Fans: 10000, Successes: 1, Conflicts: 9999}
	wantOK(t, CheckHotSeat(good))

	two := good
	two.Successes, two.Conflicts = 2, 9998 // the seat sold twice
	wantFail(t, CheckHotSeat(two), "exactly one success", "2 of 10000 fans hold the seat")

	none := good
	none.Successes, none.Other = 0, 1 // nobody got it: a 503 for the winner
	wantFail(t, CheckHotSeat(none), "exactly one success", "0 of 10000")
	wantFail(t, CheckHotSeat(none), "all others 409 SEAT_UNAVAILABLE", "1 other answers")

	lost := good
	lost.Conflicts, lost.Other = 9990, 9 // some losers got 500s or no answer
	wantFail(t, CheckHotSeat(lost), "all others 409 SEAT_UNAVAILABLE", "9 other answers or none")

	listed := good
	listed.SeatsListed = 1 // held, but still offered
	wantFail(t, CheckHotSeat(listed), "seat no longer offered", "still lists 1 of the 1 held seats")

	unread := good
	unread.SeatErr = errors.New("timeout")
	wantFail(t, CheckHotSeat(unread), "seat no longer offered", "timeout")
}

func TestCheckHotSeatOverSeveralSeats(t *testing.T) {
	good := HotSeatOutcome{Fans: 3000, Seats: 3, Wins: []int{1, 1, 1}, Successes: 3, Conflicts: 2997}
	wantOK(t, CheckHotSeat(good))

	twice := good // one seat sold twice, another to nobody: the count alone agrees
	twice.Wins = []int{2, 0, 1}
	wantFail(t, CheckHotSeat(twice), "exactly one success per seat", "seat 1 of 3 was held by 2 fans")

	short := good // a winner told 503
	short.Wins, short.Successes, short.Other = []int{1, 0, 1}, 2, 1
	wantFail(t, CheckHotSeat(short), "exactly one success per seat", "2 of 3000 fans hold a seat of 3")
	wantFail(t, CheckHotSeat(short), "all others 409 SEAT_UNAVAILABLE", "1 other answers")

	unknown := good // a caller that did not count per seat proves nothing
	unknown.Wins = nil
	wantFail(t, CheckHotSeat(unknown), "exactly one success per seat", "wins known for 0 of 3 seats")

	listed := good
	listed.SeatsListed = 2
	wantFail(t, CheckHotSeat(listed), "seat no longer offered", "still lists 2 of the 3 held seats")
}

func TestCheckSoldOut(t *testing.T) {
	good := SoldOutOutcome{Seats: 4, Holds: 4, Payments: 4, Dates: 2,
		PaidBy: map[int64][]int64{1: {10}, 2: {11}, 3: {12}, 4: {13}},
		Left:   map[string]int{"2030-01-01": 0, "2030-01-02": 0}}
	wantOK(t, CheckSoldOut(good))

	twice := good
	twice.Holds, twice.Payments = 5, 5
	twice.PaidBy = map[int64][]int64{1: {10, 14}, 2: {11}, 3: {12}, 4: {13}}
	wantFail(t, CheckSoldOut(twice), "no seat sold twice", "seat 1 by [10 14]")
	wantFail(t, CheckSoldOut(twice), "holds = payments = seats", "holds 5, payments 5, seats 4")

	unpaid := good
	unpaid.Payments = 3 // a hold never paid, never cancelled
	unpaid.PaidBy = map[int64][]int64{1: {10}, 2: {11}, 3: {12}}
	wantFail(t, CheckSoldOut(unpaid), "holds = payments = seats", "payments 3")

	leftover := good
	leftover.Left = map[string]int{"2030-01-01": 0, "2030-01-02": 2}
	wantFail(t, CheckSoldOut(leftover), "available-seats says 0 everywhere", "2 seats still offered on 1 dates (2030-01-02: 2)")

	partial := good
	partial.Left = map[string]int{"2030-01-01": 0}
	wantFail(t, CheckSoldOut(partial), "available-seats says 0 everywhere", "read 1 of 2 dates")

	// A payment answered 200 but not recorded as a sale of its seat.
	lostSale := good
	lostSale.PaidBy = map[int64][]int64{1: {10}, 2: {11}, 3: {12}}
	wantFail(t, CheckSoldOut(lostSale), "no seat sold twice", "")
}

func TestCheckWallets(t *testing.T) {
	good := []WalletOutcome{
		{UserID: 1, Charged: 5000, Paid: 3000, Balance: 2000, Replays: 3},
		{UserID: 2, Charged: 1000, Paid: 1000, Balance: 0},
	}
	wantOK(t, CheckWallets(good))

	inexact := []WalletOutcome{good[0], {UserID: 2, Charged: 1000, Paid: 1000, Balance: 7}}
	wantFail(t, CheckWallets(inexact), "every balance exact", "user 2: balance 7")
	wantFail(t, CheckWallets(inexact), "money conserved", "difference 7")

	// Money moved between wallets: each wrong, the sum right.
	moved := []WalletOutcome{{UserID: 1, Charged: 5000, Paid: 3000, Balance: 2500}, {UserID: 2, Charged: 1000, Paid: 500, Balance: 0}}
	wantFail(t, CheckWallets(moved), "every balance exact", "2 of 2 wallets wrong")
	verdictOK := verdict(t, CheckWallets(moved), "money conserved")
	if !verdictOK.OK {
		t.Errorf("conservation over all wallets should hold here: %s", verdictOK.Detail)
	}

	negative := []WalletOutcome{{UserID: 1, Charged: 1000, Paid: 1000, Balance: 0, MinSeen: -1000}}
	wantFail(t, CheckWallets(negative), "never negative", "lowest -1000")

	replay := []WalletOutcome{{UserID: 1, Charged: 2000, Balance: 2000, Replays: 4, ReplayMismatches: 1}}
	wantFail(t, CheckWallets(replay), "replayed charge changes nothing", "1 of 4 retries")

	unread := []WalletOutcome{{UserID: 1, BalanceErr: errors.New("HTTP 503")}}
	wantFail(t, CheckWallets(unread), "every balance exact", "balance unreadable")

	// A charge that never got an answer may or may not have happened.
	unknown := []WalletOutcome{{UserID: 1, Charged: 1000, Unresolved: 500, Balance: 1500}}
	wantOK(t, CheckWallets(unknown))
	tooMuch := []WalletOutcome{{UserID: 1, Charged: 1000, Unresolved: 500, Balance: 1600}}
	wantFail(t, CheckWallets(tooMuch), "every balance exact", "balance 1600")
}

func surgeTimes(n int) (sent, recv []int64) {
	sent, recv = make([]int64, n), make([]int64, n)
	for i := range n {
		sent[i], recv[i] = int64(i*10), int64(i*10+5) // each served before the next asks
	}
	return sent, recv
}

func TestCheckSurge(t *testing.T) {
	sent, recv := surgeTimes(5)
	good := SurgeOutcome{Users: 5, ActiveLimit: 2, ActiveBefore: 0, MaxActive: 2, Sent: sent, Recv: recv, HeldAdded: 5,
		Answers: []SurgeAnswer{
			// A repeated request answers the same token with a fresh secret.
			{User: 0, Token: "t0", Status: "ACTIVE"}, {User: 0, Token: "t0-rekeyed", Status: "ACTIVE"},
			{User: 1, Token: "t1", Status: "ACTIVE"},
			{User: 2, Token: "t2", Status: "WAIT", Position: 1}, {User: 3, Token: "t3", Status: "WAIT", Position: 2},
			{User: 4, Token: "t4", Status: "WAIT", Position: 3},
		},
		Order: []int{2, 3, 4}, Freed: 1, Admitted: []int{2}}
	wantOK(t, CheckSurge(good))

	dup := good
	dup.HeldAdded = 6 // the repeated request made a second token
	wantFail(t, CheckSurge(dup), "one token per user", "5 users answered, but the server holds 6 more tokens")

	twoPlaces := good
	twoPlaces.Answers = append([]SurgeAnswer{}, good.Answers...)
	twoPlaces.Answers = append(twoPlaces.Answers, SurgeAnswer{User: 4, Token: "t4-rekeyed", Status: "WAIT", Position: 4})
	wantFail(t, CheckSurge(twoPlaces), "one token per user", "user 4 waits at positions 3 and 4")

	shared := good
	shared.Answers = append([]SurgeAnswer{}, good.Answers...)
	shared.Answers[2].Token = "t0" // two users, one token
	wantFail(t, CheckSurge(shared), "one token per user", "users 0 and 1 share")

	over := good
	over.MaxActive = 3
	wantFail(t, CheckSurge(over), "active never above ACTIVE_TOKENS", "reached 3, ACTIVE_TOKENS is 2")

	tooMany := good
	tooMany.ActiveBefore = 1 // one was active already, yet two more were admitted
	wantFail(t, CheckSurge(tooMany), "active never above ACTIVE_TOKENS", "2 tokens issued ACTIVE with 1 active before")

	lifo := good
	lifo.Order = []int{4, 3, 2} // the line is the wrong way round
	wantFail(t, CheckSurge(lifo), "FIFO order", "user 3 is ahead of user 2, which was served before it asked")

	jumped := good
	jumped.Answers = append([]SurgeAnswer{}, good.Answers...)
	jumped.Answers[5].Status = "ACTIVE" // user 4 came last but got in while others waited
	jumped.Order = []int{2, 3}
	jumped.ActiveLimit = 0
	wantFail(t, CheckSurge(jumped), "FIFO order", "user 4 was made ACTIVE though user 2 was told to WAIT")

	wrongAdmit := good
	wrongAdmit.Admitted = []int{3} // a slot freed, but not the head got it
	wantFail(t, CheckSurge(wrongAdmit), "admission from the head", "admitted users 3, but the head of the line was 2")

	back := good
	back.Admitted, back.AdmittedBehind = []int{}, 1
	wantFail(t, CheckSurge(back), "admission from the head", "1 users from the back of the line became ACTIVE")

	noAdmit := good
	noAdmit.Admitted = []int{}
	wantFail(t, CheckSurge(noAdmit), "admission from the head", "1 tokens freed, only 0")

	unpolled := good
	unpolled.OrderErr = errors.New("HTTP 503")
	wantFail(t, CheckSurge(unpolled), "FIFO order", "could not poll")
}

func TestCheckJourney(t *testing.T) {
	good := JourneyOutcome{Fans: 3, Payments: 3, Price: 1000, SeatsSold: 3, Debits: 3000}
	wantOK(t, CheckJourney(good))

	sold := good
	sold.SeatsSold = 4 // a seat gone without a payment
	wantFail(t, CheckJourney(sold), "seats sold = payments", "4 seats gone from available-seats, 3 payments")

	debit := good
	debit.Debits = 4000 // a payment debited twice
	wantFail(t, CheckJourney(debit), "payments = debits", "but 4000 points debited")

	wrong := good
	wrong.Wrong = []string{"user 7: balance 0, want 1000"}
	wantFail(t, CheckJourney(wrong), "payments = debits", "user 7")

	unread := good
	unread.SeatsErr = errors.New("timeout")
	wantFail(t, CheckJourney(unread), "seats sold = payments", "timeout")
}

func TestCheckHolds(t *testing.T) {
	wantOK(t, CheckHolds(HoldsOutcome{Holds: 10, Cancels: 10, Seats: 50, Free: 50}))
	wantFail(t, CheckHolds(HoldsOutcome{Holds: 10, Cancels: 10, Seats: 50, Free: 49}), "every seat free again", "49 of 50 seats are free")
	wantFail(t, CheckHolds(HoldsOutcome{Seats: 50, FreeErr: errors.New("x")}), "every seat free again", "could not read")
	// Holds not cancelled (errors): not a verdict on the server.
	wantOK(t, CheckHolds(HoldsOutcome{Holds: 10, Cancels: 9, Seats: 50, Free: 49}))
}

func TestCheckFreshHolds(t *testing.T) {
	const held, count = "every acknowledged hold held", "200s = seats no longer offered"
	good := FreshHoldsOutcome{Seats: 100, Holds: 60, Free: 40, Dates: 2, DatesRead: 2}
	wantOK(t, CheckFreshHolds(good))

	unanswered := good
	unanswered.Unknown, unanswered.Free = 3, 38 // two of three unanswered holds took their seat
	wantOK(t, CheckFreshHolds(unanswered))

	offered := good
	offered.HeldOffered, offered.Free = []int64{7, 9}, 42 // two 200s not held
	wantFail(t, CheckFreshHolds(offered), held, "2 of the 60 seats answered 200 are still offered: seats 7; 9")
	wantFail(t, CheckFreshHolds(offered), count, "60 200s (and 0 holds without an answer), but 58 of 100 seats")

	phantom := good
	phantom.Free = 35 // five seats gone that nobody was told they hold
	wantFail(t, CheckFreshHolds(phantom), count, "but 65 of 100 seats are no longer offered")

	unread := good
	unread.FreeErr = errors.New("x")
	wantFail(t, CheckFreshHolds(unread), held, "could not read available-seats: x")
	wantFail(t, CheckFreshHolds(unread), count, "not checked")

	partial := good
	partial.DatesRead = 1
	wantFail(t, CheckFreshHolds(partial), held, "read 1 of 2 dates")
}

func TestAddChecksRecordsViolations(t *testing.T) {
	r := &Result{}
	r.addChecks(Check{Name: "a", OK: true}, Check{Name: "b", OK: false, Detail: "broken"})
	if r.OK() || len(r.Checks) != 2 || len(r.Violations) != 1 || r.Violations[0] != "b: broken" {
		t.Errorf("result = %+v", r)
	}
}
