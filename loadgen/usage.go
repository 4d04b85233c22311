package loadgen

import (
	"cmp"
	"context"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Usage is what a run cost, read around it: the server's journal figures
// and CPU from its /metrics, the generator's CPU from the kernel, and the
// whole machine's busy CPU (every process: the server, PostgreSQL, the
// generator, and anyone else's work) from /proc/stat.
type Usage struct {
	Seconds float64 `json:"seconds"`
	// Journal: events written, batches (one INSERT each), and the mean
	// rows and time per batch.
	JournalEvents  int64   `json:"journalEvents,omitempty"`
	JournalBatches int64   `json:"journalBatches,omitempty"`
	MeanBatch      float64 `json:"meanBatch,omitempty"`
	MeanBatchMs    float64 `json:"meanBatchMs,omitempty"`
	// Batch distributions, from the server's histograms: the upper bound of
	// the bucket that holds the 50th and 99th percentile of rows per batch
	// and of a batch's write time, commit included (0: unknown).
	BatchRowsP50 float64 `json:"batchRowsP50,omitempty"`
	BatchRowsP99 float64 `json:"batchRowsP99,omitempty"`
	BatchMsP50   float64 `json:"batchMsP50,omitempty"`
	BatchMsP99   float64 `json:"batchMsP99,omitempty"`
	// Cores busy on average: the server process, the generator process,
	// the PostgreSQL server (its postmaster and backends; -1: unknown),
	// and the machine as a whole, everyone's work included.
	ServerCores    float64 `json:"serverCores"`
	GeneratorCores float64 `json:"generatorCores"`
	PostgresCores  float64 `json:"postgresCores"`
	MachineCores   float64 `json:"machineCores"`
}

// UsageSample is one reading; Usage is the difference of two.
type UsageSample struct {
	at        time.Time
	metrics   map[string]float64
	selfCPU   time.Duration
	pgCPU     float64 // clock ticks; -1 unknown
	busy, all float64 // /proc/stat jiffies
}

// SampleUsage reads the figures Usage is made of (what it cannot read is
// left out). pgPort, if not 0, is the port of the PostgreSQL server whose
// processes to account for.
func SampleUsage(ctx context.Context, c *Client, pgPort int) UsageSample {
	s := UsageSample{at: time.Now(), pgCPU: -1}
	if pgPort > 0 {
		s.pgCPU = PostgresTicks(pgPort)
	}
	if c != nil {
		mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s.metrics, _ = c.Metrics(mctx, 0)
		cancel()
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.selfCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		s.busy, s.all = ParseProcStat(string(b))
	}
	return s
}

// UsageBetween is the usage from a to b.
func UsageBetween(a, b UsageSample) *Usage {
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return nil
	}
	u := &Usage{Seconds: secs, ServerCores: -1, MachineCores: -1, PostgresCores: -1}
	if a.pgCPU >= 0 && b.pgCPU >= a.pgCPU {
		u.PostgresCores = (b.pgCPU - a.pgCPU) / clockTicks / secs
	}
	d := func(k string) (float64, bool) {
		x, ok1 := a.metrics[k]
		y, ok2 := b.metrics[k]
		return y - x, ok1 && ok2
	}
	if ev, ok := d("journal_batch_size_sum"); ok {
		u.JournalEvents = int64(ev)
		if n, ok := d("journal_batch_size_count"); ok && n > 0 {
			u.JournalBatches = int64(n)
			u.MeanBatch = ev / n
			if s, ok := d("journal_batch_seconds_sum"); ok {
				u.MeanBatchMs = s / n * 1000
			}
		}
	}
	u.BatchRowsP50 = bucketQuantile(a.metrics, b.metrics, "journal_batch_size_bucket", 0.50)
	u.BatchRowsP99 = bucketQuantile(a.metrics, b.metrics, "journal_batch_size_bucket", 0.99)
	u.BatchMsP50 = bucketQuantile(a.metrics, b.metrics, "journal_batch_seconds_bucket", 0.50) * 1000
	u.BatchMsP99 = bucketQuantile(a.metrics, b.metrics, "journal_batch_seconds_bucket", 0.99) * 1000
	if cpu, ok := d("process_cpu_seconds_total"); ok {
		u.ServerCores = cpu / secs
	}
	u.GeneratorCores = (b.selfCPU - a.selfCPU).Seconds() / secs
	if all := b.all - a.all; all > 0 {
		// Jiffies of all CPUs: busy share × cores.
		u.MachineCores = (b.busy - a.busy) / all * float64(DescribeMachine().Cores)
	}
	return u
}

