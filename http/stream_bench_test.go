package http_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	stdhttp "net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/node"
)

// BenchmarkTokenStreams holds many idle token streams open on one node and
// reports what they cost the node's process: memory per stream (Go heap,
// resident set), goroutines, and CPU idle (heartbeats, keep-alive polls)
// and while the line moves (every waiter's position changes all the time,
// so every stream gets an event per STREAM_INTERVAL). For comparison, it
// then measures what the same fans would cost polling GET /users/token.
//
// The clients run in a child process (this test binary again, as
// TestStreamBenchClients), so that their sockets, goroutines and CPU are
// not counted. Each side needs a file descriptor per stream: with
// `ulimit -n` below the wanted count plus a margin, it opens as many as the
// limit allows and says so (the figures per stream still hold).
//
//	make bench-streams          # STREAMS=20000 by default
//	STREAMS=5000 go test ./http -run '^$' -bench TokenStreams -benchtime 1x
func BenchmarkTokenStreams(b *testing.B) {
	want := 20_000
	if v, err := strconv.Atoi(os.Getenv("STREAMS")); err == nil && v > 0 {
		want = v
	}
	n := min(want, fdRoom()-100)
	if n < want {
		b.Logf("ulimit -n allows %d streams, not %d: measuring %d", fdRoom(), want, n)
	}
	const active = 100
	const spare = 1000 // admitted while the line moves without streams
	e := startNodeTB(b, node.Config{ActiveTokens: active, StreamLimit: n + 10,
		WaitIdleTTL: time.Hour, TokenIdleTTL: time.Hour, SnapshotEvery: 100_000})
	ctx := context.Background()

	// The first tokens are ACTIVE, the rest wait in issue order.
	tokens := make([]string, active+spare+n)
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(tokens); i += 64 {
				reply, err := e.n.Router().Request(ctx, "queue", "main", &messages.IssueToken{UserId: int64(i + 1)})
				if err != nil {
					failed.Store(err)
					return
				}
				tokens[i] = reply.(*messages.TokenResult).GetToken().GetToken()
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatalf("issue tokens: %v", err)
	}
	// The line is in issue order, which is token id order, not i's.
	order := make([]string, len(tokens))
	for _, tok := range tokens {
		st, _ := e.n.Router().Request(ctx, "queue", "main", &messages.GetToken{Token: tok})
		order[st.(*messages.TokenResult).GetToken().GetId()-1] = tok
	}
	addr := strings.TrimPrefix(e.base, "http://")

	// move makes the line move for d: an ACTIVE token expires every 10 ms
	// (in issue order, from order[next]) and the head of the line takes its
	// place, so every waiter's place changes all the time. It returns the
	// CPU over d and the next token to expire.
	move := func(d time.Duration, next int) (float64, int) {
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(10 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					_, _ = e.n.Router().Request(ctx, "queue", "main", &messages.ExpireToken{Token: order[next], Reason: expiredIdle})
					next++
				}
			}
		}()
		cpu := cpuOver(d)
		close(stop)
		<-done
		return cpu, next
	}

	settle := func() { runtime.GC(); runtime.GC(); time.Sleep(200 * time.Millisecond) }
	settle()
	heap0, rss0, gr0 := heapInUse(), rssBytes(), runtime.NumGoroutine()
	idle0 := cpuOver(5 * time.Second)
	moving0, next := move(5*time.Second, 0)
	if next > spare {
		b.Fatalf("%d admissions, more than the %d spare tokens", next, spare)
	}
	waiting := order[active+next : active+next+n]
	file := writeLines(b, waiting)
	settle()

	child := startClients(b, "stream", addr, file, 0)
	waitLine(b, child.out, "ready")
	metric := func(name string) float64 {
		res, err := stdhttp.Get(e.base + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		v, _ := metricValue(string(raw), name, "")
		return v
	}
	settle()
	heap1, rss1, gr1 := heapInUse(), rssBytes(), runtime.NumGoroutine()
	open := metric("token_streams_open")
	idle1 := cpuOver(16 * time.Second) // a heartbeat (15 s) for every stream
	heartbeats := metric("token_stream_heartbeats_total")

	events0, churnStart := metric("token_stream_events_total"), time.Now()
	churn, _ := move(10*time.Second, next)
	events := (metric("token_stream_events_total") - events0) / time.Since(churnStart).Seconds()
	child.stop()

	// The same fans polling instead: as many requests as they can, from
	// 64 keep-alive connections, with the waiting tokens.
	settle()
	polls := startClients(b, "poll", addr, file, 64)
	waitLine(b, polls.out, "ready")
	pollStart := time.Now()
	pollCPU := cpuOver(10 * time.Second)
	count := polls.stop()
	pollRate := float64(count) / time.Since(pollStart).Seconds()

	perStream := func(after, before float64) float64 { return (after - before) / open }
	b.ReportMetric(open, "streams")
	b.ReportMetric(perStream(float64(heap1), float64(heap0)), "heap-B/stream")
	b.ReportMetric(perStream(float64(rss1), float64(rss0)), "rss-B/stream")
	b.ReportMetric(perStream(float64(gr1), float64(gr0)), "goroutines/stream")
	b.ReportMetric(100*(idle1-idle0), "idle-cpu-%")
	b.ReportMetric(100*(churn-moving0), "moving-cpu-%")
	b.ReportMetric(events, "events/s")
	if heartbeats < open {
		b.Errorf("%v heartbeats for %v streams in 16 s", heartbeats, open)
	}
	fmt.Printf("\n%d open token streams on one node (GOMAXPROCS %d):\n", int(open), runtime.GOMAXPROCS(0))
	fmt.Printf("  memory: Go heap %+.1f MiB (%.0f B/stream), resident %+.1f MiB (%.0f B/stream), goroutines %+d\n",
		float64(heap1-heap0)/(1<<20), perStream(float64(heap1), float64(heap0)),
		float64(rss1-rss0)/(1<<20), perStream(float64(rss1), float64(rss0)), gr1-gr0)
	fmt.Printf("  CPU of the node's process (100%% = one core):\n"+
		"    line still:  %5.1f%% without streams, %5.1f%% with them (heartbeats, keep-alive polls)\n"+
		"    line moving: %5.1f%% without streams, %5.1f%% with them (%.0f events/s sent): %.1f µs per event\n",
		100*idle0, 100*idle1, 100*moving0, 100*churn, events, 1e6*(churn-moving0)/events)
	fmt.Printf("  polling instead: %.0f GET /users/token/s at %.0f%% CPU = %.1f µs CPU per poll;\n"+
		"    %d fans polling once a second would take %.2f cores; streaming them takes %.3f cores more than none\n"+
		"    while the line is still, %.3f while it moves\n",
		pollRate, 100*pollCPU, 1e6*pollCPU/pollRate, int(open), open*pollCPU/pollRate, idle1-idle0, churn-moving0)
	if n < 20_000 {
		fmt.Printf("  at 20,000 streams (linear in the count): heap %+.0f MiB, resident %+.0f MiB\n",
			20_000*perStream(float64(heap1), float64(heap0))/(1<<20), 20_000*perStream(float64(rss1), float64(rss0))/(1<<20))
	}
	for b.Loop() {
	}
}

