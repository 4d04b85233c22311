package http_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	stdhttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	apihttp "github.com/concert/ticketing/http"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/node"
	"github.com/concert/ticketing/persistence/pgtest"
)

// streamEvent is one server-sent event of a token stream.
type streamEvent struct{ name, data string }

// tokenStream is an open GET /users/token/stream, read on a goroutine.
type tokenStream struct {
	t      *testing.T
	res    *stdhttp.Response
	events chan streamEvent // closed at the end of the body
}

// openStream opens the token's stream through http.DefaultClient (so the
// answer's status and headers are checked against the contract) and
// returns it once the header has arrived.
func (e *env) openStream(token string) *tokenStream {
	e.t.Helper()
	req, err := stdhttp.NewRequest("GET", e.base+"/users/token/stream", nil)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := stdhttp.DefaultClient.Do(req)
	require.NoError(e.t, err)
	require.Equal(e.t, 200, res.StatusCode)
	require.Equal(e.t, "text/event-stream", res.Header.Get("Content-Type"))
	require.Equal(e.t, "no-store", res.Header.Get("Cache-Control"))
	s := &tokenStream{t: e.t, res: res, events: make(chan streamEvent, 100)}
	e.t.Cleanup(func() { res.Body.Close() })
	go func() {
		defer close(s.events)
		br := bufio.NewReader(res.Body)
		var ev streamEvent
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				s.events <- ev
				ev = streamEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return s
}

// next returns the next event other than a heartbeat; closed reports the
// end of the stream.
func (s *tokenStream) next(timeout time.Duration, skipHeartbeats bool) (streamEvent, bool) {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return streamEvent{}, true
			}
			if skipHeartbeats && ev.name == "heartbeat" {
				continue
			}
			return ev, false
		case <-deadline:
			s.t.Fatalf("no event within %s", timeout)
		}
	}
}

func (s *tokenStream) want(data string) {
	s.t.Helper()
	ev, closed := s.next(10*time.Second, true)
	require.False(s.t, closed, "stream ended; want %s", data)
	require.Equal(s.t, streamEvent{"token", data}, ev)
}

func (s *tokenStream) wantEnd() {
	s.t.Helper()
	ev, closed := s.next(10*time.Second, true)
	require.True(s.t, closed, "want the end of the stream, got %v", ev)
}

// expire expires a token as the payment flow or the idle timer would.
func (e *env) expire(token, reason string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := e.n.Router().Request(ctx, "queue", "main", &messages.ExpireToken{Token: token, Reason: reason})
	require.NoError(e.t, err)
}

// TestE2ETokenStreamFollowsTheLine follows a token from third in line to
// its expiry: one event per change, in order, the last one EXPIRED, then
// the end of the stream; GET /users/token agrees along the way.
func TestE2ETokenStreamFollowsTheLine(t *testing.T) {
	e := startNode(t, node.Config{ActiveTokens: 1, StreamInterval: 20 * time.Millisecond, StreamHeartbeat: time.Hour})
	var tokens []string
	for _, name := range []string{"first", "second", "third"} {
		tokens = append(tokens, e.token(e.user(name)))
	}
	s := e.openStream(tokens[2])
	s.want(`{"status":"WAIT","position":2}`)

	e.expire(tokens[0], "paid") // the second is admitted: the third moves up
	s.want(`{"status":"WAIT","position":1}`)
	got := e.ok(200, e.do("GET", "/users/token", nil, bearer(tokens[2])))
	require.Equal(t, "WAIT", got["status"])
	require.EqualValues(t, "1", got["position"].(interface{ String() string }).String())

	e.expire(tokens[1], "paid")
	s.want(`{"status":"ACTIVE","position":0}`)

	e.expire(tokens[2], "paid")
	s.want(`{"status":"EXPIRED","position":0}`)
	s.wantEnd()
	waitFor(t, 5*time.Second, "no open stream", func() bool {
		return strings.Contains(string(e.do("GET", "/metrics", nil, nil).raw), "\ntoken_streams_open 0\n")
	})

	// An expired token's stream says so once and ends; an unknown one is 401.
	late := e.openStream(tokens[2])
	late.want(`{"status":"EXPIRED","position":0}`)
	late.wantEnd()
	e.fails(401, "TOKEN_INVALID", e.do("GET", "/users/token/stream", nil, bearer("no-such-token")))
	e.fails(401, "TOKEN_INVALID", e.do("GET", "/users/token/stream", nil, nil))
}

