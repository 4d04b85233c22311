package loadgen

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strings"
)

// BaselinePair is one round of an A/B run: the same scenario and mode run
// back to back, each on a fresh server and database, against the baseline
// binary (an older commit) and the binary under test. Either is nil when
// its run produced no result.
type BaselinePair struct {
	Base, New *Result
}

// BaselineComparison is the verdict of an A/B run over its rounds.
type BaselineComparison struct {
	Scenario, Mode string
	Pairs          []BaselinePair
	// Ratios are each round's throughput under test ÷ the baseline's, in
	// round order; a round missing either result has none.
	Ratios []float64
	// Target is "throughput ≥ Want × the baseline's": met only when every
	// round's ratio is (a round below it is not averaged away), unknown
	// when a round has no ratio or broke an invariant.
	Target Target
}

// CompareBaseline scores pairs of scenario in mode against want, the
// throughput ratio a target asks for (issue 8: 4, "≥ 4× the holds/s of the
// landed version measured back to back in the same run").
func CompareBaseline(scenario, mode string, pairs []BaselinePair, want float64) BaselineComparison {
	c := BaselineComparison{Scenario: scenario, Mode: mode, Pairs: pairs}
	c.Target = Target{
		Name: fmt.Sprintf("%s %s: throughput ≥ %s× the baseline's, every round", scenario, mode, trimFloat(want)),
		Want: fmt.Sprintf("≥ %s× in each of %d rounds", trimFloat(want), len(pairs)),
		Got:  "no round measured",
	}
	complete, broken := len(pairs) > 0, false
	for _, p := range pairs {
		if p.Base == nil || p.New == nil || p.Base.Throughput <= 0 {
			complete = false
			continue
		}
		if !p.Base.OK() || !p.New.OK() {
			broken = true
		}
		c.Ratios = append(c.Ratios, p.New.Throughput/p.Base.Throughput)
	}
	if len(c.Ratios) == 0 {
		return c
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	got := make([]string, len(c.Ratios))
	for i, r := range c.Ratios {
		lo, hi = math.Min(lo, r), math.Max(hi, r)
		got[i] = fmt.Sprintf("%.2f×", r)
	}
	c.Target.Got = strings.Join(got, ", ")
	switch {
	case broken:
		c.Target.Note = "a run broke an invariant: its figures do not count"
	case !complete:
		c.Target.Note = "a round has no ratio (a run failed)"
	default:
		ok := lo >= want
		c.Target.Met = &ok
	}
	if len(c.Ratios) > 1 {
		c.Target.Got += fmt.Sprintf(" (%.2f–%.2f×)", lo, hi)
	}
	return c
}

// WriteTable prints each round's figures of both binaries (throughput,
// server CPU per hold where measured, headline p50 and p99), the ratios,
// and the target's verdict. baseName and newName label the binaries.
func (c BaselineComparison) WriteTable(w io.Writer, baseName, newName string) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	p("%s %s, baseline %s against %s, each round on fresh servers and databases\n", c.Scenario, c.Mode, baseName, newName)
	p("%-6s %-9s %16s %-16s %14s %9s %9s  %s\n", "round", "binary", "throughput", "", "server/hold", "p50", "p99", "verdict")
	row := func(round int, name string, r *Result) {
		if r == nil {
			p("%-6d %-9s %16s\n", round, name, "no result")
			return
		}
		l, cpu, verdict := Latency{}, "not measured", "ok"
		if len(r.Ops) > 0 {
			l = r.Ops[0].Latency
		}
		if r.ServerMicrosPerHold > 0 {
			cpu = FormatMicros(r.ServerMicrosPerHold)
		}
		if !r.OK() {
			verdict = "BROKEN"
		}
		p("%-6d %-9s %16s %-16s %14s %9s %9s  %s\n", round, name, groupFloat(r.Throughput), r.ThroughputUnit,
			cpu, FormatMs(l.P50Ms), FormatMs(l.P99Ms), verdict)
		for _, n := range r.Notes {
			p("%-6s %-9s note: %s\n", "", "", n)
		}
	}
	for i, pair := range c.Pairs {
		row(i+1, "baseline", pair.Base)
		row(i+1, "new", pair.New)
		if pair.Base != nil && pair.New != nil && pair.Base.Throughput > 0 {
			ratio := fmt.Sprintf("%.2f× the throughput", pair.New.Throughput/pair.Base.Throughput)
			if pair.Base.ServerMicrosPerHold > 0 && pair.New.ServerMicrosPerHold > 0 {
				ratio += fmt.Sprintf(", %.2f× the server CPU per hold", pair.New.ServerMicrosPerHold/pair.Base.ServerMicrosPerHold)
			}
			p("%-6d %-9s %s\n", i+1, "ratio", ratio)
		}
	}
	verdict := "unknown"
	if c.Target.Met != nil {
		verdict = map[bool]string{true: "met", false: "MISS"}[*c.Target.Met]
	}
	p("\ntarget\n  %-4s %s: want %s, got %s", verdict, c.Target.Name, c.Target.Want, c.Target.Got)
	if c.Target.Note != "" {
		p(" — %s", c.Target.Note)
	}
	p("\n")
	return bw.Flush()
}

// trimFloat prints 4 as "4" and 2.5 as "2.5".
func trimFloat(f float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", f), "0"), ".")
}
