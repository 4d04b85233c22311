package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/concert/ticketing/loadgen"
)

// runSuite measures the ceilings, then runs each scenario in each mode,
// and returns the report with its ratios and targets.
func runSuite(ctx context.Context, o options, targets []*url.URL, stderr io.Writer, command string) *loadgen.Report {
	rep := &loadgen.Report{
		Tool: "concertbench", Command: command, StartedAt: time.Now(), Machine: loadgen.DescribeMachine(),
		Server: loadgen.ServerInfo{Settings: o.settings},
	}
	if len(o.settings) > 0 {
		rep.Server.SettingsSource = o.settingsSource()
	}
	conns := max(o.scaled(o.fans), o.soldOutWorkers, o.scaled(o.users), 2*o.walletWorkers, o.surgeWorkers,
		o.scaled(o.journeyFans), o.workers, o.freshWorkers) + 64
	client := loadgen.NewMultiClient(targets, loadgen.ClientOptions{AdminKey: o.adminKey, MaxConns: conns, Timeout: o.reqTime})
	defer client.CloseIdle()
	rep.Server.Targets = client.Targets()
	b := newBar(stderr, o.quiet, o.duration)
	fmt.Fprintf(stderr, "concertbench: %s, %s on %s — machine %s\n",
		strings.Join(o.scenarios, ", "), strings.Join(o.modes, " and "), client.Target(), rep.Machine)

	if !o.noCeilings {
		measureCeilings(ctx, o, client, rep, stderr)
	}

	closedRate := map[string]float64{}
	var holdsFx *loadgen.Fixture
	for _, sc := range o.scenarios {
		for _, mode := range o.modes {
			if ctx.Err() != nil {
				break
			}
			rate := 0.0
			if mode == "open" {
				rate = o.rate
				if rate == 0 {
					rate = closedRate[sc] / 2
				}
				if rate <= 0 {
					rep.Failures = append(rep.Failures, sc+" open: skipped, the closed loop gave no throughput to take half of")
					continue
				}
				if sc == "hot" {
					rep.Notes = append(rep.Notes, "hot runs closed loop only")
					continue
				}
			}
			var usage [2]loadgen.UsageSample
			var umu sync.Mutex
			var prof *os.File
			hook := func(begin bool) {
				s := loadgen.SampleUsage(ctx, client, o.pgPort())
				umu.Lock()
				defer umu.Unlock()
				if begin {
					usage[0] = s
					prof = startProfile(o, sc, mode, rep, stderr)
				} else {
					stopProfile(prof)
					prof = nil
					usage[1] = s
				}
			}
			common := loadgen.Common{Rate: rate, ActiveTokens: o.activeTokens, OnProgress: b.update, LoadHook: hook}
			var res *loadgen.Result
			var err error
			switch sc {
			case "hot-seat":
				res, err = loadgen.RunHotSeat(ctx, client, loadgen.HotSeatConfig{Common: common, Fans: o.scaled(o.fans), Seats: o.hotSeatSeats, Price: o.price})
			case "sold-out":
				res, err = loadgen.RunSoldOut(ctx, client, loadgen.SoldOutConfig{Common: common, Fans: o.scaled(o.soldOutFans),
					Dates: o.scaled(o.soldOutDates), Seats: o.seats, Workers: o.soldOutWorkers, Price: o.price})
			case "fresh-holds":
				res, err = loadgen.RunFreshHolds(ctx, client, o.freshConfig(common))
			case "wallet-storm":
				res, err = loadgen.RunWalletStorm(ctx, client, loadgen.WalletStormConfig{Common: common, Wallets: o.wallets,
					Workers: o.walletWorkers, Duration: o.walletDuration, Price: o.price})
			case "journey":
				res, err = loadgen.RunJourney(ctx, client, loadgen.JourneyConfig{Common: common, Fans: o.scaled(o.journeyFans),
					Think: o.think, Price: o.price})
			case "queue-surge":
				res, err = loadgen.RunQueueSurge(ctx, client, loadgen.QueueSurgeConfig{Common: common, Users: o.scaled(o.surgeUsers),
					Workers: o.surgeWorkers, Price: o.price})
			case "holds":
				if holdsFx == nil {
					users := o.scaled(o.users)
					if err = loadgen.PreflightTokens(ctx, client, "holds", users, o.activeTokens); err == nil {
						holdsFx, err = loadgen.Setup(ctx, client, loadgen.SetupConfig{Dates: o.dates, SeatsPerDate: o.seats,
							Users: users, Price: o.price, OnProgress: b.update})
					}
					b.finish()
				}
				if err == nil {
					res, err = loadgen.RunHolds(ctx, client, holdsFx, loadgen.HoldsConfig{Duration: o.duration, Rate: rate,
						OnProgress: b.update, LoadHook: hook})
				}
			case "hot":
				var fx *loadgen.Fixture
				fans := o.scaled(o.fans)
				if err = loadgen.PreflightTokens(ctx, client, "hot", fans, o.activeTokens); err == nil {
					fx, err = loadgen.Setup(ctx, client, loadgen.SetupConfig{Dates: 1, SeatsPerDate: o.seats, Users: fans,
						Price: o.price, OnProgress: b.update})
				}
				b.finish()
				if err == nil {
					hook(true)
					res, err = loadgen.RunHot(ctx, client, fx, loadgen.HotConfig{Workers: o.workers,
						MaxDuration: o.duration + 2*time.Minute, OnProgress: b.update})
					hook(false)
					if res != nil {
						res.Mode = "closed"
					}
				}
			}
			b.finish()
			stopProfile(prof) // a run that failed before its load's end
			if res != nil {
				if u := loadgen.UsageBetween(usage[0], usage[1]); u != nil {
					if o.inProcess { // one process: its CPU is the generator's and the server's
						u.ServerCores = -1
						res.Notes = append(res.Notes, "the server runs in the generator's process: the generator's cores include the server's")
					}
					res.AttachUsage(u)
				}
				rep.Results = append(rep.Results, res)
				if mode == "closed" {
					closedRate[sc] = res.Throughput
					if sc == "holds" || sc == "hot" {
						closedRate[sc] = res.HoldsPerSec
					}
				}
				fmt.Fprintln(stderr)
				_ = res.WriteReport(stderr)
				fmt.Fprintln(stderr)
			}
			if err != nil {
				msg := fmt.Sprintf("%s %s: %v", sc, mode, err)
				rep.Failures = append(rep.Failures, msg)
				fmt.Fprintln(stderr, "concertbench:", msg)
				if errors.Is(err, loadgen.ErrTokensNotActive) {
					fmt.Fprintln(stderr, "concertbench: the server refuses to make more tokens ACTIVE; see the message above")
					break // the other mode would be refused too
				}
			}
		}
	}
	rep.Seconds = time.Since(rep.StartedAt).Seconds()
	rep.Evaluate()
	return rep
}