// ParseProcStat returns the busy and total jiffies of the "cpu" line of a
// /proc/stat text (busy excludes idle and iowait).
func ParseProcStat(stat string) (busy, all float64) {
	for _, line := range strings.Split(stat, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		for i, v := range f[1:] {
			n, _ := strconv.ParseFloat(v, 64)
			if i >= 8 { // guest and guest_nice are already in user and nice
				break
			}
			all += n
			if i != 3 && i != 4 { // idle, iowait
				busy += n
			}
		}
		return busy, all
	}
	return 0, 0
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// PostgresTicks sums the CPU time (clock ticks) of the PostgreSQL server
// listening on port: its postmaster (found by "-p port" on its command
// line) and the processes it forked. -1 if it is not found. Backends that
// already exited are not counted.
func PostgresTicks(port int) float64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return -1
	}
	type proc struct {
		ppid  int
		ticks float64
	}
	procs := map[int]proc{}
	master := -1
	want := strconv.Itoa(port)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		comm, ppid, ticks, ok := parsePidStat(string(b))
		if !ok || comm != "postgres" {
			continue
		}
		procs[pid] = proc{ppid, ticks}
		if master < 0 {
			if cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil {
				args := strings.Split(string(cmd), "\x00")
				for i := 0; i+1 < len(args); i++ {
					if args[i] == "-p" && args[i+1] == want {
						master = pid
					}
				}
			}
		}
	}
	if master < 0 {
		return -1
	}
	total := 0.0
	for pid, p := range procs {
		if pid == master || p.ppid == master {
			total += p.ticks
		}
	}
	return total
}

// parsePidStat reads comm, ppid and utime+stime of a /proc/<pid>/stat.
func parsePidStat(stat string) (comm string, ppid int, ticks float64, ok bool) {
	open, close := strings.IndexByte(stat, '('), strings.LastIndexByte(stat, ')')
	if open < 0 || close < open {
		return "", 0, 0, false
	}
	comm = stat[open+1 : close]
	f := strings.Fields(stat[close+1:])
	// Fields after comm: state(0) ppid(1) ... utime(11) stime(12).
	if len(f) < 13 {
		return "", 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return comm, ppid, ut + st, true
}

// bucketQuantile is the upper bound of the histogram bucket of name (kept
// by ParseMetrics as name{le=<bound>}) that holds quantile q of the
// observations made between samples a and b; 0 when there were none, or
// when q falls in the +Inf bucket.
func bucketQuantile(a, b map[string]float64, name string, q float64) float64 {
	type bucket struct{ le, count float64 }
	var bs []bucket
	prefix := name + "{le="
	for k, y := range b {
		bound, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(bound, "}"), 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le: le, count: y - a[k]})
	}
	slices.SortFunc(bs, func(x, y bucket) int { return cmp.Compare(x.le, y.le) })
	if len(bs) == 0 || bs[len(bs)-1].count <= 0 {
		return 0
	}
	want := q * bs[len(bs)-1].count // buckets are cumulative; the last is +Inf
	for _, bk := range bs {
		if bk.count >= want {
			if math.IsInf(bk.le, 1) {
				return 0
			}
			return bk.le
		}
	}
	return 0
}
