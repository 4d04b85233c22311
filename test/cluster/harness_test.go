// Package clustertest runs real concertd processes as one cluster on
// loopback, against a real PostgreSQL (pgtest), and checks what operators
// and clients must be able to rely on when nodes come, go and crash.
//
// The node binary is built without -race: Proto.Actor's cluster has known
// data races of its own (#1131 in cluster.Get, fixed upstream after the
// pinned version; #1108 in gossip) that a -race build reports. The test
// process itself only speaks HTTP.
//
// The short tests (a walk-through across three nodes, one seat raced from
// three nodes) run with `make test` unless -short; the long ones (crash,
// join, rolling restart, duplicate activation, figures) run with
// CLUSTER_LONG=1 (`make test-cluster`).
package clustertest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	stdhttp "net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/concert/ticketing/persistence/pgtest"
)

var nodeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "clustertest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nodeBin = filepath.Join(dir, "concertd")
	pgtest.Main(m) // exits
}

var buildOnce sync.Once
var buildErr error

// buildNode builds concertd once per test binary, without -race.
func buildNode(t testing.TB) {
	t.Helper()
	buildOnce.Do(func() {
		args := []string{"build", "-o", nodeBin}
		if os.Getenv("CLUSTER_NODE_RACE") != "" {
			args = append(args, "-race") // to see the library's races for yourself
		}
		out, err := exec.Command("go", append(args, "github.com/concert/ticketing/cmd/concertd")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts concertd processes")
	}
}

func skipUnlessLong(t *testing.T) {
	t.Helper()
	skipShort(t)
	if os.Getenv("CLUSTER_LONG") == "" {
		t.Skip("long cluster test: set CLUSTER_LONG=1 (make test-cluster)")
	}
}

// proc is one concertd process.
type proc struct {
	t           testing.TB
	name        string
	http        string // host:port
	clusterPort int
	env         []string
	cmd         *exec.Cmd
	logPath     string
	exited      chan struct{}
	exitErr     error
}

// testCluster is a set of nodes sharing one database and one static
// member list.
type testCluster struct {
	t     testing.TB
	db    string
	nodes []*proc
	env   []string
	hc    *stdhttp.Client
}

// newCluster allocates n nodes (not started) on one fresh database, with
// the static member list.
func newCluster(t testing.TB, n int, env ...string) *testCluster {
	t.Helper()
	return newClusterWith(t, n, "", env...)
}

// newClusterWith is newCluster with etcd membership when etcdURL is set.
func newClusterWith(t testing.TB, n int, etcdURL string, env ...string) *testCluster {
	t.Helper()
	buildNode(t)
	c := &testCluster{t: t, db: pgtest.NewDatabaseURL(t), env: env,
		hc: &stdhttp.Client{Timeout: 30 * time.Second, Transport: &stdhttp.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 512}}}
	var peers []string
	for i := range n {
		p := &proc{t: t, name: fmt.Sprintf("node%d", i+1), http: freeAddr(t), clusterPort: freeClusterPort(t)}
		p.logPath = filepath.Join(t.TempDir(), p.name+".log")
		c.nodes = append(c.nodes, p)
		peers = append(peers, fmt.Sprintf("127.0.0.1:%d", p.clusterPort))
	}
	for _, p := range c.nodes {
		membership := []string{"CLUSTER_PROVIDER=static", "CLUSTER_PEERS=" + strings.Join(peers, ",")}
		if etcdURL != "" {
			membership = []string{"CLUSTER_PROVIDER=etcd", "ETCD_ENDPOINTS=" + etcdURL}
		}
		p.env = append(append([]string{
			"DATABASE_URL=" + c.db, "ADMIN_KEY=k", "HTTP_ADDR=" + p.http, "NODE_ID=" + p.name,
			"CLUSTER_HOST=127.0.0.1", "CLUSTER_PORT=" + strconv.Itoa(p.clusterPort), "LOG_LEVEL=" + logLevel(),
			// Many test clients on one address: no per-client limits.
			"RATE_USERS=0", "RATE_TOKEN_ISSUE=0", "RATE_TOKEN_POLL=0",
		}, membership...), env...)
	}
	t.Cleanup(func() {
		for _, p := range c.nodes {
			p.kill()
		}
		if t.Failed() {
			for _, p := range c.nodes {
				p.dumpLog(40)
			}
		}
		if os.Getenv("CLUSTER_NODE_RACE") != "" {
			for _, p := range c.nodes {
				p.reportRaces()
			}
		}
	})
	return c
}

// startAll starts every node and waits until each sees all of them.
func (c *testCluster) startAll() {
	c.t.Helper()
	var wg sync.WaitGroup
	for _, p := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); p.launch() }()
	}
	wg.Wait()
	for _, p := range c.nodes {
		p.waitReady(60 * time.Second)
	}
	c.waitMembers(len(c.nodes), c.nodes...)
}

