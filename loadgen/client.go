package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// ClientOptions tune a Client.
type ClientOptions struct {
	// AdminKey is sent as X-Admin-Key on the admin calls.
	AdminKey string
	// MaxConns bounds the keep-alive connections; it must be at least the
	// number of concurrent users, or they queue in the client and the
	// latency measured is the client's. Default 1024.
	MaxConns int
	// Timeout bounds each request. Default 10s.
	Timeout time.Duration
}

// Client speaks the service's HTTP API to one or more servers (base URLs)
// over fasthttp. It is safe for concurrent use.
//
// With several base URLs, the requests of one user always go to the same
// one (user id modulo the number of URLs), so a token is used on the node
// that issued it; requests of no user are spread round-robin.
type Client struct {
	nodes    []*baseURL
	rr       atomic.Uint64
	adminKey string
	timeout  time.Duration
}

// baseURL is one server the client spreads requests over.
type baseURL struct {
	hc     *fasthttp.HostClient
	target string
	host   string // the Host header
	prefix string // path prefix of the API, "" or "/api"
}

// NewClient returns a client of the server at target, which should come
// from CheckTarget.
func NewClient(target *url.URL, opts ClientOptions) *Client {
	return NewMultiClient([]*url.URL{target}, opts)
}

// NewMultiClient returns a client that spreads its requests over targets
// (each from CheckTarget); MaxConns applies to each of them.
func NewMultiClient(targets []*url.URL, opts ClientOptions) *Client {
	if opts.MaxConns <= 0 {
		opts.MaxConns = 1024
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	c := &Client{adminKey: opts.AdminKey, timeout: opts.Timeout}
	for _, target := range targets {
		port := target.Port()
		if port == "" {
			port = "80"
			if target.Scheme == "https" {
				port = "443"
			}
		}
		c.nodes = append(c.nodes, &baseURL{
			hc: &fasthttp.HostClient{
				Addr:                     net.JoinHostPort(target.Hostname(), port),
				IsTLS:                    target.Scheme == "https",
				MaxConns:                 opts.MaxConns,
				MaxConnWaitTimeout:       opts.Timeout,
				MaxIdleConnDuration:      time.Minute,
				ReadTimeout:              opts.Timeout,
				WriteTimeout:             opts.Timeout,
				NoDefaultUserAgentHeader: true,
				// A benchmark must not resend a request on its own: every
				// attempt is counted by the scenario.
				MaxIdemponentCallAttempts: 1,
			},
			target: target.String(),
			host:   target.Host,
			prefix: target.Path,
		})
	}
	return c
}

// Target is the server URL, or the URLs joined by commas.
func (c *Client) Target() string { return strings.Join(c.Targets(), ",") }

// Targets are the base URLs, in order.
func (c *Client) Targets() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.target
	}
	return out
}

// CloseIdle closes the idle keep-alive connections.
func (c *Client) CloseIdle() {
	for _, n := range c.nodes {
		n.hc.CloseIdleConnections()
	}
}

// node picks the base URL of user key (> 0), or the next one round-robin.
func (c *Client) node(key int64) *baseURL {
	if len(c.nodes) == 1 {
		return c.nodes[0]
	}
	if key > 0 {
		return c.nodes[key%int64(len(c.nodes))]
	}
	return c.nodes[c.rr.Add(1)%uint64(len(c.nodes))]
}

// APIError is an answer other than the one a call expected.
type APIError struct {
	Method, Path string
	Status       int
	Code         string // the error body's "code", if any
	Message      string
}

func (e *APIError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("%s %s: %d: %s", e.Method, e.Path, e.Status, e.Message)
}

// call sends one JSON request and decodes a JSON answer with status want
// into out (if not nil).
func (c *Client) call(ctx context.Context, method, path, bearer string, hdr map[string]string, in, out any, want int) error {
	return c.callAs(ctx, 0, method, path, bearer, hdr, in, out, want)
}

