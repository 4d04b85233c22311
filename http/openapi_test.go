package http

import (
	"io"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
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

	app := New(Config{Booking: &fakeBooking{}, AdminKey: "k"})
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
