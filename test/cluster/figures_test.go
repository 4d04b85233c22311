package clustertest

import (
	"context"
	"flag"
	"sync"
	"testing"
	"time"

	"github.com/concert/ticketing/loadgen"
)

// The figures of the cluster: holds/s through three nodes next to one node
// (same binary, same fixture, both on this machine's cores), and the
// propagation lag of token changes to the nodes that do not run the queue
// manager. They are printed, not asserted:
//
//	go test ./test/cluster -run '^$' -bench Cluster -benchtime 1x
var figPhase = flag.Duration("cluster.phase", 10*time.Second, "length of each load phase of the cluster benchmarks")

// BenchmarkClusterHolds runs BenchmarkHoldPath's closed loop (1,000 users
// over 100 dates of 50 seats: hold a random seat, cancel it) against one
// node, then against three nodes with a third of the users on each.
func BenchmarkClusterHolds(b *testing.B) {
	for _, n := range []int{1, 3} {
		rate, res := holdsThrough(b, n)
		b.Logf("FIGURE %d node(s): %.0f holds/s, hold p50 %.1f ms, p99 %.1f ms, errors %v",
			n, rate, res.HoldLatency.P50Ms, res.HoldLatency.P99Ms, res.Errors)
		b.ReportMetric(rate, "holds/s_"+map[int]string{1: "1node", 3: "3nodes"}[n])
	}
}

func holdsThrough(b *testing.B, n int) (float64, *loadgen.Result) {
	c := newCluster(b, n, "ACTIVE_TOKENS=2000", "HOLD_TTL=5m", "HOLD_LIMIT=4", "LOG_LEVEL=warn")
	c.startAll()
	defer func() {
		for _, p := range c.nodes {
			p.kill()
		}
	}()
	clients := make([]*loadgen.Client, n)
	for i, p := range c.nodes {
		target, err := loadgen.CheckTarget("http://"+p.http, false)
		if err != nil {
			b.Fatal(err)
		}
		clients[i] = loadgen.NewClient(target, loadgen.ClientOptions{AdminKey: "k", MaxConns: 1100, Timeout: 10 * time.Second})
	}
	ctx := context.Background()
	fx, err := loadgen.Setup(ctx, clients[0], loadgen.SetupConfig{Dates: 100, SeatsPerDate: 50, Users: 1000})
	if err != nil {
		b.Fatal(err)
	}
	if n > 1 {
		logLag(b, c)
	}
	var wg sync.WaitGroup
	results := make([]*loadgen.Result, n)
	for i := range n {
		sub := *fx
		sub.Users = fx.Users[i*len(fx.Users)/n : (i+1)*len(fx.Users)/n]
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := loadgen.RunHolds(ctx, clients[i], &sub, loadgen.HoldsConfig{Duration: *figPhase})
			if err != nil {
				b.Error(err)
				return
			}
			results[i] = r
		}()
	}
	wg.Wait()
	var total float64
	for _, r := range results {
		if r != nil {
			total += r.HoldsPerSec
		}
	}
	return total, results[0]
}

// logLag prints the token feed's propagation lag on the nodes that do not
// run the queue manager (their fixture's 1,000 tokens were issued through
// node 1 and pushed to them).
func logLag(b *testing.B, c *testCluster) {
	for _, p := range c.nodes {
		local, _ := c.metric(p, "token_feed_local")
		if local == 1 {
			continue
		}
		p50, _ := c.metricLabel(p, "token_feed_lag_seconds", `quantile="0.5"`)
		p99, _ := c.metricLabel(p, "token_feed_lag_seconds", `quantile="0.99"`)
		cnt, _ := c.metric(p, "token_feed_lag_seconds_count")
		b.Logf("FIGURE token propagation to %s: p50 %.2f ms, p99 %.2f ms over %.0f updates", p.name, p50*1000, p99*1000, cnt)
	}
}