// callAs is call on the base URL of user key (0: any).
func (c *Client) callAs(ctx context.Context, key int64, method, path, bearer string, hdr map[string]string, in, out any, want int) error {
	n := c.node(key)
	if err := ctx.Err(); err != nil {
		return err
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(n.prefix + path)
	req.Header.SetHost(n.host)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(b)
	}
	timeout := c.timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	if err := n.hc.DoTimeout(req, resp, timeout); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode() != want {
		body := resp.Body()
		msg := string(body)
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		var e struct{ Code, Message string }
		if json.Unmarshal(body, &e) == nil && e.Code != "" {
			msg = e.Message
		}
		return &APIError{Method: method, Path: path, Status: resp.StatusCode(), Code: e.Code, Message: msg}
	}
	if out != nil {
		if err := json.Unmarshal(resp.Body(), out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// conn is one worker's reusable request and response for the hot paths,
// which build their bodies by hand: encoding/json on every hold would cost
// the server CPU it shares with the generator.
type conn struct {
	c       *Client
	req     *fasthttp.Request
	resp    *fasthttp.Response
	body    []byte
	pathBuf []byte
}

func (c *Client) newConn() *conn {
	return &conn{c: c, req: &fasthttp.Request{}, resp: &fasthttp.Response{}}
}

// do sends one request to the base URL of user key (0: any); path is
// without the base URL's prefix.
func (w *conn) do(key int64, method string, path []byte, auth []byte, body []byte) (int, error) {
	return w.doHdr(key, method, path, auth, body, "", "")
}

// doHdr is do with one extra header (none if name is "").
func (w *conn) doHdr(key int64, method string, path []byte, auth []byte, body []byte, name, value string) (int, error) {
	n := w.c.node(key)
	req := w.req
	req.Reset()
	w.resp.Reset()
	req.Header.SetMethod(method)
	if n.prefix != "" {
		req.SetRequestURI(n.prefix + string(path))
	} else {
		req.SetRequestURIBytes(path)
	}
	req.Header.SetHost(n.host)
	if auth != nil {
		req.Header.SetBytesV("Authorization", auth)
	}
	if name != "" {
		req.Header.Set(name, value)
	}
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	if err := n.hc.DoTimeout(req, w.resp, w.c.timeout); err != nil {
		return 0, err
	}
	return w.resp.StatusCode(), nil
}

// answer is the body of the last response; valid until the next request.
func (w *conn) answer() []byte { return w.resp.Body() }

var pathReservations = []byte("/reservations")

// hold sends POST /reservations and returns the reservation id of a 200,
// or the status and error code of another answer.
func (w *conn) hold(auth []byte, userID, seatID int64) (id int64, status int, code string, err error) {
	b := append(w.body[:0], `{"userId":`...)
	b = strconv.AppendInt(b, userID, 10)
	b = append(b, `,"seatId":`...)
	b = strconv.AppendInt(b, seatID, 10)
	b = append(b, '}')
	w.body = b
	status, err = w.do(userID, fasthttp.MethodPost, pathReservations, auth, b)
	if err != nil {
		return 0, 0, "", err
	}
	if status != fasthttp.StatusOK {
		return 0, status, parseCode(w.resp.Body()), nil
	}
	id, ok := parseID(w.resp.Body())
	if !ok {
		return 0, status, "", errors.New("hold answer without id")
	}
	return id, status, "", nil
}

// cancel sends DELETE /reservations/{id} for user userID.
func (w *conn) cancel(auth []byte, userID, id int64) (status int, code string, err error) {
	p := append(w.pathBuf[:0], pathReservations...)
	p = append(p, '/')
	p = strconv.AppendInt(p, id, 10)
	w.pathBuf = p
	status, err = w.do(userID, fasthttp.MethodDelete, p, auth, nil)
	if err != nil {
		return 0, "", err
	}
	if status != fasthttp.StatusOK {
		return status, parseCode(w.resp.Body()), nil
	}
	return status, "", nil
}

// parseID finds the top-level "id" number of a flat JSON object without
// decoding the rest; ok is false if there is none.
func parseID(body []byte) (int64, bool) {
	i := bytes.Index(body, []byte(`"id"`))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(body[i+4:], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return 0, false
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 {
		return 0, false
	}
	id, err := strconv.ParseInt(string(rest[:n]), 10, 64)
	if err != nil {
		return 0, false
	}
	return id, true
}

// parseCode returns the "code" of an error body, or "".
func parseCode(body []byte) string {
	var e struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Code
}

// transportKind names a transport error for the error table.
func transportKind(err error) string {
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
		return "timeout"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no free connection"
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return "connection closed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[:60]
	}
	return "transport: " + s
}

// outcomeKey names an unexpected answer for the error table.
func outcomeKey(status int, code string) string {
	if code == "" {
		return "HTTP " + strconv.Itoa(status)
	}
	return "HTTP " + strconv.Itoa(status) + " " + code
}

var (
	pathPayments = []byte("/payments")
	pathPoint    = []byte("/customers/point")
	pathToken    = []byte("/users/token")
)

// pay sends POST /payments for reservation id with an Idempotency-Key.
// On 200 it returns the balance the answer shows.
func (w *conn) pay(auth []byte, userID, id, amount int64, key string) (balance int64, status int, code string, err error) {
	b := append(w.body[:0], `{"reservationId":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"amount":`...)
	b = strconv.AppendInt(b, amount, 10)
	b = append(b, '}')
	w.body = b
	status, err = w.doHdr(userID, fasthttp.MethodPost, pathPayments, auth, b, "Idempotency-Key", key)
	if err != nil {
		return 0, 0, "", err
	}
	if status != fasthttp.StatusOK {
		return 0, status, parseCode(w.resp.Body()), nil
	}
	balance, _ = parseNumber(w.resp.Body(), "balance")
	return balance, status, "", nil
}

// charge sends PATCH /customers/point with an Idempotency-Key (none if
// key is ""). On 200 it returns the balance.
func (w *conn) charge(userID, amount int64, key string) (balance int64, status int, code string, err error) {
	b := append(w.body[:0], `{"userId":`...)
	b = strconv.AppendInt(b, userID, 10)
	b = append(b, `,"chargeBalance":`...)
	b = strconv.AppendInt(b, amount, 10)
	b = append(b, '}')
	w.body = b
	name := ""
	if key != "" {
		name = "Idempotency-Key"
	}
	status, err = w.doHdr(userID, fasthttp.MethodPatch, pathPoint, nil, b, name, key)
	if err != nil {
		return 0, 0, "", err
	}
	if status != fasthttp.StatusOK {
		return 0, status, parseCode(w.resp.Body()), nil
	}
	balance, ok := parseNumber(w.resp.Body(), "balance")
	if !ok {
		return 0, status, "", errors.New("charge answer without balance")
	}
	return balance, status, "", nil
}

// balance sends GET /customers/point?userId=.
func (w *conn) balance(userID int64) (balance int64, status int, code string, err error) {
	p := append(w.pathBuf[:0], "/customers/point?userId="...)
	p = strconv.AppendInt(p, userID, 10)
	w.pathBuf = p
	status, err = w.do(userID, fasthttp.MethodGet, p, nil, nil)
	if err != nil {
		return 0, 0, "", err
	}
	if status != fasthttp.StatusOK {
		return 0, status, parseCode(w.resp.Body()), nil
	}
	balance, ok := parseNumber(w.resp.Body(), "balance")
	if !ok {
		return 0, status, "", errors.New("balance answer without balance")
	}
	return balance, status, "", nil
}

// tokenAnswer is the part of a token object the scenarios read.
type tokenAnswer struct {
	Token    string `json:"token"`
	Status   string `json:"status"`
	Position int64  `json:"position"`
}

// issueToken sends POST /users/token for userID.
func (w *conn) issueToken(userID int64) (tok tokenAnswer, status int, code string, err error) {
	b := append(w.body[:0], `{"userId":`...)
	b = strconv.AppendInt(b, userID, 10)
	b = append(b, '}')
	w.body = b
	status, err = w.do(userID, fasthttp.MethodPost, pathToken, nil, b)
	return w.tokenResult(status, err)
}

// pollToken sends GET /users/token with auth ("Bearer <token>").
func (w *conn) pollToken(userID int64, auth []byte) (tok tokenAnswer, status int, code string, err error) {
	status, err = w.do(userID, fasthttp.MethodGet, pathToken, auth, nil)
	return w.tokenResult(status, err)
}

func (w *conn) tokenResult(status int, err error) (tok tokenAnswer, _ int, code string, _ error) {
	if err != nil {
		return tok, 0, "", err
	}
	if status != fasthttp.StatusOK {
		return tok, status, parseCode(w.resp.Body()), nil
	}
	if err := json.Unmarshal(w.resp.Body(), &tok); err != nil || tok.Token == "" {
		return tok, status, "", fmt.Errorf("token answer: %q", w.resp.Body())
	}
	return tok, status, "", nil
}

// parseNumber finds the integer value of the top-level key of a flat JSON
// object.
func parseNumber(body []byte, key string) (int64, bool) {
	k := `"` + key + `"`
	i := bytes.Index(body, []byte(k))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(body[i+len(k):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return 0, false
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	n := 0
	if n < len(rest) && rest[n] == '-' {
		n++
	}
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	v, err := strconv.ParseInt(string(rest[:n]), 10, 64)
	return v, err == nil
}
