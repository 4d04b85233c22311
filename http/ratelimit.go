package http

import (
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/time/rate"
)

// codeRateLimited is the 429 of a client over its rate.
const codeRateLimited = "RATE_LIMITED"

// RateLimits are the per-client limits of the routes that grow state or
// hammer the queue manager, in requests per minute per client address
// (0: no limit). A client may spend a sixth of its minute's allowance at
// once (ten seconds' worth), then the rest at the steady rate.
type RateLimits struct {
	Users      int // POST /users
	TokenIssue int // POST /users/token
	TokenPoll  int // GET /users/token
	// TrustedProxies are the addresses of the reverse proxies in front of
	// the service. A request from one of them is the client named by its
	// X-Forwarded-For header: the address nearest to the end of the list
	// that is not itself a trusted proxy. Empty: X-Forwarded-For is
	// ignored, the client is the connection's peer.
	TrustedProxies []netip.Prefix
}

// maxClients bounds the clients one limiter remembers: past it, an
// arbitrary one is forgotten (it starts again with a full allowance), so a
// flood from many addresses cannot grow the table without bound.
const maxClients = 100_000

// limiter is one route's limit, one token bucket per client address.
type limiter struct {
	limit  rate.Limit
	burst  int
	idle   time.Duration // a bucket untouched this long is full again: forgotten
	mu     sync.Mutex
	byAddr map[netip.Addr]*bucket
	swept  time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// newLimiter returns a limiter of perMinute requests per minute per
// client, or nil for no limit.
func newLimiter(perMinute int) *limiter {
	if perMinute <= 0 {
		return nil
	}
	burst := max(1, (perMinute+5)/6)
	l := rate.Limit(float64(perMinute) / 60)
	return &limiter{limit: l, burst: burst, byAddr: map[netip.Addr]*bucket{},
		idle: time.Duration(float64(burst)/float64(l)*float64(time.Second)) + time.Second}
}

// take spends one request of addr's allowance at now. When there is none
// left it reports how long until there is.
func (l *limiter) take(addr netip.Addr, now time.Time) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > l.idle {
		l.sweep(now)
	}
	b := l.byAddr[addr]
	if b == nil {
		if len(l.byAddr) >= maxClients {
			for a := range l.byAddr { // an arbitrary one
				delete(l.byAddr, a)
				break
			}
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.byAddr[addr] = b
	}
	b.last = now
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	r := b.lim.ReserveN(now, 1)
	wait = r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}

// sweep forgets the buckets idle long enough to be full again; l.mu is
// held.
func (l *limiter) sweep(now time.Time) {
	for a, b := range l.byAddr {
		if now.Sub(b.last) > l.idle {
			delete(l.byAddr, a)
		}
	}
	l.swept = now
}

// limit is the middleware of one limiter (nil: none).
func (h *handlers) limit(l *limiter) fiber.Handler {
	if l == nil {
		return func(c *fiber.Ctx) error { return c.Next() }
	}
	return func(c *fiber.Ctx) error {
		ok, wait := l.take(h.clientAddr(c), time.Now())
		if ok {
			return c.Next()
		}
		secs := max(1, int(math.Ceil(wait.Seconds())))
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
		return c.Status(fiber.StatusTooManyRequests).JSON(apiError{
			Code:    codeRateLimited,
			Message: "too many requests from this client; retry after " + strconv.Itoa(secs) + " s",
		})
	}
}

// clientAddr is the address a request is counted under: the connection's
// peer or, when the peer is a trusted proxy, the client its
// X-Forwarded-For names.
func (h *handlers) clientAddr(c *fiber.Ctx) netip.Addr {
	peer := addrOf(c.Context().RemoteAddr())
	if len(h.trusted) == 0 || !h.isTrusted(peer) {
		return peer
	}
	// Every X-Forwarded-For header, in order, as one list; walk it from
	// the end (the hop nearest to us) past the trusted proxies.
	var hops []string
	for _, v := range c.Request().Header.PeekAll(fiber.HeaderXForwardedFor) {
		hops = append(hops, strings.Split(string(v), ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // garbage: trust nothing before it
		}
		client = a.Unmap()
		if !h.isTrusted(client) {
			break
		}
	}
	return client
}

func (h *handlers) isTrusted(a netip.Addr) bool {
	for _, p := range h.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// addrOf is the IP address of a connection's remote address (the zero
// address if it has none, as for a test's in-memory connection).
func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// ParseTrustedProxies parses a comma-separated list of addresses and CIDR
// prefixes ("10.0.0.0/8, 192.168.1.7"); empty is none.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if p, err := netip.ParsePrefix(part); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, err
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
