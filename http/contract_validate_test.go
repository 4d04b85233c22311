package http_test

// Every answer the tests of this package get through http.DefaultClient —
// the end-to-end tests in e2e_test.go use it — is checked against
// openapi.yaml before the test sees it. The check is installed by init, so
// the e2e tests need no hook: an answer that breaks the contract turns into
// a transport error ("contract: ..."), which the test reports.
//
// The check is stricter than the document alone:
//   - the status must be documented for the operation (or be 404/405 for a
//     path or method the contract does not have);
//   - an error's code must be named, as `CODE`, in the description of the
//     documented response (so a new error code cannot slip in unlisted);
//   - an object schema that lists properties admits no others unless it says
//     additionalProperties: true (so a field added by the code but not by the
//     contract is caught).
//
// A server-sent event stream (text/event-stream) has its status and headers
// checked and its body passed through unread.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	stdhttp "net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// contractFile is the contract, relative to this package's directory (the
// working directory of its tests).
const contractFile = "openapi.yaml"

func init() {
	next := stdhttp.DefaultClient.Transport
	if next == nil {
		next = stdhttp.DefaultTransport
	}
	stdhttp.DefaultClient.Transport = &contractTransport{next: next}
}

// contractTransport validates every answer against the contract.
type contractTransport struct {
	next stdhttp.RoundTripper
}

// RoundTrip sends req and checks its answer.
func (t *contractTransport) RoundTrip(req *stdhttp.Request) (*stdhttp.Response, error) {
	c, err := loadContract()
	if err != nil {
		return nil, err
	}
	res, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if isEventStream(res.Header) {
		if err := c.validate(req, res.StatusCode, res.Header, nil); err != nil {
			res.Body.Close()
			return nil, contractError(req, res.StatusCode, nil, err)
		}
		return res, nil
	}
	raw, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(raw))
	if err := c.validate(req, res.StatusCode, res.Header, raw); err != nil {
		return nil, contractError(req, res.StatusCode, raw, err)
	}
	return res, nil
}

func contractError(req *stdhttp.Request, status int, raw []byte, err error) error {
	const show = 300
	body := string(raw)
	if len(body) > show {
		body = body[:show] + "…"
	}
	return fmt.Errorf("contract: %s %s answered %d %s: %w", req.Method, req.URL.RequestURI(), status, body, err)
}

func isEventStream(h stdhttp.Header) bool {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return mt == "text/event-stream"
}

// contract is the loaded OpenAPI document and a router over it.
type contract struct {
	doc    *openapi3.T
	router routers.Router
}

var (
	contractOnce   sync.Once
	loadedContract *contract
	contractErr    error
)

// loadContract loads and validates openapi.yaml once.
func loadContract() (*contract, error) {
	contractOnce.Do(func() {
		loadedContract, contractErr = newContract(contractFile)
	})
	return loadedContract, contractErr
}

func newContract(path string) (*contract, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("contract: %w", err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("contract: load %s: %w", path, err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("contract: %s is not valid OpenAPI: %w", path, err)
	}
	closeResponseObjects(doc)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("contract: router: %w", err)
	}
	return &contract{doc: doc, router: router}, nil
}

// closeResponseObjects makes every object schema reachable from a response
// refuse properties it does not list, unless it sets additionalProperties.
func closeResponseObjects(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(*openapi3.SchemaRef)
	walk = func(ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if s.Type.Is(openapi3.TypeObject) && len(s.Properties) > 0 &&
			s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
			no := false
			s.AdditionalProperties.Has = &no
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
		walk(s.AdditionalProperties.Schema)
		for _, l := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
			for _, sub := range l {
				walk(sub)
			}
		}
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, res := range op.Responses.Map() {
				if res.Value == nil {
					continue
				}
				for _, mt := range res.Value.Content {
					walk(mt.Schema)
				}
			}
		}
	}
}

// globalCodes are the error codes any route may answer, with their status,
// besides those its responses name (openapi.yaml, info.description).
var globalCodes = map[string]int{
	"NOT_FOUND":              stdhttp.StatusNotFound,
	"METHOD_NOT_ALLOWED":     stdhttp.StatusMethodNotAllowed,
	"PAYLOAD_TOO_LARGE":      stdhttp.StatusRequestEntityTooLarge,
	"UNSUPPORTED_MEDIA_TYPE": stdhttp.StatusUnsupportedMediaType,
	"HEADERS_TOO_LARGE":      stdhttp.StatusRequestHeaderFieldsTooLarge,
	"STORE_UNAVAILABLE":      stdhttp.StatusServiceUnavailable,
}

