package http

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/concert/ticketing/persistence"
)

// readyTimeout bounds one readiness probe.
const readyTimeout = 2 * time.Second

//go:embed openapi.yaml
var openapiSpec []byte

// healthz: GET /healthz → 200 while the process runs.
func (h *handlers) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz: GET /readyz → 200 when the store and the actors answer, else 503
// STORE_UNAVAILABLE (the cause is logged by errorHandler).
func (h *handlers) readyz(c *fiber.Ctx) error {
	if h.ready != nil {
		ctx, cancel := context.WithTimeout(c.UserContext(), readyTimeout)
		defer cancel()
		if err := h.ready(ctx); err != nil {
			return fmt.Errorf("not ready: %w: %w", persistence.ErrUnavailable, err)
		}
	}
	return c.JSON(fiber.Map{"status": "ready"})
}

// serveOpenAPI: GET /openapi.yaml → the contract as OpenAPI 3.
func serveOpenAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "application/yaml")
	return c.Send(openapiSpec)
}
