package http

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/concert/ticketing/actors"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// The hub's own tests: a fake token feed, net.Pipe connections and scans
// driven by hand with a made-up clock (Interval is an hour, so the hub's
// tickers never scan by themselves).

type fakeFeed struct {
	mu      sync.Mutex
	version uint64
	states  map[string]actors.TokenState
	polls   map[string]int
	ids     int64
}

func newFakeFeed() *fakeFeed {
	return &fakeFeed{states: map[string]actors.TokenState{}, polls: map[string]int{}}
}

func (f *fakeFeed) set(token string, st messages.TokenStatus, pos int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.states[token].TokenID
	if id == 0 {
		f.ids++
		id = f.ids
	}
	f.states[token] = actors.TokenState{TokenID: id, UserID: 1, Status: st, Position: pos}
	f.version++
}

// rekey gives token's token the secret fresh instead (its user asked for
// the token again).
func (f *fakeFeed) rekey(token, fresh string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states[fresh] = f.states[token]
	delete(f.states, token)
	f.version++
}

func (f *fakeFeed) forget(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.states, token)
	f.version++
}

func (f *fakeFeed) State(token string) (actors.TokenState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.states[token]
	return st, ok
}

func (f *fakeFeed) StateByID(id int64) (actors.TokenState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, st := range f.states {
		if st.TokenID == id {
			return st, true
		}
	}
	return actors.TokenState{}, false
}

func (f *fakeFeed) Version() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.version
}

func (f *fakeFeed) KeepWaiting(token string, _ time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.states[token].Status != messages.TokenStatus_TOKEN_WAIT {
		return false
	}
	f.polls[token]++
	return true
}

func (f *fakeFeed) pollsOf(token string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.polls[token]
}

// sseEvent is one parsed event ("" name and data at EOF).
type sseEvent struct{ name, data string }

// sseClient reads a stream's response: the header, then events.
type sseClient struct {
	t      *testing.T
	head   string
	events chan sseEvent
}

// readSSE parses what r delivers: the response header (lines up to the
// blank one) and then the events, until EOF.
func readSSE(t *testing.T, r io.Reader) *sseClient {
	c := &sseClient{t: t, events: make(chan sseEvent, 100)}
	br := bufio.NewReader(r)
	head := make(chan string, 1)
	go func() {
		defer close(c.events)
		var h strings.Builder
		for {
			line, err := br.ReadString('\n')
			h.WriteString(line)
			if err != nil {
				head <- h.String()
				return
			}
			if line == "\r\n" {
				break
			}
		}
		head <- h.String()
		if !strings.Contains(h.String(), "200 OK") {
			return
		}
		var ev sseEvent
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "":
				c.events <- ev
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	select {
	case c.head = <-head:
	case <-time.After(5 * time.Second):
		t.Fatal("no response header")
	}
	return c
}

// next is the next event; closed reports the end of the stream.
func (c *sseClient) next() (ev sseEvent, closed bool) {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		return ev, !ok
	case <-time.After(5 * time.Second):
		c.t.Fatal("no event within 5s")
	}
	return sseEvent{}, false
}

func (c *sseClient) want(name, data string) {
	c.t.Helper()
	ev, closed := c.next()
	require.False(c.t, closed, "stream closed; want %s %s", name, data)
	require.Equal(c.t, sseEvent{name, data}, ev)
}

func (c *sseClient) wantClosed() {
	c.t.Helper()
	ev, closed := c.next()
	require.True(c.t, closed, "want the stream closed, got %v", ev)
}

// wantNothing checks that no event arrived (writes on a net.Pipe return
// once read, so what a scan sent is there a moment after it returns).
func (c *sseClient) wantNothing() {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		c.t.Fatalf("unexpected event %v (open %v)", ev, ok)
	case <-time.After(50 * time.Millisecond):
	}
}

type hubEnv struct {
	feed *fakeFeed
	s    *Streams
	t0   time.Time
}

