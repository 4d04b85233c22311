package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/concert/ticketing/actors"
	"github.com/concert/ticketing/booking"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// GET /users/token/stream: the token's status and place in line as
// server-sent events, so a waiting fan is told instead of polling.
//
// Cost. An open stream is an idle TCP connection and a small record: no
// goroutine, no buffer, no actor and no message per stream. The handler
// takes the connection over from fasthttp (Hijack; the server keeps
// hijacked connections open, KeepHijackedConns) and hands it to one of a
// few shards of the Streams hub. Every Interval, each shard looks whether
// the token table changed (TokenFeed.Version, one atomic load) and, if it
// did, reads each of its tokens' status and place in the table (a map
// look-up and a Fenwick sum, no message to the queue manager) and writes an
// event to the streams whose token changed. So an admission, which moves
// every waiter up by one, costs each stream at most one event per Interval,
// however many admissions there were: positions are coalesced. A stream
// that had nothing to say for Heartbeat gets a heartbeat event.
//
// A write that fails or does not complete at once (streamWriteTimeout)
// ends the stream: its client is gone, or has not read for a long time.
//
// A WAIT token's open stream counts as a poll (TokenFeed.KeepWaiting, every
// KeepAlive), so a fan who follows the stream keeps its place in line
// without polling; an ACTIVE token's stream does not count as a use (an
// admitted fan who does nothing still lets the next one in). The stream
// ends, after a last event, when the token expires or is forgotten, or
// when its secret stops working because the user was given a fresh one for
// the same token: then the last event is a rekeyed event with the token's
// state (it lives on), never an EXPIRED that would not be true.
//
// Wire format (text/event-stream):
//
//	event: token
//	data: {"status":"WAIT","position":42}
//
//	event: heartbeat
//	data: {}
//
//	event: rekeyed
//	data: {"status":"WAIT","position":42}
//
// The response has no length and "Connection: close": the body ends when
// the server closes the connection.

// TokenFeed is what the streams read: *actors.TokenTable.
type TokenFeed interface {
	State(token string) (actors.TokenState, bool)
	// StateByID is the token's state whatever secret it is known by now
	// (false once the token left the table).
	StateByID(tokenID int64) (actors.TokenState, bool)
	Version() uint64
	KeepWaiting(token string, now time.Time) bool
}

var _ TokenFeed = (*actors.TokenTable)(nil)

// Stream defaults.
const (
	DefaultStreamInterval  = time.Second
	DefaultStreamHeartbeat = 15 * time.Second
	DefaultStreamLimit     = 50_000
	// streamWriteTimeout bounds one write to a stream. A reading client's
	// socket never fills (events are tens of bytes, a few a second at
	// most); one whose socket is full has stopped reading for a long time,
	// and is dropped at its first blocked write, so a shard's scan stalls
	// at most this long per such client.
	streamWriteTimeout = 100 * time.Millisecond
	// streamLookupTimeout bounds finding a token this node's feed does not
	// show yet (the default REQUEST_TIMEOUT).
	streamLookupTimeout = 5 * time.Second
)

