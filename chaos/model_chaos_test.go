package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// hist builds a history from ops given in call order; each op's Call and
// Return are set by the caller (small integers).
func hist(ops ...*Op) []*Op {
	for i, op := range ops {
		op.ID = i
		if op.Outcome == "" {
			op.Outcome = OK
		}
	}
	return ops
}

func verdicts(t *testing.T, ops []*Op, seatOfRes map[int64]int64, seats map[int64][]int64) map[string]porcupine.CheckResult {
	t.Helper()
	out := map[string]porcupine.CheckResult{}
	for _, v := range CheckLinearizable(Partitions(ops, seatOfRes, seats), 10*time.Second) {
		out[v.Partition] = v.Result
	}
	return out
}

func TestSeatModel(t *testing.T) {
	seats := map[int64][]int64{1: {7, 8}}
	res := map[int64]int64{101: 7, 102: 7}
	cases := []struct {
		name string
		ops  []*Op
		want porcupine.CheckResult
	}{
		{"hold, cancel, hold again", hist(
			&Op{Kind: KindHold, Seat: 7, Call: 1, Return: 2, ResID: 101},
			&Op{Kind: KindCancel, Res: 101, Call: 3, Return: 4},
			&Op{Kind: KindHold, Seat: 7, Call: 5, Return: 6, ResID: 102},
		), porcupine.Ok},
		{"two holds of one seat, one after the other", hist(
			&Op{Kind: KindHold, Seat: 7, Call: 1, Return: 2, ResID: 101},
			&Op{Kind: KindHold, Seat: 7, Call: 3, Return: 4, ResID: 102},
		), porcupine.Illegal},
		{"two concurrent holds of one seat", hist(
			&Op{Kind: KindHold, Seat: 7, Call: 1, Return: 4, ResID: 101},
			&Op{Kind: KindHold, Seat: 7, Call: 2, Return: 3, ResID: 102},
		), porcupine.Illegal},
		{"refused while held", hist(
			&Op{Kind: KindHold, Seat: 7, Call: 1, Return: 2, ResID: 101},
			&Op{Kind: KindHold, Seat: 7, Call: 3, Return: 4, Outcome: Fail, Code: "SEAT_UNAVAILABLE"},
		), porcupine.Ok},
		{"refused while free", hist(
			&Op{Kind: KindHold, Seat: 7, Call: 3, Return: 4, Outcome: Fail, Code: "SEAT_UNAVAILABLE"},
		), porcupine.Illegal},
		{"an acknowledged payment lost by a restart", hist(
			&Op{Kind: KindHold, Seat: 7, Call: 1, Return: 2, ResID: 101},
			&Op{Kind: KindPay, Res: 101, User: 1, Amount: 0, Call: 3, Return: 4},
			&Op{Kind: KindReservation, Res: 101, Call: 10, Return: 11, ResStatus: stHeld},
		), porcupine.Illegal},
		{"a payment cut by a kill may land later", hist(
			&Op{Kind: KindHold, Seat: 7, Call: 1, Return: 2, ResID: 101},
			&Op{Kind: KindPay, Res: 101, User: 1, Call: 3, Return: 4, Outcome: Unknown},
			&Op{Kind: KindReservation, Res: 101, Call: 10, Return: 11, ResStatus: stHeld},
			&Op{Kind: KindReservation, Res: 101, Call: 12, Return: 13, ResStatus: stConfirmed},
		), porcupine.Ok},
		{"but cannot be undone", hist(
			&Op{Kind: KindHold, Seat: 7, Call: 1, Return: 2, ResID: 101},
			&Op{Kind: KindPay, Res: 101, User: 1, Call: 3, Return: 4, Outcome: Unknown},
			&Op{Kind: KindReservation, Res: 101, Call: 10, Return: 11, ResStatus: stConfirmed},
			&Op{Kind: KindReservation, Res: 101, Call: 12, Return: 13, ResStatus: stHeld},
		), porcupine.Illegal},
		{"a lost hold may hold the seat, then be undone", hist(
			&Op{Kind: KindHold, Seat: 7, Call: 1, Return: 2, Outcome: Unknown},
			&Op{Kind: KindSeats, Option: 1, Free: []int64{8}, Call: 3, Return: 4},
			&Op{Kind: KindSeats, Option: 1, Free: []int64{7, 8}, Call: 5, Return: 6},
		), porcupine.Ok},
		{"a seat listed free while sold", hist(
			&Op{Kind: KindHold, Seat: 7, Call: 1, Return: 2, ResID: 101},
			&Op{Kind: KindPay, Res: 101, User: 1, Call: 3, Return: 4},
			&Op{Kind: KindSeats, Option: 1, Free: []int64{7, 8}, Call: 5, Return: 6},
		), porcupine.Illegal},
		{"cancel twice answers it again", hist(
			&Op{Kind: KindHold, Seat: 7, Call: 1, Return: 2, ResID: 101},
			&Op{Kind: KindCancel, Res: 101, Call: 3, Return: 4},
			&Op{Kind: KindCancel, Res: 101, Call: 5, Return: 6},
			&Op{Kind: KindPay, Res: 101, User: 1, Call: 7, Return: 8, Outcome: Fail, Code: "RESERVATION_CANCELLED"},
		), porcupine.Ok},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := verdicts(t, c.ops, res, seats)["seat 7"]; got != c.want {
				t.Fatalf("seat 7: %v, want %v", got, c.want)
			}
		})
	}
}