func newHub(t *testing.T, opt StreamOptions) *hubEnv {
	t.Helper()
	opt.Interval = time.Hour
	if opt.Heartbeat == 0 {
		opt.Heartbeat = 10 * time.Second
	}
	feed := newFakeFeed()
	s := NewStreams(feed, opt)
	// A write on a net.Pipe waits for the test's reader goroutine to read
	// it; on a busy machine that goroutine may not run within the
	// production timeout (100 ms), which would end the stream.
	s.writeTimeout = 10 * time.Second
	t.Cleanup(s.Close)
	return &hubEnv{feed: feed, s: s, t0: time.Now()}
}

// open starts a stream for token as the handler would after its checks.
func (h *hubEnv) open(t *testing.T, token string) *sseClient {
	t.Helper()
	server, client := net.Pipe()
	t.Cleanup(func() { client.Close() })
	version := h.feed.Version()
	state, ok := h.feed.State(token)
	require.True(t, ok)
	before := h.scanned()
	go h.s.start(server, token, state, version, h.t0)
	c := readSSE(t, client)
	// start puts the stream in a shard only after its first event is
	// written (Open counts it earlier); a scan before that would miss it.
	if strings.Contains(c.head, "200 OK") && state.Status != messages.TokenStatus_TOKEN_EXPIRED {
		require.Eventually(t, func() bool { return h.scanned() > before }, 5*time.Second, time.Millisecond,
			"the stream never joined a shard")
	}
	return c
}

// scanned is the number of streams in the shards, which scans reach.
func (h *hubEnv) scanned() int {
	n := 0
	for _, sh := range h.s.shards {
		sh.mu.Lock()
		n += len(sh.streams)
		sh.mu.Unlock()
	}
	return n
}

// scan scans every shard at t0+d.
func (h *hubEnv) scan(d time.Duration) {
	for _, sh := range h.s.shards {
		h.s.scan(sh, h.t0.Add(d))
	}
}

func TestStreamHubEventsInOrderCoalescedAndClosedOnExpiry(t *testing.T) {
	h := newHub(t, StreamOptions{})
	h.feed.set("tok", messages.TokenStatus_TOKEN_WAIT, 3)
	c := h.open(t, "tok")
	require.Contains(t, c.head, "HTTP/1.1 200 OK\r\n")
	require.Contains(t, c.head, "Content-Type: text/event-stream\r\n")
	require.Contains(t, c.head, "Connection: close\r\n")
	c.want("token", `{"status":"WAIT","position":3}`)
	require.Eventually(t, func() bool { return h.s.Open() == 1 }, time.Second, time.Millisecond)

	h.scan(time.Second) // nothing changed
	c.wantNothing()

	// Two admissions between scans: one event, with the latest place.
	h.feed.set("tok", messages.TokenStatus_TOKEN_WAIT, 2)
	h.feed.set("tok", messages.TokenStatus_TOKEN_WAIT, 1)
	h.scan(2 * time.Second)
	c.want("token", `{"status":"WAIT","position":1}`)

	// Another token's change moves the version, not this stream.
	h.feed.set("other", messages.TokenStatus_TOKEN_WAIT, 2)
	h.scan(3 * time.Second)
	c.wantNothing()

	h.feed.set("tok", messages.TokenStatus_TOKEN_ACTIVE, 0)
	h.scan(4 * time.Second)
	c.want("token", `{"status":"ACTIVE","position":0}`)

	h.feed.set("tok", messages.TokenStatus_TOKEN_EXPIRED, 0)
	h.scan(5 * time.Second)
	c.want("token", `{"status":"EXPIRED","position":0}`)
	c.wantClosed()
	require.Equal(t, 0, h.s.Open())
}

func TestStreamHubForgottenTokenEndsExpired(t *testing.T) {
	h := newHub(t, StreamOptions{})
	h.feed.set("tok", messages.TokenStatus_TOKEN_ACTIVE, 0)
	c := h.open(t, "tok")
	c.want("token", `{"status":"ACTIVE","position":0}`)
	h.feed.forget("tok")
	h.scan(time.Second)
	c.want("token", `{"status":"EXPIRED","position":0}`)
	c.wantClosed()
}

