package loadgen

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Result holds the figures of one run of one scenario in one mode. Fields
// of other scenarios are zero and left out of the JSON.
type Result struct {
	Scenario string `json:"scenario"` // "hot-seat", "sold-out", "holds", ...
	// Mode is "closed" (everyone at once, or each worker's next request
	// as soon as its last is answered) or "open" (arrivals on a fixed
	// schedule at OfferedRate per second).
	Mode    string `json:"mode,omitempty"`
	Machine string `json:"machine"` // see Machine
	Target  string `json:"target"`
	// Params are the scenario's settings, as "name": "value".
	Params map[string]string `json:"params,omitempty"`

	// The headline: Throughput in ThroughputUnit ("holds/s", "token
	// requests/s"), and every request of the load phase per second.
	Throughput     float64 `json:"throughput,omitempty"`
	ThroughputUnit string  `json:"throughputUnit,omitempty"`
	Requests       int64   `json:"requests,omitempty"`
	RequestsPerSec float64 `json:"requestsPerSec,omitempty"`
	// Ops has the figures of each kind of request; the first is the
	// headline latency.
	Ops []OpStats `json:"ops,omitempty"`
	// Checks are the correctness verdicts of the run; a failed one is
	// also in Violations.
	Checks []Check `json:"checks,omitempty"`
	// Notes are things a reader of the figures must know (a check
	// skipped, tokens left in the queue).
	Notes []string `json:"notes,omitempty"`
	// Usage is what the run cost the server, the generator and the
	// machine (set by the caller that sampled around it).
	Usage *Usage `json:"usage,omitempty"`
	// ServerMicrosPerHold is the server's CPU per durable hold in µs: its
	// CPU seconds over the load phase (Usage) ÷ the holds answered 200,
	// which is server cores × 1e6 ÷ holds/s over one window. Set by
	// AttachUsage for fresh-holds, whose every request is a hold; 0 when
	// not measured.
	ServerMicrosPerHold float64 `json:"serverMicrosPerHold,omitempty"`

	// The fixture.
	Users        int `json:"users"`
	Dates        int `json:"dates"`
	SeatsPerDate int `json:"seatsPerDate"`

	// OfferedRate is the open-loop rate of the scenario's arrivals per
	// second (hold attempts for holds); 0 means closed loop.
	OfferedRate    float64 `json:"offeredRate"`
	ElapsedSeconds float64 `json:"elapsedSeconds"`

	Attempts       int64   `json:"attempts"`  // hold requests sent
	Holds          int64   `json:"holds"`     // 200 answers to them
	Conflicts      int64   `json:"conflicts"` // 409 SEAT_UNAVAILABLE answers
	Cancels        int64   `json:"cancels,omitempty"`
	HoldsPerSec    float64 `json:"holdsPerSec"`
	AttemptsPerSec float64 `json:"attemptsPerSec"`
	// Errors counts every other outcome by kind ("HTTP 503
	// STORE_UNAVAILABLE", "409 HOLD_LIMIT", "timeout", "cancel: …").
	Errors      map[string]int64 `json:"errors"`
	HoldLatency Latency          `json:"holdLatency"`
	// CancelLatency is the latency of DELETE /reservations/{id}.
	CancelLatency *Latency `json:"cancelLatency,omitempty"`

	// The on-sale (scenario hot).
	Fans           int      `json:"fans,omitempty"`
	Workers        int      `json:"workers,omitempty"`
	Winners        int      `json:"winners,omitempty"` // fans whose payment succeeded
	SoldOut        bool     `json:"soldOut,omitempty"`
	SeatsLeft      int      `json:"seatsLeft,omitempty"`      // free seats after the run
	AllHeldSeconds float64  `json:"allHeldSeconds,omitempty"` // when the last seat was held
	SellOutSeconds float64  `json:"sellOutSeconds,omitempty"` // when the last seat was paid
	PaymentLatency *Latency `json:"paymentLatency,omitempty"`
	// AnsweredSeconds is the time from a burst's start to its last answer
	// (hot-seat).
	AnsweredSeconds float64 `json:"answeredSeconds,omitempty"`
	// BurstReference is GET /healthz sent by the same fans, connections and
	// generator in the burst's shape just before it (MeasureBurst; closed
	// hot-seat only): the trivial route's rate in that shape, beside the
	// sustained ceiling (b).
	BurstReference *HTTPCeiling `json:"burstReference,omitempty"`

	// Violations are broken invariants (oversell, undersell); a run with
	// any must fail.
	Violations []string `json:"violations,omitempty"`
}

