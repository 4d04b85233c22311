package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one chaos run.
type Config struct {
	Seed uint64
	// Fault is what goes wrong (nil: the server is killed with SIGKILL and
	// started again), Faults how many times.
	Fault  Fault
	Faults int
	// Between two faults the load makes between MinOps and MaxOps answered
	// requests (a seeded draw), then waits a seeded 0..Jitter, so that each
	// fault lands with requests in flight.
	MinOps, MaxOps int
	Jitter         time.Duration
	// MaxDown is the longest a fault lasts (a seeded draw from 0) before
	// it is healed.
	MaxDown time.Duration
	// RecoverWithin bounds the time from a heal to the next 2xx answer:
	// the service recovers by itself (default 60 s).
	RecoverWithin time.Duration

	Users          int // wallets
	ClientsPerUser int // concurrent clients of one user (share its token)
	Dates          int
	SeatsPerDate   int
	Price          int64

	// Nodes is the number of concertd processes (0 or 1: one). More than
	// one form a static cluster on the same database; client i sends to
	// node i mod Nodes, the kill fault kills a seeded node and starts it
	// again on the same addresses, and the final reads go to a seeded node.
	Nodes int

	Bin         string // concertd, see Build
	DatabaseURL string // a fresh, empty database
	ServerLog   io.Writer
	// Settings are extra server settings (NAME=value), after the run's own.
	Settings []string
	// OnReady is called once the catalog and users are made, before the
	// load starts; AfterLoad after the final reads, with the server still
	// up. An error ends the run.
	OnReady, AfterLoad func(ctx context.Context, base string) error
	// CheckTimeout bounds porcupine on one partition.
	CheckTimeout time.Duration
	Logf         func(format string, args ...any)
}

// Fault is something that goes wrong and is then repaired.
type Fault interface {
	// Name says what the fault is, for the report ("kill -9").
	Name() string
	// Inject breaks something; k counts the faults from 1 and base is the
	// API's URL (the first node's in a cluster). An error ends the run.
	Inject(ctx context.Context, k int, base string) error
	// Heal repairs it.
	Heal(ctx context.Context, k int, base string) error
}

// killFault kills a server with SIGKILL and starts it again: the only
// one, or in a cluster a seeded node (pick), on the same addresses.
type killFault struct {
	procs  []*Process
	start  func(i int) error
	h      *History
	pick   *rand.Rand // nil: node 0
	victim int
	logf   func(format string, args ...any)
}

func (f *killFault) Name() string { return "kill -9" }

func (f *killFault) Inject(_ context.Context, k int, _ string) error {
	f.victim = 0
	if f.pick != nil {
		f.victim = f.pick.IntN(len(f.procs))
		f.logf("kill -9 %d: node %d", k, f.victim+1)
	}
	f.procs[f.victim].Kill()
	return nil
}

func (f *killFault) Heal(_ context.Context, k int, _ string) error {
	f.h.SetEpoch(k + 1)
	return f.start(f.victim)
}

// adminKey of the server under test.
const adminKey = "chaos-admin"

// serverSettings are the run's server settings: holds outlive the run (a
// hold that expires would be a change no client made), every user is ACTIVE
// at once and has no hold limit in practice; actors snapshot, passivate
// and prune often, and reminders are frequent, so that kills land in every
// phase of their lives.
func serverSettings(dbURL string) []string {
	return []string{
		"DATABASE_URL=" + dbURL, "ADMIN_KEY=" + adminKey,
		"HOLD_TTL=24h", "HOLD_LIMIT=1000", "ACTIVE_TOKENS=10000",
		"SNAPSHOT_EVERY=7", "ACTOR_IDLE_TTL=3s", "REMINDER_INTERVAL=200ms",
		"REQUEST_TIMEOUT=3s", "JOURNAL_PRUNE=true", "LOG_LEVEL=warn",
		"RATE_USERS=0", "RATE_TOKEN_ISSUE=0", "RATE_TOKEN_POLL=0",
	}
}

