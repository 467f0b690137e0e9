package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/driver/mountinfo"
)

// engineViews tells the operator when the engine cannot see the directory
// the views are mounted in. Every Mountpoint the host daemon returns is a
// path in it, and an engine that finds another directory there fails each
// container that uses a volume with "no such file or directory". That is
// what a mount namespace of the daemon's own does (a systemd drop-in with
// ProtectSystem=, ReadWritePaths=, PrivateTmp= and the like): its views
// are mounted where only it sees them. The daemon cannot change that; it
// can say so, once per engine process, at the engine's first connection.
//
// The peer is taken for the engine when its command is dockerd; other
// clients of the socket (an installer, curl) may see what they like. The
// managed plugin is not checked: the engine itself makes the propagated
// mount its views are seen through, at another path.
type engineViews struct {
	// dir is the directory the views are mounted in, or "" when there are
	// none (the driver's ViewsDir, which waits for the views' probe).
	dir func() string
	log logrus.FieldLogger

	// checked is the engine process checked last. Only the server's
	// accept loop reads and writes it.
	checked int32
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
// engine not checked before. The check runs beside the connection: it
// waits for the views' probe, and reads the engine's mounts.
func (e *engineViews) accepted(c net.Conn) {
	if pid := peerPID(c); pid > 0 && e.firstOf(pid) {
		go e.check(pid)
	}
}

// firstOf tells whether pid is an engine process other than the one
// checked last, and makes it that one.
func (e *engineViews) firstOf(pid int32) bool {
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

// check compares the views directory, as the daemon's mounts name it,
// with what the engine process pid reaches at its path (mountinfo(5)
// names a mount by its file system's device and the mounted directory),
// and logs what it found. An engine that has exited meanwhile is not
// reported.
func (e *engineViews) check(pid int32) {
	dir := e.dir()
	if dir == "" {
		return
	}
	log := e.log.WithFields(logrus.Fields{"pid": pid, "views": dir})
	own, err := mountinfo.Locate(dir)
	if err != nil {
		log.WithError(err).Warn("could not tell whether the engine sees the views directory")
		return
	}
	theirs, err := mountinfo.LocateIn(fmt.Sprintf("/proc/%d/mountinfo", pid), dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		log.WithError(err).Warn("could not tell whether the engine sees the views directory")
	case theirs != own:
		log.WithFields(logrus.Fields{"own": own.Dev + " " + own.Root, "engine": theirs.Dev + " " + theirs.Root}).Error(
			"the engine (dockerd) does not see the views directory that every Mountpoint is in: " +
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
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return 0
	}
	return cred.Pid
}
