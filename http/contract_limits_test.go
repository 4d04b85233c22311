package http_test

import (
	"bufio"
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
	param := regexp.MustCompile(`\{[^}]+\}`)

	tried := 0
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody == nil {
				continue
			}
			tried++
			target := param.ReplaceAllString(path, "1")
			t.Run(method+" "+path, func(t *testing.T) {
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
				require.NoError(t, err)
				defer res.Body.Close()
				raw, err := io.ReadAll(res.Body)
				require.NoError(t, err)
				require.Equal(t, stdhttp.StatusRequestEntityTooLarge, res.StatusCode, "body %s", raw)
				require.NoError(t, c.validate(req, res.StatusCode, res.Header, raw))
			})
		}
	}
	require.NotZero(t, tried, "no operation with a request body in the contract")
}