// expiredIdle is the idle expiry reason (actors.ExpiredReasonIdle).
const expiredIdle = "idle"

// TestStreamBenchClients is BenchmarkTokenStreams' client process; it runs
// only when that benchmark starts it.
func TestStreamBenchClients(t *testing.T) {
	mode := os.Getenv("STREAM_BENCH_MODE")
	if mode == "" {
		t.Skip("the client side of BenchmarkTokenStreams")
	}
	addr, file := os.Getenv("STREAM_BENCH_ADDR"), os.Getenv("STREAM_BENCH_TOKENS")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tokens := strings.Fields(string(raw))
	stop := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stop) }()
	switch mode {
	case "stream":
		var opened atomic.Int64
		var wg sync.WaitGroup
		conns := make(chan net.Conn, len(tokens))
		for w := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(tokens); i += 32 {
					c, err := openRawStream(addr, tokens[i])
					if err != nil {
						fmt.Fprintln(os.Stderr, "stream:", err)
						continue
					}
					opened.Add(1)
					conns <- c
				}
			}()
		}
		wg.Wait()
		close(conns)
		for c := range conns {
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
		fmt.Printf("ready %d\n", opened.Load())
		<-stop
	case "poll":
		workers, _ := strconv.Atoi(os.Getenv("STREAM_BENCH_WORKERS"))
		var count atomic.Int64
		client := &stdhttp.Client{Transport: &stdhttp.Transport{MaxIdleConnsPerHost: workers}}
		for w := range workers {
			go func() {
				for i := w; ; i += workers {
					req, _ := stdhttp.NewRequest("GET", "http://"+addr+"/users/token", nil)
					req.Header.Set("Authorization", "Bearer "+tokens[i%len(tokens)])
					res, err := client.Do(req)
					if err != nil {
						continue
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					count.Add(1)
				}
			}()
		}
		fmt.Println("ready")
		<-stop
		fmt.Printf("count %d\n", count.Load())
	}
}

