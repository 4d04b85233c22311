package loadgen

import (
	"math"
	"sync/atomic"
	"time"
)

// Pacer is the open-loop schedule: send k (k = 0, 1, 2, …) is due at
// start + k/rate. Workers claim sends with Next; each claim is a distinct k,
// whatever the number of goroutines. A worker that is late (the server or
// the other workers stalled) gets a due time in the past and must measure
// its latency from that intended time, not from when it actually sent:
// that is what keeps a stalled server from hiding the queueing it causes
// (coordinated omission).
//
// A Pacer is a ticker without a goroutine: nothing fires when nobody
// claims, and no send is ever dropped or merged.
type Pacer struct {
	start    time.Time
	interval float64 // nanoseconds between sends
	next     atomic.Int64
}

// NewPacer returns a schedule of rate sends per second from start. rate
// must be > 0.
func NewPacer(start time.Time, rate float64) *Pacer {
	if !(rate > 0) || math.IsInf(rate, 0) {
		panic("loadgen: pacer rate must be a positive finite number")
	}
	return &Pacer{start: start, interval: 1e9 / rate}
}

// At is the intended time of send k.
func (p *Pacer) At(k int64) time.Time {
	return p.start.Add(time.Duration(math.Round(float64(k) * p.interval)))
}

// Next claims the next send and returns its number and intended time.
func (p *Pacer) Next() (int64, time.Time) {
	k := p.next.Add(1) - 1
	return k, p.At(k)
}

// Claimed is the number of sends claimed so far.
func (p *Pacer) Claimed() int64 { return p.next.Load() }

// Due is the number of sends whose intended time is at or before now.
func (p *Pacer) Due(now time.Time) int64 {
	d := now.Sub(p.start)
	if d < 0 {
		return 0
	}
	return int64(math.Floor(float64(d)/p.interval)) + 1
}