// TestE2ETokenStreamOfAReplacedSecret is the fresh tester's case: a fan
// follows its token, then asks for its token again (a fresh secret for the
// same token and place). The old secret's stream said EXPIRED, though the
// token lives on. Now it ends with a rekeyed event that says the token's
// real state, and the fresh secret's stream follows the same place.
func TestE2ETokenStreamOfAReplacedSecret(t *testing.T) {
	e := startNode(t, node.Config{ActiveTokens: 1, StreamInterval: 20 * time.Millisecond, StreamHeartbeat: time.Hour})
	e.token(e.user("active"))
	fan := e.user("fan")
	old := e.token(fan)
	s := e.openStream(old)
	s.want(`{"status":"WAIT","position":1}`)

	fresh := e.token(fan)
	require.NotEqual(t, old, fresh)
	ev, closed := s.next(10*time.Second, true)
	require.False(t, closed, "the old secret's stream ended without a word")
	require.Equal(t, streamEvent{"rekeyed", `{"status":"WAIT","position":1}`}, ev)
	s.wantEnd()

	got := e.ok(200, e.do("GET", "/users/token", nil, bearer(fresh)))
	require.Equal(t, "WAIT", got["status"])
	again := e.openStream(fresh)
	again.want(`{"status":"WAIT","position":1}`)
	e.fails(401, "TOKEN_INVALID", e.do("GET", "/users/token/stream", nil, bearer(old)))
}

// TestE2ETokenStreamHeartbeatAndIdleExpiry: an ACTIVE token's stream gets
// heartbeats, does not keep the token alive, and ends when the token
// expires for want of use.
func TestE2ETokenStreamHeartbeatAndIdleExpiry(t *testing.T) {
	// The token's idle time runs from its issue: the stream must be open
	// and have had its three heartbeats (0.6 s) before the TTL is out,
	// however long a busy machine takes to open it (seconds under -race on
	// a loaded 2-core machine).
	const ttl = 4 * time.Second
	e := startNode(t, node.Config{TokenIdleTTL: ttl,
		StreamInterval: 20 * time.Millisecond, StreamHeartbeat: 200 * time.Millisecond})
	user := e.user("fan")
	issued := time.Now() // no later than the token's last use
	token := e.token(user)
	s := e.openStream(token)
	s.want(`{"status":"ACTIVE","position":0}`)
	for range 3 {
		ev, closed := s.next(5*time.Second, false)
		require.False(t, closed)
		require.Equal(t, streamEvent{"heartbeat", "{}"}, ev)
	}
	s.want(`{"status":"EXPIRED","position":0}`)
	s.wantEnd()
	require.Greater(t, time.Since(issued), ttl-500*time.Millisecond, "the stream kept nothing alive, but the token lived its TTL")
}

// TestE2ETokenStreamKeepsItsPlace: a waiting token followed by a stream
// stays in line past WAIT_IDLE_TTL without a poll; one that nobody
// follows leaves the line.
func TestE2ETokenStreamKeepsItsPlace(t *testing.T) {
	const waitTTL = 2 * time.Second // the slack a busy machine has to open the stream
	e := startNode(t, node.Config{ActiveTokens: 1, WaitIdleTTL: waitTTL,
		StreamInterval: 20 * time.Millisecond, StreamHeartbeat: 100 * time.Millisecond})
	e.token(e.user("active"))
	followedUser, aloneUser := e.user("followed"), e.user("alone")
	// The stream is opened right after the token's issue: it keeps the
	// token in line only from then on, and another request in between
	// could take WAIT_IDLE_TTL on a busy machine.
	followed := e.token(followedUser)
	s := e.openStream(followed)
	s.want(`{"status":"WAIT","position":1}`)
	alone := e.token(aloneUser) // behind the followed one
	issued := time.Now()
	// The token nobody follows leaves the line (read from the node's table:
	// a poll would keep it in line) ...
	waitFor(t, 10*time.Second, "the token nobody follows to leave the line", func() bool {
		waiting, _ := e.n.Booking().QueueSizes()
		return waiting == 1
	})
	// ... while the followed one stays, three WAIT_IDLE_TTLs without a poll.
	time.Sleep(time.Until(issued.Add(3 * waitTTL)))
	require.Equal(t, "WAIT", e.ok(200, e.do("GET", "/users/token", nil, bearer(followed)))["status"])
	require.Equal(t, "EXPIRED", e.ok(200, e.do("GET", "/users/token", nil, bearer(alone)))["status"])
	// Its place never changed (the one behind it left): no event but heartbeats.
	for {
		select {
		case ev := <-s.events:
			require.Equal(t, "heartbeat", ev.name, "event %v", ev)
			continue
		default:
		}
		break
	}
}

// TestE2ETokenStreamsEndOnShutdown: a stop closes the open streams and
// does not wait for them.
func TestE2ETokenStreamsEndOnShutdown(t *testing.T) {
	// A node of its own: this test stops it (startNode's would stop it again).
	cfg := node.Config{StreamLimit: 1, DatabaseURL: pgtest.NewDatabaseURL(t), Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := node.Start(ctx, cfg)
	require.NoError(t, err)
	ln, err := apihttp.Listen(ctx, "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = n.Serve(ln) }()
	e := &env{t: t, base: "http://" + ln.Addr().String(), n: n}
	a := e.token(e.user("a"))
	s := e.openStream(a)
	s.want(`{"status":"ACTIVE","position":0}`)
	e.fails(503, "STORE_UNAVAILABLE", e.do("GET", "/users/token/stream", nil, bearer(e.token(e.user("b")))))

	start := time.Now()
	require.NoError(t, e.n.Shutdown(ctx))
	require.Less(t, time.Since(start), 5*time.Second)
	s.wantEnd()
	_, err = io.ReadAll(s.res.Body)
	require.NoError(t, err)
}
