package loadgen

import (
	"maps"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// OpStats are the figures of one kind of request of a run ("hold", "pay",
// "token", ...): how many, how fast, each status code's count, the latency
// summary, the points of its percentile plot and its course over time.
type OpStats struct {
	Name   string  `json:"name"`
	Count  int64   `json:"count"`
	PerSec float64 `json:"perSec"`
	// Status counts the answers by HTTP status ("200", "409"), and the
	// requests that got none as "transport".
	Status      map[string]int64  `json:"status"`
	Latency     Latency           `json:"latency"`
	Percentiles []PercentilePoint `json:"percentiles,omitempty"`
	Timeline    []TimePoint       `json:"timeline,omitempty"`
}

// PercentilePoint is one point of a latency percentile plot.
type PercentilePoint struct {
	Percentile float64 `json:"p"`
	Ms         float64 `json:"ms"`
}

// TimePoint is one bucket of a run's course over time: the requests
// completed in [T, T+Width) seconds after the load began, their rate and
// their latency (p50 and p99 read from a coarse histogram, within about
// 9%; max exact).
type TimePoint struct {
	T      float64 `json:"t"`
	Width  float64 `json:"w"`
	Count  int64   `json:"n"`
	PerSec float64 `json:"perSec"`
	P50Ms  float64 `json:"p50Ms"`
	P99Ms  float64 `json:"p99Ms"`
	MaxMs  float64 `json:"maxMs"`
}

// percentileLadder are the percentiles of the HDR plot: evenly spaced on
// the usual 1/(1-q) axis.
var percentileLadder = []float64{0, 10, 25, 50, 75, 90, 95, 97.5, 99, 99.5, 99.75, 99.9, 99.95, 99.99, 99.995, 99.999, 100}

// Percentiles reads the plot points of h (values in µs).
func Percentiles(h *hdrhistogram.Histogram) []PercentilePoint {
	if h.TotalCount() == 0 {
		return nil
	}
	out := make([]PercentilePoint, 0, len(percentileLadder))
	for _, q := range percentileLadder {
		v := h.ValueAtQuantile(q)
		if q == 100 {
			v = h.Max()
		}
		out = append(out, PercentilePoint{Percentile: q, Ms: float64(v) / 1000})
	}
	return out
}

// meter measures the requests of one run, per kind of request.
type meter struct {
	start time.Time
	ops   []*opMeter
	mu    sync.Mutex
	errs  map[string]int64 // unexpected outcomes by kind
}

// opMeter measures one kind of request.
type opMeter struct {
	name      string
	rec       *Recorder
	tl        *timeline
	status    [600]atomic.Int64 // by HTTP status; 0 = no answer
	unchecked atomic.Int64
}

func newMeter(start time.Time, names ...string) *meter {
	m := &meter{start: start, errs: map[string]int64{}}
	for _, n := range names {
		m.ops = append(m.ops, &opMeter{name: n, rec: NewRecorder(), tl: newTimeline(start)})
	}
	return m
}

// op returns the meter of kind i (in the order of newMeter's names).
func (m *meter) op(i int) *opMeter { return m.ops[i] }

// observe records one request sent at (or due at) intended and answered
// now with status (0 if it got no answer); it returns the latency.
func (o *opMeter) observe(worker int, intended time.Time, status int) time.Duration {
	now := time.Now()
	d := now.Sub(intended)
	o.rec.Record(worker, d)
	o.tl.record(now, d)
	if status < 0 || status >= len(o.status) {
		status = 0
	}
	o.status[status].Add(1)
	return d
}

// fail counts one unexpected outcome.
func (m *meter) fail(key string) {
	m.mu.Lock()
	m.errs[key]++
	m.mu.Unlock()
}

// failAt counts an unexpected answer (status, code) or transport error of
// the request named op.
func (m *meter) failAt(op string, status int, code string, err error) {
	switch {
	case err != nil:
		m.fail(op + ": " + transportKind(err))
	default:
		m.fail(op + ": " + outcomeKey(status, code))
	}
}

// errors returns a copy of the unexpected outcomes.
func (m *meter) errors() map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.errs)
}

// stats summarises every kind of request over window (the scheduled
// length of the load, for the rates).
func (m *meter) stats(window time.Duration) []OpStats {
	var out []OpStats
	for _, o := range m.ops {
		h := o.rec.Merged()
		if h.TotalCount() == 0 {
			continue
		}
		s := OpStats{Name: o.name, Count: h.TotalCount(), Status: map[string]int64{},
			Latency: Summarize(h), Percentiles: Percentiles(h), Timeline: o.tl.series()}
		if window > 0 {
			s.PerSec = float64(s.Count) / window.Seconds()
		}
		for code := range o.status {
			if n := o.status[code].Load(); n > 0 {
				key := strconv.Itoa(code)
				if code == 0 {
					key = "transport"
				}
				s.Status[key] = n
			}
		}
		out = append(out, s)
	}
	return out
}