// Check is one correctness verdict.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// addChecks appends checks to r and each failed one to its Violations.
func (r *Result) addChecks(cs ...Check) {
	for _, c := range cs {
		r.Checks = append(r.Checks, c)
		if !c.OK {
			r.Violations = append(r.Violations, c.Name+": "+c.Detail)
		}
	}
}

// AttachUsage sets what the run cost (u, read around its load phase; nil:
// unknown) and, for a fresh-holds run whose server CPU is known
// (ServerCores ≥ 0), ServerMicrosPerHold.
func (r *Result) AttachUsage(u *Usage) {
	r.Usage, r.ServerMicrosPerHold = u, 0
	if u != nil && r.Scenario == "fresh-holds" && u.ServerCores >= 0 && r.Holds > 0 {
		r.ServerMicrosPerHold = u.ServerCores * u.Seconds / float64(r.Holds) * 1e6
	}
}

// OK reports whether the run broke no invariant.
func (r *Result) OK() bool { return len(r.Violations) == 0 }

// Op returns the figures of the requests named name, or nil.
func (r *Result) Op(name string) *OpStats {
	for i := range r.Ops {
		if r.Ops[i].Name == name {
			return &r.Ops[i]
		}
	}
	return nil
}

// Label names the run: "hot-seat closed", "sold-out open 2,500/s".
func (r *Result) Label() string {
	switch {
	case r.Mode == "open" || (r.Mode == "" && r.OfferedRate > 0):
		return r.Scenario + " open"
	case r.Mode == "":
		return r.Scenario
	}
	return r.Scenario + " " + r.Mode
}

