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

// Client speaks the service's HTTP API to one server over fasthttp.
// It is safe for concurrent use.
type Client struct {
	hc       *fasthttp.HostClient
	target   string
	host     string // the Host header
	prefix   string // path prefix of the API, "" or "/api"
	adminKey string
	timeout  time.Duration
}

// NewClient returns a client of the server at target, which should come
// from CheckTarget.
func NewClient(target *url.URL, opts ClientOptions) *Client {
	if opts.MaxConns <= 0 {
		opts.MaxConns = 1024
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	port := target.Port()
	if port == "" {
		port = "80"
		if target.Scheme == "https" {
			port = "443"
		}
	}
	return &Client{
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
		target:   target.String(),
		host:     target.Host,
		prefix:   target.Path,
		adminKey: opts.AdminKey,
		timeout:  opts.Timeout,
	}
}

// Target is the server URL.
func (c *Client) Target() string { return c.target }

// CloseIdle closes the idle keep-alive connections.
func (c *Client) CloseIdle() { c.hc.CloseIdleConnections() }

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
	if err := ctx.Err(); err != nil {
		return err
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(c.prefix + path)
	req.Header.SetHost(c.host)
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
	if err := c.hc.DoTimeout(req, resp, timeout); err != nil {
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
	pathRes []byte // prefix + "/reservations"
	pathBuf []byte
}

func (c *Client) newConn() *conn {
	return &conn{
		c:       c,
		req:     &fasthttp.Request{},
		resp:    &fasthttp.Response{},
		pathRes: []byte(c.prefix + "/reservations"),
	}
}

func (w *conn) do(method string, path []byte, auth []byte, body []byte) (int, error) {
	req := w.req
	req.Reset()
	w.resp.Reset()
	req.Header.SetMethod(method)
	req.SetRequestURIBytes(path)
	req.Header.SetHost(w.c.host)
	if auth != nil {
		req.Header.SetBytesV("Authorization", auth)
	}
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	if err := w.c.hc.DoTimeout(req, w.resp, w.c.timeout); err != nil {
		return 0, err
	}
	return w.resp.StatusCode(), nil
}

// hold sends POST /reservations and returns the reservation id of a 200,
// or the status and error code of another answer.
func (w *conn) hold(auth []byte, userID, seatID int64) (id int64, status int, code string, err error) {
	b := append(w.body[:0], `{"userId":`...)
	b = strconv.AppendInt(b, userID, 10)
	b = append(b, `,"seatId":`...)
	b = strconv.AppendInt(b, seatID, 10)
	b = append(b, '}')
	w.body = b
	status, err = w.do(fasthttp.MethodPost, w.pathRes, auth, b)
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

// cancel sends DELETE /reservations/{id}.
func (w *conn) cancel(auth []byte, id int64) (status int, code string, err error) {
	p := append(w.pathBuf[:0], w.pathRes...)
	p = append(p, '/')
	p = strconv.AppendInt(p, id, 10)
	w.pathBuf = p
	status, err = w.do(fasthttp.MethodDelete, p, auth, nil)
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
