// Package tree makes, adopts and deletes directories below one host
// directory without ever following a symbolic link.
//
// Every path is walked one component at a time from a descriptor of the
// root with openat(O_NOFOLLOW|O_DIRECTORY), and every change (mkdir, chown,
// chmod, unlink) is made relative to a descriptor the walk opened. A symlink
// planted anywhere below the root, even one that points back inside it, is
// refused with an error that names it. os.Root is not enough here: it follows
// symlinks that stay inside the root, and its Chown is racy on Unix.
package tree

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrSymlink is wrapped by every error that refuses a symlink.
var ErrSymlink = errors.New("is a symlink; portal-volume never follows symlinks below its root")

// Tree is a host directory opened once; all paths are relative to it.
type Tree struct {
	root string
	dir  *os.File
}

// Open opens root, which must be an existing directory. The root itself may
// be reached through symlinks (it is the operator's choice); nothing below it
// may.
func Open(root string) (*Tree, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(abs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", abs, err)
	}
	return &Tree{root: abs, dir: os.NewFile(uintptr(fd), abs)}, nil
}

// Close releases the root descriptor.
func (t *Tree) Close() error { return t.dir.Close() }

// Root is the absolute host path of the tree.
func (t *Tree) Root() string { return t.root }

// Path is the host path of rel, a slash-separated path below the root.
func (t *Tree) Path(rel string) string { return t.root + "/" + rel }

// Owner is what MakeDir sets on the last component of a path.
type Owner struct {
	UID, GID uint32
	Mode     uint32 // permission bits, at most 07777
}

// MakeDir makes rel (every missing component root-owned 0755) and returns
// the topmost component it made, "" when rel existed already: RemoveDir of
// that undoes the call, also when MakeDir fails after making something.
// When owner is not nil the last component's owner and mode are set to it,
// whether it was made or adopted; when owner is nil an existing last
// component is left as it is.
func (t *Tree) MakeDir(rel string, owner *Owner) (made string, err error) {
	if fd, ok := t.openExisting(rel); ok {
		// What Mount nearly always finds: rel exists, no symlink on the way.
		defer closeFd(fd)
		return "", t.setOwner(fd, rel, owner)
	}
	comps := strings.Split(rel, "/")
	parent, first, err := t.walk(comps[:len(comps)-1], true)
	if first >= 0 {
		made = strings.Join(comps[:first+1], "/")
	}
	if err != nil {
		return made, err
	}
	defer closeFd(parent)
	last := comps[len(comps)-1]
	fd, lastMade, err := t.openDir(parent, rel, last, true)
	if lastMade && made == "" {
		made = rel
	}
	if err != nil {
		return made, err
	}
	defer closeFd(fd)
	return made, t.setOwner(fd, rel, owner)
}

// openExisting opens the directory rel in one openat2 call that refuses a
// symlink in any component (RESOLVE_NO_SYMLINKS) and any escape from the
// root (RESOLVE_BENEATH). It reports false on any failure, a missing
// component, a symlink, or a kernel without openat2 (before 5.6, or a
// seccomp filter that refuses it) alike: the caller then takes the walk,
// which makes what is missing and names what it refuses.
func (t *Tree) openExisting(rel string) (int, bool) {
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(int(t.dir.Fd()), rel, &how)
	if err != nil {
		return -1, false
	}
	return fd, true
}

