//go:build !linux

package http

import (
	"errors"
	"net"
)

// refuseNewConnections is only implemented on Linux; elsewhere the
// listener is closed at once (a connection queued in its backlog is reset).
func refuseNewConnections(net.Listener) error {
	return errors.ErrUnsupported
}