var codeInText = regexp.MustCompile("`([A-Z][A-Z_]+)`")

// validate checks one answer to req; body nil means "not read" (an event
// stream): status and headers only.
func (c *contract) validate(req *stdhttp.Request, status int, header stdhttp.Header, body []byte) error {
	route, params, err := c.router.FindRoute(req)
	if errors.Is(err, routers.ErrPathNotFound) || errors.Is(err, routers.ErrMethodNotAllowed) {
		// Not an operation of the contract: only the generic answers.
		want := stdhttp.StatusNotFound
		if errors.Is(err, routers.ErrMethodNotAllowed) {
			want = stdhttp.StatusMethodNotAllowed
		}
		if status != want {
			return fmt.Errorf("no operation %s %s in the contract, yet the answer is %d, not %d", req.Method, req.URL.Path, status, want)
		}
		return c.validateError(status, header, body, "")
	}
	if err != nil {
		return err
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
			ExcludeResponseBody:   body == nil,
		},
	}
	in.Options.WithCustomSchemaErrorFunc(schemaErrorText)
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return err
	}
	if status < 400 || body == nil {
		return nil
	}
	doc := route.Operation.Responses.Status(status)
	if doc == nil || doc.Value == nil || doc.Value.Description == nil {
		return fmt.Errorf("status %d is not documented", status)
	}
	return c.validateError(status, header, body, *doc.Value.Description)
}

// schemaErrorText is a schema violation in one line: what and where, without
// the schema and value dumps kin-openapi adds by default.
func schemaErrorText(e *openapi3.SchemaError) string {
	return fmt.Sprintf("%s (at /%s)", e.Reason, strings.Join(e.JSONPointer(), "/"))
}

