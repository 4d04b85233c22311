package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	stdhttp "net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Build compiles concertd (without the race detector: the process under
// test should run at its real speed) into dir and returns its path.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "concertd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/concert/ticketing/cmd/concertd")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build concertd: %w: %s", err, out)
	}
	return bin, nil
}

// FreeAddr returns a free loopback address.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// FreeClusterPort returns a port p, not among taken, with p and p+1000
// (the static provider's health port, on every interface) free.
func FreeClusterPort(taken ...int) (int, error) {
	for range 500 {
		p := 20000 + rand.N(20000)
		if slices.ContainsFunc(taken, func(t int) bool { return t == p || t == p+1000 || t+1000 == p }) {
			continue
		}
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
		return p, nil
	}
	return 0, errors.New("no free cluster port pair")
}

// waitMembers waits until every node at bases reports n cluster members.
func waitMembers(ctx context.Context, bases []string, n int) error {
	for _, base := range bases {
		for {
			if v, err := Metric(ctx, base, "cluster_members"); err == nil && int(v) == n {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s does not see %d cluster members: %w", base, n, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// Process is a concertd process that can be killed and started again on
// the same address and database.
type Process struct {
	Bin  string
	Addr string
	Env  []string  // settings, NAME=value
	Log  io.Writer // the server's stderr (nil: discarded)
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts the process and waits until /readyz answers 200.
func (p *Process) Start(ctx context.Context) error {
	cmd := exec.Command(p.Bin)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Env = append(cmd.Env, "HTTP_ADDR="+p.Addr)
	cmd.Stdout, cmd.Stderr = p.Log, p.Log
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(p.done)
	client := &stdhttp.Client{Timeout: 2 * time.Second, Transport: &stdhttp.Transport{DisableKeepAlives: true}}
	for {
		select {
		case <-p.done:
			return fmt.Errorf("concertd exited while starting: %v", cmd.ProcessState)
		case <-ctx.Done():
			p.Kill()
			return fmt.Errorf("concertd not ready: %w", ctx.Err())
		default:
		}
		if res, err := client.Get("http://" + p.Addr + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill is kill -9: no shutdown hook runs. It returns once the process is
// gone.
func (p *Process) Kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// Metric reads one unlabelled sample of the server's /metrics, such as
// go_goroutines or go_memstats_heap_inuse_bytes.
func Metric(ctx context.Context, base, name string) (float64, error) {
	req, _ := stdhttp.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	res, err := stdhttp.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no metric %s", name)
}
