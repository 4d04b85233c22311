package loadgen

import (
	"strings"
	"testing"
)

func TestCompareBaseline(t *testing.T) {
	run := func(holdsPerSec, micros float64, violations ...string) *Result {
		return &Result{Scenario: "fresh-holds", Mode: "closed", Throughput: holdsPerSec, ThroughputUnit: "durable holds/s",
			ServerMicrosPerHold: micros, Violations: violations,
			Ops: []OpStats{{Name: "hold", Latency: Latency{Count: 10, P50Ms: 5, P99Ms: 20}}}}
	}
	verdict := func(c BaselineComparison) string {
		if c.Target.Met == nil {
			return "unknown"
		}
		return map[bool]string{true: "met", false: "missed"}[*c.Target.Met]
	}
	cases := []struct {
		name    string
		pairs   []BaselinePair
		want    string
		ratios  int
		gotHas  string
		noteHas string
	}{
		{"every round at 4× or more", []BaselinePair{{run(1000, 200), run(4000, 60)}, {run(1100, 190), run(4600, 55)}},
			"met", 2, "4.00×, 4.18× (4.00–4.18×)", ""},
		// One round below is not averaged away by a better one.
		{"one round below", []BaselinePair{{run(1000, 200), run(5000, 60)}, {run(1000, 200), run(3900, 60)}},
			"missed", 2, "5.00×, 3.90×", ""},
		{"a broken run does not count", []BaselinePair{{run(1000, 200), run(9000, 60, "seat sold twice")}},
			"unknown", 1, "9.00×", "broke an invariant"},
		{"a failed run leaves its round without a ratio", []BaselinePair{{run(1000, 200), run(5000, 60)}, {nil, run(5000, 60)}},
			"unknown", 1, "5.00×", "a run failed"},
		{"no result at all", []BaselinePair{{nil, nil}}, "unknown", 0, "no round measured", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := CompareBaseline("fresh-holds", "closed", tc.pairs, 4)
			if got := verdict(c); got != tc.want {
				t.Errorf("verdict %s, want %s (%+v)", got, tc.want, c.Target)
			}
			if len(c.Ratios) != tc.ratios || !strings.Contains(c.Target.Got, tc.gotHas) || !strings.Contains(c.Target.Note, tc.noteHas) {
				t.Errorf("ratios %v, got %q, note %q", c.Ratios, c.Target.Got, c.Target.Note)
			}
			var out strings.Builder
			if err := c.WriteTable(&out, "concertd-old", "concertd"); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "baseline concertd-old against concertd") || !strings.Contains(out.String(), tc.gotHas) {
				t.Errorf("table:\n%s", out.String())
			}
		})
	}
	// The table gives each round's CPU ratio where both sides measured it.
	var out strings.Builder
	ran := run(2500, 80)
	ran.Notes = []string{"every seat was tried at 3.7 s"}
	_ = CompareBaseline("fresh-holds", "closed", []BaselinePair{{run(1000, 200), ran}}, 4).WriteTable(&out, "a", "b")
	for _, want := range []string{"2.50× the throughput, 0.40× the server CPU per hold", "200.0 µs", "MISS", "note: every seat was tried at 3.7 s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
