package loadgen

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

func TestFormatMs(t *testing.T) {
	for ms, want := range map[float64]string{
		0: "0.000 ms", 0.1234: "0.123 ms", 1.234: "1.23 ms", 12.34: "12.3 ms",
		123.4: "123 ms", 999.4: "999 ms", 1234: "1.23 s", 61000: "61.00 s",
	} {
		if got := FormatMs(ms); got != want {
			t.Errorf("FormatMs(%v) = %q, want %q", ms, got, want)
		}
	}
}

func TestGroupInt(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0", 7: "7", 999: "999", 1000: "1,000", 20617: "20,617",
		1234567: "1,234,567", -1234: "-1,234",
	} {
		if got := groupInt(n); got != want {
			t.Errorf("groupInt(%d) = %q, want %q", n, got, want)
		}
	}
	if got := groupFloat(20617.25); got != "20,617.2" && got != "20,617.3" {
		t.Errorf("groupFloat(20617.25) = %q", got)
	}
}

func TestSummarize(t *testing.T) {
	h := hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)
	for i := int64(1); i <= 1000; i++ { // 1..1000 µs
		_ = h.RecordValue(i * 1000 / 1000)
	}
	l := Summarize(h)
	if l.Count != 1000 {
		t.Fatalf("Count = %d", l.Count)
	}
	near := func(name string, got, want float64) {
		if got < want*0.99 || got > want*1.01 {
			t.Errorf("%s = %v ms, want ≈ %v ms", name, got, want)
		}
	}
	near("p50", l.P50Ms, 0.5)
	near("p90", l.P90Ms, 0.9)
	near("p99", l.P99Ms, 0.99)
	near("max", l.MaxMs, 1.0)
	near("mean", l.MeanMs, 0.5005)
	if (Summarize(hdrhistogram.New(1, 10, 2)) != Latency{}) {
		t.Error("empty histogram: want zero Latency")
	}
}

func TestRecorderMergesShardsAndClamps(t *testing.T) {
	r := NewRecorder()
	for w := range 100 {
		r.Record(w, 2*time.Millisecond)
	}
	r.Record(-3, 0)             // below the range: clamped to 1 µs
	r.Record(7, 10*time.Minute) // above: clamped to 5 minutes
	l := r.Summary()
	if l.Count != 102 {
		t.Fatalf("Count = %d, want 102", l.Count)
	}
	if l.P50Ms < 1.99 || l.P50Ms > 2.01 {
		t.Errorf("p50 = %v ms, want 2 ms", l.P50Ms)
	}
	if l.MaxMs < 299_000 || l.MaxMs > 301_000 {
		t.Errorf("max = %v ms, want about 5 minutes", l.MaxMs)
	}
}

func TestWriteReportHolds(t *testing.T) {
	r := &Result{
		Scenario: "holds", Machine: "2 CPU, linux/amd64, Test CPU, go1.26", Target: "http://127.0.0.1:8080",
		Users: 1000, Dates: 100, SeatsPerDate: 50, OfferedRate: 10000, ElapsedSeconds: 20.04,
		Attempts: 200000, Holds: 190000, Conflicts: 9990, HoldsPerSec: 9500, AttemptsPerSec: 10000,
		Errors:        map[string]int64{"HTTP 503 STORE_UNAVAILABLE": 7, "timeout": 3},
		HoldLatency:   Latency{Count: 200000, P50Ms: 1.234, P90Ms: 3.5, P99Ms: 12.34, P999Ms: 40, MaxMs: 1500},
		CancelLatency: &Latency{Count: 190000, P50Ms: 0.9, P99Ms: 5},
	}
	var b strings.Builder
	if err := r.WriteReport(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"open loop at 10,000.0 holds/s offered, 1,000 users over 100 dates × 50 seats, 20.0s",
		"machine   2 CPU, linux/amd64, Test CPU, go1.26",
		"holds          190,000     9,500.0/s",
		"attempts       200,000    10,000.0/s",
		"conflicts        9,990",
		"errors              10",
		"HTTP 503 STORE_UNAVAILABLE",
		"hold      p50 1.23 ms  p90 3.50 ms  p99 12.3 ms  p99.9 40.0 ms  max 1.50 s  (n=200,000)",
		"cancel    p50 0.900 ms",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "HTTP 503") > strings.Index(out, "timeout") {
		t.Errorf("errors not sorted:\n%s", out)
	}
	if strings.Contains(out, "!!!") {
		t.Errorf("report of a clean run shows a violation:\n%s", out)
	}
}

func TestWriteReportHotViolation(t *testing.T) {
	r := &Result{
		Scenario: "hot", Machine: "m", Fans: 10000, Workers: 500, SeatsPerDate: 50, Winners: 51,
		SeatsLeft: 0, ElapsedSeconds: 3, Violations: []string{"OVERSOLD: 51 winners for 50 seats"},
		PaymentLatency: &Latency{Count: 51, P50Ms: 2, P99Ms: 9},
	}
	var b strings.Builder
	_ = r.WriteReport(&b)
	out := b.String()
	for _, want := range []string{"10,000 fans (500 workers) race for 50 seats", "!!! OVERSOLD", "winners   51 / 50 seats", "NOT sold out", "payment   p50 2.00 ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if r.OK() {
		t.Error("OK() with a violation")
	}
}

func TestResultJSON(t *testing.T) {
	r := &Result{Scenario: "holds", Machine: "m", Holds: 3, HoldLatency: Latency{Count: 3, P99Ms: 1.5}, Errors: map[string]int64{}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	_ = json.Unmarshal(b, &back)
	if back["machine"] != "m" || back["holds"] != 3.0 {
		t.Errorf("JSON = %s", b)
	}
	if _, ok := back["winners"]; ok {
		t.Errorf("hot fields in a holds result: %s", b)
	}
	if hl := back["holdLatency"].(map[string]any); hl["p99Ms"] != 1.5 {
		t.Errorf("holdLatency = %v", hl)
	}
}

func TestHotViolations(t *testing.T) {
	if v := hotViolations(50, 50, map[int64][]int64{1: {10}, 2: {11}}); len(v) != 0 {
		t.Errorf("clean sale: %v", v)
	}
	v := hotViolations(2, 3, map[int64][]int64{1: {10, 12}, 2: {11}})
	if len(v) != 2 || !strings.Contains(v[0], "OVERSOLD: 3 winners") || !strings.Contains(v[1], "seat 1 paid by 2 fans") {
		t.Errorf("oversold sale: %v", v)
	}
}

func TestParseCPUModel(t *testing.T) {
	x86 := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\nflags\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n"
	if got := ParseCPUModel(strings.NewReader(x86)); got != "AMD EPYC 7B13 64-Core Processor" {
		t.Errorf("x86: %q", got)
	}
	arm := "processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n\nHardware\t: Neoverse-N1\n"
	if got := ParseCPUModel(strings.NewReader(arm)); got != "Neoverse-N1" {
		t.Errorf("arm: %q", got)
	}
	if got := ParseCPUModel(strings.NewReader("")); got != "" {
		t.Errorf("empty: %q", got)
	}
	if m := Machine(); !strings.Contains(m, "CPU") || !strings.Contains(m, "go1") {
		t.Errorf("Machine() = %q", m)
	}
}
