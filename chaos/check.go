package chaos

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// never is the return time of an operation whose outcome is unknown: it may
// be linearized at any moment after its call.
const never = math.MaxInt64

// Partition is the operations on one seat or one wallet.
type Partition struct {
	Name  string // "seat 17", "wallet 3"
	model porcupine.Model
	ops   []porcupine.Operation
}

// returnOf is the return time porcupine sees: never for an unknown outcome.
func returnOf(op *Op) int64 {
	if op.Outcome == Unknown {
		return never
	}
	return op.Return
}

// Partitions splits a history into one partition per seat and one per
// wallet. A payment is in both its seat's and its wallet's; a seats read is
// one read per seat of its date; a refused connection is in none (it was
// never sent). seatOfRes maps reservation ids to seats (a cancel, payment
// or read names the reservation only).
func Partitions(ops []*Op, seatOfRes map[int64]int64, seatsOfOption map[int64][]int64) []*Partition {
	seats := map[int64]*Partition{}
	wallets := map[int64]*Partition{}
	add := func(m map[int64]*Partition, kind string, key int64, model porcupine.Model, op *Op, in seatInput, ret int64) {
		p := m[key]
		if p == nil {
			p = &Partition{Name: fmt.Sprintf("%s %d", kind, key), model: model}
			m[key] = p
		}
		p.ops = append(p.ops, porcupine.Operation{ClientId: op.Client, Input: in, Output: nil, Call: op.Call, Return: ret})
	}
	seat := func(op *Op, in seatInput, ret int64) {
		s := op.Seat
		if s == 0 {
			s = seatOfRes[op.Res]
		}
		if s != 0 {
			add(seats, "seat", s, SeatModel, op, in, ret)
		}
	}
	for _, op := range mergeKeyedRetries(ops) {
		if op.Outcome == Refused {
			continue
		}
		if op.Outcome == Unknown && (op.Kind == KindBalance || op.Kind == KindReservation) {
			// An unanswered read changed nothing and says nothing; kept, it
			// would be one more operation the checker may place anywhere
			// after its call, and a wallet with dozens of them during an
			// outage left porcupine undecided after a minute.
			continue
		}
		in := seatInput{op: op}
		ret := returnOf(op)
		switch op.Kind {
		case KindHold:
			seat(op, in, ret)
			if op.Outcome == Unknown {
				seat(op, seatInput{op: op, phantom: true}, never)
			}
		case KindCancel, KindReservation:
			seat(op, in, ret)
		case KindPay:
			seat(op, in, ret)
			add(wallets, "wallet", op.User, WalletModel, op, in, ret)
		case KindCharge, KindBalance:
			add(wallets, "wallet", op.User, WalletModel, op, in, ret)
		case KindSeats:
			if op.Outcome != OK {
				continue // a failed read says nothing
			}
			free := map[int64]bool{}
			for _, s := range op.Free {
				free[s] = true
			}
			for _, s := range seatsOfOption[op.Option] {
				add(seats, "seat", s, SeatModel, op, seatInput{op: &Op{ID: op.ID, Client: op.Client, Kind: KindSeats, Seat: s,
					Call: op.Call, Return: op.Return, Outcome: OK}, free: free[s]}, ret)
			}
		}
	}
	var out []*Partition
	for _, m := range []map[int64]*Partition{seats, wallets} {
		keys := make([]int64, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			out = append(out, m[k])
		}
	}
	return out
}

// mergeKeyedRetries returns ops with the unanswered attempts of each keyed
// charge or payment made one operation, since the Idempotency-Key makes it
// happen once at most, whichever attempt carried it:
//   - a key later answered OK: one operation from the first attempt's call
//     to the answer's return, with the answer's balance (the change happened
//     somewhere in that span, and the answer gives the balance right after
//     it, WalletModel);
//   - a key never answered OK: one unknown operation from the first
//     attempt's call, which may happen once, any time after it.
//
// Kept apart, every unanswered attempt is an operation porcupine may place
// anywhere after its call: a wallet with 50 of them during an outage left
// it undecided after a minute, and one with 194 attempts of keys never
// answered (a database outage longer than the client's retries) did again.
// Answers that refused (Fail, Refused) are kept as they are.
func mergeKeyedRetries(ops []*Op) []*Op {
	type key struct {
		kind Kind
		user int64
		key  string
	}
	keyed := func(op *Op) bool { return (op.Kind == KindCharge || op.Kind == KindPay) && op.Key != "" }
	first := map[key]*Op{} // the earliest unanswered attempt
	answered := map[key]bool{}
	for _, op := range ops {
		if !keyed(op) {
			continue
		}
		k := key{op.Kind, op.User, op.Key}
		switch op.Outcome {
		case Unknown:
			if f, ok := first[k]; !ok || op.Call < f.Call {
				first[k] = op
			}
		case OK:
			answered[k] = true
		}
	}
	out := make([]*Op, 0, len(ops))
	for _, op := range ops {
		if !keyed(op) || op.Outcome == Fail || op.Outcome == Refused {
			out = append(out, op)
			continue
		}
		k := key{op.Kind, op.User, op.Key}
		f, retried := first[k]
		switch {
		case !retried:
			out = append(out, op)
		case op.Outcome == OK:
			m := *op
			m.Call = min(m.Call, f.Call)
			out = append(out, &m)
		case op == f && !answered[k]:
			out = append(out, op)
		}
		// any other unanswered attempt: in the one operation of its key
	}
	return out
}

