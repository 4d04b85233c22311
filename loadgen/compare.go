package loadgen

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"time"
)

// ComparedFigure is one figure of two reports side by side.
type ComparedFigure struct {
	Run, Figure string
	Old, New    float64
	// HigherIsBetter tells how to read the change.
	HigherIsBetter bool
	// Missing is "old" or "new" when one report lacks the figure.
	Missing string
}

// Change is (new − old) / old, NaN if old is 0.
func (f ComparedFigure) Change() float64 {
	if f.Old == 0 {
		return math.NaN()
	}
	return (f.New - f.Old) / f.Old
}

// CompareReports lines up the figures of two reports: ceilings, then each
// run (matched by scenario and mode) — throughput, requests/s, the first
// kind of request's latency percentiles, errors.
func CompareReports(old, cur *Report) []ComparedFigure {
	var out []ComparedFigure
	add := func(run, fig string, o, n float64, higher bool, missing string) {
		out = append(out, ComparedFigure{Run: run, Figure: fig, Old: o, New: n, HigherIsBetter: higher, Missing: missing})
	}
	if a, b := old.Ceilings.Postgres, cur.Ceilings.Postgres; a != nil && b != nil {
		add("(a) PostgreSQL", "rows/s", a.RowsPerSec, b.RowsPerSec, true, "")
	}
	if a, b := old.Ceilings.HTTP, cur.Ceilings.HTTP; a != nil && b != nil {
		add("(b) GET "+b.Path, "req/s", a.RequestsPerSec, b.RequestsPerSec, true, "")
	}
	if a, b := old.Ceilings.Generator, cur.Ceilings.Generator; a != nil && b != nil {
		add("(c) generator", "req/s", a.RequestsPerSec, b.RequestsPerSec, true, "")
	}
	seen := map[string]bool{}
	for _, n := range cur.Results {
		label := n.Label()
		seen[label] = true
		o := old.Find(n.Scenario, n.Mode)
		if o == nil {
			add(label, "throughput ("+n.ThroughputUnit+")", 0, n.Throughput, true, "old")
			continue
		}
		add(label, "throughput ("+n.ThroughputUnit+")", o.Throughput, n.Throughput, true, "")
		add(label, "requests/s", o.RequestsPerSec, n.RequestsPerSec, true, "")
		if len(n.Ops) > 0 {
			name := n.Ops[0].Name
			if oo := o.Op(name); oo != nil {
				nl, ol := n.Ops[0].Latency, oo.Latency
				add(label, name+" p50 ms", ol.P50Ms, nl.P50Ms, false, "")
				add(label, name+" p90 ms", ol.P90Ms, nl.P90Ms, false, "")
				add(label, name+" p99 ms", ol.P99Ms, nl.P99Ms, false, "")
				add(label, name+" p99.9 ms", ol.P999Ms, nl.P999Ms, false, "")
				add(label, name+" max ms", ol.MaxMs, nl.MaxMs, false, "")
			}
		}
		if o.ServerMicrosPerHold > 0 || n.ServerMicrosPerHold > 0 {
			add(label, "server CPU µs per hold", o.ServerMicrosPerHold, n.ServerMicrosPerHold, false, "")
		}
		add(label, "errors", float64(o.ErrorCount()), float64(n.ErrorCount()), false, "")
		add(label, "broken checks", float64(len(o.Violations)), float64(len(n.Violations)), false, "")
	}
	for _, o := range old.Results {
		if !seen[o.Label()] {
			add(o.Label(), "throughput ("+o.ThroughputUnit+")", o.Throughput, 0, true, "new")
		}
	}
	return out
}

// WriteComparison writes the comparison of two reports as a table.
func WriteComparison(w io.Writer, old, cur *Report, oldName, newName string) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	p("old  %s  %s\n     %s\n", oldName, old.StartedAt.UTC().Format(time.RFC3339), old.Machine)
	p("new  %s  %s\n     %s\n", newName, cur.StartedAt.UTC().Format(time.RFC3339), cur.Machine)
	if old.Machine.CPUModel != cur.Machine.CPUModel || old.Machine.Cores != cur.Machine.Cores {
		p("!!! the two runs come from different machines: the changes say little\n")
	}
	p("\n%-22s %-30s %14s %14s %9s\n", "run", "figure", "old", "new", "change")
	last := ""
	for _, f := range CompareReports(old, cur) {
		run := f.Run
		if run == last {
			run = ""
		}
		last = f.Run
		change := "—"
		switch {
		case f.Missing != "":
			change = "only in " + map[string]string{"old": "new", "new": "old"}[f.Missing]
		case !math.IsNaN(f.Change()):
			c := f.Change() * 100
			change = fmt.Sprintf("%+.1f %%", c)
			better := (c > 0) == f.HigherIsBetter
			if math.Abs(c) >= 5 && c != 0 {
				if better {
					change += " better"
				} else {
					change += " worse"
				}
			}
		}
		p("%-22s %-30s %14s %14s %9s\n", run, f.Figure, figure(f.Old), figure(f.New), change)
	}
	return bw.Flush()
}

func figure(v float64) string {
	if v != 0 && math.Abs(v) < 100 {
		return fmt.Sprintf("%.3g", v)
	}
	return groupFloat(v)
}
