package http_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/concert/ticketing/node"
)

// TestOpsPageInChromium loads the operations page in headless Chromium
// while the node serves traffic, and checks that the page logs no error
// (console errors, uncaught exceptions, failed loads, CSP refusals) and that
// its figures are there and move.
//
// It needs Debian's chromium (CHROMIUM names another binary) and is skipped
// without it, and with -short; `make ops-browser-test` installs chromium if
// needed and runs it. Chromium is driven over the DevTools protocol on a
// pipe (--remote-debugging-pipe): no driver, no library, no port.
func TestOpsPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	bin := chromiumPath()
	if bin == "" {
		t.Skip("chromium not installed (make ops-browser-test installs it)")
	}
	e := startNode(t, node.Config{AdminKey: adminKey, OpsPage: true})
	stop, holds := e.opsLoad(t, 4)
	defer stop()
	// A fan following its token's stream.
	s := e.openStream(e.token(e.user("fan")))
	s.want(`{"status":"ACTIVE","position":0}`)

	b := startChromium(t, bin)
	defer func() {
		if t.Failed() {
			t.Logf("errors the page logged: %q", b.errors())
		}
	}()
	b.navigate(e.base + "/ops")
	waitFor(t, 20*time.Second, "the page to load", func() bool {
		var loaded bool
		b.eval(`document.readyState === 'complete' && location.pathname === '/ops'`, &loaded)
		return loaded
	})

	figures := []string{"queue-waiting", "queue-active", "queue-streams", "rate-holds", "rate-payments",
		"rate-charges", "journal-batches", "journal-batch-mean", "journal-batch-p99", "journal-latency-p99",
		"store-health", "store-pool"}
	read := func() map[string]string {
		var got map[string]string
		b.eval(`(() => { const o = {}; for (const id of `+jsonString(figures)+`) { const el = document.getElementById(id); o[id] = el ? el.textContent : null; }
			o.routes = String(document.querySelectorAll('#routes tr').length); const st = document.getElementById('status'); o.status = st ? st.textContent : null; return o; })()`, &got)
		return got
	}
	var first map[string]string
	waitFor(t, 20*time.Second, "every figure on the page", func() bool {
		first = read()
		for _, id := range figures {
			if v := first[id]; v == "" || v == "–" || strings.Contains(v, "–") {
				return false
			}
		}
		return first["routes"] != "0"
	})
	t.Logf("page: %v", first)
	require.Equal(t, "0", first["queue-waiting"])
	require.Equal(t, "1", first["queue-streams"])
	require.Contains(t, first["status"], "live")
	require.Contains(t, []string{"ok", "degraded"}, first["store-health"])

	before := holds()
	var second map[string]string
	waitFor(t, 20*time.Second, "the figures to move", func() bool {
		second = read()
		return second["rate-holds"] != first["rate-holds"] && second["journal-batches"] != first["journal-batches"] &&
			second["rate-payments"] != "0.0"
	})
	require.Greater(t, holds(), before, "the load kept going")
	t.Logf("page later: %v", second)
	stop()

	b.close()
	require.Empty(t, b.errors(), "the page logged errors")
}

// chromiumPath is the browser to drive: $CHROMIUM, or chromium on PATH.
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// chromium is a headless Chromium driven over the DevTools protocol on a
// pipe: JSON messages ended by NUL, commands on the browser's fd 3,
// answers and events on its fd 4.
type chromium struct {
	t       *testing.T
	cmd     *exec.Cmd
	in      io.WriteCloser
	session string

	mu      sync.Mutex
	next    int
	pending map[int]chan cdpMessage
	logged  []string
	done    chan struct{}
}

type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

func startChromium(t *testing.T, bin string) *chromium {
	t.Helper()
	toBrowser, fromTest, err := os.Pipe()
	require.NoError(t, err)
	fromBrowser, toTest, err := os.Pipe()
	require.NoError(t, err)
	// Flags of a root user's headless Chromium on a closed network: no
	// sandbox (root), no background connections, a fresh profile.
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-dev-shm-usage", "--user-data-dir="+t.TempDir(),
		"--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{toBrowser, toTest} // fds 3 and 4
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	toBrowser.Close()
	toTest.Close()
	b := &chromium{t: t, cmd: cmd, in: fromTest, pending: map[int]chan cdpMessage{}, done: make(chan struct{})}
	go b.read(fromBrowser)
	t.Cleanup(func() {
		b.close()
		if t.Failed() {
			t.Logf("chromium stderr:\n%s", stderr.String())
		}
	})

	var target struct{ TargetID string }
	b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct{ SessionID string }
	b.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	b.session = attached.SessionID
	for _, domain := range []string{"Runtime", "Log", "Page"} {
		b.call(b.session, domain+".enable", nil, nil)
	}
	return b
}