// measureCeilings measures (c), (b) and (a), in that order.
func measureCeilings(ctx context.Context, o options, client *loadgen.Client, rep *loadgen.Report, stderr io.Writer) {
	const conns = 64
	say := func(format string, a ...any) {
		if !o.quiet {
			fmt.Fprintf(stderr, "concertbench: "+format+"\n", a...)
		}
	}
	if g, err := loadgen.MeasureGenerator(ctx, conns, o.ceilingTime); err == nil {
		rep.Ceilings.Generator = g
		say("ceiling (c) generator: %.0f req/s", g.RequestsPerSec)
	} else {
		rep.Ceilings.Notes = append(rep.Ceilings.Notes, "(c) generator ceiling failed: "+err.Error())
	}
	if h, err := loadgen.MeasureHTTP(ctx, client, "/healthz", conns, o.ceilingTime); err == nil {
		rep.Ceilings.HTTP = h
		say("ceiling (b) GET /healthz: %.0f req/s", h.RequestsPerSec)
	} else {
		rep.Ceilings.Notes = append(rep.Ceilings.Notes, "(b) HTTP ceiling failed: "+err.Error())
	}
	if o.databaseURL == "" {
		rep.Ceilings.Notes = append(rep.Ceilings.Notes,
			"(a) the raw PostgreSQL ceiling was not measured: pass the server's database with -database-url (make bench-http does)")
		say("ceiling (a) skipped: no -database-url")
		return
	}
	pg, err := loadgen.MeasurePostgres(ctx, o.databaseURL, loadgen.PGCeilingConfig{})
	if err != nil {
		rep.Ceilings.Notes = append(rep.Ceilings.Notes, "(a) PostgreSQL ceiling failed: "+err.Error())
		say("ceiling (a) failed: %v", err)
		return
	}
	rep.Ceilings.Postgres = pg
	say("ceiling (a) PostgreSQL: %.0f rows/s (batch %d, synchronous_commit=%s)", pg.RowsPerSec, pg.Batch, pg.SynchronousCommit)
}

// freshConfig is the fresh-holds run the flags ask for.
func (o *options) freshConfig(common loadgen.Common) loadgen.FreshHoldsConfig {
	return loadgen.FreshHoldsConfig{Common: common, Workers: o.freshWorkers, Duration: o.freshDuration,
		Dates: o.freshDates, Seats: o.freshSeats, PerUser: o.freshPerUser, Price: o.price}
}

// pgPort is the port of the server's PostgreSQL when it runs on this
// machine (its CPU is then accounted for), else 0.
func (o *options) pgPort() int {
	if o.databaseURL == "" {
		return 0
	}
	u, err := url.Parse(o.databaseURL)
	if err != nil || !loadgen.IsLoopbackHost(u.Hostname()) {
		return 0
	}
	if u.Port() == "" {
		return 5432
	}
	p, _ := strconv.Atoi(u.Port())
	return p
}

// startProfile starts a CPU profile of this process for the load of one
// run, if -cpuprofile asks for it.
func startProfile(o options, sc, mode string, rep *loadgen.Report, stderr io.Writer) *os.File {
	if o.cpuProfile == "" {
		return nil
	}
	path := fmt.Sprintf("%s-%s-%s.pprof", o.cpuProfile, sc, mode)
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(stderr, "concertbench: cpu profile:", err)
		if f != nil {
			f.Close()
		}
		return nil
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("CPU profile of the load of %s %s: %s", sc, mode, path))
	return f
}

func stopProfile(f *os.File) {
	if f != nil {
		pprof.StopCPUProfile()
		f.Close()
	}
}

func (o *options) settingsSource() string {
	if o.settingsFrom != "" {
		return o.settingsFrom
	}
	return "as given with -server-setting"
}