// Run runs the load against a server it starts, kills and restarts, then
// reads the final state and checks the history.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	nodes := max(cfg.Nodes, 1)
	procs := make([]*Process, nodes)
	bases := make([]string, nodes)
	var peers []string
	clusterPorts := make([]int, nodes)
	for i := range procs {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		procs[i] = &Process{Bin: cfg.Bin, Addr: addr, Env: serverSettings(cfg.DatabaseURL), Log: cfg.ServerLog}
		bases[i] = "http://" + addr
		if nodes > 1 {
			if clusterPorts[i], err = FreeClusterPort(clusterPorts[:i]...); err != nil {
				return nil, err
			}
			peers = append(peers, fmt.Sprintf("127.0.0.1:%d", clusterPorts[i]))
		}
	}
	for i, p := range procs {
		if nodes > 1 {
			p.Env = append(p.Env, fmt.Sprintf("NODE_ID=node%d", i+1), "CLUSTER_PROVIDER=static",
				"CLUSTER_PEERS="+strings.Join(peers, ","), "CLUSTER_HOST=127.0.0.1",
				"CLUSTER_PORT="+strconv.Itoa(clusterPorts[i]))
		}
		p.Env = append(p.Env, cfg.Settings...)
	}
	// start starts node i and, in a cluster, waits until every node sees
	// all members again: each kill then hits a whole cluster.
	start := func(i int) error {
		sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		if err := procs[i].Start(sctx); err != nil {
			return err
		}
		if nodes > 1 {
			return waitMembers(sctx, bases, nodes)
		}
		return nil
	}
	defer func() {
		for _, p := range procs {
			p.Kill()
		}
	}()
	if nodes == 1 {
		if err := start(0); err != nil {
			return nil, err
		}
	} else {
		errs := make([]error, nodes)
		var swg sync.WaitGroup
		for i := range procs {
			swg.Go(func() {
				sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
				defer cancel()
				errs[i] = procs[i].Start(sctx)
			})
		}
		swg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		err := waitMembers(wctx, bases, nodes)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	h := NewHistory()
	h.SetEpoch(1)
	base := bases[0]
	admin := NewClient(base, 0, h, 30*time.Second)
	admin.AdminKey = adminKey

	// The catalog: made before the first kill, not part of the history.
	var dates []string
	for d := range cfg.Dates {
		dates = append(dates, dateString(d+1))
	}
	concert, err := admin.CreateConcert("chaos", dates, cfg.SeatsPerDate, cfg.Price)
	if err != nil {
		return nil, err
	}
	var users []int64
	for i := range cfg.Users {
		u := admin.CreateUser(fmt.Sprintf("chaos-%d", i))
		if u == 0 {
			return nil, errors.New("cannot create the run's users")
		}
		users = append(users, u)
	}
	var allSeats []int64
	for _, opt := range concert.Options {
		allSeats = append(allSeats, concert.Seats[opt]...)
	}

	if cfg.OnReady != nil {
		if err := cfg.OnReady(ctx, base); err != nil {
			return nil, err
		}
	}

	// The load.
	rt := &runState{cfg: cfg, h: h, concert: concert, seats: allSeats, seatOfRes: map[int64]int64{}}
	stop := make(chan struct{})
	var answered atomic.Int64 // answered requests (ok or fail)
	var oks atomic.Int64      // 2xx answers
	var wg sync.WaitGroup
	tokens := make([]*tokenHolder, len(users))
	for i := range tokens {
		tokens[i] = &tokenHolder{}
	}
	for i := range cfg.Users * cfg.ClientsPerUser {
		u := i % cfg.Users
		w := &worker{rt: rt, c: NewClient(bases[i%nodes], i+1, h, 10*time.Second), user: users[u], tok: tokens[u],
			rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i+1))), answered: &answered, oks: &oks, stop: stop}
		wg.Go(w.loop)
	}

	// The faults.
	fault := cfg.Fault
	if fault == nil {
		kf := &killFault{procs: procs, start: start, h: h, logf: logf}
		if nodes > 1 {
			kf.pick = rand.New(rand.NewPCG(cfg.Seed, 1<<32))
		}
		fault = kf
	}
	recoverWithin := cfg.RecoverWithin
	if recoverWithin <= 0 {
		recoverWithin = time.Minute
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0))
	survived := 0
	var slowest time.Duration
	runStart := time.Now()
	var runErr error
	for k := 1; k <= cfg.Faults && runErr == nil; k++ {
		want := answered.Load() + int64(cfg.MinOps+rng.IntN(cfg.MaxOps-cfg.MinOps+1))
		for answered.Load() < want && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		if ctx.Err() != nil {
			runErr = ctx.Err()
			break
		}
		time.Sleep(time.Duration(rng.Int64N(int64(cfg.Jitter) + 1)))
		if err := fault.Inject(ctx, k, base); err != nil {
			runErr = fmt.Errorf("%s %d: %w", fault.Name(), k, err)
			break
		}
		time.Sleep(time.Duration(rng.Int64N(int64(cfg.MaxDown) + 1)))
		if err := fault.Heal(ctx, k, base); err != nil {
			runErr = fmt.Errorf("healing %s %d: %w", fault.Name(), k, err)
			break
		}
		// The service recovers by itself: a 2xx comes back in time.
		healed := time.Now()
		mark := oks.Load()
		for oks.Load() == mark && time.Since(healed) < recoverWithin && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		if oks.Load() == mark {
			runErr = fmt.Errorf("no 2xx answer within %s of healing %s %d", recoverWithin, fault.Name(), k)
			break
		}
		slowest = max(slowest, time.Since(healed))
		survived++
		logf("%s %d survived (%d operations so far)", fault.Name(), k, h.Len())
	}
	// A last stretch of load on the final process, then stop it.
	want := answered.Load() + int64(cfg.MinOps)
	for runErr == nil && answered.Load() < want && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if runErr != nil {
		return nil, runErr
	}

	// The final state: read until two rounds agree (open work — a payment
	// re-driven after a kill — settles meanwhile). The last round is the
	// final one the invariants are checked on.
	finalBase := base
	if nodes > 1 {
		finalBase = bases[rand.New(rand.NewPCG(cfg.Seed, 1<<32+1)).IntN(nodes)]
	}
	final := NewClient(finalBase, 0, h, 30*time.Second)
	var prev string
	for round := 0; ; round++ {
		sig, ops := rt.readAll(final, users, tokens)
		if sig == prev || round == 19 {
			for _, op := range ops {
				op.Final = true
			}
			break
		}
		prev = sig
		time.Sleep(300 * time.Millisecond)
	}
	elapsed := time.Since(runStart)
	if cfg.AfterLoad != nil {
		if err := cfg.AfterLoad(ctx, base); err != nil {
			return nil, err
		}
	}

	ops := h.Ops()
	rt.mu.Lock()
	seatOfRes := rt.seatOfRes
	rt.mu.Unlock()
	rep := Check(Facts{Ops: ops, SeatOfRes: seatOfRes, SeatsOfOption: concert.Seats, Users: users, Price: cfg.Price}, cfg.CheckTimeout)
	rep.Seed, rep.Fault, rep.Faults, rep.Elapsed, rep.SlowestRecovery = cfg.Seed, fault.Name(), survived, elapsed, slowest
	return rep, nil
}