// Verdict is the linearizability verdict of one partition.
type Verdict struct {
	Partition string
	Ops       int
	Result    porcupine.CheckResult
	info      porcupine.LinearizationInfo
	model     porcupine.Model
}

// CheckLinearizable checks every partition with porcupine, each within
// timeout. The verdicts are in partition order.
func CheckLinearizable(parts []*Partition, timeout time.Duration) []Verdict {
	out := make([]Verdict, len(parts))
	for i, p := range parts {
		res, info := porcupine.CheckOperationsVerbose(p.model, p.ops, timeout)
		out[i] = Verdict{Partition: p.Name, Ops: len(p.ops), Result: res, info: info, model: p.model}
	}
	return out
}

// Facts is what the invariants are checked against: the history, and what
// the run knows of the catalog.
type Facts struct {
	Ops           []*Op
	SeatOfRes     map[int64]int64   // every reservation id seen → its seat
	SeatsOfOption map[int64][]int64 // the run's dates → their seats
	Users         []int64
	Price         int64
}

// Invariants is the outcome of CheckInvariants.
type Invariants struct {
	// Acknowledged counts operations answered 2xx that changed state;
	// Lost those whose change is missing from the final reads.
	Acknowledged, Lost int
	Violations         []string
}

// CheckInvariants checks the contract's invariants (docs/CONTRACT.md) on a
// history whose last operations are the final reads (Op.Final), made after
// the last restart with no load running:
//
//  1. no seat is held or sold by two reservations; a seat listed free has
//     none;
//  2. money is conserved exactly: for each user, the final balance plus the
//     prices of its confirmed reservations equals its acknowledged charges
//     plus some subset of the charges whose answer was lost;
//  3. no balance ever read is negative;
//  4. every 200 that changed state is in the final state: the hold's
//     reservation exists, a cancel is CANCELLED, a payment CONFIRMED, a
//     charge counted (2).
func CheckInvariants(f Facts) Invariants {
	var inv Invariants
	bad := func(format string, args ...any) {
		inv.Violations = append(inv.Violations, fmt.Sprintf(format, args...))
	}

	final := map[int64]*Op{}   // reservation → its final read
	balance := map[int64]*Op{} // user → final balance read
	freeFinal := map[int64]bool{}
	for _, op := range f.Ops {
		if op.Outcome == OK && (op.Kind == KindBalance || op.Kind == KindCharge || op.Kind == KindPay) && op.Balance < 0 {
			bad("invariant 4: negative balance %d in %s", op.Balance, op)
		}
		if !op.Final || op.Outcome != OK {
			continue
		}
		switch op.Kind {
		case KindReservation:
			final[op.Res] = op
		case KindBalance:
			balance[op.User] = op
		case KindSeats:
			for _, s := range op.Free {
				freeFinal[s] = true
			}
		}
	}

	// 1. One live reservation per seat, none on a free seat.
	live := map[int64][]int64{}
	for res, op := range final {
		if op.ResStatus == stHeld || op.ResStatus == stConfirmed {
			live[op.ResSeat] = append(live[op.ResSeat], res)
		}
	}
	for seat, list := range live {
		if len(list) > 1 {
			slices.Sort(list)
			bad("invariant 1: seat %d held or sold by reservations %v", seat, list)
		}
		if freeFinal[seat] {
			bad("invariant 1: seat %d is listed free but reservation %d holds it", seat, list[0])
		}
	}

	// 4. Acknowledged changes are there. A keyed charge counts once per
	// key: acknowledged if any attempt was, else of unknown outcome if any
	// attempt may have happened.
	charged := map[int64]int64{}       // user → acknowledged charges
	lostCharges := map[int64][]int64{} // user → charges of unknown outcome
	type keyed struct {
		user   int64
		key    string
		amount int64
		acked  bool
		maybe  bool
	}
	keys := map[string]*keyed{}
	var keyOrder []string
	for _, op := range f.Ops {
		if op.Final {
			continue
		}
		switch op.Kind {
		case KindCharge:
			if op.Key != "" {
				k := fmt.Sprintf("%d/%s", op.User, op.Key)
				g := keys[k]
				if g == nil {
					g = &keyed{user: op.User, key: op.Key, amount: op.Amount}
					keys[k] = g
					keyOrder = append(keyOrder, k)
				}
				g.acked = g.acked || op.Outcome == OK
				g.maybe = g.maybe || op.Outcome == Unknown
				continue
			}
			switch op.Outcome {
			case OK:
				inv.Acknowledged++
				charged[op.User] += op.Amount
			case Unknown:
				lostCharges[op.User] = append(lostCharges[op.User], op.Amount)
			}
		case KindHold:
			if op.Outcome != OK {
				continue
			}
			inv.Acknowledged++
			r := final[op.ResID]
			if r == nil {
				inv.Lost++
				bad("invariant 3: acknowledged hold %d (%s) is gone after the restarts", op.ResID, op)
			}
		case KindCancel:
			if op.Outcome != OK {
				continue
			}
			inv.Acknowledged++
			if r := final[op.Res]; r == nil || r.ResStatus != stCancelled {
				inv.Lost++
				bad("invariant 3: acknowledged cancel of %d (%s) is not CANCELLED at the end (%v)", op.Res, op, statusOf(r))
			}
		case KindPay:
			if op.Outcome != OK {
				continue
			}
			inv.Acknowledged++
			if r := final[op.Res]; r == nil || r.ResStatus != stConfirmed {
				inv.Lost++
				bad("invariant 3: acknowledged payment of %d (%s) is not CONFIRMED at the end (%v)", op.Res, op, statusOf(r))
			}
		}
	}

	for _, k := range keyOrder {
		g := keys[k]
		switch {
		case g.acked:
			inv.Acknowledged++
			charged[g.user] += g.amount
		case g.maybe:
			lostCharges[g.user] = append(lostCharges[g.user], g.amount)
		}
	}

	// 2. Money, per user, exactly.
	paid := map[int64]int64{}
	for _, op := range final {
		if op.ResStatus == stConfirmed {
			paid[op.User] += op.Price
		}
	}
	for _, u := range f.Users {
		b := balance[u]
		if b == nil {
			bad("no final balance read of user %d", u)
			continue
		}
		extra := b.Balance + paid[u] - charged[u]
		if !subsetSum(lostCharges[u], extra) {
			inv.Lost++
			bad("invariant 2: user %d: balance %d + confirmed %d - acknowledged charges %d = %d, which no subset of the unanswered charges %v makes",
				u, b.Balance, paid[u], charged[u], extra, lostCharges[u])
		}
	}
	return inv
}

