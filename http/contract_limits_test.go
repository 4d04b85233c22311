package http_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	stdhttp "net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	apihttp "github.com/concert/ticketing/http"
	"github.com/concert/ticketing/node"
)

// TestContractOversizedBodies sends a body over the limit to every operation
// of the contract that takes one: each must answer 413 PAYLOAD_TOO_LARGE as
// the contract documents it. The request is written by hand (the announced
// length, then only the first bytes), since a client writing the whole body
// races with the server closing the connection after its answer.
func TestContractOversizedBodies(t *testing.T) {
	c, err := loadContract()
	require.NoError(t, err)
	e := startNode(t, node.Config{AdminKey: adminKey})
	addr := strings.TrimPrefix(e.base, "http://")
	forEachBodyOperation(t, c, func(t *testing.T, method, target string) {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
		_, err = fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
			"X-Admin-Key: %s\r\nContent-Length: %d\r\n\r\n{\"name\":\"",
			method, target, addr, adminKey, apihttp.MaxBodyBytes+1)
		require.NoError(t, err)
		req, err := stdhttp.NewRequest(method, e.base+target, nil)
		require.NoError(t, err)
		res, err := stdhttp.ReadResponse(bufio.NewReader(conn), req)
		requireDocumented(t, c, req, res, err, stdhttp.StatusRequestEntityTooLarge)
	})
}

// TestContractCompressedBodies sends a gzip bomb (a 16 MiB JSON object in
// about 16 KiB on the wire) to every operation of the contract that takes a
// body: each must answer 415 UNSUPPORTED_MEDIA_TYPE as the contract
// documents it. Before, the 64 KiB limit counted the compressed bytes and
// Ctx.Body inflated them with no limit: a charge so padded was answered 200.
// The charge route is then read back: nothing was charged.
func TestContractCompressedBodies(t *testing.T) {
	c, err := loadContract()
	require.NoError(t, err)
	e := startNode(t, node.Config{AdminKey: adminKey})
	user := e.user("ann")
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, err = fmt.Fprintf(w, `{"userId":%d,"chargeBalance":100,"name":"ann","pad":"%s"}`, user, strings.Repeat("x", 16<<20))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.Less(t, b.Len(), apihttp.MaxBodyBytes)
	forEachBodyOperation(t, c, func(t *testing.T, method, target string) {
		req, err := stdhttp.NewRequest(method, e.base+target, bytes.NewReader(b.Bytes()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("X-Admin-Key", adminKey)
		res, err := stdhttp.DefaultClient.Do(req)
		requireDocumented(t, c, req, res, err, stdhttp.StatusUnsupportedMediaType)
	})
	require.Zero(t, e.balance(user), "a refused body must change nothing")
}

// forEachBodyOperation runs test, as a subtest, on every operation of the
// contract that takes a request body, with its path's parameters set to 1;
// it fails if there is none.
func forEachBodyOperation(t *testing.T, c *contract, test func(t *testing.T, method, target string)) {
	param := regexp.MustCompile(`\{[^}]+\}`)
	tried := 0
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody == nil {
				continue
			}
			tried++
			target := param.ReplaceAllString(path, "1")
			t.Run(method+" "+path, func(t *testing.T) { test(t, method, target) })
		}
	}
	require.NotZero(t, tried, "no operation with a request body in the contract")
}

// requireDocumented reads the answer res (got with err) to req and requires
// status want and a body and headers as the contract documents them.
func requireDocumented(t *testing.T, c *contract, req *stdhttp.Request, res *stdhttp.Response, err error, want int) {
	t.Helper()
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, want, res.StatusCode, "body %s", raw)
	require.NoError(t, c.validate(req, res.StatusCode, res.Header, raw))
}