// StreamOptions configure the token streams. Zero values take the defaults.
type StreamOptions struct {
	// Interval is how often the streams look for changes: a stream gets at
	// most one token event per Interval (default 1 s), with the latest
	// status and position.
	Interval time.Duration
	// Heartbeat: a stream that was sent nothing for this long gets a
	// heartbeat event (default 15 s).
	Heartbeat time.Duration
	// KeepAlive is how often an open stream of a WAIT token counts as a
	// poll (default Heartbeat); keep it well under the queue's
	// WAIT_IDLE_TTL.
	KeepAlive time.Duration
	// Limit is the most streams open at once (default 50,000); a stream
	// beyond it is refused with 503.
	Limit int
	// Lookup finds a token the feed does not show yet (a cluster node's
	// token feed asks the queue manager); it returns actors.ErrUnknownToken
	// for a token nobody knows. Nil: a token the feed does not show is
	// unknown (the feed is the queue manager's own table).
	Lookup func(ctx context.Context, token string, now time.Time) (actors.TokenCheck, error)
	// Registerer receives the token_stream* series (none when nil).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Streams is the hub of the open token streams of one node. Close it
// before the HTTP server stops: a stream never ends by itself while its
// token lives.
type Streams struct {
	feed   TokenFeed
	opt    StreamOptions
	shards []*streamShard
	next   atomic.Uint64 // round robin over the shards
	open   atomic.Int64
	// writeTimeout bounds one write, a refusal included (streamWriteTimeout;
	// tests set their own).
	writeTimeout time.Duration

	mu      sync.Mutex // guards started and closed (and makes Close wait)
	started bool
	closed  bool
	done    chan struct{}
	wg      sync.WaitGroup

	tokenEvents, heartbeats prometheus.Counter
	opened, refused         prometheus.Counter
}

// streamShard is the streams one goroutine serves.
type streamShard struct {
	mu      sync.Mutex
	streams []*tokenStream
	scratch []*tokenStream // the scan's copy of streams
	buf     []byte         // the scan's event encoding
}

// tokenStream is one open stream: what was last sent on it and when.
type tokenStream struct {
	conn     net.Conn
	token    string
	tokenID  int64  // its token, found by id once the secret no longer works
	seen     uint64 // TokenFeed.Version when its state was last read
	status   messages.TokenStatus
	position int64
	wrote    time.Time // last write
	polled   time.Time // last KeepWaiting
}

// NewStreams returns the hub of the streams of feed's tokens; its
// goroutines start with the first stream.
func NewStreams(feed TokenFeed, opt StreamOptions) *Streams {
	if opt.Interval <= 0 {
		opt.Interval = DefaultStreamInterval
	}
	if opt.Heartbeat <= 0 {
		opt.Heartbeat = DefaultStreamHeartbeat
	}
	if opt.KeepAlive <= 0 {
		opt.KeepAlive = opt.Heartbeat
	}
	if opt.Limit <= 0 {
		opt.Limit = DefaultStreamLimit
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	s := &Streams{feed: feed, opt: opt, done: make(chan struct{}), writeTimeout: streamWriteTimeout}
	for range max(4, 2*runtime.GOMAXPROCS(0)) {
		s.shards = append(s.shards, &streamShard{})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	s.tokenEvents = counter("token_stream_events_total", "Token events (status or position changes) and rekeyed events sent on token streams.")
	s.heartbeats = counter("token_stream_heartbeats_total", "Heartbeat events sent on token streams.")
	s.opened = counter("token_streams_opened_total", "Token streams opened (GET /users/token/stream).")
	s.refused = counter("token_streams_refused_total", "Token streams refused with 503: the node's stream limit reached, or stopping.")
	if reg := opt.Registerer; reg != nil {
		reg.MustRegister(s.tokenEvents, s.heartbeats, s.opened, s.refused,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "token_streams_open",
				Help: "Token streams open now.",
			}, func() float64 { return float64(s.open.Load()) }))
	}
	return s
}

// Open is the number of streams open now.
func (s *Streams) Open() int { return int(s.open.Load()) }

// errStreamsFull is the cause (logged) of a refused stream.
var errStreamsFull = errors.New("token streams: limit reached or stopping")

// handler: GET /users/token/stream (Bearer) → 200 text/event-stream.
func (s *Streams) handler(c *fiber.Ctx) error {
	token, err := bearer(c)
	if err != nil {
		return err
	}
	if token == "" {
		return messages.Reject(messages.CodeTokenInvalid, "missing bearer token")
	}
	version, state, err := s.stateOf(c.UserContext(), token)
	if err != nil {
		return err
	}
	if id, ok := booking.IdentityOf(c.UserContext()); ok && id != state.UserID {
		return messages.Reject(messages.CodeIdentityMismatch, "the request acts for another user than its identity")
	}
	if s.full() {
		s.refused.Inc()
		return fmt.Errorf("%w: %w", persistence.ErrUnavailable, errStreamsFull)
	}
	now := time.Now()
	if state.Status == messages.TokenStatus_TOKEN_WAIT {
		s.feed.KeepWaiting(token, now)
	}
	c.Context().HijackSetNoResponse(true)
	c.Context().Hijack(func(nc net.Conn) {
		if u, ok := nc.(interface{ UnsafeConn() net.Conn }); ok {
			nc = u.UnsafeConn() // fasthttp's wrapper reads from a released buffer
		}
		s.start(nc, token, state, version, now)
	})
	return nil
}

// stateOf returns the feed's version and token's state, looking the token
// up first when the feed does not show it yet: an unknown token is 401, one
// that could not be checked in time 503 (it may well be valid).
func (s *Streams) stateOf(ctx context.Context, token string) (uint64, actors.TokenState, error) {
	version := s.feed.Version() // before the state: a later change is seen
	if state, ok := s.feed.State(token); ok {
		return version, state, nil
	}
	if s.opt.Lookup == nil {
		return 0, actors.TokenState{}, messages.Reject(messages.CodeTokenInvalid, "unknown token")
	}
	ctx, cancel := context.WithTimeout(ctx, streamLookupTimeout)
	defer cancel()
	_, err := s.opt.Lookup(ctx, token, time.Now())
	switch {
	case errors.Is(err, actors.ErrUnknownToken):
		return 0, actors.TokenState{}, messages.Reject(messages.CodeTokenInvalid, "unknown token")
	case err != nil:
		return 0, actors.TokenState{}, fmt.Errorf("%w: token stream: %w", persistence.ErrUnavailable, err)
	}
	// Found: the feed applies the entry on its own goroutine, a moment
	// after the lookup answered.
	for tick := time.NewTicker(5 * time.Millisecond); ; {
		version = s.feed.Version()
		if state, ok := s.feed.State(token); ok {
			tick.Stop()
			return version, state, nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			tick.Stop()
			return 0, actors.TokenState{}, fmt.Errorf("%w: token stream: the looked-up token did not reach the feed: %w",
				persistence.ErrUnavailable, ctx.Err())
		}
	}
}

func (s *Streams) full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed || s.open.Load() >= int64(s.opt.Limit)
}

