package loadgen

import (
	"sync"
	"testing"
	"time"
)

func TestPacerAt(t *testing.T) {
	start := time.Date(2024, 10, 11, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		rate float64
		k    int64
		want time.Duration
	}{
		{1000, 0, 0},
		{1000, 1, time.Millisecond},
		{1000, 1500, 1500 * time.Millisecond},
		{3, 1, 333333333}, // rounded to the nanosecond
		{3, 3, time.Second},
		{20000, 20000 * 3600, time.Hour}, // no drift over long runs
		{0.5, 2, 4 * time.Second},
	}
	for _, tt := range tests {
		p := NewPacer(start, tt.rate)
		if got := p.At(tt.k).Sub(start); got != tt.want {
			t.Errorf("rate %v: At(%d) = +%v, want +%v", tt.rate, tt.k, got, tt.want)
		}
	}
}

func TestPacerNextClaimsEachSendOnce(t *testing.T) {
	start := time.Now()
	p := NewPacer(start, 1e6)
	const workers, each = 8, 1000
	seen := make([][]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				k, at := p.Next()
				if want := p.At(k); !at.Equal(want) {
					t.Errorf("Next() = %d at %v, want at %v", k, at, want)
				}
				seen[w] = append(seen[w], k)
			}
		}()
	}
	wg.Wait()
	got := make([]bool, workers*each)
	for _, ks := range seen {
		for _, k := range ks {
			if k < 0 || k >= int64(len(got)) || got[k] {
				t.Fatalf("send %d claimed twice or out of range", k)
			}
			got[k] = true
		}
	}
	if c := p.Claimed(); c != workers*each {
		t.Errorf("Claimed() = %d, want %d", c, workers*each)
	}
}

func TestPacerDue(t *testing.T) {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	p := NewPacer(start, 100) // one send every 10ms
	for _, tt := range []struct {
		after time.Duration
		want  int64
	}{
		{-time.Second, 0},
		{0, 1},
		{9 * time.Millisecond, 1},
		{10 * time.Millisecond, 2},
		{time.Second, 101},
	} {
		if got := p.Due(start.Add(tt.after)); got != tt.want {
			t.Errorf("Due(+%v) = %d, want %d", tt.after, got, tt.want)
		}
	}
}

// A rate of R over a window W schedules R×W sends, so an open-loop run
// offers exactly the rate asked for.
func TestPacerSendsInWindow(t *testing.T) {
	start := time.Now()
	for _, rate := range []float64{1, 7, 1000, 10000, 33333} {
		p := NewPacer(start, rate)
		end := start.Add(10 * time.Second)
		var n int64
		for {
			_, at := p.Next()
			if !at.Before(end) {
				break
			}
			n++
		}
		if want := int64(rate * 10); n < want-1 || n > want+1 {
			t.Errorf("rate %v over 10s: %d sends, want %d", rate, n, want)
		}
	}
}

func TestNewPacerRejectsBadRates(t *testing.T) {
	for _, rate := range []float64{0, -1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewPacer(rate %v) did not panic", rate)
				}
			}()
			NewPacer(time.Now(), rate)
		}()
	}
}