// TestStreamHubRekeyedSecretEnds: a stream whose secret was replaced by a
// fresh one (the user asked for the token again) is told so with the
// token's real state, never EXPIRED, and ends; a stream of another token
// is not disturbed.
func TestStreamHubRekeyedSecretEnds(t *testing.T) {
	h := newHub(t, StreamOptions{})
	h.feed.set("tok", messages.TokenStatus_TOKEN_WAIT, 2)
	h.feed.set("other", messages.TokenStatus_TOKEN_WAIT, 1)
	c := h.open(t, "tok")
	c.want("token", `{"status":"WAIT","position":2}`)
	o := h.open(t, "other")
	o.want("token", `{"status":"WAIT","position":1}`)
	h.feed.rekey("tok", "fresh")
	h.scan(time.Second)
	c.want("rekeyed", `{"status":"WAIT","position":2}`)
	c.wantClosed()
	o.wantNothing()
	require.Eventually(t, func() bool { return h.s.Open() == 1 }, time.Second, time.Millisecond)
}

func TestStreamHubExpiredTokenGetsOneEvent(t *testing.T) {
	h := newHub(t, StreamOptions{})
	h.feed.set("tok", messages.TokenStatus_TOKEN_EXPIRED, 0)
	c := h.open(t, "tok")
	c.want("token", `{"status":"EXPIRED","position":0}`)
	c.wantClosed()
	// start ends the stream on its own goroutine: it closes the connection
	// (what the client saw), then counts the stream out.
	require.Eventually(t, func() bool { return h.s.Open() == 0 }, 5*time.Second, time.Millisecond)
}

func TestStreamHubHeartbeat(t *testing.T) {
	h := newHub(t, StreamOptions{Heartbeat: 10 * time.Second})
	h.feed.set("tok", messages.TokenStatus_TOKEN_ACTIVE, 0)
	c := h.open(t, "tok")
	c.want("token", `{"status":"ACTIVE","position":0}`)
	h.scan(9 * time.Second)
	c.wantNothing()
	h.scan(10 * time.Second)
	c.want("heartbeat", "{}")
	h.scan(15 * time.Second)
	c.wantNothing()
	h.scan(20 * time.Second)
	c.want("heartbeat", "{}")
	// An event resets the heartbeat's clock.
	h.feed.set("tok", messages.TokenStatus_TOKEN_EXPIRED, 0)
	h.scan(21 * time.Second)
	c.want("token", `{"status":"EXPIRED","position":0}`)
	c.wantClosed()
}

func TestStreamHubKeepsWaitingTokensPolled(t *testing.T) {
	h := newHub(t, StreamOptions{Heartbeat: time.Hour, KeepAlive: 10 * time.Second})
	h.feed.set("wait", messages.TokenStatus_TOKEN_WAIT, 1)
	h.feed.set("act", messages.TokenStatus_TOKEN_ACTIVE, 0)
	w := h.open(t, "wait")
	w.want("token", `{"status":"WAIT","position":1}`)
	a := h.open(t, "act")
	a.want("token", `{"status":"ACTIVE","position":0}`)
	require.Eventually(t, func() bool { return h.s.Open() == 2 }, time.Second, time.Millisecond)
	h.scan(5 * time.Second)
	require.Equal(t, 0, h.feed.pollsOf("wait"))
	h.scan(10 * time.Second)
	require.Equal(t, 1, h.feed.pollsOf("wait"))
	h.scan(15 * time.Second)
	require.Equal(t, 1, h.feed.pollsOf("wait"))
	h.scan(20 * time.Second)
	require.Equal(t, 2, h.feed.pollsOf("wait"))
	require.Equal(t, 0, h.feed.pollsOf("act"), "an ACTIVE token's stream is no use of it")
}

