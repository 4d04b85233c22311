package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Common holds the settings every scenario shares.
type Common struct {
	// Rate is the open-loop arrival rate per second (fans, journeys,
	// token requests, operations: each scenario says); 0 runs closed loop.
	Rate float64
	// ActiveTokens is the server's ACTIVE_TOKENS if known (0: unknown);
	// with it a scenario refuses at once when the server cannot admit
	// all its users, instead of waiting for tokens that never come.
	ActiveTokens int
	// SetupConcurrency is the number of set-up requests in flight;
	// default 64.
	SetupConcurrency int
	// TokenWait bounds the wait for tokens to become ACTIVE; default 20s.
	TokenWait time.Duration
	// Seed for the random choices; 0 picks one.
	Seed uint64
	// OnProgress, if set, is called as the run goes.
	OnProgress func(Progress)
	// LoadHook, if set, is called with true just before the load phase
	// (after the set-up) and with false just after it (before the
	// checks), e.g. to read the server's figures around the load alone.
	LoadHook func(begin bool)
}

func (c Common) mark(begin bool) {
	if c.LoadHook != nil {
		c.LoadHook(begin)
	}
}

func (c Common) mode() string {
	if c.Rate > 0 {
		return "open"
	}
	return "closed"
}

func (c Common) progress(start time.Time) func(phase string, done, total int64) {
	return func(phase string, done, total int64) {
		if c.OnProgress != nil {
			c.OnProgress(Progress{Phase: phase, Done: done, Total: total, Elapsed: time.Since(start)})
		}
	}
}

// QueueGauges are the queue's figures the server exposes on /metrics.
type QueueGauges struct {
	Active, Waiting int64
}

// ReadQueue reads queue_active and queue_waiting from GET /metrics of the
// first base URL.
func (c *Client) ReadQueue(ctx context.Context) (QueueGauges, error) {
	m, err := c.Metrics(ctx, 0)
	if err != nil {
		return QueueGauges{}, err
	}
	a, okA := m["queue_active"]
	w, okW := m["queue_waiting"]
	if !okA || !okW {
		return QueueGauges{}, errors.New("GET /metrics: no queue_active or queue_waiting")
	}
	return QueueGauges{Active: int64(a), Waiting: int64(w)}, nil
}

// Metrics reads the unlabelled samples and the label-summed samples of
// GET /metrics of base URL i (Prometheus text format) as name → value.
func (c *Client) Metrics(ctx context.Context, i int) (map[string]float64, error) {
	n := c.nodes[i%len(c.nodes)]
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(n.prefix + "/metrics")
	req.Header.SetHost(n.host)
	timeout := c.timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	if err := n.hc.DoTimeout(req, resp, timeout); err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	if resp.StatusCode() != 200 {
		return nil, fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode())
	}
	return ParseMetrics(resp.Body()), nil
}

// ParseMetrics reads a Prometheus text exposition: each sample's value by
// its name, samples of one name with different labels summed.
func ParseMetrics(body []byte) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		name := line
		if i := bytes.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		j := bytes.LastIndexByte(line, ' ')
		if j < 0 {
			continue
		}
		rest := line[j+1:]
		// A sample may end with a timestamp: take the field after the labels.
		if k := bytes.LastIndexByte(line[:j], '}'); k >= 0 {
			fields := bytes.Fields(line[k+1:])
			if len(fields) == 0 {
				continue
			}
			rest = fields[0]
		} else if fields := bytes.Fields(line[len(name):]); len(fields) > 0 {
			rest = fields[0]
		}
		v, err := strconv.ParseFloat(string(rest), 64)
		if err != nil {
			continue
		}
		out[string(name)] += v
		if le, ok := bucketBound(line, name); ok {
			out[string(name)+"{le="+le+"}"] += v
		}
	}
	return out
}

