package http

import "github.com/gofiber/fiber/v2"

// createUser: POST /users {"name"} → 201 {"id", "name", "createdAt"}.
func (h *handlers) createUser(c *fiber.Ctx) error {
	f, err := object(c)
	if err != nil {
		return err
	}
	name, err := f.text("name", maxNameLen)
	if err != nil {
		return err
	}
	u, err := h.b.CreateUser(c.UserContext(), name)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"id": u.ID, "name": u.Name, "createdAt": stamp(u.CreatedAt)})
}

// issueToken: POST /users/token {"userId"} → 200 token object.
func (h *handlers) issueToken(c *fiber.Ctx) error {
	f, err := object(c)
	if err != nil {
		return err
	}
	userID, err := f.id("userId")
	if err != nil {
		return err
	}
	t, err := h.b.IssueToken(c.UserContext(), userID)
	if err != nil {
		return err
	}
	return c.JSON(viewToken(t))
}

// getToken: GET /users/token (Bearer) → 200 token object.
func (h *handlers) getToken(c *fiber.Ctx) error {
	token, err := bearer(c)
	if err != nil {
		return err
	}
	t, err := h.b.Token(c.UserContext(), token)
	if err != nil {
		return err
	}
	return c.JSON(viewToken(t))
}