func TestStreamHubDropsAClientThatDoesNotRead(t *testing.T) {
	h := newHub(t, StreamOptions{Heartbeat: time.Second})
	h.feed.set("tok", messages.TokenStatus_TOKEN_ACTIVE, 0)
	server, client := net.Pipe()
	defer client.Close()
	// Read the header and the first event only.
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, len(streamHeader)+len(appendTokenEvent(nil, actors.TokenState{Status: messages.TokenStatus_TOKEN_ACTIVE})))
		_, _ = io.ReadFull(client, buf)
	}()
	state, _ := h.feed.State("tok")
	h.s.start(server, "tok", state, h.feed.Version(), h.t0)
	<-done
	require.Equal(t, 1, h.s.Open())
	// Short only now: the first write waited for a reader that a busy
	// machine may start late.
	h.s.writeTimeout = 50 * time.Millisecond
	h.scan(2 * time.Second) // the heartbeat cannot be written
	require.Equal(t, 0, h.s.Open())
	_, err := client.Read(make([]byte, 1))
	require.Error(t, err, "the connection is closed")
}

func TestStreamHubLimitAndClose(t *testing.T) {
	h := newHub(t, StreamOptions{Limit: 1})
	h.feed.set("a", messages.TokenStatus_TOKEN_ACTIVE, 0)
	h.feed.set("b", messages.TokenStatus_TOKEN_ACTIVE, 0)
	a := h.open(t, "a")
	a.want("token", `{"status":"ACTIVE","position":0}`)
	require.Eventually(t, func() bool { return h.s.Open() == 1 }, time.Second, time.Millisecond)
	require.True(t, h.s.full())

	// Past the handler's check (a race): the hub answers 503 itself.
	b := h.open(t, "b")
	require.Contains(t, b.head, "HTTP/1.1 503 Service Unavailable\r\n")
	require.Contains(t, b.head, "Retry-After: 1\r\n")

	h.s.Close()
	a.wantClosed()
	require.Equal(t, 0, h.s.Open())
	c := h.open(t, "b")
	require.Contains(t, c.head, "503 Service Unavailable")
}

// TestStreamLooksUpATokenTheFeedDoesNotShow: on a cluster node a stream may
// be opened for a token the node has not heard of yet. It is looked up: a
// token nobody knows is 401, one that could not be checked in time is 503
// (never 401: it may well be valid), and one found opens once the feed
// shows it. Without a Lookup (the queue manager's own table) a miss is 401.
func TestStreamLooksUpATokenTheFeedDoesNotShow(t *testing.T) {
	var h *hubEnv
	lookup := func(answer error) func(context.Context, string, time.Time) (actors.TokenCheck, error) {
		return func(_ context.Context, token string, _ time.Time) (actors.TokenCheck, error) {
			if answer == nil {
				// The feed applies a found entry a moment later.
				go func() {
					time.Sleep(20 * time.Millisecond)
					h.feed.set(token, messages.TokenStatus_TOKEN_WAIT, 3)
				}()
			}
			return actors.TokenCheck{}, answer
		}
	}
	for _, c := range []struct {
		name   string
		lookup func(context.Context, string, time.Time) (actors.TokenCheck, error)
		want   string // a rejection's code, "unavailable", or "" for the state
	}{
		{"no lookup", nil, messages.CodeTokenInvalid},
		{"unknown", lookup(actors.ErrUnknownToken), messages.CodeTokenInvalid},
		{"no answer in time", lookup(fmt.Errorf("token lookup: %w", context.DeadlineExceeded)), "unavailable"},
		{"found", lookup(nil), ""},
	} {
		h = newHub(t, StreamOptions{Lookup: c.lookup})
		_, state, err := h.s.stateOf(context.Background(), "tok")
		var rej *messages.Rejection
		switch {
		case c.want == "":
			require.NoError(t, err, c.name)
			require.Equal(t, int64(3), state.Position, c.name)
		case c.want == "unavailable":
			require.ErrorIs(t, err, persistence.ErrUnavailable, c.name)
			require.False(t, errors.As(err, &rej), "%s: %v", c.name, err)
		default:
			require.True(t, errors.As(err, &rej), "%s: %v", c.name, err)
			require.Equal(t, c.want, rej.GetCode(), c.name)
		}
	}
}
