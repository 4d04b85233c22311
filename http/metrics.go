package http

import (
	"strconv"
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
		duration.WithLabelValues(route, c.Method(), strconv.Itoa(c.Response().StatusCode())).
			Observe(time.Since(start).Seconds())
		return nil
	}
}

// metricsHandler serves g in the Prometheus text format.
func metricsHandler(g prometheus.Gatherer) fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
}