// ErrorCount is the sum of Errors.
func (r *Result) ErrorCount() int64 {
	var n int64
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// WriteReport writes the human report of r.
func (r *Result) WriteReport(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	switch r.Scenario {
	case "hot":
		p("concertbench hot — %s fans (%d workers) race for %d seats of one date\n",
			groupInt(int64(r.Fans)), r.Workers, r.SeatsPerDate)
	case "holds":
		mode := "closed loop"
		if r.OfferedRate > 0 {
			mode = "open loop at " + groupFloat(r.OfferedRate) + " holds/s offered"
		}
		p("concertbench %s — %s, %s users over %d dates × %d seats, %.1fs\n",
			r.Scenario, mode, groupInt(int64(r.Users)), r.Dates, r.SeatsPerDate, r.ElapsedSeconds)
	default:
		mode := "closed loop"
		if r.OfferedRate > 0 {
			mode = "open loop at " + groupFloat(r.OfferedRate) + "/s"
		}
		p("concertbench %s — %s, %s, %.2fs\n", r.Scenario, mode, formatParams(r.Params), r.ElapsedSeconds)
	}
	p("machine   %s\n", r.Machine)
	if r.Target != "" {
		p("target    %s\n", r.Target)
	}
	for _, v := range r.Violations {
		p("!!! %s\n", v)
	}
	switch r.Scenario {
	case "hot", "holds":
		if r.Scenario == "hot" {
			p("winners   %d / %d seats", r.Winners, r.SeatsPerDate)
			if r.SoldOut {
				p(" — sold out in %s (all held at %s)\n", secs(r.SellOutSeconds), secs(r.AllHeldSeconds))
			} else {
				p(" — NOT sold out (%d seats left) after %s\n", r.SeatsLeft, secs(r.ElapsedSeconds))
			}
		}
		p("holds     %12s  %10s/s\n", groupInt(r.Holds), groupFloat(r.HoldsPerSec))
		p("attempts  %12s  %10s/s\n", groupInt(r.Attempts), groupFloat(r.AttemptsPerSec))
		p("conflicts %12s  (409 SEAT_UNAVAILABLE)\n", groupInt(r.Conflicts))
		p("errors    %12s\n", groupInt(r.ErrorCount()))
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			p("  %-40s %s\n", k, groupInt(r.Errors[k]))
		}
		p("hold      %s\n", FormatLatency(r.HoldLatency))
		if r.CancelLatency != nil {
			p("cancel    %s\n", FormatLatency(*r.CancelLatency))
		}
		if r.PaymentLatency != nil {
			p("payment   %s\n", FormatLatency(*r.PaymentLatency))
		}
	default:
		p("throughput %s %s", groupFloat(r.Throughput), r.ThroughputUnit)
		if r.AnsweredSeconds > 0 {
			p(" — every answer within %s of the start", secs(r.AnsweredSeconds))
		}
		p("\nrequests  %12s  %10s/s\n", groupInt(r.Requests), groupFloat(r.RequestsPerSec))
		if r.ServerMicrosPerHold > 0 {
			p("cpu/hold  %s of server CPU per durable hold (its cores: usage, below)\n", FormatMicros(r.ServerMicrosPerHold))
		}
		for _, o := range r.Ops {
			p("%-9s %s\n", o.Name, FormatLatency(o.Latency))
			p("          %s\n", FormatStatus(o.Status))
		}
		p("errors    %12s\n", groupInt(r.ErrorCount()))
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			p("  %-40s %s\n", k, groupInt(r.Errors[k]))
		}
	}
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		p("check %s %s — %s\n", mark, c.Name, c.Detail)
	}
	if u := r.Usage; u != nil {
		p("usage     %s\n", FormatUsage(u))
	}
	for _, n := range r.Notes {
		p("note      %s\n", n)
	}
	return bw.Flush()
}

// FormatStatus renders status counts: "200: 1  409: 9,999".
func FormatStatus(st map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(st)) {
		parts = append(parts, k+": "+groupInt(st[k]))
	}
	return strings.Join(parts, "  ")
}

// FormatUsage renders a Usage on one line.
func FormatUsage(u *Usage) string {
	var parts []string
	if u.JournalEvents > 0 {
		parts = append(parts, fmt.Sprintf("journal %s events in %s batches (mean %.1f rows, %s)",
			groupInt(u.JournalEvents), groupInt(u.JournalBatches), u.MeanBatch, FormatMs(u.MeanBatchMs)))
		if u.BatchRowsP50 > 0 && u.BatchMsP50 > 0 {
			parts = append(parts, fmt.Sprintf("batch rows p50 ≤ %g p99 ≤ %g, batch time p50 ≤ %s p99 ≤ %s",
				u.BatchRowsP50, u.BatchRowsP99, FormatMs(u.BatchMsP50), FormatMs(u.BatchMsP99)))
		}
	}
	core := func(name string, v float64) {
		if v >= 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f cores", name, v))
		}
	}
	core("server", u.ServerCores)
	core("generator", u.GeneratorCores)
	core("PostgreSQL", u.PostgresCores)
	core("machine", u.MachineCores)
	if u.ServerCores >= 0 && u.PostgresCores >= 0 && u.MachineCores >= 0 {
		core("others", max(u.MachineCores-u.ServerCores-u.GeneratorCores-u.PostgresCores, 0))
	}
	return strings.Join(parts, ", ")
}

func formatParams(ps map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(ps)) {
		parts = append(parts, k+" "+ps[k])
	}
	return strings.Join(parts, ", ")
}

// FormatLatency renders a latency summary on one line.
func FormatLatency(l Latency) string {
	if l.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%s)",
		FormatMs(l.P50Ms), FormatMs(l.P90Ms), FormatMs(l.P99Ms), FormatMs(l.P999Ms),
		FormatMs(l.MaxMs), groupInt(l.Count))
}