// validateError checks an error answer: the Error schema, and a code that
// described names or that any route may answer with this status.
func (c *contract) validateError(status int, header stdhttp.Header, body []byte, described string) error {
	if body == nil {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	if mt != "application/json" {
		return fmt.Errorf("error answer with Content-Type %q, not application/json", header.Get("Content-Type"))
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("error answer is not JSON: %w", err)
	}
	if err := c.doc.Components.Schemas["Error"].Value.VisitJSON(v, openapi3.MultiErrors(),
		openapi3.SetSchemaErrorMessageCustomizer(schemaErrorText)); err != nil {
		return fmt.Errorf("error answer does not match the Error schema: %w", err)
	}
	code := v.(map[string]any)["code"].(string)
	if globalCodes[code] == status {
		return nil
	}
	var named []string
	for _, m := range codeInText.FindAllStringSubmatch(described, -1) {
		named = append(named, m[1])
	}
	if !slices.Contains(named, code) {
		return fmt.Errorf("code %s is not among the codes documented for %d (%s)", code, status, strings.Join(named, ", "))
	}
	return nil
}

func TestContractTransportInstalled(t *testing.T) {
	if _, ok := stdhttp.DefaultClient.Transport.(*contractTransport); !ok {
		t.Fatalf("http.DefaultClient.Transport is %T: the e2e answers are not checked against the contract", stdhttp.DefaultClient.Transport)
	}
	if _, err := loadContract(); err != nil {
		t.Fatal(err)
	}
}

// TestContractCatchesDrift feeds the checker answers that keep or break the
// contract, so a checker that accepts everything cannot pass unnoticed.
func TestContractCatchesDrift(t *testing.T) {
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	const (
		tok  = `{"id":1,"userId":2,"token":"t","status":"WAIT","position":3,"createdAt":"2024-10-11T02:33:55.653Z","updateAt":null,"expiresAt":null}`
		tokA = `{"id":1,"userId":2,"token":"t","status":"ACTIVE","position":0,"createdAt":"2024-10-11T02:33:55.653Z","updateAt":"2024-10-11T02:34:00.000Z","expiresAt":"2024-10-11T02:44:00.000Z"}`
	)
	jsonCT := stdhttp.Header{"Content-Type": {"application/json"}}
	retry := stdhttp.Header{"Content-Type": {"application/json"}, "Retry-After": {"1"}}
	for _, tc := range []struct {
		name, method, path string
		status             int
		header             stdhttp.Header
		body               string
		wantErr            string // "" means valid
	}{
		{"token, null times", "GET", "/users/token", 200, jsonCT, tok, ""},
		{"token, set times", "GET", "/users/token", 200, jsonCT, tokA, ""},
		{"time of the wrong type", "GET", "/users/token", 200, jsonCT, strings.Replace(tok, `"updateAt":null`, `"updateAt":5`, 1), "updateAt"},
		{"time without milliseconds", "GET", "/users/token", 200, jsonCT, strings.Replace(tokA, `02:34:00.000Z`, `02:34:00Z`, 1), "updateAt"},
		{"undocumented field", "GET", "/users/token", 200, jsonCT, strings.Replace(tok, `"id":1,`, `"id":1,"extra":true,`, 1), "extra"},
		{"missing field", "GET", "/users/token", 200, jsonCT, strings.Replace(tok, `"position":3,`, ``, 1), "position"},
		{"unknown status", "GET", "/users/token", 200, jsonCT, strings.Replace(tok, `WAIT`, `LIMBO`, 1), "status"},
		{"undocumented status", "GET", "/users/token", 418, jsonCT, `{"code":"INVALID_REQUEST","message":"m"}`, "status is not supported"},
		{"500 is never in the contract", "POST", "/users", 500, jsonCT, `{"code":"INTERNAL","message":"internal error"}`, "status is not supported"},
		{"error of its status", "PATCH", "/customers/point", 409, jsonCT, `{"code":"BALANCE_LIMIT","message":"m"}`, ""},
		{"error not listed for its status", "PATCH", "/customers/point", 409, jsonCT, `{"code":"SEAT_UNAVAILABLE","message":"m"}`, "SEAT_UNAVAILABLE is not among"},
		{"unknown error code", "POST", "/users", 400, jsonCT, `{"code":"WHATEVER","message":"m"}`, "code"},
		{"error without message", "POST", "/users", 400, jsonCT, `{"code":"INVALID_REQUEST"}`, "message"},
		{"401 with WWW-Authenticate", "GET", "/users/token", 401, stdhttp.Header{"Content-Type": {"application/json"}, "Www-Authenticate": {"Bearer"}}, `{"code":"TOKEN_INVALID","message":"m"}`, ""},
		{"401 without WWW-Authenticate", "GET", "/users/token", 401, jsonCT, `{"code":"TOKEN_INVALID","message":"m"}`, "WWW-Authenticate"},
		{"503 with Retry-After", "DELETE", "/reservations/4294967297", 503, retry, `{"code":"STORE_UNAVAILABLE","message":"m"}`, ""},
		{"503 without Retry-After", "DELETE", "/reservations/4294967297", 503, jsonCT, `{"code":"STORE_UNAVAILABLE","message":"m"}`, "Retry-After"},
		{"413", "POST", "/payments", 413, jsonCT, `{"code":"PAYLOAD_TOO_LARGE","message":"m"}`, ""},
		{"bad date", "GET", "/concerts/1/available-date", 200, jsonCT, `[{"concertOptionId":1,"concertDate":"2024-13-45","availableSeats":3}]`, "concertDate"},
		{"unknown path", "GET", "/nowhere", 404, jsonCT, `{"code":"NOT_FOUND","message":"no such route"}`, ""},
		{"unknown path, other status", "GET", "/nowhere", 200, jsonCT, `{}`, "no operation"},
		{"unknown method", "PUT", "/users", 405, jsonCT, `{"code":"METHOD_NOT_ALLOWED","message":"m"}`, ""},
		{"unknown method, wrong code", "PUT", "/users", 405, jsonCT, `{"code":"NOT_FOUND","message":"m"}`, "NOT_FOUND is not among"},
		{"metrics", "GET", "/metrics", 200, stdhttp.Header{"Content-Type": {"text/plain; version=0.0.4; charset=utf-8"}}, "up 1\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := stdhttp.NewRequest(tc.method, "http://127.0.0.1:8080"+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = c.validate(req, tc.status, tc.header, []byte(tc.body))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("valid answer refused: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("invalid answer accepted")
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}