// Timeline: completions in slots of 10 ms, each with a coarse log-linear
// latency histogram (8 sub-buckets per power of two of microseconds) and
// the exact maximum; slots are allocated on first use.
const (
	tlSlot     = 10 * time.Millisecond
	tlMaxSlots = int(30 * time.Minute / tlSlot)
	tlSub      = 8
	tlBuckets  = 40 * tlSub
)

type timeline struct {
	start time.Time
	slots []atomic.Pointer[tlSlotData]
}

type tlSlotData struct {
	count atomic.Int64
	maxUs atomic.Int64
	hist  [tlBuckets]atomic.Uint32
}

func newTimeline(start time.Time) *timeline {
	return &timeline{start: start, slots: make([]atomic.Pointer[tlSlotData], tlMaxSlots)}
}

// tlBucket maps microseconds to a log-linear bucket.
func tlBucket(us int64) int {
	if us < tlSub {
		return int(max(us, 0))
	}
	e := bits.Len64(uint64(us)) - 1 // 2^e <= us < 2^(e+1), e >= 3
	sub := int((us >> (e - 3)) & (tlSub - 1))
	b := (e-2)*tlSub + sub
	return min(b, tlBuckets-1)
}

// tlValue is a representative value (µs) of bucket b: its midpoint.
func tlValue(b int) float64 {
	if b < tlSub {
		return float64(b)
	}
	e := b/tlSub + 2
	sub := b % tlSub
	lo := float64(uint64(1)<<e) + float64(sub)*float64(uint64(1)<<(e-3))
	return lo + float64(uint64(1)<<(e-3))/2
}

func (t *timeline) record(at time.Time, d time.Duration) {
	i := int(at.Sub(t.start) / tlSlot)
	if i < 0 {
		i = 0
	}
	if i >= len(t.slots) {
		i = len(t.slots) - 1
	}
	s := t.slots[i].Load()
	if s == nil {
		s = &tlSlotData{}
		if !t.slots[i].CompareAndSwap(nil, s) {
			s = t.slots[i].Load()
		}
	}
	us := int64(d / time.Microsecond)
	s.count.Add(1)
	s.hist[tlBucket(us)].Add(1)
	for {
		m := s.maxUs.Load()
		if us <= m || s.maxUs.CompareAndSwap(m, us) {
			break
		}
	}
}

// series merges the slots into at most about 120 buckets of a round width.
func (t *timeline) series() []TimePoint {
	last := -1
	for i := range t.slots {
		if t.slots[i].Load() != nil {
			last = i
		}
	}
	if last < 0 {
		return nil
	}
	span := time.Duration(last+1) * tlSlot
	width := niceWidth(span / 120)
	per := int(width / tlSlot)
	var out []TimePoint
	for from := 0; from <= last; from += per {
		var hist [tlBuckets]int64
		var n, maxUs int64
		for i := from; i < from+per && i <= last; i++ {
			s := t.slots[i].Load()
			if s == nil {
				continue
			}
			n += s.count.Load()
			maxUs = max(maxUs, s.maxUs.Load())
			for b := range hist {
				hist[b] += int64(s.hist[b].Load())
			}
		}
		p := TimePoint{T: (time.Duration(from) * tlSlot).Seconds(), Width: width.Seconds(), Count: n,
			PerSec: float64(n) / width.Seconds()}
		if n > 0 {
			p.P50Ms = histQuantile(hist[:], n, 0.50) / 1000
			p.P99Ms = histQuantile(hist[:], n, 0.99) / 1000
			p.MaxMs = float64(maxUs) / 1000
			p.P50Ms, p.P99Ms = math.Min(p.P50Ms, p.MaxMs), math.Min(p.P99Ms, p.MaxMs)
		}
		out = append(out, p)
	}
	return out
}

func histQuantile(hist []int64, n int64, q float64) float64 {
	rank := int64(math.Ceil(q * float64(n)))
	var seen int64
	for b, c := range hist {
		seen += c
		if seen >= rank && c > 0 {
			return tlValue(b)
		}
	}
	return 0
}

// niceWidth rounds d up to 10, 20, 50 ms, 100, 200, 500 ms, 1, 2, 5, 10,
// 20, 30, 60 s.
func niceWidth(d time.Duration) time.Duration {
	for _, w := range []time.Duration{10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 30000, 60000} {
		if w*time.Millisecond >= d {
			return w * time.Millisecond
		}
	}
	return time.Minute
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
