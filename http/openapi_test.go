package http

import (
	"io"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/concert/ticketing/actors"
)

// TestOpenAPIMatchesRoutes checks that the embedded spec documents exactly
// the routes the app registers (HEAD, which Fiber adds to every GET, aside).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var spec struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(openapiSpec, &spec))
	require.True(t, strings.HasPrefix(spec.OpenAPI, "3."))

	var documented []string
	for path, ops := range spec.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}

	// Every optional route on (but the profiler, which is no API).
	app := New(Config{Booking: &fakeBooking{}, AdminKey: "k", OpsPage: true,
		Streams: NewStreams(actors.NewTokenTable(), StreamOptions{})})
	param := regexp.MustCompile(`:([A-Za-z]+)`)
	var registered []string
	for _, r := range app.GetRoutes(true) {
		if r.Method == "HEAD" {
			continue
		}
		registered = append(registered, r.Method+" "+param.ReplaceAllString(r.Path, "{$1}"))
	}
	sort.Strings(documented)
	sort.Strings(registered)
	require.Equal(t, registered, documented)
}

// TestOpenAPIDocumentsCrossCuttingAnswers checks the answers every route of
// a kind may give, so a new route cannot leave them out: a state-changing
// route documents 503 with a required Retry-After; a route with a body, 413;
// a route that reads a body, a path or query parameter or a header other than
// the token, 400 (bad input, text that is not UTF-8); a route behind the queue
// token, 401 with a required WWW-Authenticate.
func TestOpenAPIDocumentsCrossCuttingAnswers(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapiSpec)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(loader.Context, openapi3.EnableExamplesValidation()))

	header := func(res *openapi3.ResponseRef, name string) bool {
		h := res.Value.Headers[name]
		return h != nil && h.Value != nil && h.Value.Required
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if method != "GET" && method != "HEAD" {
				res := op.Responses.Status(503)
				if res == nil || !header(res, "Retry-After") {
					t.Errorf("%s changes state but does not document 503 with a required Retry-After", name)
				}
			}
			if op.RequestBody != nil && op.Responses.Status(413) == nil {
				t.Errorf("%s takes a body but does not document 413", name)
			}
			readsInput := op.RequestBody != nil
			for _, p := range op.Parameters {
				if p.Value.Name != "Authorization" {
					readsInput = true
				}
			}
			if readsInput && op.Responses.Status(400) == nil {
				t.Errorf("%s reads input but does not document 400", name)
			}
			if op.Security != nil && len(*op.Security) > 0 && (*op.Security)[0]["bearer"] != nil {
				res := op.Responses.Status(401)
				if res == nil || !header(res, "WWW-Authenticate") {
					t.Errorf("%s needs the queue token but does not document 401 with a required WWW-Authenticate", name)
				}
			}
		}
	}
}

// TestOpenAPIIdempotencyKeys checks that both charging routes take the same
// optional Idempotency-Key: 1 to 255 characters.
func TestOpenAPIIdempotencyKeys(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(openapiSpec)
	require.NoError(t, err)
	for _, op := range []*openapi3.Operation{
		doc.Paths.Find("/customers/point").Patch,
		doc.Paths.Find("/payments").Post,
	} {
		p := op.Parameters.GetByInAndName("header", "Idempotency-Key")
		require.NotNil(t, p, op.OperationID)
		require.False(t, p.Required, op.OperationID)
		s := p.Schema.Value
		require.EqualValues(t, 1, s.MinLength, op.OperationID)
		require.EqualValues(t, 255, *s.MaxLength, op.OperationID)
		require.NotNil(t, op.Responses.Status(409), op.OperationID)
		require.Contains(t, *op.Responses.Status(409).Value.Description, "`IDEMPOTENCY_KEY_REUSED`", op.OperationID)
	}
}

func TestOpenAPIServed(t *testing.T) {
	app := New(Config{Booking: &fakeBooking{}})
	res, err := app.Test(httptest.NewRequest("GET", "/openapi.yaml", nil), -1)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
	require.Equal(t, "application/yaml", res.Header.Get("Content-Type"))
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, openapiSpec, b)
}

func TestMetrics(t *testing.T) {
	app := New(Config{Booking: &fakeBooking{}})
	for _, p := range []string{"/concerts/1/available-date", "/concerts/2/available-date", "/made-up"} {
		res, err := app.Test(httptest.NewRequest("GET", p, nil), -1)
		require.NoError(t, err)
		res.Body.Close()
	}
	res, err := app.Test(httptest.NewRequest("GET", "/metrics", nil), -1)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	text := string(b)
	require.Contains(t, text, `http_request_duration_seconds_count{method="GET",route="/concerts/:concertId/available-date",status="200"} 2`)
	require.Contains(t, text, `route="unmatched",status="404"`)
	require.Contains(t, text, "queue_waiting 2")
	require.Contains(t, text, "queue_active 1")
}