// openRawStream opens one stream and reads its header and first event.
func openRawStream(addr, token string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c, "GET /users/token/stream HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n\r\n", token)
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	blank := 0
	for blank < 2 { // the header's end, then the first event's
		line, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, err
		}
		if strings.TrimRight(line, "\r\n") == "" {
			blank++
		} else if blank == 0 && strings.HasPrefix(line, "HTTP/1.1 ") && !strings.Contains(line, " 200 ") {
			c.Close()
			return nil, fmt.Errorf("answer %s", strings.TrimSpace(line))
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, nil
}

// clients is a running client process.
type clients struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startClients(b *testing.B, mode, addr, file string, workers int) *clients {
	cmd := exec.Command(os.Args[0], "-test.run=^TestStreamBenchClients$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STREAM_BENCH_MODE="+mode, "STREAM_BENCH_ADDR="+addr,
		"STREAM_BENCH_TOKENS="+file, "STREAM_BENCH_WORKERS="+strconv.Itoa(workers))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &clients{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	b.Cleanup(func() { c.stop() })
	return c
}

// stop ends the client process and returns the count it printed, if any.
func (c *clients) stop() int64 {
	if c.cmd.ProcessState != nil {
		return 0
	}
	c.stdin.Close()
	var count int64
	for {
		line, err := c.out.ReadString('\n')
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "count "); ok {
			count, _ = strconv.ParseInt(v, 10, 64)
		}
		if err != nil {
			break
		}
	}
	_ = c.cmd.Wait()
	return count
}

func waitLine(b *testing.B, r *bufio.Reader, prefix string) {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			b.Fatalf("client process: %v", err)
		}
		if strings.HasPrefix(line, prefix) {
			b.Logf("clients: %s", strings.TrimSpace(line))
			return
		}
	}
}

func writeLines(b *testing.B, lines []string) string {
	f, err := os.CreateTemp(b.TempDir(), "tokens")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "\n")); err != nil {
		b.Fatal(err)
	}
	return f.Name()
}

// fdRoom is how many more files this process may open.
func fdRoom() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1 << 20
	}
	entries, _ := os.ReadDir("/proc/self/fd")
	return int(lim.Cur) - len(entries)
}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// rssBytes is the process's resident set size.
func rssBytes() uint64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuOver sleeps d and returns the process's CPU time over it as a
// fraction of one core.
func cpuOver(d time.Duration) float64 {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start, t0 := cpu(), time.Now()
	time.Sleep(d)
	return float64(cpu()-start) / float64(time.Since(t0))
}
