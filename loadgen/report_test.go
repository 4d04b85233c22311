package loadgen

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTimelineBuckets(t *testing.T) {
	prev := -1
	for us := int64(0); us < 1<<30; us = us*5/4 + 1 {
		b := tlBucket(us)
		if b < prev {
			t.Fatalf("bucket of %d µs = %d, below the previous %d", us, b, prev)
		}
		prev = b
		if us >= 8 {
			if v := tlValue(b); math.Abs(v-float64(us))/float64(us) > 0.13 {
				t.Errorf("%d µs in bucket %d read back as %.0f µs", us, b, v)
			}
		}
	}
}

func TestMeterSeriesAndStats(t *testing.T) {
	start := time.Now().Add(-3 * time.Second)
	m := newMeter(start, "hold", "never")
	o := m.op(0)
	// 300 requests answered over the last 3 s, one slow.
	for i := range 300 {
		at := start.Add(time.Duration(i) * 10 * time.Millisecond)
		o.tl.record(at, 2*time.Millisecond)
		o.rec.Record(i, 2*time.Millisecond)
		o.status[200].Add(1)
	}
	o.tl.record(start.Add(1500*time.Millisecond), 400*time.Millisecond)
	o.rec.Record(0, 400*time.Millisecond)
	o.status[0].Add(1)
	m.fail("hold: timeout")
	stats := m.stats(3 * time.Second)
	if len(stats) != 1 || stats[0].Name != "hold" {
		t.Fatalf("stats = %+v (an op with no request is left out)", stats)
	}
	s := stats[0]
	if s.Count != 301 || s.Status["200"] != 300 || s.Status["transport"] != 1 || math.Abs(s.PerSec-301.0/3) > 0.01 {
		t.Errorf("stats = %+v", s)
	}
	if len(s.Percentiles) != len(percentileLadder) || s.Percentiles[len(s.Percentiles)-1].Ms < 399 {
		t.Errorf("percentiles = %+v", s.Percentiles)
	}
	var n int64
	slowest := 0.0
	for _, p := range s.Timeline {
		n += p.Count
		slowest = math.Max(slowest, p.MaxMs)
		if p.Count > 0 && (p.P50Ms < 1.7 || p.P50Ms > 2.3) {
			t.Errorf("bucket at %.2fs: p50 %.2f ms, want ≈ 2", p.T, p.P50Ms)
		}
	}
	if n != 301 || slowest < 399 || slowest > 401 || len(s.Timeline) > 130 {
		t.Errorf("timeline: %d points, %d requests, slowest %.1f ms", len(s.Timeline), n, slowest)
	}
	if m.errors()["hold: timeout"] != 1 {
		t.Errorf("errors = %v", m.errors())
	}
}

func TestParseMetrics(t *testing.T) {
	body := []byte(`# HELP queue_active Active queue tokens.
# TYPE queue_active gauge
queue_active 42
queue_waiting 7
journal_batch_size_sum 1234
journal_batch_size_count{writer="a"} 10
journal_batch_size_count{writer="b"} 5
go_info{version="go1.26.8"} 1
process_cpu_seconds_total 3.5 1700000000000
`)
	m := ParseMetrics(body)
	for k, want := range map[string]float64{"queue_active": 42, "queue_waiting": 7, "journal_batch_size_sum": 1234,
		"journal_batch_size_count": 15, "go_info": 1, "process_cpu_seconds_total": 3.5} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
}

func TestParseProcStatAndMemTotal(t *testing.T) {
	busy, all := ParseProcStat("cpu  100 5 50 800 40 0 5 0 0 0\ncpu0 1 1 1 1 1 1 1 1 1 1\n")
	if busy != 160 || all != 1000 {
		t.Errorf("busy %v all %v", busy, all)
	}
	if got := ParseMemTotal("MemTotal:       24576000 kB\nMemFree: 1 kB\n"); got != 24576000*1024 {
		t.Errorf("MemTotal = %d", got)
	}
}