func TestWalletModel(t *testing.T) {
	cases := []struct {
		name string
		ops  []*Op
		want porcupine.CheckResult
	}{
		{"charges add up", hist(
			&Op{Kind: KindCharge, User: 1, Amount: 100, Balance: 100, Call: 1, Return: 2},
			&Op{Kind: KindCharge, User: 1, Amount: 50, Balance: 150, Call: 3, Return: 4},
			&Op{Kind: KindBalance, User: 1, Balance: 150, Call: 5, Return: 6},
		), porcupine.Ok},
		{"an acknowledged charge lost", hist(
			&Op{Kind: KindCharge, User: 1, Amount: 100, Balance: 100, Call: 1, Return: 2},
			&Op{Kind: KindBalance, User: 1, Balance: 0, Call: 5, Return: 6},
		), porcupine.Illegal},
		{"a lost charge may land late, once", hist(
			&Op{Kind: KindCharge, User: 1, Amount: 100, Call: 1, Return: 2, Outcome: Unknown},
			&Op{Kind: KindBalance, User: 1, Balance: 0, Call: 3, Return: 4},
			&Op{Kind: KindBalance, User: 1, Balance: 100, Call: 5, Return: 6},
		), porcupine.Ok},
		{"a lost charge cannot land twice", hist(
			&Op{Kind: KindCharge, User: 1, Amount: 100, Call: 1, Return: 2, Outcome: Unknown},
			&Op{Kind: KindBalance, User: 1, Balance: 200, Call: 5, Return: 6},
		), porcupine.Illegal},
		{"a keyed retry adds once and answers the first balance", hist(
			&Op{Kind: KindCharge, User: 1, Amount: 100, Key: "k", Call: 1, Return: 2, Outcome: Unknown},
			&Op{Kind: KindCharge, User: 1, Amount: 100, Key: "k", Balance: 100, Call: 3, Return: 4},
			&Op{Kind: KindCharge, User: 1, Amount: 100, Key: "k", Balance: 100, Call: 5, Return: 6},
			&Op{Kind: KindBalance, User: 1, Balance: 100, Call: 7, Return: 8},
		), porcupine.Ok},
		{"unanswered keyed attempts merged with their answer", hist(
			&Op{Kind: KindCharge, User: 1, Amount: 100, Key: "k", Call: 1, Return: 2, Outcome: Unknown},
			&Op{Kind: KindBalance, User: 1, Balance: 100, Call: 3, Return: 4},
			&Op{Kind: KindCharge, User: 1, Amount: 100, Key: "k", Call: 5, Return: 6, Outcome: Unknown},
			&Op{Kind: KindCharge, User: 1, Amount: 100, Key: "k", Balance: 100, Call: 7, Return: 8},
			&Op{Kind: KindBalance, User: 1, Balance: 100, Call: 9, Return: 10},
		), porcupine.Ok},
		{"merged keyed attempts still add only once", hist(
			&Op{Kind: KindCharge, User: 1, Amount: 100, Key: "k", Call: 1, Return: 2, Outcome: Unknown},
			&Op{Kind: KindCharge, User: 1, Amount: 100, Key: "k", Call: 3, Return: 4, Outcome: Unknown},
			&Op{Kind: KindCharge, User: 1, Amount: 100, Key: "k", Balance: 100, Call: 5, Return: 6},
			&Op{Kind: KindBalance, User: 1, Balance: 200, Call: 7, Return: 8},
		), porcupine.Illegal},
		{"unanswered keyed attempts never answered: once, late", hist(
			&Op{Kind: KindCharge, User: 1, Amount: 100, Key: "k", Call: 1, Return: 2, Outcome: Unknown},
			&Op{Kind: KindBalance, User: 1, Balance: 0, Call: 3, Return: 4},
			&Op{Kind: KindCharge, User: 1, Amount: 100, Key: "k", Call: 5, Return: 6, Outcome: Unknown},
			&Op{Kind: KindBalance, User: 1, Balance: 100, Call: 7, Return: 8},
		), porcupine.Ok},
		{"unanswered keyed attempts never answered: not twice", hist(
			&Op{Kind: KindCharge, User: 1, Amount: 100, Key: "k", Call: 1, Return: 2, Outcome: Unknown},
			&Op{Kind: KindCharge, User: 1, Amount: 100, Key: "k", Call: 3, Return: 4, Outcome: Unknown},
			&Op{Kind: KindBalance, User: 1, Balance: 200, Call: 5, Return: 6},
		), porcupine.Illegal},
		{"unanswered keyed attempts never answered: not before the first call", hist(
			&Op{Kind: KindBalance, User: 1, Balance: 100, Call: 1, Return: 2},
			&Op{Kind: KindCharge, User: 1, Amount: 100, Key: "k", Call: 3, Return: 4, Outcome: Unknown},
		), porcupine.Illegal},
		{"unanswered keyed payments merged with their answer", hist(
			&Op{Kind: KindCharge, User: 1, Amount: 300, Balance: 300, Call: 1, Return: 2},
			&Op{Kind: KindPay, User: 1, Res: 101, Amount: 300, Key: "p", Call: 3, Return: 4, Outcome: Unknown},
			&Op{Kind: KindPay, User: 1, Res: 101, Amount: 300, Key: "p", Call: 5, Return: 6, Outcome: Unknown},
			&Op{Kind: KindPay, User: 1, Res: 101, Amount: 300, Key: "p", Balance: 0, Call: 7, Return: 8},
			&Op{Kind: KindBalance, User: 1, Balance: 0, Call: 9, Return: 10},
		), porcupine.Ok},
		{"a keyed retry that adds again", hist(
			&Op{Kind: KindCharge, User: 1, Amount: 100, Key: "k", Balance: 100, Call: 1, Return: 2},
			&Op{Kind: KindCharge, User: 1, Amount: 100, Key: "k", Balance: 200, Call: 3, Return: 4},
		), porcupine.Illegal},
		{"a payment debits", hist(
			&Op{Kind: KindCharge, User: 1, Amount: 300, Balance: 300, Call: 1, Return: 2},
			&Op{Kind: KindPay, User: 1, Res: 101, Amount: 300, Balance: 0, Call: 3, Return: 4},
			&Op{Kind: KindBalance, User: 1, Balance: 0, Call: 5, Return: 6},
		), porcupine.Ok},
		{"a payment with too little money", hist(
			&Op{Kind: KindCharge, User: 1, Amount: 100, Balance: 100, Call: 1, Return: 2},
			&Op{Kind: KindPay, User: 1, Res: 101, Amount: 300, Balance: -200, Call: 3, Return: 4},
		), porcupine.Illegal},
		{"refused for a balance that was enough", hist(
			&Op{Kind: KindCharge, User: 1, Amount: 300, Balance: 300, Call: 1, Return: 2},
			&Op{Kind: KindPay, User: 1, Res: 101, Amount: 300, Call: 3, Return: 4, Outcome: Fail, Code: "INSUFFICIENT_BALANCE"},
		), porcupine.Illegal},
	}
	// Unanswered reads are left out of the partitions: they constrain
	// nothing, and each one widens porcupine's search.
	unanswered := hist(
		&Op{Kind: KindCharge, User: 1, Amount: 100, Balance: 100, Call: 1, Return: 2},
		&Op{Kind: KindBalance, User: 1, Call: 3, Return: 4, Outcome: Unknown},
		&Op{Kind: KindReservation, User: 1, Res: 101, Call: 3, Return: 4, Outcome: Unknown},
		&Op{Kind: KindBalance, User: 1, Balance: 100, Call: 5, Return: 6},
	)
	for _, p := range Partitions(unanswered, map[int64]int64{101: 7}, nil) {
		if n := len(p.ops); p.Name == "wallet 1" && n != 2 || p.Name == "seat 7" {
			t.Fatalf("%s holds %d operations: unanswered reads kept", p.Name, n)
		}
	}
	// A long outage: 200 unanswered attempts of 20 keys never answered
	// are 20 operations, not 200 (porcupine left a wallet of 194 such
	// attempts undecided after a minute).
	var outage []*Op
	for i := range 200 {
		outage = append(outage, &Op{Kind: KindCharge, User: 1, Amount: 10, Key: fmt.Sprintf("k%d", i%20),
			Call: int64(2 * i), Return: int64(2*i + 1), Outcome: Unknown})
	}
	outage = append(outage, &Op{Kind: KindBalance, User: 1, Balance: 200, Call: 400, Return: 401})
	// And a payment retried 50 times with its key, never answered.
	for i := range 50 {
		outage = append(outage, &Op{Kind: KindPay, User: 1, Res: 101, Amount: 100, Key: "p",
			Call: int64(402 + 2*i), Return: int64(403 + 2*i), Outcome: Unknown})
	}
	for _, p := range Partitions(hist(outage...), map[int64]int64{101: 7}, nil) {
		if want := map[string]int{"wallet 1": 22, "seat 7": 1}[p.Name]; len(p.ops) != want {
			t.Fatalf("%s holds %d operations, want %d", p.Name, len(p.ops), want)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := verdicts(t, c.ops, map[int64]int64{101: 7}, nil)["wallet 1"]; got != c.want {
				t.Fatalf("wallet 1: %v, want %v", got, c.want)
			}
		})
	}
}