func statusOf(op *Op) string {
	if op == nil {
		return "not found"
	}
	return op.ResStatus
}

// subsetSum reports whether some subset of amounts (all positive) sums to
// target.
func subsetSum(amounts []int64, target int64) bool {
	if target < 0 {
		return false
	}
	reach := map[int64]bool{0: true}
	for _, a := range amounts {
		next := make(map[int64]bool, 2*len(reach))
		for s := range reach {
			next[s] = true
			if s+a <= target {
				next[s+a] = true
			}
		}
		reach = next
	}
	return reach[target]
}

// Report is the outcome of one run.
type Report struct {
	Seed   uint64
	Fault  string // what went wrong ("kill -9")
	Faults int    // faults survived: healed, and the service answered 2xx again
	// SlowestRecovery is the longest time from a heal to the next 2xx.
	SlowestRecovery time.Duration
	// SlowestAnswer is the longest time a request took to be answered
	// (any answer).
	SlowestAnswer time.Duration
	SlowestOp     string
	Ops           int // operations recorded
	Acknowledged  int
	Lost          int
	Unknown       int // operations whose outcome the client cannot know
	Refused       int
	ServerErrors  int // 5xx answers other than 503
	Partitions    int
	Linearizable  int
	NotLinear     []string
	Undecided     []string // porcupine ran out of time
	Violations    []string
	Verdicts      []Verdict
	Facts         Facts // what was checked
	Elapsed       time.Duration
	CheckDuration time.Duration
}

// Failed reports whether the run found a fault.
func (r *Report) Failed() bool {
	return r.Lost > 0 || len(r.NotLinear) > 0 || len(r.Undecided) > 0 || len(r.Violations) > 0 || r.ServerErrors > 0
}

