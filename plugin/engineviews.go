package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// engineViews tells the operator when the engine cannot see the views
// directory. Every Mountpoint the host daemon returns is a path in it, and
// an engine that finds another directory there fails each container that
// uses a volume with "no such file or directory". That is what a mount
// namespace of the daemon's own does (a systemd drop-in with
// ProtectSystem=, ReadWritePaths=, PrivateTmp= and the like): its views
// are mounted where only it sees them. The daemon cannot change that; it
// can say so, once per engine process, at the engine's first connection.
//
// The peer is taken for the engine when its command is dockerd; other
// clients of the socket (an installer, curl) may see what they like. The
// managed plugin is not checked: the engine itself makes the propagated
// mount its views are seen through, at another path.
type engineViews struct {
	dir string // the directory the views are mounted in (the driver's ViewsDir)
	log logrus.FieldLogger

	mu      sync.Mutex
	checked int32 // the engine process checked last
}

// viewsCheckedListener checks the peer of each connection it accepts.
type viewsCheckedListener struct {
	net.Listener
	views *engineViews
}

func (l viewsCheckedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.views.accepted(c)
	}
	return c, err
}

// accepted checks the process at the other end of c, when it is an
// engine not checked before. The check looks into the engine's mount
// namespace, which the daemon does not control: it runs beside the
// connection, so that nothing there can hold up the accepting of others.
func (e *engineViews) accepted(c net.Conn) {
	if pid := peerPID(c); pid > 0 && e.firstOf(pid) {
		go e.check(pid)
	}
}

// firstOf tells whether pid is an engine process other than the one
// checked last, and makes it that one.
func (e *engineViews) firstOf(pid int32) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if pid == e.checked {
		return false
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "dockerd" {
		return false
	}
	e.checked = pid
	return true
}

// check compares the views directory with what the engine process pid
// finds at its path, and logs what it found.
func (e *engineViews) check(pid int32) {
	log := e.log.WithFields(logrus.Fields{"pid": pid, "views": e.dir})
	switch same, err := sameDir(e.dir, fmt.Sprintf("/proc/%d/root%s", pid, e.dir)); {
	case err != nil:
		log.WithError(err).Warn("could not tell whether the engine sees the views directory")
	case !same:
		log.Error("the engine (dockerd) does not see the views directory that every Mountpoint is in: " +
			"containers that use a volume will fail to start. The daemon and dockerd must share a mount namespace; " +
			"a systemd setting such as ProtectSystem=, ReadWritePaths= or PrivateTmp= gives the daemon one of its own")
	default:
		log.Debug("the engine sees the views directory")
	}
}

// peerPID is the process id of the peer of a unix socket connection, as
// this process's PID namespace sees it: 0 when unknown or outside it.
func peerPID(c net.Conn) int32 {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0
	}
	var cred *unix.Ucred
	if err := raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cred == nil {
		return 0
	}
	return cred.Pid
}

// sameDir tells whether the paths name the same directory; a missing
// other is not the same.
func sameDir(own, other string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Stat(own, &a); err != nil {
		return false, fmt.Errorf("views directory: %w", err)
	}
	if err := unix.Stat(other, &b); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return false, nil
		}
		return false, fmt.Errorf("the engine's views directory: %w", err)
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}