func TestInvariants(t *testing.T) {
	seats := map[int64][]int64{1: {7, 8}}
	base := func() []*Op {
		return hist(
			&Op{Kind: KindCharge, User: 1, Amount: 500, Balance: 500, Call: 1, Return: 2},
			&Op{Kind: KindCharge, User: 1, Amount: 40, Call: 3, Return: 4, Outcome: Unknown},
			&Op{Kind: KindHold, User: 1, Seat: 7, ResID: 101, Price: 300, Call: 5, Return: 6},
			&Op{Kind: KindPay, User: 1, Res: 101, Amount: 300, Balance: 200, Call: 7, Return: 8},
			&Op{Kind: KindHold, User: 1, Seat: 8, ResID: 102, Price: 300, Call: 9, Return: 10},
			&Op{Kind: KindCancel, User: 1, Res: 102, Call: 11, Return: 12},
			&Op{Kind: KindReservation, User: 1, Res: 101, ResSeat: 7, ResStatus: stConfirmed, Price: 300, Final: true, Call: 20, Return: 21},
			&Op{Kind: KindReservation, User: 1, Res: 102, ResSeat: 8, ResStatus: stCancelled, Price: 300, Final: true, Call: 22, Return: 23},
			&Op{Kind: KindBalance, User: 1, Balance: 200, Final: true, Call: 24, Return: 25},
			&Op{Kind: KindSeats, Option: 1, Free: []int64{8}, Final: true, Call: 26, Return: 27},
		)
	}
	facts := func(ops []*Op) Facts {
		return Facts{Ops: ops, SeatOfRes: map[int64]int64{101: 7, 102: 8}, SeatsOfOption: seats, Users: []int64{1}}
	}
	if inv := CheckInvariants(facts(base())); len(inv.Violations) > 0 || inv.Lost != 0 || inv.Acknowledged != 5 {
		t.Fatalf("a good history: %+v", inv)
	}
	// The lost charge of 40 may have landed.
	ops := base()
	ops[8].Balance = 240
	if inv := CheckInvariants(facts(ops)); len(inv.Violations) > 0 {
		t.Fatalf("a lost charge that landed: %+v", inv)
	}
	// Money from nowhere, money gone, a payment or cancel lost, a seat
	// free while sold.
	for name, mutate := range map[string]func([]*Op){
		"money from nowhere": func(ops []*Op) { ops[8].Balance = 250 },
		"money gone":         func(ops []*Op) { ops[8].Balance = 150 },
		"payment lost":       func(ops []*Op) { ops[6].ResStatus = stHeld },
		"cancel lost":        func(ops []*Op) { ops[7].ResStatus = stHeld; ops[9].Free = nil },
		"sold seat free":     func(ops []*Op) { ops[9].Free = []int64{7, 8} },
		"negative balance":   func(ops []*Op) { ops[3].Balance = -1 },
		"hold gone":          func(ops []*Op) { ops[7].Outcome = Fail; ops[7].Code = "RESERVATION_NOT_FOUND" },
	} {
		ops := base()
		mutate(ops)
		if inv := CheckInvariants(facts(ops)); len(inv.Violations) == 0 {
			t.Errorf("%s: not caught", name)
		}
	}
}

// TestReportSavesDrawings checks that a failing history is saved with
// porcupine's drawing of the partition that is not linearizable.
func TestReportSavesDrawings(t *testing.T) {
	ops := hist(
		&Op{Kind: KindCharge, User: 1, Amount: 100, Balance: 100, Call: 1, Return: 2},
		&Op{Kind: KindBalance, User: 1, Balance: 0, Call: 5, Return: 6, Final: true},
	)
	r := Check(Facts{Ops: ops, Users: []int64{1}}, 10*time.Second)
	if !r.Failed() || len(r.NotLinear) != 1 {
		t.Fatalf("want one partition not linearizable: %s", r.Summary())
	}
	dir := t.TempDir()
	files, err := r.Save(dir)
	if err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(filepath.Join(dir, "wallet-1.html"))
	if err != nil || !strings.Contains(string(html), "<html") {
		t.Fatalf("no drawing among %v: %v", files, err)
	}
	if _, err := LoadOps(filepath.Join(dir, "history.json")); err != nil {
		t.Fatal(err)
	}
}