// runState is what the workers share.
type runState struct {
	cfg     Config
	h       *History
	concert *Concert
	seats   []int64

	mu        sync.Mutex
	seatOfRes map[int64]int64 // reservation → seat, as holds answered
	resOf     map[int64][]int64
}

func (rt *runState) learn(res, seat, user int64) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if _, ok := rt.seatOfRes[res]; !ok {
		rt.seatOfRes[res] = seat
		if rt.resOf == nil {
			rt.resOf = map[int64][]int64{}
		}
		rt.resOf[user] = append(rt.resOf[user], res)
	}
}

// readAll reads every wallet, every date's seats and every reservation the
// run saw, and returns a signature of what it read (equal signatures: the
// state did not move) and the read operations. A read that fails is
// retried: the final state must be read whole.
func (rt *runState) readAll(c *Client, users []int64, tokens []*tokenHolder) (string, []*Op) {
	var ops []*Op
	sig := ""
	retry := func(read func() *Op) *Op {
		for i := 0; ; i++ {
			op := read()
			if op.Outcome == OK || i == 50 {
				ops = append(ops, op)
				return op
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for i, u := range users {
		tok := tokens[i].get(c, u)
		rt.mu.Lock()
		list := slices.Clone(rt.resOf[u])
		rt.mu.Unlock()
		slices.Sort(list)
		for _, res := range list {
			op := retry(func() *Op {
				if tok == "" {
					tok = tokens[i].get(c, u)
				}
				op := c.Reservation(u, res, tok, false)
				if op.Outcome == Fail && tokenCodes[op.Code] {
					tokens[i].drop(tok)
					tok = ""
				}
				return op
			})
			sig += fmt.Sprintf("r%d=%s;", res, op.ResStatus)
		}
		op := retry(func() *Op { return c.Balance(u, false) })
		sig += fmt.Sprintf("b%d=%d;", u, op.Balance)
	}
	for i, opt := range rt.concert.Options {
		op := retry(func() *Op { return c.Seats(rt.concert.ID, opt, rt.concert.Dates[i], false) })
		sig += fmt.Sprintf("s%d=%v;", opt, op.Free)
	}
	return sig, ops
}

// tokenHolder is the current token of one user, shared by its clients.
type tokenHolder struct {
	mu  sync.Mutex
	tok string
}

// get returns the user's token, asking for one when there is none ("" if
// that failed, after a pause: the caller skips its turn).
func (t *tokenHolder) get(c *Client, user int64) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok == "" {
		var op *Op
		op, t.tok = c.Token(user)
		if t.tok == "" {
			pause(op)
		}
	}
	return t.tok
}

// pause backs off after an operation that got no useful answer.
func pause(op *Op) {
	switch {
	case op.Outcome == Refused:
		time.Sleep(50 * time.Millisecond) // the server is down
	case op.RetryAfter != "":
		time.Sleep(200 * time.Millisecond) // a 503 or 429: back off as told, a little (the run is short)
	case op.Outcome == Unknown:
		time.Sleep(10 * time.Millisecond)
	}
}

// drop forgets tok if it is still the current token (it expired or was
// replaced).
func (t *tokenHolder) drop(tok string) {
	t.mu.Lock()
	if t.tok == tok {
		t.tok = ""
	}
	t.mu.Unlock()
}

// myRes is a reservation a worker made, as far as it knows.
type myRes struct {
	id, seat, price int64
	status          string // HELD, CONFIRMED, CANCELLED; "" when unsure
	payKey          string // the key of a payment whose answer was lost
}

// worker is one client of one user.
type worker struct {
	rt       *runState
	c        *Client
	user     int64
	tok      *tokenHolder
	rng      *rand.Rand
	answered *atomic.Int64
	oks      *atomic.Int64
	stop     chan struct{}

	res     []*myRes
	retry   *Op    // a keyed charge whose answer was lost: retried with its key
	n       int    // keys made
	tokUsed string // the token of the current request ("" for none)
}

func (w *worker) record(op *Op) {
	switch op.Outcome {
	case OK:
		w.answered.Add(1)
		w.oks.Add(1)
	case Fail:
		w.answered.Add(1)
	}
	pause(op)
	if op.Outcome == Fail && tokenCodes[op.Code] {
		// The token expired (a payment) or was replaced: ask again.
		w.tok.drop(w.tokUsed)
	}
}

func (w *worker) loop() {
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		w.step()
	}
}

func (w *worker) key(prefix string) string {
	w.n++
	return prefix + "-" + strconv.Itoa(w.c.ID) + "-" + strconv.Itoa(w.n)
}

func (w *worker) held() []*myRes {
	var out []*myRes
	for _, r := range w.res {
		if r.status == stHeld {
			out = append(out, r)
		}
	}
	return out
}

func (w *worker) unsure() *myRes {
	for _, r := range w.res {
		if r.status == "" {
			return r
		}
	}
	return nil
}

// step does one action of the mix.
func (w *worker) step() {
	if w.retry != nil {
		// Retry a keyed charge whose answer was lost, with its key: it must
		// add once.
		op := w.c.Charge(w.user, w.retry.Amount, w.retry.Key)
		w.tokUsed = ""
		w.record(op)
		if op.Outcome != Unknown && op.Outcome != Refused {
			w.retry = nil
		}
		return
	}
	if r := w.unsure(); r != nil {
		// Learn what became of a reservation whose last change was lost;
		// a payment whose answer was lost is retried with its key.
		tok := w.tok.get(w.c, w.user)
		if tok == "" {
			return
		}
		w.tokUsed = tok
		if r.payKey != "" {
			op := w.c.Pay(w.user, r.id, r.price, r.payKey, tok)
			w.record(op)
			switch {
			case op.Outcome == OK:
				r.status, r.payKey = stConfirmed, ""
				w.tok.drop(tok)
			case op.Outcome == Fail && !tokenCodes[op.Code]:
				r.payKey = ""
			}
			return
		}
		op := w.c.Reservation(w.user, r.id, tok, false)
		w.record(op)
		if op.Outcome == OK {
			r.status = op.ResStatus
		}
		return
	}
	held := w.held()
	switch p := w.rng.IntN(100); {
	case p < 22:
		amount := int64(100 + w.rng.IntN(900))
		key := ""
		if w.rng.IntN(2) == 0 {
			key = w.key("c")
		}
		op := w.c.Charge(w.user, amount, key)
		w.tokUsed = ""
		w.record(op)
		if op.Outcome == Unknown && key != "" {
			w.retry = op
		}
	case p < 30:
		w.tokUsed = ""
		w.record(w.c.Balance(w.user, false))
	case p < 38:
		i := w.rng.IntN(len(w.rt.concert.Options))
		w.tokUsed = ""
		w.record(w.c.Seats(w.rt.concert.ID, w.rt.concert.Options[i], w.rt.concert.Dates[i], false))
	case p < 65 && len(held) < 3:
		tok := w.tok.get(w.c, w.user)
		if tok == "" {
			return
		}
		seat := w.rt.seats[w.rng.IntN(len(w.rt.seats))]
		w.tokUsed = tok
		op := w.c.Hold(w.user, seat, w.rt.concert.SeatOpt[seat], tok)
		w.record(op)
		if op.Outcome == OK {
			w.rt.learn(op.ResID, seat, w.user)
			w.res = append(w.res, &myRes{id: op.ResID, seat: seat, price: op.Price, status: stHeld})
		}
	case len(held) > 0:
		r := held[w.rng.IntN(len(held))]
		tok := w.tok.get(w.c, w.user)
		if tok == "" {
			return
		}
		w.tokUsed = tok
		if w.rng.IntN(100) < 65 {
			op := w.c.Cancel(w.user, r.id, tok)
			w.record(op)
			switch op.Outcome {
			case OK:
				r.status = stCancelled
			case Unknown:
				r.status = ""
			case Fail:
				if !tokenCodes[op.Code] {
					r.status = ""
				}
			}
			return
		}
		key := ""
		if w.rng.IntN(2) == 0 {
			key = w.key("p")
		}
		op := w.c.Pay(w.user, r.id, r.price, key, tok)
		w.record(op)
		switch op.Outcome {
		case OK:
			r.status = stConfirmed
			w.tok.drop(tok) // a payment expires the token
		case Unknown:
			r.status, r.payKey = "", key
		case Fail:
			if op.Code == "INSUFFICIENT_BALANCE" {
				return
			}
			if !tokenCodes[op.Code] {
				r.status = ""
			}
		}
	default:
		if len(w.res) == 0 {
			return
		}
		r := w.res[w.rng.IntN(len(w.res))]
		tok := w.tok.get(w.c, w.user)
		if tok == "" {
			return
		}
		w.tokUsed = tok
		op := w.c.Reservation(w.user, r.id, tok, false)
		w.record(op)
		if op.Outcome == OK {
			r.status = op.ResStatus
		}
	}
}
