package http

import (
	"runtime"
	"strconv"
	"sync"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/pprof"
)

// pprofPrefix is where the Go profiler is served when Config.Pprof is set.
const pprofPrefix = "/debug/pprof"

// While a block or mutex profile is being taken (…/block?seconds=N,
// …/mutex?seconds=N) the runtime samples one blocking event per
// blockProfileRateNs nanoseconds spent blocked and one mutex contention in
// mutexProfileFraction; the rest of the time it samples none, so serving
// the profiler costs nothing until an operator asks. (runtime
// SetBlockProfileRate and SetMutexProfileFraction; both are off by default,
// which left these two profiles empty.)
const (
	blockProfileRateNs   = 10_000
	mutexProfileFraction = 10
)

// contentionSampling turns the runtime's block and mutex sampling on while
// at least one timed block or mutex profile is being taken, and off again
// after the last one: two operators profiling at once do not cut each
// other's profile short.
type contentionSampling struct {
	mu     sync.Mutex
	active int
}

// during runs next with sampling on.
func (s *contentionSampling) during(next func() error) error {
	s.mu.Lock()
	if s.active == 0 {
		runtime.SetBlockProfileRate(blockProfileRateNs)
		runtime.SetMutexProfileFraction(mutexProfileFraction)
	}
	s.active++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.active--
		if s.active == 0 {
			runtime.SetBlockProfileRate(0)
			runtime.SetMutexProfileFraction(0)
		}
		s.mu.Unlock()
	}()
	return next()
}

// mountPprof serves net/http/pprof's profiles (CPU, heap, goroutine, block,
// mutex, trace) under /debug/pprof/ for operators: with an admin key
// configured, a request must carry it (X-Admin-Key); without one, only
// clients on the loopback interface are served. Anything else gets the
// admin-key refusal, so the profiler never faces the internet by accident.
// Block and mutex profiles are sampled only while one is asked for with
// ?seconds=N (contentionSampling); without it they are empty.
//
//	curl -H 'X-Admin-Key: k' -o cpu.out 'http://host:8080/debug/pprof/profile?seconds=20'
//	curl -H 'X-Admin-Key: k' -o block.out 'http://host:8080/debug/pprof/block?seconds=20'
//	go tool pprof -http=: cpu.out
func (h *handlers) mountPprof(app *fiber.App, adminKey string) {
	guard := func(c *fiber.Ctx) error {
		if adminKey != "" {
			return h.requireAdmin(c)
		}
		if !c.Context().RemoteIP().IsLoopback() {
			return fiber.ErrNotFound
		}
		return c.Next()
	}
	sampling := &contentionSampling{}
	contention := func(c *fiber.Ctx) error {
		switch c.Path() {
		case pprofPrefix + "/block", pprofPrefix + "/mutex":
			if n, err := strconv.Atoi(c.Query("seconds")); err == nil && n > 0 {
				return sampling.during(c.Next)
			}
		}
		return c.Next()
	}
	app.Use(pprofPrefix, guard, contention, pprof.New())
}
