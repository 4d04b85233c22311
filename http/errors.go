package http

import (
	"context"
	"errors"
	"fmt"
	stdhttp "net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// Codes of errors the HTTP layer makes itself, beside messages' codes.
const (
	codeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	codeHeadersTooLarge  = "HEADERS_TOO_LARGE"
	codeInternal         = "INTERNAL"
)

// statusOfCode maps every rejection code of the contract to its status.
var statusOfCode = map[string]int{
	messages.CodeInvalidRequest:       stdhttp.StatusBadRequest,
	messages.CodeUserNotFound:         stdhttp.StatusNotFound,
	messages.CodeTokenInvalid:         stdhttp.StatusUnauthorized,
	messages.CodeTokenNotActive:       stdhttp.StatusUnauthorized,
	messages.CodeTokenUserMismatch:    stdhttp.StatusForbidden,
	messages.CodeConcertNotFound:      stdhttp.StatusNotFound,
	messages.CodeDateNotFound:         stdhttp.StatusNotFound,
	messages.CodeAdminKeyInvalid:      stdhttp.StatusUnauthorized,
	messages.CodeSeatUnavailable:      stdhttp.StatusConflict,
	messages.CodeSeatNotFound:         stdhttp.StatusNotFound,
	messages.CodeHoldLimit:            stdhttp.StatusConflict,
	messages.CodeInvalidAmount:        stdhttp.StatusBadRequest,
	messages.CodeBalanceLimit:         stdhttp.StatusConflict,
	messages.CodeAmountMismatch:       stdhttp.StatusBadRequest,
	messages.CodeReservationNotFound:  stdhttp.StatusNotFound,
	messages.CodeHoldExpired:          stdhttp.StatusConflict,
	messages.CodeAlreadyPaid:          stdhttp.StatusConflict,
	messages.CodeInsufficientBalance:  stdhttp.StatusConflict,
	messages.CodeIdempotencyKeyReused: stdhttp.StatusConflict,
	messages.CodeReservationCancelled: stdhttp.StatusConflict,
	messages.CodePaymentInProgress:    stdhttp.StatusConflict,
	messages.CodeStoreUnavailable:     stdhttp.StatusServiceUnavailable,
	messages.CodePayloadTooLarge:      stdhttp.StatusRequestEntityTooLarge,
	messages.CodeNotFound:             stdhttp.StatusNotFound,
	// Not 401: a 401 must name a scheme (WWW-Authenticate) the client can
	// answer; in the trusted-identity mode the gateway authenticates.
	messages.CodeIdentityRequired: stdhttp.StatusForbidden,
	messages.CodeIdentityMismatch: stdhttp.StatusForbidden,
}

// apiError is the one error body of the API.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// unavailableMessage is the one public message of every 503: the cause
// (a driver error may name the database, its user or its host) goes to the
// log only.
const unavailableMessage = "the service is temporarily unavailable; retry later"

// statusOf maps any error a handler returns to its status and body. ok is
// false for an error that is not the client's nor a known outage: a bug,
// answered 500 with a generic message. Every 503 carries
// unavailableMessage, whatever its cause said.
func statusOf(err error) (status int, body apiError, ok bool) {
	var (
		rej  *messages.Rejection
		ferr *fiber.Error
	)
	switch {
	case errors.As(err, &rej):
		if s, known := statusOfCode[rej.GetCode()]; known {
			if s == stdhttp.StatusServiceUnavailable {
				return s, apiError{Code: rej.GetCode(), Message: unavailableMessage}, true
			}
			return s, apiError{Code: rej.GetCode(), Message: rej.GetMessage()}, true
		}
	case errors.Is(err, persistence.ErrUnavailable), errors.Is(err, cluster.ErrTimeout),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return stdhttp.StatusServiceUnavailable, apiError{
			Code: messages.CodeStoreUnavailable, Message: unavailableMessage,
		}, true
	case errors.As(err, &ferr):
		switch ferr.Code {
		case stdhttp.StatusNotFound:
			return ferr.Code, apiError{Code: messages.CodeNotFound, Message: "no such route"}, true
		case stdhttp.StatusMethodNotAllowed:
			return ferr.Code, apiError{Code: codeMethodNotAllowed, Message: "method not allowed on this route"}, true
		case stdhttp.StatusRequestEntityTooLarge:
			return ferr.Code, apiError{Code: messages.CodePayloadTooLarge, Message: "request body exceeds 64 KiB"}, true
		case stdhttp.StatusRequestHeaderFieldsTooLarge:
			return ferr.Code, apiError{Code: codeHeadersTooLarge, Message: fmt.Sprintf("the request line and headers exceed %d KiB", MaxHeaderBytes>>10)}, true
		case stdhttp.StatusUnsupportedMediaType:
			return ferr.Code, apiError{Code: codeUnsupportedMediaType, Message: ferr.Message}, true
		}
		if ferr.Code >= 400 && ferr.Code < 500 {
			return stdhttp.StatusBadRequest, apiError{Code: messages.CodeInvalidRequest, Message: ferr.Message}, true
		}
	}
	return stdhttp.StatusInternalServerError, apiError{Code: codeInternal, Message: "internal error"}, false
}

// errorHandler writes the error body of err; it is Fiber's ErrorHandler.
// The cause of a 500 or a 503 is logged, never sent.
func (h *handlers) errorHandler(c *fiber.Ctx, err error) error {
	status, body, ok := statusOf(err)
	switch {
	case !ok:
		// Copies: a log handler may keep the record beyond the request.
		h.log.Error("request failed", "method", strings.Clone(c.Method()), "path", strings.Clone(c.Path()), "err", err)
	case status == stdhttp.StatusServiceUnavailable:
		h.log.Warn("service unavailable", "method", strings.Clone(c.Method()), "path", strings.Clone(c.Path()), "err", err)
	}
	switch {
	case status == stdhttp.StatusServiceUnavailable, body.Code == messages.CodePaymentInProgress:
		c.Set(fiber.HeaderRetryAfter, "1")
	case body.Code == messages.CodeTokenInvalid || body.Code == messages.CodeTokenNotActive:
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer`)
	}
	return c.Status(status).JSON(body)
}

// invalid is a 400 INVALID_REQUEST.
func invalid(format string, args ...any) error {
	return messages.Reject(messages.CodeInvalidRequest, format, args...)
}

// invalidAmount is a 400 INVALID_AMOUNT.
func invalidAmount(format string, args ...any) error {
	return messages.Reject(messages.CodeInvalidAmount, format, args...)
}
