package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/driver"
)

// The managed plugin finds its tree itself, by the tree's host path.
//
// Docker keeps a plugin's env settings across `docker plugin upgrade` but
// resets its mounts to the new release's config.json: a tree given as a
// mount's source (data.source) comes back as the default after every
// upgrade, and the plugin would serve an empty tree. So the tree's host
// path is the env setting DATA_SOURCE, and config.json mounts the host's /
// at --host-root (an entrypoint argument, which, unlike env values, each
// upgrade takes from the new config.json). At start the plugin opens
// DATA_SOURCE below that mount, bind-mounts it at the root (below the
// propagated mount, where dockerd sees it) and unmounts the host's /
// before it serves anything.
//
// The plugin also keeps, beside the root, the host path of the tree it
// served (servedTreeFile). It refuses to start an empty state in a tree
// when it served one before: a mistyped DATA_SOURCE, or a disk not
// mounted yet, would otherwise hide every volume behind an empty one.

// errRefused marks a tree the plugin will not serve: the error says why and
// which command fixes it.
var errRefused = errors.New("portal-volume refuses to serve the tree")

// servedTreeFile is the file beside the root that holds the host path of
// the tree last served. Beside the root is the propagated mount, which
// Docker keeps across disable, enable and upgrade, and removes with the
// plugin.
func servedTreeFile(root string) string { return root + ".source" }

// mountTree mounts the host directory source, found below hostRoot (the
// host's / as the plugin sees it), at root, then unmounts hostRoot. An
// error wrapping errRefused means the plugin must not serve.
func mountTree(hostRoot, source, root string, log *logrus.Logger) error {
	if source == "" {
		return fmt.Errorf("%w: setting DATA_SOURCE is empty, so the plugin does not know the Portal tree's host path. "+
			"A plugin upgraded from a release that took the tree as the mount setting data.source needs it once: "+
			"docker plugin set portal-volume DATA_SOURCE=<the data.source it had>, then docker plugin enable portal-volume", errRefused)
	}
	tree, err := openBelow(hostRoot, source)
	if err != nil {
		return fmt.Errorf("%w: setting DATA_SOURCE = %q: want an existing directory on the host: %w. "+
			"Fix: docker plugin set portal-volume DATA_SOURCE=<the Portal tree>", errRefused, source, err)
	}
	defer tree.Close()
	served, err := readServedTree(root)
	if err != nil {
		return err
	}
	hasState := true
	if err := unix.Fstatat(int(tree.Fd()), driver.StateDirName, &unix.Stat_t{}, unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
		hasState = false
	} else if err != nil {
		return fmt.Errorf("tree %s: %s: %w", source, driver.StateDirName, err)
	}
	if err := checkTree(source, served, hasState); err != nil {
		return err
	}
	if served != "" && served != source {
		log.WithFields(logrus.Fields{"tree": source, "served_before": served}).Warn("serving another Portal tree than before: DATA_SOURCE changed to a tree with a state of its own")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	// The fd, not the path: the path below hostRoot may hold symlinks that
	// mean something on the host only, and openBelow resolved them there.
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", tree.Fd()), root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mount tree %s at %s: %w", source, root, err)
	}
	// The host's / was only the way to the tree: from here on the plugin
	// has no path to anything on the host but the tree. Private first: the
	// tree's bind is a peer of the host's / (a bind of a shared mount
	// joins its peer group), and an unmount propagates to peers. Unmounted
	// shared, it took with it every file system mounted below the tree (a
	// disk at shared/media), which the plugin then served from the
	// directory underneath. Only the host's / becomes private: the tree
	// stays a slave of the host's mounts, so a disk mounted there later
	// still reaches the plugin.
	if err := unix.Mount("", hostRoot, "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make the host's / at %s private before unmounting it: %w", hostRoot, err)
	}
	if err := unix.Unmount(hostRoot, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount the host's / at %s: %w", hostRoot, err)
	}
	if served != source {
		if err := writeServedTree(root, source); err != nil {
			return err
		}
	}
	log.WithFields(logrus.Fields{"tree": source, "root": root}).Info("Portal tree mounted; host root unmounted")
	return nil
}

// checkTree decides whether the plugin may serve the tree at source, given
// the host path of the tree it served before ("" for none) and whether the
// tree at source holds a state.
func checkTree(source, served string, hasState bool) error {
	if served == "" || hasState {
		return nil
	}
	if served != source {
		return fmt.Errorf("%w: DATA_SOURCE = %q is not the tree this plugin served until now (%s), and holds no Portal state (%s), so every volume would vanish behind an empty tree. "+
			"Fix: docker plugin set portal-volume DATA_SOURCE=%s, then docker plugin enable portal-volume. "+
			"To start an empty tree at %s on purpose: mkdir %s first",
			errRefused, source, served, driver.StateDirName, served, source, filepath.Join(source, driver.StateDirName))
	}
	return fmt.Errorf("%w: the Portal tree %s has no state (%s), yet this plugin served it before: is the disk it lives on mounted? "+
		"Mount it, then docker plugin enable portal-volume. To start it afresh as an empty tree on purpose: mkdir %s first",
		errRefused, source, driver.StateDirName, filepath.Join(source, driver.StateDirName))
}

// openBelow opens the directory at the host path source, with hostRoot as
// its /: symlinks on the way resolve as they would on the host and never
// out of it.
func openBelow(hostRoot, source string) (*os.File, error) {
	if !filepath.IsAbs(source) || filepath.Clean(source) != source || source == "/" {
		return nil, fmt.Errorf("not a clean absolute path other than /")
	}
	dir, err := unix.Open(hostRoot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the host's / at %s: %w", hostRoot, err)
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, strings.TrimPrefix(source, "/"), &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) {
		// Before Linux 5.6: no symlinks then, rather than a wrong guess.
		fd, err = openNoSymlinks(dir, source)
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), source), nil
}

// openNoSymlinks opens source below dir one component at a time, refusing
// symlinks.
func openNoSymlinks(dir int, source string) (int, error) {
	fd, err := unix.Dup(dir)
	if err != nil {
		return -1, err
	}
	for _, name := range strings.Split(strings.TrimPrefix(source, "/"), "/") {
		next, err := unix.Openat(fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return -1, fmt.Errorf("%s is a symlink or no directory, and this kernel cannot resolve symlinks safely (openat2): give the real path", name)
		}
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

func readServedTree(root string) (string, error) {
	b, err := os.ReadFile(servedTreeFile(root))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the tree served before: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func writeServedTree(root, source string) error {
	tmp := servedTreeFile(root) + ".new"
	if err := os.WriteFile(tmp, []byte(source+"\n"), 0o644); err != nil {
		return fmt.Errorf("record the tree served: %w", err)
	}
	if err := os.Rename(tmp, servedTreeFile(root)); err != nil {
		return fmt.Errorf("record the tree served: %w", err)
	}
	return nil
}

// holdRefusal returns err; a refusal it logs first and returns only once
// the plugin is told to stop. Kept alive without a socket, the plugin makes
// `docker plugin enable` fail once, when dockerd gives up waiting for the
// socket; a plugin that exited would be started again by dockerd while it
// waits, logging the refusal each time.
func holdRefusal(err error, log *logrus.Logger) error {
	if !errors.Is(err, errRefused) {
		return err
	}
	log.WithError(err).Error("not serving")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return err
}