// streamHeader starts every stream's response.
const streamHeader = "HTTP/1.1 200 OK\r\n" +
	"Content-Type: text/event-stream\r\n" +
	"Cache-Control: no-store\r\n" +
	"X-Accel-Buffering: no\r\n" +
	"Connection: close\r\n\r\n"

// start answers a hijacked request: the header and the first event, then
// the stream joins a shard (or ends at once for an expired token).
func (s *Streams) start(conn net.Conn, token string, state actors.TokenState, version uint64, now time.Time) {
	st := &tokenStream{conn: conn, token: token, tokenID: state.TokenID, seen: version, wrote: now, polled: now}
	s.mu.Lock()
	admit := !s.closed && s.open.Load() < int64(s.opt.Limit)
	if admit {
		s.open.Add(1)
		if !s.started {
			s.started = true
			for _, sh := range s.shards {
				s.wg.Add(1)
				go s.run(sh)
			}
		}
	}
	s.mu.Unlock()
	if !admit {
		s.refused.Inc()
		writeRefusal(conn, s.writeTimeout)
		_ = conn.Close()
		return
	}
	s.opened.Inc()
	buf := append(make([]byte, 0, 160), streamHeader...)
	buf = appendTokenEvent(buf, state)
	st.status, st.position = state.Status, state.Position
	s.tokenEvents.Inc()
	if !s.write(st, buf, now) || state.Status == messages.TokenStatus_TOKEN_EXPIRED {
		s.end(st)
		return
	}
	// Under s.mu, so that Close either finds the stream in its shard or
	// makes it end here.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.end(st)
		return
	}
	sh := s.shards[s.next.Add(1)%uint64(len(s.shards))]
	sh.mu.Lock()
	sh.streams = append(sh.streams, st)
	sh.mu.Unlock()
}

// writeRefusal answers a request refused after the hijack (the limit was
// reached meanwhile, or the node is stopping) as errorHandler would, within
// timeout (the hub's write timeout).
func writeRefusal(conn net.Conn, timeout time.Duration) {
	body, _ := json.Marshal(apiError{Code: messages.CodeStoreUnavailable, Message: unavailableMessage})
	head := "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n" +
		"Connection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	_ = conn.SetWriteDeadline(time.Now().Add(timeout))
	_, _ = conn.Write(append([]byte(head), body...))
}

// run scans one shard every Interval until Close.
func (s *Streams) run(sh *streamShard) {
	defer s.wg.Done()
	t := time.NewTicker(s.opt.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			s.scan(sh, now)
		}
	}
}

