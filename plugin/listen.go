package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"
)

// listen returns the socket to serve on: the one systemd passed (socket
// activation), or else one made at path. A stale socket file at path is
// replaced; a live one (another plugin answers) is refused.
func listen(path string) (l net.Listener, activated bool, err error) {
	files := activation.Files(true)
	switch {
	case len(files) > 1:
		return nil, false, fmt.Errorf("socket activation passed %d sockets; portal-volume serves exactly one", len(files))
	case len(files) == 1:
		l, err := activatedListener(files[0])
		return l, true, err
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

// activatedListener accepts only what Docker can talk to: a listening unix
// stream socket. (net.FileListener takes a datagram socket too, and then
// fails at the first accept.)
func activatedListener(f *os.File) (net.Listener, error) {
	defer f.Close()
	fd := int(f.Fd())
	domain, err1 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	typ, err2 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	listening, err3 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err := errors.Join(err1, err2, err3); err != nil || domain != unix.AF_UNIX || typ != unix.SOCK_STREAM || listening != 1 {
		return nil, fmt.Errorf("socket activation passed fd %d, which is not a listening unix stream socket", fd)
	}
	return net.FileListener(f)
}