// read takes the browser's messages: answers to their callers, error
// events into logged.
func (b *chromium) read(r io.Reader) {
	defer close(b.done)
	br := bufio.NewReader(r)
	for {
		raw, err := br.ReadBytes(0)
		if err != nil {
			return
		}
		var m cdpMessage
		if json.Unmarshal(raw[:len(raw)-1], &m) != nil {
			continue
		}
		if m.ID != 0 {
			b.mu.Lock()
			ch := b.pending[m.ID]
			delete(b.pending, m.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		if msg := errorEvent(m); msg != "" {
			b.mu.Lock()
			b.logged = append(b.logged, msg)
			b.mu.Unlock()
		}
	}
}

// errorEvent describes an event that reports an error on the page, "" for
// any other.
func errorEvent(m cdpMessage) string {
	switch m.Method {
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string
			Args []struct {
				Value       any
				Description string
			}
		}
		_ = json.Unmarshal(m.Params, &p)
		if p.Type != "error" && p.Type != "assert" {
			return ""
		}
		var parts []string
		for _, a := range p.Args {
			parts = append(parts, fmt.Sprint(a.Value, a.Description))
		}
		return "console." + p.Type + ": " + strings.Join(parts, " ")
	case "Runtime.exceptionThrown":
		var p struct {
			ExceptionDetails struct {
				Text      string
				Exception struct{ Description string }
			}
		}
		_ = json.Unmarshal(m.Params, &p)
		return "exception: " + p.ExceptionDetails.Text + " " + p.ExceptionDetails.Exception.Description
	case "Log.entryAdded":
		var p struct {
			Entry struct {
				Level, Source, Text, URL string
			}
		}
		_ = json.Unmarshal(m.Params, &p)
		if p.Entry.Level != "error" {
			return ""
		}
		return "log (" + p.Entry.Source + "): " + p.Entry.Text + " " + p.Entry.URL
	}
	return ""
}

// call sends a command and decodes its result into out (if not nil).
func (b *chromium) call(session, method string, params any, out any) {
	b.t.Helper()
	ch := make(chan cdpMessage, 1)
	b.mu.Lock()
	b.next++
	id := b.next
	b.pending[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	raw, err := json.Marshal(msg)
	require.NoError(b.t, err)
	_, err = b.in.Write(append(raw, 0))
	require.NoError(b.t, err, "%s", method)
	select {
	case m := <-ch:
		if m.Error != nil {
			b.t.Fatalf("%s: %s", method, m.Error.Message)
		}
		if out != nil {
			require.NoError(b.t, json.Unmarshal(m.Result, out), "%s: %s", method, m.Result)
		}
	case <-b.done:
		b.t.Fatalf("%s: chromium exited", method)
	case <-time.After(30 * time.Second):
		b.t.Fatalf("%s: no answer in 30s", method)
	}
}

func (b *chromium) navigate(url string) {
	b.t.Helper()
	var res struct{ ErrorText string }
	b.call(b.session, "Page.navigate", map[string]any{"url": url}, &res)
	require.Empty(b.t, res.ErrorText, "navigate %s", url)
}

// eval evaluates a JavaScript expression in the page; its value (JSON) goes
// into out.
func (b *chromium) eval(expr string, out any) {
	b.t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage
		}
		ExceptionDetails *struct{ Text string }
	}
	b.call(b.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res)
	require.Nil(b.t, res.ExceptionDetails, "eval %s", expr)
	require.NoError(b.t, json.Unmarshal(res.Result.Value, out))
}

// errors are the page's error events so far.
func (b *chromium) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.logged...)
}

// close ends the browser (idempotent).
func (b *chromium) close() {
	if b.cmd.ProcessState != nil {
		return
	}
	raw, _ := json.Marshal(map[string]any{"id": 1 << 30, "method": "Browser.close"})
	_, _ = b.in.Write(append(raw, 0))
	_ = b.in.Close()
	exited := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(exited) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case <-exited:
	case <-ctx.Done():
		_ = b.cmd.Process.Kill()
		<-exited
	}
}