// Summary is the report in a few lines.
func (r *Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %d × %s survived (slowest recovery %s), %d operations (%d acknowledged changes, %d of unknown outcome, %d refused connections; slowest answer %s) in %s\n",
		r.Seed, r.Faults, r.Fault, r.SlowestRecovery.Round(time.Millisecond), r.Ops, r.Acknowledged, r.Unknown, r.Refused,
		r.SlowestAnswer.Round(time.Millisecond), r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "acknowledged operations lost: %d\n", r.Lost)
	if r.SlowestOp != "" {
		fmt.Fprintf(&b, "slowest answer: %s (%s)\n", r.SlowestOp, r.SlowestAnswer.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "linearizability: %d of %d partitions (seats and wallets) linearizable, %d not, %d undecided (checked in %s)\n",
		r.Linearizable, r.Partitions, len(r.NotLinear), len(r.Undecided), r.CheckDuration.Round(time.Millisecond))
	fmt.Fprintf(&b, "invariant violations: %d; 5xx answers other than 503: %d\n", len(r.Violations), r.ServerErrors)
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "  %s\n", v)
	}
	for _, p := range r.NotLinear {
		fmt.Fprintf(&b, "  not linearizable: %s\n", p)
	}
	for _, p := range r.Undecided {
		fmt.Fprintf(&b, "  undecided: %s\n", p)
	}
	return b.String()
}

// Check checks facts both ways and fills a report.
func Check(f Facts, timeout time.Duration) *Report {
	r := &Report{Ops: len(f.Ops), Facts: f}
	for _, op := range f.Ops {
		switch op.Outcome {
		case Unknown:
			r.Unknown++
		case Refused:
			r.Refused++
		}
		if op.Status >= 500 && op.Status != 503 {
			r.ServerErrors++
		}
		if (op.Status == 503 || op.Status == 429) && op.RetryAfter == "" {
			r.Violations = append(r.Violations, fmt.Sprintf("%d without Retry-After: %s", op.Status, op))
		}
		if d := time.Duration(op.Return - op.Call); op.Outcome != Refused && op.Status != 0 && d > r.SlowestAnswer {
			r.SlowestAnswer, r.SlowestOp = d, op.String()
		}
	}
	inv := CheckInvariants(f)
	r.Acknowledged, r.Lost = inv.Acknowledged, inv.Lost
	r.Violations = append(r.Violations, inv.Violations...)
	start := time.Now()
	parts := Partitions(f.Ops, f.SeatOfRes, f.SeatsOfOption)
	r.Verdicts = CheckLinearizable(parts, timeout)
	r.CheckDuration = time.Since(start)
	r.Partitions = len(parts)
	for _, v := range r.Verdicts {
		switch v.Result {
		case porcupine.Ok:
			r.Linearizable++
		case porcupine.Illegal:
			r.NotLinear = append(r.NotLinear, fmt.Sprintf("%s (%d operations)", v.Partition, v.Ops))
		default:
			r.Undecided = append(r.Undecided, fmt.Sprintf("%s (%d operations)", v.Partition, v.Ops))
		}
	}
	sort.Strings(r.NotLinear)
	return r
}

// Tampered returns a copy of facts with one acknowledged change undone in
// the final state: the final read of the first reservation whose payment
// was acknowledged shows it HELD (or, in a history without one, the first
// final balance read is one point short). A checker that passes it is
// blind; the chaos tests check their own checker this way on every real
// history.
func (f Facts) Tampered() Facts {
	out := f
	out.Ops = make([]*Op, len(f.Ops))
	copy(out.Ops, f.Ops)
	paid := map[int64]bool{}
	for _, op := range f.Ops {
		if op.Kind == KindPay && op.Outcome == OK && !op.Final {
			paid[op.Res] = true
		}
	}
	for i, op := range out.Ops {
		if op.Final && op.Kind == KindReservation && op.Outcome == OK && paid[op.Res] {
			c := *op
			c.ResStatus = stHeld
			out.Ops[i] = &c
			return out
		}
	}
	for i, op := range out.Ops {
		if op.Final && op.Kind == KindBalance && op.Outcome == OK {
			c := *op
			c.Balance--
			out.Ops[i] = &c
			return out
		}
	}
	return out
}

// Save writes the history (history.json), the summary (summary.txt) and,
// for each partition that is not linearizable, porcupine's drawing of it
// (<partition>.html) into dir, and returns the files written.
func (r *Report) Save(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	var errs []error
	hist := filepath.Join(dir, "history.json")
	if err := SaveOps(hist, r.Facts.Ops); err != nil {
		errs = append(errs, err)
	} else {
		files = append(files, hist)
	}
	sum := filepath.Join(dir, "summary.txt")
	if err := os.WriteFile(sum, []byte(r.Summary()), 0o644); err != nil {
		errs = append(errs, err)
	} else {
		files = append(files, sum)
	}
	for _, v := range r.Verdicts {
		if v.Result == porcupine.Ok {
			continue
		}
		path := filepath.Join(dir, strings.ReplaceAll(v.Partition, " ", "-")+".html")
		if err := porcupine.VisualizePath(v.model, v.info, path); err != nil {
			errs = append(errs, err)
			continue
		}
		files = append(files, path)
	}
	return files, errors.Join(errs...)
}