// sampleReport is a report as a run with every scenario would leave it.
func sampleReport() *Report {
	yes := true
	mk := func(sc, mode string, thr float64, unit string) *Result {
		r := &Result{Scenario: sc, Mode: mode, Machine: "m", Throughput: thr, ThroughputUnit: unit, RequestsPerSec: thr * 2,
			ElapsedSeconds: 2, Params: map[string]string{"fans": "100"}, Errors: map[string]int64{}}
		ops := newMeter(time.Now().Add(-2*time.Second), "hold", "pay")
		for i := range 200 {
			ops.op(i%2).observe(i, time.Now().Add(-time.Duration(i%20)*time.Millisecond), 200)
		}
		r.Ops = ops.stats(2 * time.Second)
		r.addChecks(Check{Name: "exactly one success", OK: true, Detail: "1 of 100"})
		r.Usage = &Usage{Seconds: 2, JournalEvents: 4000, JournalBatches: 100, MeanBatch: 40, MeanBatchMs: 3, ServerCores: 1.1, GeneratorCores: 0.4, MachineCores: 1.9}
		return r
	}
	rep := &Report{Tool: "concertbench", Command: "concertbench self", StartedAt: time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC),
		Seconds: 60, Machine: MachineInfo{Cores: 2, CPUModel: "Test CPU", MemoryBytes: 24 << 30, OS: "linux", Arch: "amd64", GoVersion: "go1.26"},
		Server: ServerInfo{Targets: []string{"http://127.0.0.1:18080"}, Settings: map[string]string{"ACTIVE_TOKENS": "50000"},
			Restart: &Restart{JournalEvents: 200000, ReadySeconds: 0.8}},
		Ceilings: Ceilings{
			Postgres:  &PGCeiling{RowsPerSec: 100000, Batch: 256, Conns: 4, SynchronousCommit: "on", Fsync: "on", Points: []PGCeilPoint{{Batch: 16, RowsPerSec: 30000}, {Batch: 256, RowsPerSec: 100000}}},
			HTTP:      &HTTPCeiling{Path: "/healthz", RequestsPerSec: 80000, Conns: 64},
			Generator: &HTTPCeiling{Path: "/healthz", RequestsPerSec: 90000, Conns: 64},
		},
		Results: []*Result{
			mk("hot-seat", "closed", 20000, "answers/s"), mk("sold-out", "closed", 6000, "durable holds/s"),
			mk("sold-out", "open", 3000, "durable holds/s"), mk("queue-surge", "closed", 12000, "token requests/s"),
		},
	}
	rep.Results[0].AnsweredSeconds, rep.Results[0].Fans, rep.Results[0].Winners = 0.4, 10000, 1
	rep.Results[2].OfferedRate = 3000
	_ = yes
	return rep
}

func TestEvaluateRatiosAndTargets(t *testing.T) {
	rep := sampleReport()
	rep.Evaluate()
	ratios := map[string]float64{}
	for _, r := range rep.Ratios {
		ratios[r.Name] = r.Value
	}
	if v := ratios["sold-out durable holds/s ÷ raw PostgreSQL rows/s (a)"]; math.Abs(v-0.06) > 1e-9 {
		t.Errorf("holds ÷ (a) = %v; ratios %v", v, ratios)
	}
	if v := ratios["sold-out journal events/s ÷ raw rows/s at the journal's own batch size (mean 40.0, raw batch 16)"]; math.Abs(v-2000.0/30000) > 1e-9 {
		t.Errorf("events ÷ (a) at the journal's batch = %v; ratios %v", v, ratios)
	}
	if v := ratios["GET /healthz of the server (b) ÷ generator ceiling (c)"]; math.Abs(v-80000.0/90000) > 1e-9 {
		t.Errorf("(b) ÷ (c) = %v", v)
	}
	met := map[string]*bool{}
	for _, tg := range rep.Targets {
		met[tg.Name] = tg.Met
	}
	check := func(name string, want *bool) {
		t.Helper()
		got, ok := met[name]
		switch {
		case !ok:
			t.Errorf("no target %q in %v", name, met)
		case (got == nil) != (want == nil) || (got != nil && *got != *want):
			t.Errorf("target %q: met %v, want %v", name, fmtBool(got), fmtBool(want))
		}
	}
	yes, no := true, false
	check("hot-seat: all answered within 0.5 s of the burst's start", &yes)
	check("sold-out: durable holds/s ≥ 50 % of the raw ceiling (a)", &no)
	check("sold-out: hold p99 ≤ 50 ms at half the maximum rate (open loop)", &yes)
	check("queue-surge: token requests/s", &no)
	check("restart after 1,000,000 journaled events: ready", nil)
}

