//go:build linux

package http

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// refuseNewConnections attaches a socket filter to the listening socket of
// ln that drops every TCP segment with the SYN flag: new connection
// attempts get no answer (their clients retry the SYN later, and find the
// port closed), while the final ACK of a handshake under way still passes,
// so that connection reaches the backlog and is accepted. The filter runs
// on the TCP header: byte 13 holds the flags, SYN is 0x02.
func refuseNewConnections(ln net.Listener) error {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return errors.New("refuse new connections: not a socket listener")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("refuse new connections: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		// syscall.AttachLsf is deprecated for golang.org/x/net/bpf, which
		// would only assemble these four instructions.
		serr = syscall.AttachLsf(int(fd), dropSYN()) //nolint:staticcheck
	}); err != nil {
		return fmt.Errorf("refuse new connections: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("refuse new connections: attach filter: %w", serr)
	}
	return nil
}

// dropSYN is the classic BPF program: drop a segment with SYN, keep the rest.
func dropSYN() []syscall.SockFilter {
	const (
		ldbAbs  = syscall.BPF_LD | syscall.BPF_B | syscall.BPF_ABS
		jsetK   = syscall.BPF_JMP | syscall.BPF_JSET | syscall.BPF_K
		retK    = syscall.BPF_RET | syscall.BPF_K
		tcpFlag = 13   // offset of the flags byte in the TCP header
		synFlag = 0x02 // SYN
	)
	return []syscall.SockFilter{
		{Code: ldbAbs, K: tcpFlag},
		{Code: jsetK, Jt: 0, Jf: 1, K: synFlag},
		{Code: retK, K: 0},          // SYN: drop
		{Code: retK, K: 0xffffffff}, // anything else: keep whole
	}
}