// waitMembers waits until every given node sees n members.
func (c *testCluster) waitMembers(n int, nodes ...*proc) {
	c.t.Helper()
	for _, p := range nodes {
		waitFor(c.t, 60*time.Second, fmt.Sprintf("%s sees %d members", p.name, n), func() bool {
			v, ok := c.metric(p, "cluster_members")
			return ok && int(v) == n
		})
	}
}

// metric reads one unlabelled (or the first matching) sample from a
// node's /metrics.
func (c *testCluster) metric(p *proc, name string) (float64, bool) {
	res, err := c.hc.Get("http://" + p.http + "/metrics")
	if err != nil {
		return 0, false
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

func (p *proc) launch() {
	p.t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Error(err)
		return
	}
	fmt.Fprintf(logf, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	p.cmd = exec.Command(nodeBin)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		p.t.Error(err)
		return
	}
	p.exited = make(chan struct{})
	cmd, exited := p.cmd, p.exited
	go func() {
		p.exitErr = cmd.Wait()
		logf.Close()
		close(exited)
	}()
}

func (p *proc) waitReady(d time.Duration) {
	p.t.Helper()
	waitFor(p.t, d, p.name+" ready", func() bool {
		select {
		case <-p.exited:
			p.t.Fatalf("%s exited: %v", p.name, p.exitErr)
		default:
		}
		res, err := stdhttp.Get("http://" + p.http + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
}

// kill is kill -9.
func (p *proc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop is SIGTERM; it returns how long the node took to exit and its error.
func (p *proc) stop(d time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return time.Since(start), p.exitErr
	case <-time.After(d):
		p.kill()
		return time.Since(start), fmt.Errorf("%s did not exit within %s", p.name, d)
	}
}

func (p *proc) dumpLog(lines int) {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	p.t.Logf("---- last %d log lines of %s ----\n%s", len(all), p.name, strings.Join(all, "\n"))
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// freeClusterPort finds a port p with p and p+1000 (the static provider's
// health port) free.
func freeClusterPort(t testing.TB) int {
	t.Helper()
	for range 200 {
		p := 20000 + rand.N(20000)
		a, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		b, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", p+1000))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return p
	}
	t.Fatal("no free port pair")
	return 0
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// call sends one API request to a node and returns the status and body
// (status 0: no answer).
func (c *testCluster) call(p *proc, method, path, token string, body any, out any, hdr ...string) (int, []byte) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := stdhttp.NewRequest(method, "http://"+p.http+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		_ = json.Unmarshal(data, out)
	}
	return res.StatusCode, data
}

// must is call that fails the test unless the status is want.
func (c *testCluster) must(want int, p *proc, method, path, token string, body, out any, hdr ...string) []byte {
	c.t.Helper()
	st, data := c.call(p, method, path, token, body, out, hdr...)
	if st != want {
		c.t.Fatalf("%s %s on %s: %d %s, want %d", method, path, p.name, st, data, want)
	}
	return data
}

// concert creates a concert with one date of seats and returns the date's
// option id and seat ids.
func (c *testCluster) concert(p *proc, seats int, price int64) (optionID int64, seatIDs []int64) {
	c.t.Helper()
	day := time.Now().AddDate(0, 0, 30).Format(time.DateOnly)
	var k struct {
		ID    int64 `json:"id"`
		Dates []struct {
			ConcertOptionID int64 `json:"concertOptionId"`
		} `json:"dates"`
	}
	c.must(201, p, "POST", "/admin/concerts", "", map[string]any{
		"title": "cluster test", "dates": []string{day}, "seatsPerDate": seats, "price": price,
	}, &k, "X-Admin-Key", "k")
	var avail []struct {
		Seats []struct {
			SeatID int64 `json:"seatId"`
		} `json:"seats"`
	}
	c.must(200, p, "GET", fmt.Sprintf("/concerts/%d/available-seats?date=%s", k.ID, day), "", nil, &avail)
	for _, s := range avail[0].Seats {
		seatIDs = append(seatIDs, s.SeatID)
	}
	return k.Dates[0].ConcertOptionID, seatIDs
}

// user creates a user, charges it and returns its id and a token (each
// step on the next node in turn), retrying 503s as a client would. Safe
// from any goroutine: failures are reported with t.Errorf.
func (c *testCluster) user(nodes []*proc, i int, charge int64) (int64, string) {
	c.t.Helper()
	at := func(k int) *proc { return nodes[(i+k)%len(nodes)] }
	retry := func(p *proc, method, path string, body, out any, want int) bool {
		var st int
		var data []byte
		for try := 0; try < 40; try++ {
			if st, data = c.call(p, method, path, "", body, out); st != 503 && st != 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if st != want {
			c.t.Errorf("%s %s on %s: %d %s, want %d", method, path, p.name, st, data, want)
			return false
		}
		return true
	}
	var u struct {
		ID int64 `json:"id"`
	}
	if !retry(at(0), "POST", "/users", map[string]any{"name": fmt.Sprintf("fan-%d", i)}, &u, 201) {
		return 0, ""
	}
	if charge > 0 && !retry(at(1), "PATCH", "/customers/point", map[string]any{"userId": u.ID, "chargeBalance": charge}, nil, 200) {
		return 0, ""
	}
	var tok struct {
		Token string `json:"token"`
	}
	if !retry(at(2), "POST", "/users/token", map[string]any{"userId": u.ID}, &tok, 200) {
		return 0, ""
	}
	return u.ID, tok.Token
}

var codeRe = regexp.MustCompile(`"code":"([A-Z_]+)"`)

func codeOf(body []byte) string {
	if m := codeRe.FindSubmatch(body); m != nil {
		return string(m[1])
	}
	return ""
}

// logLevel of the nodes: CLUSTER_LOG_LEVEL, default info.
func logLevel() string {
	if l := os.Getenv("CLUSTER_LOG_LEVEL"); l != "" {
		return l
	}
	return "info"
}

// startEtcd runs a throwaway etcd on loopback (Debian's etcd-server) and
// returns its client URL; the test is skipped when etcd is not installed
// (bash scripts/cluster-etcd.sh install).
func startEtcd(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (bash scripts/cluster-etcd.sh install)")
	}
	client, peer := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "--name", "test", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "test=http://"+peer)
	logf, _ := os.Create(filepath.Join(dir, "etcd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	waitFor(t, 20*time.Second, "etcd ready", func() bool {
		res, err := stdhttp.Get("http://" + client + "/health")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	return "http://" + client
}

// queueHost returns the node the queue manager runs on (nil if none says so).
func (c *testCluster) queueHost(nodes ...*proc) *proc {
	for _, p := range nodes {
		if v, ok := c.metric(p, "token_feed_local"); ok && v == 1 {
			return p
		}
	}
	return nil
}

// metricLabel reads the sample of name whose labels contain label.
func (c *testCluster) metricLabel(p *proc, name, label string) (float64, bool) {
	res, err := c.hc.Get("http://" + p.http + "/metrics")
	if err != nil {
		return 0, false
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, label) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// reportRaces logs the data races a -race node reported (CLUSTER_NODE_RACE).
func (p *proc) reportRaces() {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return
	}
	text := string(data)
	n := strings.Count(text, "WARNING: DATA RACE")
	if n == 0 {
		p.t.Logf("%s: no data race reported", p.name)
		return
	}
	i := strings.Index(text, "WARNING: DATA RACE")
	var frames []string
	for _, line := range strings.Split(text[i:], "\n")[1:] {
		if strings.HasPrefix(strings.TrimSpace(line), "github.com/") {
			frames = append(frames, strings.TrimSpace(line))
		}
		if len(frames) == 8 {
			break
		}
	}
	p.t.Logf("%s: %d data races reported; the first in:\n  %s", p.name, n, strings.Join(frames, "\n  "))
}
