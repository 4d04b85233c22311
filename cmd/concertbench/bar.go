package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/concert/ticketing/loadgen"
)

// bar shows the progress of each phase on stderr: a live bar when stderr is
// a terminal; otherwise (a file, a pipe) one plain line as each phase ends,
// so that logs get no carriage returns or escape codes. A nil *bar shows
// nothing.
type bar struct {
	mu       sync.Mutex // setup reports from many goroutines
	w        io.Writer
	tty      bool
	duration time.Duration
	phase    string
	last     string                   // the phase's latest description
	pb       *progressbar.ProgressBar // tty only
}

// isTerminal reports whether w is a terminal; a variable for the tests.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

func newBar(w io.Writer, quiet bool, duration time.Duration) *bar {
	if quiet {
		return nil
	}
	return &bar{w: w, tty: isTerminal(w), duration: duration}
}

func (b *bar) update(p loadgen.Progress) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.Phase != b.phase {
		b.finishLocked()
		b.phase = p.Phase
		if b.tty {
			total := p.Total
			if total == 0 { // a time-bound phase
				total = b.phaseDuration(p).Milliseconds()
			}
			b.pb = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(b.w),
				progressbar.OptionSetDescription(p.Phase),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(200*time.Millisecond),
				progressbar.OptionSetElapsedTime(true),
				progressbar.OptionSetPredictTime(false),
			)
		}
	}
	switch {
	case p.Total == 0:
		b.last = fmt.Sprintf("%s %d, %.0f/s, errors %d", p.Phase, p.Done, float64(p.Done)/max(p.Elapsed.Seconds(), 0.001), p.Errors)
		if b.pb != nil {
			_ = b.pb.Set64(min(p.Elapsed.Milliseconds(), b.phaseDuration(p).Milliseconds()))
		}
	default:
		b.last = fmt.Sprintf("%s %d/%d, errors %d", p.Phase, p.Done, p.Total, p.Errors)
		if b.pb != nil {
			_ = b.pb.Set64(p.Done)
		}
	}
	if b.pb != nil {
		b.pb.Describe(b.last)
	}
}

// phaseDuration is the planned length of a time-bound phase.
func (b *bar) phaseDuration(p loadgen.Progress) time.Duration {
	if p.Duration > 0 {
		return p.Duration
	}
	return max(b.duration, time.Second)
}

func (b *bar) finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finishLocked()
}

func (b *bar) finishLocked() {
	switch {
	case b.pb != nil:
		_ = b.pb.Finish()
		fmt.Fprintln(b.w)
	case b.phase != "":
		fmt.Fprintf(b.w, "concertbench: %s\n", b.last)
	}
	b.pb, b.phase, b.last = nil, "", ""
}