// TestHotSeatTargetsOverSeveralSeats: a burst over several seats is scored
// as one winner per seat, and its time is noted as not the one-seat
// target's.
func TestHotSeatTargetsOverSeveralSeats(t *testing.T) {
	rep := sampleReport()
	hs := rep.Results[0]
	hs.SeatsPerDate, hs.Winners, hs.Fans = 50, 50, 3000
	rep.Evaluate()
	var names, notes []string
	for _, tg := range rep.Targets {
		if strings.HasPrefix(tg.Name, "hot-seat") {
			names, notes = append(names, tg.Name+" → "+tg.Got), append(notes, tg.Note)
		}
	}
	want := []string{"hot-seat: exactly one success per seat → 50 successes of 3,000 fans over 50 seats",
		"hot-seat: all answered within 0.5 s of the burst's start → 0.400 s (3,000 fans)"}
	if !slices.Equal(names, want) || notes[1] != "over 50 seats, not the target's one seat" {
		t.Errorf("targets %q, notes %q", names, notes)
	}
}

// TestFreshHoldsCostAndTargets: the server's CPU per hold comes from the
// usage read around the load, and the two targets from the closed
// loop.
func TestFreshHoldsCostAndTargets(t *testing.T) {
	m := newMeter(time.Now().Add(-time.Second), "hold")
	for i := range 100 {
		m.op(0).observe(i, time.Now().Add(-time.Duration(4+i%3)*time.Millisecond), 200)
	}
	r := &Result{Scenario: "fresh-holds", Mode: "closed", Workers: 64, Holds: 240000, HoldsPerSec: 8000,
		Throughput: 8000, ThroughputUnit: "durable holds/s", Errors: map[string]int64{}, Ops: m.stats(time.Second)}
	r.HoldLatency = r.Ops[0].Latency
	r.AttachUsage(&Usage{Seconds: 30, ServerCores: 1.0, GeneratorCores: 0.2, PostgresCores: 0.5, MachineCores: 1.9})
	if math.Abs(r.ServerMicrosPerHold-125) > 1e-9 { // 30 CPU seconds over 240,000 holds
		t.Fatalf("µs per hold = %v, want 125", r.ServerMicrosPerHold)
	}
	rep := &Report{Tool: "concertbench", Results: []*Result{r}}
	rep.Evaluate()
	got := map[string]Target{}
	for _, tg := range rep.Targets {
		got[tg.Name] = tg
	}
	cpu, p50 := got["fresh-holds: server CPU per durable hold ≤ 80 µs"], got["fresh-holds: hold p50 ≤ 10 ms"]
	if cpu.Met == nil || *cpu.Met || cpu.Got != "125.0 µs (8,000.0 durable holds/s)" || cpu.Note != "" {
		t.Errorf("cpu target %+v (met %s)", cpu, fmtBool(cpu.Met))
	}
	if p50.Met == nil || !*p50.Met || !strings.HasSuffix(p50.Got, "(64 clients)") {
		t.Errorf("p50 target %+v (met %s)", p50, fmtBool(p50.Met))
	}

	var b strings.Builder
	if err := r.WriteReport(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "cpu/hold  125.0 µs of server CPU per durable hold") {
		t.Errorf("report:\n%s", b.String())
	}
	var page bytes.Buffer
	if err := rep.WriteHTML(&page); err != nil || !strings.Contains(page.String(), "125.0 µs of server CPU per durable hold") {
		t.Errorf("HTML page lacks the CPU per hold (%v)", err)
	}
	old := &Report{Tool: "concertbench", Results: []*Result{{Scenario: "fresh-holds", Mode: "closed", ServerMicrosPerHold: 150}}}
	var cmp strings.Builder
	if err := WriteComparison(&cmp, old, rep, "a", "b"); err != nil || !strings.Contains(cmp.String(), "server CPU µs per hold") ||
		!strings.Contains(cmp.String(), "-16.7 % better") {
		t.Errorf("comparison (%v):\n%s", err, cmp.String())
	}

	// A server in the generator's process, 40 clients for 12 s: not
	// measured, and the targets say the run was smaller than the issue's.
	r.Workers, r.Holds = 40, 96000
	r.AttachUsage(&Usage{Seconds: 12, ServerCores: -1})
	rep.Evaluate()
	for _, tg := range rep.Targets {
		if !strings.Contains(tg.Note, "40 clients, not the issue's 64; a 12 s run, not the issue's 30 s") {
			t.Errorf("target %q: note %q", tg.Name, tg.Note)
		}
		if strings.Contains(tg.Name, "CPU") && (tg.Met != nil || tg.Got != "not measured" || !strings.Contains(tg.Note, "own CPU was not known")) {
			t.Errorf("cpu target without the server's CPU: %+v", tg)
		}
	}
}

