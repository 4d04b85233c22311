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

// Result holds the figures of one run. Fields of the other scenario are
// zero and left out of the JSON.
type Result struct {
	Scenario string `json:"scenario"` // "holds" or "hot"
	Machine  string `json:"machine"`  // see Machine
	Target   string `json:"target"`

	// The fixture.
	Users        int `json:"users"`
	Dates        int `json:"dates"`
	SeatsPerDate int `json:"seatsPerDate"`

	// OfferedRate is the open-loop rate of hold attempts per second; 0
	// means closed loop.
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

	// Violations are broken invariants (oversell, undersell); a run with
	// any must fail.
	Violations []string `json:"violations,omitempty"`
}

// OK reports whether the run broke no invariant.
func (r *Result) OK() bool { return len(r.Violations) == 0 }

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
	default:
		mode := "closed loop"
		if r.OfferedRate > 0 {
			mode = "open loop at " + groupFloat(r.OfferedRate) + " holds/s offered"
		}
		p("concertbench %s — %s, %s users over %d dates × %d seats, %.1fs\n",
			r.Scenario, mode, groupInt(int64(r.Users)), r.Dates, r.SeatsPerDate, r.ElapsedSeconds)
	}
	p("machine   %s\n", r.Machine)
	if r.Target != "" {
		p("target    %s\n", r.Target)
	}
	for _, v := range r.Violations {
		p("!!! %s\n", v)
	}
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
	return bw.Flush()
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
// architecture, CPU model and Go version. Every report carries it, because
// a figure without its machine means nothing.
func Machine() string {
	machineOnce.Do(func() {
		model := "unknown CPU"
		if f, err := os.Open("/proc/cpuinfo"); err == nil {
			if m := ParseCPUModel(f); m != "" {
				model = m
			}
			f.Close()
		}
		machine = fmt.Sprintf("%d CPU, %s/%s, %s, %s (GOMAXPROCS %d)",
			runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, model, runtime.Version(), runtime.GOMAXPROCS(0))
	})
	return machine
}

var (
	machineOnce sync.Once
	machine     string
)

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
