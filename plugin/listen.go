package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
)

// listen returns the socket to serve on: the one systemd passed (socket
// activation), or else one made at path. A stale socket file at path is
// replaced; a live one (another plugin answers) is refused.
func listen(path string) (l net.Listener, activated bool, err error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, false, fmt.Errorf("socket activation: %w", err)
	}
	switch {
	case len(ls) > 1:
		return nil, false, fmt.Errorf("socket activation passed %d sockets; portal-volume serves exactly one", len(ls))
	case len(ls) == 1:
		if _, ok := ls[0].(*net.UnixListener); !ok {
			return nil, false, errors.New("socket activation passed a socket that is not a listening unix stream socket")
		}
		return ls[0], true, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, false, fmt.Errorf("socket %s: %w", path, err)
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, false, fmt.Errorf("socket %s: another process is serving on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, false, fmt.Errorf("socket %s: remove stale socket: %w", path, err)
		}
	}
	l, err = net.Listen("unix", path)
	if err != nil {
		return nil, false, fmt.Errorf("socket %s: %w", path, err)
	}
	// Only root (dockerd) may talk to a plugin that runs as root.
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, false, fmt.Errorf("socket %s: %w", path, err)
	}
	return l, false, nil
}
