package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
)

// fields is a JSON object body, field by field, so that missing fields and
// wrong types are told apart from zero values. Unknown fields are ignored.
type fields map[string]json.RawMessage

// object parses a request body that must be one JSON object.
func object(c *fiber.Ctx) (fields, error) {
	// The raw body, never Ctx.Body: that one inflates a compressed body
	// with no limit (coding.go).
	body := bytes.TrimSpace(c.Request().Body())
	if len(body) == 0 || body[0] != '{' {
		return nil, invalid("the body must be a JSON object")
	}
	if f, ok := flatNumbers(body); ok {
		return f, nil
	}
	// JSON text is UTF-8 (RFC 8259); encoding/json would silently replace
	// invalid bytes. (flatNumbers accepts ASCII only.)
	if !utf8.Valid(body) {
		return nil, invalid("the body must be UTF-8 JSON")
	}
	var f fields
	if err := json.Unmarshal(body, &f); err != nil {
		return nil, invalid("malformed JSON: %v", err)
	}
	return f, nil
}

// flatNumbers parses the common body of the hot paths — a flat object
// whose keys are plain ASCII words and whose values are JSON numbers, like
// {"userId":1,"seatId":2} — without reflection. It gives up (false) on
// anything else, which encoding/json then parses (or rejects) as before;
// on what it accepts it returns what json.Unmarshal returns. The values
// alias body: they are parsed before the handler returns.
func flatNumbers(body []byte) (fields, bool) {
	i := skipSpace(body, 1) // body[0] is '{'
	f := make(fields, 2)
	if i < len(body) && body[i] == '}' {
		return f, skipSpace(body, i+1) == len(body)
	}
	for {
		// "key"
		if i >= len(body) || body[i] != '"' {
			return nil, false
		}
		k := i + 1
		for k < len(body) && isWordByte(body[k]) {
			k++
		}
		if k == i+1 || k >= len(body) || body[k] != '"' {
			return nil, false
		}
		key := body[i+1 : k]
		i = skipSpace(body, k+1)
		if i >= len(body) || body[i] != ':' {
			return nil, false
		}
		// number
		i = skipSpace(body, i+1)
		end, ok := scanNumber(body, i)
		if !ok {
			return nil, false
		}
		f[string(key)] = json.RawMessage(body[i:end])
		i = skipSpace(body, end)
		if i >= len(body) {
			return nil, false
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case '}':
			return f, skipSpace(body, i+1) == len(body)
		default:
			return nil, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// scanNumber returns the end of the JSON number at b[i:], or false if
// there is none: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, bool) {
	digits := func(i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i + 1)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

// raw returns a field's JSON text; a null field counts as missing.
func (f fields) raw(name string) (json.RawMessage, bool) {
	r, ok := f[name]
	if !ok || string(r) == "null" {
		return nil, false
	}
	return r, true
}

// integer parses a field that must be an integral JSON number within int64.
// A missing field or another JSON type is errMissing or errType; a number
// with a fraction, an exponent or out of range is errNotInteger.
func (f fields) integer(name string) (int64, error) {
	r, ok := f.raw(name)
	if !ok {
		return 0, errMissing
	}
	if c := r[0]; c != '-' && (c < '0' || c > '9') {
		return 0, errType
	}
	n, err := strconv.ParseInt(string(r), 10, 64)
	if err != nil {
		return 0, errNotInteger
	}
	return n, nil
}

var (
	errMissing    = errors.New("is required")
	errType       = errors.New("must be a number")
	errNotInteger = errors.New("must be an integer within 64 bits")
)

// id parses a required positive integer id field.
func (f fields) id(name string) (int64, error) {
	n, err := f.integer(name)
	if err != nil {
		return 0, invalid("%s %v", name, err)
	}
	if n <= 0 {
		return 0, invalid("%s must be positive", name)
	}
	return n, nil
}

// amount parses a required positive amount of points: absent or not a
// number is INVALID_REQUEST, a number that is not a positive integer within
// 64 bits is INVALID_AMOUNT.
func (f fields) amount(name string) (int64, error) {
	n, err := f.integer(name)
	switch {
	case errors.Is(err, errNotInteger):
		return 0, invalidAmount("%s %v", name, err)
	case err != nil:
		return 0, invalid("%s %v", name, err)
	case n <= 0:
		return 0, invalidAmount("%s must be positive", name)
	}
	return n, nil
}

// str parses a required JSON string field.
func (f fields) str(name string) (string, error) {
	r, ok := f.raw(name)
	if !ok {
		return "", invalid("%s is required", name)
	}
	var s string
	if r[0] != '"' || json.Unmarshal(r, &s) != nil {
		return "", invalid("%s must be a string", name)
	}
	if loneSurrogate(r) {
		return "", invalid("%s must be UTF-8 text: it escapes half a surrogate pair", name)
	}
	return s, nil
}

// loneSurrogate reports whether the JSON text r escapes a UTF-16 surrogate
// that is not half of a pair (a \uD800–\uDBFF right before a \uDC00–\uDFFF).
// Why: encoding/json turns one into U+FFFD silently, so "\ud800" would be
// stored as a character the client never sent; RFC 8259 §8.2 leaves such
// text's meaning unpredictable, and the contract refuses text that is not
// UTF-8.
func loneSurrogate(r []byte) bool {
	for i := 0; i < len(r); i++ {
		if r[i] != '\\' {
			continue
		}
		u, ok := escapedUnit(r, i)
		if !ok {
			i++ // a two-byte escape such as \\ or \"
			continue
		}
		i += 5
		switch {
		case u >= 0xDC00 && u <= 0xDFFF:
			return true // a low half with no high half before it
		case u >= 0xD800 && u <= 0xDBFF:
			if low, ok := escapedUnit(r, i+1); !ok || low < 0xDC00 || low > 0xDFFF {
				return true
			}
			i += 6
		}
	}
	return false
}

// escapedUnit parses the \uXXXX escape at r[i:], if there is one.
func escapedUnit(r []byte, i int) (uint16, bool) {
	if i+6 > len(r) || r[i] != '\\' || r[i+1] != 'u' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(r[i+2:i+6]), 16, 16)
	return uint16(n), err == nil
}

// text parses a required JSON string field with surrounding white space
// trimmed, which must then hold 1 to max characters and pass text.
func (f fields) text(name string, max int) (string, error) {
	s, err := f.str(name)
	if err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	if err := text(name, s, max); err != nil {
		return "", err
	}
	if s == "" {
		return "", invalid("%s must have 1 to %d characters", name, max)
	}
	return s, nil
}

// strings parses a required JSON array of strings.
func (f fields) strings(name string) ([]string, error) {
	r, ok := f.raw(name)
	if !ok {
		return nil, invalid("%s is required", name)
	}
	var list []string
	if r[0] != '[' || json.Unmarshal(r, &list) != nil {
		return nil, invalid("%s must be an array of strings", name)
	}
	if loneSurrogate(r) {
		return nil, invalid("%s must hold UTF-8 text: it escapes half a surrogate pair", name)
	}
	return list, nil
}

// pathID parses a positive integer path or query parameter.
func pathID(name, s string) (int64, error) {
	if err := text(name, s, maxParamLen); err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || s[0] == '+' {
		return 0, invalid("%s must be a positive integer", name)
	}
	return n, nil
}
