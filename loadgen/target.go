package loadgen

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ErrRemoteTarget is returned by CheckTarget for a host that is not a
// loopback address when remote targets are not allowed.
var ErrRemoteTarget = errors.New("target is not a loopback address")

// CheckTarget parses the server URL a run will load and refuses anything a
// load generator must not be pointed at by accident: schemes other than
// http/https, URLs with credentials, query or fragment, and — unless
// allowRemote — hosts other than localhost or a loopback IP (127.0.0.0/8,
// ::1). Host names other than localhost are not resolved: they are remote.
func CheckTarget(raw string, allowRemote bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("target %q: scheme must be http or https", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("target %q: no credentials, query or fragment allowed", raw)
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("target %q: no host", raw)
	}
	if p := u.Port(); p != "" {
		if _, err := net.LookupPort("tcp", p); err != nil {
			return nil, fmt.Errorf("target %q: bad port: %w", raw, err)
		}
	}
	if !allowRemote && !IsLoopbackHost(host) {
		return nil, fmt.Errorf("target %q: %w (use -allow-remote to load another host on purpose)", raw, ErrRemoteTarget)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

// IsLoopbackHost reports whether host (without port or brackets) is
// "localhost" or a loopback IP address.
func IsLoopbackHost(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}