func fmtBool(b *bool) string {
	if b == nil {
		return "n/a"
	}
	if *b {
		return "true"
	}
	return "false"
}

func TestWriteTable(t *testing.T) {
	rep := sampleReport()
	rep.Results[1].addChecks(Check{Name: "no seat sold twice", OK: false, Detail: "seat 3 by [1 2]"})
	rep.Failures = []string{"journey closed: too few tokens"}
	rep.Evaluate()
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"machine   2 CPU, linux/amd64, Test CPU, 24 GiB, go1.26",
		"(a) PostgreSQL raw durable writes     100,000.0 rows/s  (batch 256, 4 conns, synchronous_commit=on, fsync=on)",
		"hot-seat closed",
		"BROKEN",
		"FAIL sold-out closed        no seat sold twice — seat 3 by [1 2]",
		"FAIL journey closed: too few tokens",
		"MISS sold-out: durable holds/s ≥ 50 % of the raw ceiling (a)",
		"restart   ready in 0.80 s after 200,000 journaled events",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if rep.OK() {
		t.Error("a report with a broken check and a failure is OK")
	}
}

func TestWriteHTMLSelfContained(t *testing.T) {
	rep := sampleReport()
	rep.Results[1].addChecks(Check{Name: "no seat sold twice", OK: false, Detail: "seat <3> & more"})
	rep.Evaluate()
	var b bytes.Buffer
	if err := rep.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()

	// Well-formed: every element closed and nested right (HTML's void
	// elements aside).
	d := xml.NewDecoder(strings.NewReader(page))
	d.Strict, d.Entity = true, xml.HTMLEntity
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v", err)
		}
	}
	// The charts: one overview, three per run, each with a drawn line.
	svgs := regexp.MustCompile(`(?s)<svg class="chart".*?</svg>`).FindAllString(page, -1)
	if want := 1 + 3*len(rep.Results); len(svgs) != want {
		t.Fatalf("%d charts, want %d", len(svgs), want)
	}
	for i, s := range svgs {
		if !strings.Contains(s, `class="series"`) {
			t.Errorf("chart %d has no line: %.200s", i, s)
		}
	}
	// Offline: nothing fetched, no script.
	for _, bad := range []string{"<script", "<link", "src=", "url(", "@import", `href="http`, "<iframe", "<img"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page has %q", bad)
		}
	}
	for _, want := range []string{"Verdict: BROKEN", "seat &lt;3&gt; &amp; more", "Test CPU", "ACTIVE_TOKENS=50000",
		"(a) PostgreSQL raw durable writes", "MISSED", "ready in 0.80 s"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func TestChartEdgeCases(t *testing.T) {
	empty := chart{Title: "nothing", Series: []series{{Name: "a"}}}.svg()
	if !strings.Contains(empty, "no data") || strings.Contains(empty, `class="series"`) {
		t.Errorf("empty chart: %s", empty)
	}
	// Log scale: zeros and NaN are gaps, not lines to minus infinity.
	c := chart{Title: "t", LogY: true, Series: []series{{Name: "a", X: []float64{0, 1, 2, 3}, Y: []float64{0, 5, math.NaN(), 50}}}}.svg()
	if strings.Contains(c, "NaN") || strings.Contains(c, "Inf") || !strings.Contains(c, `class="series"`) {
		t.Errorf("log chart: %s", c)
	}
	p := chart{Title: "p", LogY: true, XPercentile: true, Series: []series{{Name: "a", X: []float64{0, 50, 99, 99.9, 100}, Y: []float64{1, 2, 10, 20, 30}}}}.svg()
	for _, tick := range []string{">90%<", ">99%<", ">99.9%<"} {
		if !strings.Contains(p, tick) {
			t.Errorf("percentile chart lacks tick %s", tick)
		}
	}
}

func TestCompareReports(t *testing.T) {
	old := sampleReport()
	cur := sampleReport()
	cur.Results[1].Throughput = 9000 // sold-out closed: 6,000 → 9,000
	cur.Results = cur.Results[:3]    // queue-surge not run
	cur.Results = append(cur.Results, &Result{Scenario: "journey", Mode: "closed", Throughput: 50, ThroughputUnit: "journeys/s"})
	figs := CompareReports(old, cur)
	var found bool
	for _, f := range figs {
		if f.Run == "sold-out closed" && strings.HasPrefix(f.Figure, "throughput") {
			found = true
			if f.Old != 6000 || f.New != 9000 || math.Abs(f.Change()-0.5) > 1e-9 {
				t.Errorf("figure %+v", f)
			}
		}
	}
	if !found {
		t.Fatalf("no sold-out throughput in %+v", figs)
	}
	var b strings.Builder
	if err := WriteComparison(&b, old, cur, "a.json", "b.json"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"+50.0 % better", "only in new", "only in old", "(a) PostgreSQL"} {
		if !strings.Contains(out, want) {
			t.Errorf("comparison lacks %q:\n%s", want, out)
		}
	}
}

func TestReportJSONRoundTrip(t *testing.T) {
	rep := sampleReport()
	rep.Evaluate()
	path := filepath.Join(t.TempDir(), "r.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	back, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != 4 || back.Results[0].Ops[0].Latency.Count == 0 || back.Ceilings.Postgres.RowsPerSec != 100000 ||
		len(back.Results[0].Ops[0].Timeline) == 0 || back.Machine.CPUModel != "Test CPU" {
		t.Errorf("round trip lost figures: %+v", back)
	}
	if err := os.WriteFile(path, []byte(`{"tool":"other"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadReport(path); err == nil {
		t.Error("a foreign JSON file was read as a report")
	}
}

// TestBatchDistribution: the journal's batch histograms, read before and
// after a run, give the buckets of the run's median and 99th percentile.
func TestBatchDistribution(t *testing.T) {
	before := ParseMetrics([]byte(`journal_batch_size_bucket{le="1"} 5
journal_batch_size_bucket{le="2"} 5
journal_batch_size_bucket{le="4"} 5
journal_batch_size_bucket{le="+Inf"} 5
journal_batch_seconds_bucket{le="0.001"} 5
journal_batch_seconds_bucket{le="0.002"} 5
journal_batch_seconds_bucket{le="+Inf"} 5
`))
	// 100 batches in the run: 40 of 1 row, 59 of 2, 1 of 4; 90 under 1 ms.
	after := ParseMetrics([]byte(`journal_batch_size_bucket{le="1"} 45
journal_batch_size_bucket{le="2"} 104
journal_batch_size_bucket{le="4"} 105
journal_batch_size_bucket{le="+Inf"} 105
journal_batch_seconds_bucket{le="0.001"} 95
journal_batch_seconds_bucket{le="0.002"} 105
journal_batch_seconds_bucket{le="+Inf"} 105
`))
	if got := after["journal_batch_size_bucket"]; got != 105+105+104+45 {
		t.Errorf("buckets summed under the bare name: %v", got)
	}
	for _, c := range []struct {
		name string
		q    float64
		want float64
	}{
		{"journal_batch_size_bucket", 0.5, 2}, {"journal_batch_size_bucket", 0.99, 2}, {"journal_batch_size_bucket", 1, 4},
		{"journal_batch_seconds_bucket", 0.5, 0.001}, {"journal_batch_seconds_bucket", 0.99, 0.002},
	} {
		if got := bucketQuantile(before, after, c.name, c.q); got != c.want {
			t.Errorf("%s q%.2f = %v, want %v", c.name, c.q, got, c.want)
		}
	}
	if got := bucketQuantile(after, after, "journal_batch_size_bucket", 0.5); got != 0 {
		t.Errorf("no batches: %v, want 0", got)
	}
}

// TestBurstTargets: a closed hot-seat run is scored against the sustained
// trivial route (b), with the same-shape burst reference (b′) beside it and
// its own ratio, and its p99 against 100 ms; a burst that is not one of the
// issue's two shapes says so.
func TestBurstTargets(t *testing.T) {
	rep := sampleReport()
	hs := rep.Results[0]
	hs.Fans, hs.SeatsPerDate, hs.RequestsPerSec = 1000, 1, 44000
	hs.HoldLatency = Latency{Count: 1000, P99Ms: 120}
	hs.BurstReference = &HTTPCeiling{Path: "/healthz", Conns: 1000, RequestsPerSec: 55000}
	rep.Evaluate()
	got := map[string]Target{}
	for _, tg := range rep.Targets {
		got[tg.Name] = tg
	}
	rate, p99 := got["bursts: answers/s ≥ 50 % of GET /healthz (b)"], got["bursts: answers' p99 ≤ 100 ms from the burst's start"]
	if rate.Met == nil || !*rate.Met || rate.Got != "55 % (44,000.0 answers/s of 80,000.0 req/s, 1,000 fans on 1 seat)" ||
		rate.Note != "80 % of GET /healthz sent in the same burst shape (b′ 55,000.0 req/s)" {
		t.Errorf("rate target %+v", rate)
	}
	if p99.Met == nil || *p99.Met || p99.Got != "120 ms (1,000 fans on 1 seat)" || p99.Note != "" {
		t.Errorf("p99 target %+v", p99)
	}
	var ref float64
	for _, r := range rep.Ratios {
		if strings.Contains(r.Name, "(b′)") {
			ref = r.Value
		}
	}
	if math.Abs(ref-0.8) > 1e-9 {
		t.Errorf("answers/s ÷ (b′) = %v; ratios %+v", ref, rep.Ratios)
	}

	hs.Fans, hs.BurstReference = 10000, nil
	rep.Evaluate()
	for _, tg := range rep.Targets {
		if strings.HasPrefix(tg.Name, "bursts:") && tg.Note != "not one of the issue's bursts (1,000 fans on 1 seat, 3,000 over 50)" {
			t.Errorf("%q: note %q", tg.Name, tg.Note)
		}
	}
}

// TestThousandClientsTarget: the closed sold-out run is scored against 40 %
// of (a), and the note says when that is above the trivial route (b).
func TestThousandClientsTarget(t *testing.T) {
	rep := sampleReport()
	rep.Results[1].Workers = 1000
	rep.Evaluate()
	var got *Target
	for i := range rep.Targets {
		if strings.HasPrefix(rep.Targets[i].Name, "1,000 clients:") {
			got = &rep.Targets[i]
		}
	}
	// The sample: 6,000 holds/s of 100,000 rows/s; 40 % of (a) is below (b).
	if got == nil || got.Met == nil || *got.Met || got.Got != "6.0 % (6,000.0 holds/s of 100,000.0 rows/s)" || got.Note != "" {
		t.Fatalf("target %+v", got)
	}
	rep.Ceilings.Postgres.RowsPerSec = 250000
	rep.Results[1].Workers = 500
	rep.Evaluate()
	for _, tg := range rep.Targets {
		if strings.HasPrefix(tg.Name, "1,000 clients:") &&
			tg.Note != "500 clients, not 1,000; 40 % of (a) is 100,000.0 holds/s, above GET /healthz's 80,000.0 req/s (b): out of reach over HTTP here" {
			t.Errorf("note %q", tg.Note)
		}
	}
}