// setOwner gives the directory open at fd owner's owner and mode (nothing
// when owner is nil). When it has them already it changes nothing: the
// result is the same, and Mount, which runs it every time, saves two
// syscalls and an inode update.
func (t *Tree) setOwner(fd int, rel string, owner *Owner) error {
	if owner == nil {
		return nil
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Uid == owner.UID && st.Gid == owner.GID && st.Mode&0o7777 == owner.Mode {
		return nil
	}
	// chown before chmod: chown may clear set-id bits that mode asks for.
	if err := unix.Fchown(fd, int(owner.UID), int(owner.GID)); err != nil {
		return t.pathErr("chown", rel, err)
	}
	if err := unix.Fchmod(fd, owner.Mode); err != nil {
		return t.pathErr("chmod", rel, err)
	}
	return nil
}

// RemoveDir deletes rel and everything below it. Symlinks inside are
// unlinked, never followed; the walk holds a descriptor of each directory it
// empties, so renaming a directory during the delete cannot redirect it
// outside rel. A missing rel is not an error; a symlink at rel or above it
// is, and then nothing is deleted.
func (t *Tree) RemoveDir(rel string) error {
	comps := strings.Split(rel, "/")
	parent, _, err := t.walk(comps[:len(comps)-1], false)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer closeFd(parent)
	last := comps[len(comps)-1]
	fd, _, err := t.openDir(parent, rel, last, false)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = t.emptyDir(fd, rel)
	closeFd(fd)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(parent, last, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return t.pathErr("remove", rel, err)
	}
	return nil
}

// emptyDir deletes everything inside the directory open at fd.
func (t *Tree) emptyDir(fd int, rel string) error {
	// Read through a dup: os.File takes ownership of its descriptor.
	dup, err := unix.Dup(fd)
	if err != nil {
		return t.pathErr("read", rel, err)
	}
	d := os.NewFile(uintptr(dup), rel)
	defer d.Close()
	for {
		names, err := d.Readdirnames(256)
		for _, name := range names {
			if err := t.removeAt(fd, rel+"/"+name, name); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return t.pathErr("read", rel, err)
		}
	}
}

// removeAt deletes name in the directory open at dirfd: a file or symlink is
// unlinked, a directory is emptied through a descriptor and then removed.
func (t *Tree) removeAt(dirfd int, rel, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return t.pathErr("remove", rel, err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return t.pathErr("open", rel, err)
	}
	err = t.emptyDir(fd, rel)
	closeFd(fd)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return t.pathErr("remove", rel, err)
	}
	return nil
}

// walk opens the directory at comps, making missing components when create
// is set; first is the index of the first component it made, or -1. The
// caller closes the returned descriptor.
func (t *Tree) walk(comps []string, create bool) (fd, first int, err error) {
	first = -1
	fd, err = unix.Dup(int(t.dir.Fd()))
	if err != nil {
		return -1, first, err
	}
	for i, c := range comps {
		next, made, err := t.openDir(fd, strings.Join(comps[:i+1], "/"), c, create)
		closeFd(fd)
		if made && first < 0 {
			first = i
		}
		if err != nil {
			return -1, first, err
		}
		fd = next
	}
	return fd, first, nil
}

// openDir opens the directory name inside dirfd without following a
// symlink, making it (root-owned 0755) when create is set and it is missing.
// rel is its path below the root, for errors.
func (t *Tree) openDir(dirfd int, rel, name string, create bool) (fd int, made bool, err error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	for attempt := 0; ; attempt++ {
		fd, err = unix.Openat(dirfd, name, flags, 0)
		if err == nil && made {
			// Set through the descriptor, never by name: our umask and the
			// parent's set-gid bit must not decide a parent's owner or mode.
			if err = unix.Fchown(fd, 0, 0); err == nil {
				err = unix.Fchmod(fd, 0o755)
			}
			if err != nil {
				closeFd(fd)
				return -1, made, t.pathErr("chown", rel, err)
			}
		}
		if err == nil {
			return fd, made, nil
		}
		switch {
		case err == unix.ENOENT && create && attempt == 0:
			err = unix.Mkdirat(dirfd, name, 0o755)
			if err != nil && err != unix.EEXIST {
				return -1, false, t.pathErr("mkdir", rel, err)
			}
			made = err == nil
		case err == unix.ENOENT:
			return -1, made, &os.PathError{Op: "open", Path: t.Path(rel), Err: os.ErrNotExist}
		case err == unix.ELOOP || err == unix.ENOTDIR:
			var st unix.Stat_t
			if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				return -1, false, fmt.Errorf("%s %w", t.Path(rel), ErrSymlink)
			}
			return -1, false, fmt.Errorf("%s is not a directory", t.Path(rel))
		default:
			return -1, false, t.pathErr("open", rel, err)
		}
	}
}

func (t *Tree) pathErr(op, rel string, err error) error {
	return &os.PathError{Op: op, Path: t.Path(rel), Err: err}
}

func closeFd(fd int) { _ = unix.Close(fd) }

// OpenDir opens the existing directory rel, following no symlink, for a
// mount of it. The caller closes the descriptor.
func (t *Tree) OpenDir(rel string) (int, error) {
	if fd, ok := t.openExisting(rel); ok {
		return fd, nil
	}
	fd, _, err := t.walk(strings.Split(rel, "/"), false)
	return fd, err
}
