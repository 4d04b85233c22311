package http

import (
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/pprof"
)

// pprofPrefix is where the Go profiler is served when Config.Pprof is set.
const pprofPrefix = "/debug/pprof"

// mountPprof serves net/http/pprof's profiles (CPU, heap, goroutine, block,
// mutex, trace) under /debug/pprof/ for operators: with an admin key
// configured, a request must carry it (X-Admin-Key); without one, only
// clients on the loopback interface are served. Anything else gets the
// admin-key refusal, so the profiler never faces the internet by accident.
//
//	curl -H 'X-Admin-Key: k' -o cpu.out 'http://host:8080/debug/pprof/profile?seconds=20'
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
	app.Use(pprofPrefix, guard, pprof.New())
}