// bucketBound returns the le label of a histogram bucket sample whose
// distribution the usage report prints (the journal's batches), so those
// buckets are kept apart: name{le=<bound>}.
func bucketBound(line, name []byte) (string, bool) {
	if !bytes.HasPrefix(name, []byte("journal_batch_")) || !bytes.HasSuffix(name, []byte("_bucket")) {
		return "", false
	}
	i := bytes.Index(line, []byte(`le="`))
	if i < 0 {
		return "", false
	}
	rest := line[i+4:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	return string(rest[:j]), true
}

// PreflightTokens refuses at once, with a message that says what to do,
// when the server cannot make need more tokens ACTIVE: too few free
// ACTIVE_TOKENS (if known), or a line of waiting tokens ahead.
func PreflightTokens(ctx context.Context, c *Client, scenario string, need, activeTokens int) error {
	q, err := c.ReadQueue(ctx)
	if err != nil {
		return nil // an older server without the gauges: Setup's wait tells
	}
	if q.Waiting > 0 {
		return fmt.Errorf("%w: %s needs %d ACTIVE tokens, but %d tokens already WAIT in line on the server "+
			"(an earlier queue-surge?); new tokens queue behind them until they leave (WAIT_IDLE_TTL, 5 minutes "+
			"by default, without a poll): wait, or start on an empty database", ErrTokensNotActive, scenario, need, q.Waiting)
	}
	if activeTokens > 0 && int(q.Active)+need > activeTokens {
		return fmt.Errorf("%w: %s needs %d ACTIVE tokens at once, but the server admits ACTIVE_TOKENS=%d and %d are "+
			"already ACTIVE (tokens of earlier runs stay ACTIVE until TOKEN_IDLE_TTL passes without use, also across "+
			"restarts): start the server with ACTIVE_TOKENS >= %d, wait, or start on an empty database",
			ErrTokensNotActive, scenario, need, activeTokens, q.Active, int(q.Active)+need)
	}
	return nil
}

// warmConns opens about n keep-alive connections (GET /healthz, n at once),
// so that a burst does not measure TCP handshakes; key(i) picks the base
// URL of request i.
func warmConns(ctx context.Context, c *Client, n int, key func(int) int64) {
	var wg sync.WaitGroup
	begin := make(chan struct{})
	path := []byte("/healthz")
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := c.newConn()
			<-begin
			if ctx.Err() == nil {
				_, _ = w.do(key(i), fasthttp.MethodGet, path, nil, nil)
			}
		}()
	}
	close(begin)
	wg.Wait()
}

// runArrivals runs n units of work. Closed loop (rate 0): workers
// goroutines take units in order, all released at once, and a unit's
// intended time is when its worker takes it. Open loop: unit k is due at
// start + k/rate and runs in a goroutine of its own started then, so a
// slow server cannot slow the arrivals; its latency counts from then. fn
// gets a worker number (for sharding), the unit and its intended time.
func runArrivals(ctx context.Context, n, workers int, rate float64, start time.Time,
	fn func(worker, unit int, intended time.Time)) {
	var wg sync.WaitGroup
	if rate <= 0 {
		var next sync.Mutex
		k := 0
		claim := func() int {
			next.Lock()
			defer next.Unlock()
			if k >= n {
				return -1
			}
			k++
			return k - 1
		}
		begin := make(chan struct{})
		for wi := range min(workers, n) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-begin
				if d := time.Until(start); d > 0 {
					time.Sleep(d)
				}
				for ctx.Err() == nil {
					u := claim()
					if u < 0 {
						return
					}
					fn(wi, u, time.Now())
				}
			}()
		}
		close(begin)
		wg.Wait()
		return
	}
	p := NewPacer(start, rate)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for k := range n {
		due := p.At(int64(k))
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(k, k, due)
		}()
	}
	wg.Wait()
}

// seatsLeft asks available-seats of every date and returns the free seat
// ids of each date by day.
func seatsLeft(ctx context.Context, c *Client, concertID int64, dates []Date, concurrency int) (map[string][]int64, error) {
	out := make(map[string][]int64, len(dates))
	var mu sync.Mutex
	sem := make(chan struct{}, max(concurrency, 1))
	var wg sync.WaitGroup
	var firstErr error
	for _, d := range dates {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			seats, err := availableSeats(ctx, c, concertID, d.Day)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			ids := make([]int64, len(seats))
			for i, s := range seats {
				ids[i] = s.ID
			}
			out[d.Day] = ids
		}()
	}
	wg.Wait()
	return out, firstErr
}

// finishResult fills the common figures of r from m.
func finishResult(r *Result, c *Client, m *meter, window time.Duration) {
	r.Machine = Machine()
	r.Target = c.Target()
	r.Ops = m.stats(window)
	for _, o := range r.Ops {
		r.Requests += o.Count
	}
	if window > 0 {
		r.RequestsPerSec = float64(r.Requests) / window.Seconds()
	}
	if r.Errors == nil {
		r.Errors = map[string]int64{}
	}
	for k, v := range m.errors() {
		r.Errors[k] += v
	}
}

func itoa(n int) string           { return strconv.Itoa(n) }
func ftoa(f float64) string       { return strconv.FormatFloat(f, 'f', -1, 64) }
func i64toa(n int64) string       { return strconv.FormatInt(n, 10) }
func dtoa(d time.Duration) string { return d.String() }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// rateString renders a rate with one decimal.
func rateString(r float64) string { return strconv.FormatFloat(r, 'f', 1, 64) }
