package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	stdhttp "net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOversizedBodyReads413 sends bodies over the limit with Go's
// net/http client, which writes the whole body while the server has
// already answered 413: every client must read the 413, not a broken pipe
// or a reset (the server closes with a lingering close).
func TestOversizedBodyReads413(t *testing.T) {
	addr := serveFake(t, Config{Booking: &fakeBooking{}})
	reps := 15
	if testing.Short() {
		reps = 3
	}
	for _, size := range []int{256 << 10, 1 << 20, 8 << 20} {
		body := bytes.Repeat([]byte("x"), size)
		for i := range reps {
			t.Run(fmt.Sprintf("%dKiB/%d", size>>10, i), func(t *testing.T) {
				// A fresh connection each time, as after a 413 the server
				// closes it anyway.
				client := &stdhttp.Client{Transport: &stdhttp.Transport{DisableKeepAlives: true}}
				res, err := client.Post("http://"+addr+"/users", "application/json", bytes.NewReader(body))
				require.NoError(t, err, "the client must read the answer")
				defer res.Body.Close()
				raw, err := io.ReadAll(res.Body)
				require.NoError(t, err)
				require.Equal(t, stdhttp.StatusRequestEntityTooLarge, res.StatusCode, "body %s", raw)
				var e apiError
				require.NoError(t, json.Unmarshal(raw, &e))
				require.Equal(t, "PAYLOAD_TOO_LARGE", e.Code)
			})
		}
	}
}

// TestOversizedChunkedBodyRefused: the limit counts a chunked body's
// decoded bytes, however it is cut, as it does a compressed one's
// (coding.go): 100 chunks of 1 KiB past 64 KiB are 413, not served.
func TestOversizedChunkedBodyRefused(t *testing.T) {
	addr := serveFake(t, Config{Booking: &fakeBooking{}})
	chunk := fmt.Sprintf("400\r\n%s\r\n", bytes.Repeat([]byte("x"), 1024))
	var raw bytes.Buffer
	raw.WriteString("POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
	raw.WriteString("400\r\n{\"name\":\"")
	raw.WriteString(string(bytes.Repeat([]byte("x"), 1024-9)))
	raw.WriteString("\r\n")
	for range (MaxBodyBytes >> 10) + 35 {
		raw.WriteString(chunk)
	}
	raw.WriteString("0\r\n\r\n")
	res, body, _, _ := rawExchange(t, addr, raw.String())
	require.Equal(t, stdhttp.StatusRequestEntityTooLarge, res.StatusCode, "body %s", body)
	var e apiError
	require.NoError(t, json.Unmarshal(body, &e))
	require.Equal(t, "PAYLOAD_TOO_LARGE", e.Code)
}
