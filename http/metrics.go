package http

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// unmatchedRoute labels requests that matched no route, so that made-up
// paths cannot grow the label set.
const unmatchedRoute = "unmatched"

// newMetrics registers the HTTP and queue metrics on reg and returns the
// middleware that observes every request. It renders a handler's error
// itself (with onError) so that the observed status is the one sent.
func newMetrics(reg prometheus.Registerer, b Booking, onError fiber.ErrorHandler) fiber.Handler {
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route pattern, method and status.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "method", "status"})
	reg.MustRegister(duration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "queue_waiting",
			Help: "Queue tokens waiting in line.",
		}, func() float64 { w, _ := b.QueueSizes(); return float64(w) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "queue_active",
			Help: "Active queue tokens.",
		}, func() float64 { _, a := b.QueueSizes(); return float64(a) }),
	)
	observers := &observerCache{vec: duration, m: map[observerKey]prometheus.Observer{}}
	return func(c *fiber.Ctx) error {
		start, self := time.Now(), c.Route()
		if err := c.Next(); err != nil {
			if err := onError(c, err); err != nil {
				return err
			}
		}
		route := c.Route().Path
		if c.Route() == self { // no handler matched
			route = unmatchedRoute
		}
		observers.get(route, c.Method(), c.Response().StatusCode()).Observe(time.Since(start).Seconds())
		return nil
	}
}

// observerKey is one label set of http_request_duration_seconds.
type observerKey struct {
	route, method string
	status        int
}

// observerCache remembers the histogram of each label set, so that a
// request costs one map look-up instead of hashing its labels (and
// formatting its status) in the vector.
type observerCache struct {
	vec *prometheus.HistogramVec
	mu  sync.RWMutex
	m   map[observerKey]prometheus.Observer
}

// get returns the observer of a label set. The strings may alias a
// request's buffers: they are copied before they are kept (the label
// values outlive the request).
func (o *observerCache) get(route, method string, status int) prometheus.Observer {
	k := observerKey{route: route, method: method, status: status}
	o.mu.RLock()
	obs, ok := o.m[k]
	o.mu.RUnlock()
	if ok {
		return obs
	}
	k.route, k.method = strings.Clone(route), strings.Clone(method)
	obs = o.vec.WithLabelValues(k.route, k.method, strconv.Itoa(status))
	o.mu.Lock()
	o.m[k] = obs
	o.mu.Unlock()
	return obs
}

// metricsHandler serves g in the Prometheus text format.
func metricsHandler(g prometheus.Gatherer) fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
}
