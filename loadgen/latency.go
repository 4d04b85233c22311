package loadgen

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram range: 1 µs to 5 minutes, 3 significant digits (0.1% error).
const (
	histMinMicros = 1
	histMaxMicros = int64(5 * time.Minute / time.Microsecond)
	histSigFigs   = 3
	recorderShard = 16
)

// Recorder collects latencies from many goroutines: it is sharded so that
// a thousand workers do not queue on one lock, and each shard is one HDR
// histogram (about 100 KiB; a histogram per worker would cost 100 MiB).
type Recorder struct {
	shards [recorderShard]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
		_  [40]byte // keep shards on separate cache lines
	}
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	r := &Recorder{}
	for i := range r.shards {
		r.shards[i].h = hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)
	}
	return r
}

// Record adds one latency; worker picks the shard (any int is fine).
// Values beyond the range are clamped to it.
func (r *Recorder) Record(worker int, d time.Duration) {
	us := int64(d / time.Microsecond)
	if us < histMinMicros {
		us = histMinMicros
	}
	if us > histMaxMicros {
		us = histMaxMicros
	}
	s := &r.shards[uint(worker)%recorderShard]
	s.mu.Lock()
	_ = s.h.RecordValue(us)
	s.mu.Unlock()
}

// Merged returns one histogram holding every recorded value.
func (r *Recorder) Merged() *hdrhistogram.Histogram {
	m := hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		m.Merge(s.h)
		s.mu.Unlock()
	}
	return m
}

// Summary is Summarize of the merged histogram.
func (r *Recorder) Summary() Latency { return Summarize(r.Merged()) }

// Latency summarises a latency distribution, in milliseconds.
type Latency struct {
	Count  int64   `json:"count"`
	MeanMs float64 `json:"meanMs"`
	P50Ms  float64 `json:"p50Ms"`
	P90Ms  float64 `json:"p90Ms"`
	P99Ms  float64 `json:"p99Ms"`
	P999Ms float64 `json:"p999Ms"`
	MaxMs  float64 `json:"maxMs"`
}

// Summarize reads the percentiles of h, whose values are microseconds.
func Summarize(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		Count:  h.TotalCount(),
		MeanMs: h.Mean() / 1000,
		P50Ms:  ms(h.ValueAtQuantile(50)),
		P90Ms:  ms(h.ValueAtQuantile(90)),
		P99Ms:  ms(h.ValueAtQuantile(99)),
		P999Ms: ms(h.ValueAtQuantile(99.9)),
		MaxMs:  ms(h.Max()),
	}
}