// FormatMs renders milliseconds with three significant digits: 0.123 ms,
// 1.23 ms, 12.3 ms, 123 ms, 1.23 s.
func FormatMs(ms float64) string {
	switch {
	case ms >= 1000:
		return strconv.FormatFloat(ms/1000, 'f', 2, 64) + " s"
	case ms >= 100:
		return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
	case ms >= 10:
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	case ms >= 1:
		return strconv.FormatFloat(ms, 'f', 2, 64) + " ms"
	default:
		return strconv.FormatFloat(ms, 'f', 3, 64) + " ms"
	}
}

// FormatMicros renders microseconds with one decimal: "61.3 µs".
func FormatMicros(us float64) string { return strconv.FormatFloat(us, 'f', 1, 64) + " µs" }

func secs(s float64) string { return strconv.FormatFloat(s, 'f', 3, 64) + "s" }

// groupInt renders n with thousands separators: 1234567 → "1,234,567".
func groupInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// groupFloat renders f with one decimal and thousands separators.
func groupFloat(f float64) string {
	s := strconv.FormatFloat(f, 'f', 1, 64)
	whole, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return s
	}
	return groupInt(n) + "." + frac
}

// Machine describes the machine the generator runs on: CPU count, OS and
// architecture, CPU model, memory and Go version. Every report carries it,
// because a figure without its machine means nothing.
func Machine() string {
	machineOnce.Do(func() { machine = DescribeMachine().String() })
	return machine
}

var (
	machineOnce sync.Once
	machine     string
)

// MachineInfo describes the machine the generator runs on.
type MachineInfo struct {
	Cores       int     `json:"cores"`
	GOMAXPROCS  int     `json:"gomaxprocs"`
	CPUModel    string  `json:"cpuModel"`
	MemoryBytes int64   `json:"memoryBytes"`
	OS          string  `json:"os"`
	Arch        string  `json:"arch"`
	Kernel      string  `json:"kernel,omitempty"`
	GoVersion   string  `json:"goVersion"`
	Hostname    string  `json:"hostname,omitempty"`
	LoadAvg1    float64 `json:"loadAvg1"` // when described: others' work shows here
}

// DescribeMachine reads the machine's description from the runtime and
// /proc.
func DescribeMachine() MachineInfo {
	m := MachineInfo{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), CPUModel: "unknown CPU",
		OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		if v := ParseCPUModel(f); v != "" {
			m.CPUModel = v
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemoryBytes = ParseMemTotal(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			m.LoadAvg1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	m.Hostname, _ = os.Hostname()
	return m
}

// String is the one-line description.
func (m MachineInfo) String() string {
	mem := ""
	if m.MemoryBytes > 0 {
		mem = fmt.Sprintf(", %.0f GiB", float64(m.MemoryBytes)/(1<<30))
	}
	return fmt.Sprintf("%d CPU, %s/%s, %s%s, %s (GOMAXPROCS %d)",
		m.Cores, m.OS, m.Arch, m.CPUModel, mem, m.GoVersion, m.GOMAXPROCS)
}

// ParseMemTotal returns MemTotal of a /proc/meminfo text in bytes, or 0.
func ParseMemTotal(meminfo string) int64 {
	for _, line := range strings.Split(meminfo, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
			f := strings.Fields(v)
			if len(f) >= 1 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

// ParseCPUModel returns the first "model name" (x86) or "Model"/"Hardware"
// (ARM) of a /proc/cpuinfo text, or "".
func ParseCPUModel(r io.Reader) string {
	sc := bufio.NewScanner(r)
	fallback := ""
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.Join(strings.Fields(v), " ")
		switch k {
		case "model name":
			if v != "" {
				return v
			}
		case "Model", "Hardware", "cpu model", "uarch":
			if fallback == "" {
				fallback = v
			}
		}
	}
	return fallback
}