// scan sends each stream of sh what changed since its last event, a
// heartbeat if it is due, records the polls of waiting tokens, and drops
// the streams that ended.
func (s *Streams) scan(sh *streamShard, now time.Time) {
	version := s.feed.Version()
	sh.mu.Lock()
	list := append(sh.scratch[:0], sh.streams...)
	sh.mu.Unlock()
	var ended map[*tokenStream]bool
	for _, st := range list {
		if !s.step(sh, st, version, now) {
			if ended == nil {
				ended = map[*tokenStream]bool{}
			}
			ended[st] = true
		}
	}
	clear(list)
	sh.scratch = list[:0]
	if ended == nil {
		return
	}
	sh.mu.Lock()
	kept := sh.streams[:0]
	for _, st := range sh.streams {
		if !ended[st] {
			kept = append(kept, st)
		}
	}
	clear(sh.streams[len(kept):])
	sh.streams = kept
	sh.mu.Unlock()
	for st := range ended {
		s.end(st)
	}
}

// step serves one stream; false when it has ended.
func (s *Streams) step(sh *streamShard, st *tokenStream, version uint64, now time.Time) bool {
	if st.seen != version {
		state, ok := s.feed.State(st.token)
		st.seen = version
		rekeyed := false
		if !ok {
			// The secret no longer works. Say why, as the token really is:
			// its user was given a fresh secret (the token lives on, under
			// it), or the token left the table (expired and forgotten).
			state, rekeyed = s.feed.StateByID(st.tokenID)
			if !rekeyed {
				state = actors.TokenState{Status: messages.TokenStatus_TOKEN_EXPIRED}
			}
		}
		if state.Status == messages.TokenStatus_TOKEN_WAIT && state.Position == 0 {
			st.seen = version - 1 // caught while being published: read it again
			return true
		}
		if rekeyed {
			sh.buf = appendEvent(sh.buf[:0], "rekeyed", state)
			s.tokenEvents.Inc()
			s.write(st, sh.buf, now)
			return false // the stream of a secret that no longer works ends
		}
		if state.Status != st.status || state.Position != st.position {
			st.status, st.position = state.Status, state.Position
			sh.buf = appendTokenEvent(sh.buf[:0], state)
			s.tokenEvents.Inc()
			if !s.write(st, sh.buf, now) {
				return false
			}
		}
		if st.status == messages.TokenStatus_TOKEN_EXPIRED {
			return false
		}
	}
	if now.Sub(st.wrote) >= s.opt.Heartbeat {
		s.heartbeats.Inc()
		if !s.write(st, heartbeatEvent, now) {
			return false
		}
	}
	if st.status == messages.TokenStatus_TOKEN_WAIT && now.Sub(st.polled) >= s.opt.KeepAlive {
		st.polled = now
		s.feed.KeepWaiting(st.token, now)
	}
	return true
}

// write sends b on the stream, within streamWriteTimeout.
func (s *Streams) write(st *tokenStream, b []byte, now time.Time) bool {
	if err := st.conn.SetWriteDeadline(time.Now().Add(s.writeTimeout)); err != nil {
		return false
	}
	if _, err := st.conn.Write(b); err != nil {
		return false
	}
	st.wrote = now
	return true
}

// end closes a stream that is in no shard.
func (s *Streams) end(st *tokenStream) {
	_ = st.conn.Close()
	s.open.Add(-1)
}

// Close ends every stream (their clients see the connection close) and
// refuses new ones; it returns once the hub's goroutines have stopped.
func (s *Streams) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	s.wg.Wait()
	for _, sh := range s.shards {
		sh.mu.Lock()
		list := sh.streams
		sh.streams = nil
		sh.mu.Unlock()
		for _, st := range list {
			s.end(st)
		}
	}
}

var heartbeatEvent = []byte("event: heartbeat\ndata: {}\n\n")

// appendTokenEvent appends the token event of state to b.
func appendTokenEvent(b []byte, state actors.TokenState) []byte {
	return appendEvent(b, "token", state)
}

// appendEvent appends an event named name whose data is state.
func appendEvent(b []byte, name string, state actors.TokenState) []byte {
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\n"+`data: {"status":"`...)
	b = append(b, tokenStatus[state.Status]...)
	b = append(b, `","position":`...)
	pos := state.Position
	if state.Status != messages.TokenStatus_TOKEN_WAIT {
		pos = 0
	}
	b = strconv.AppendInt(b, pos, 10)
	return append(b, "}\n\n"...)
}
