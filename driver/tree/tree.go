// Package tree makes, adopts and deletes directories below one host
// directory without ever following a symbolic link.
//
// A path whose directories exist is opened in one openat2 that refuses
// symlinks (RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH); anything else is walked
// one component at a time from a descriptor of the root with
// openat(O_NOFOLLOW|O_DIRECTORY). Every change (mkdir, chown, chmod,
// unlink) is made relative to a descriptor so opened. A symlink
// planted anywhere below the root, even one that points back inside it, is
// refused with an error that names it. os.Root is not enough here: it follows
// symlinks that stay inside the root, and its Chown is racy on Unix.
package tree

import (
	"errors"
	"fmt"
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

// FD is the root's descriptor, open while the tree is.
func (t *Tree) FD() int { return int(t.dir.Fd()) }

// Root is the absolute host path of the tree.
func (t *Tree) Root() string { return t.root }

// Path is the host path of rel, a slash-separated path below the root.
func (t *Tree) Path(rel string) string { return t.root + "/" + rel }

// Owner is who owns a file on disk.
type Owner struct{ UID, GID uint32 }

// Perm is what MakeDir sets on the last component of a path.
type Perm struct {
	Owner
	Mode uint32 // permission bits, at most 07777
}

// MakeDir makes rel (every missing component root-owned 0755) and returns
// the topmost component it made, "" when rel existed already: RemoveDir of
// that undoes the call, also when MakeDir fails after making something.
// When perm is not nil the last component's owner and mode are set to it,
// whether it was made or adopted; when perm is nil an existing last
// component is left as it is.
func (t *Tree) MakeDir(rel string, perm *Perm) (made string, err error) {
	fd, made, err := t.MakeOpenDir(rel, perm, nil)
	if err == nil {
		closeFd(fd)
	}
	return made, err
}

// MakeOpenDir is MakeDir, and returns a descriptor of rel (when err is
// nil), which the caller closes: the directory MakeDir checked, for a
// mount of it. When st is not nil it receives the directory's stat, from
// the one fstat that also serves perm's check.
func (t *Tree) MakeOpenDir(rel string, perm *Perm, st *unix.Stat_t) (fd int, made string, err error) {
	comps, err := split(rel)
	if err != nil {
		return -1, "", err
	}
	if fd, ok := t.openExisting(rel); ok {
		// What Mount nearly always finds: rel exists, no symlink on the way.
		if err := t.setPerm(fd, rel, perm, st); err != nil {
			closeFd(fd)
			return -1, "", err
		}
		return fd, "", nil
	}
	parent, first, err := t.openParent(comps)
	if first >= 0 {
		made = strings.Join(comps[:first+1], "/")
	}
	if err != nil {
		return -1, made, err
	}
	defer closeFd(parent)
	last := comps[len(comps)-1]
	fd, lastMade, err := t.openDir(parent, rel, last, true)
	if lastMade && made == "" {
		made = rel
	}
	if err != nil {
		return -1, made, err
	}
	if err := t.setPerm(fd, rel, perm, st); err != nil {
		closeFd(fd)
		return -1, made, err
	}
	return fd, made, nil
}

// openParent opens the directory that holds the last of comps, making what
// is missing, as walk does. The parents nearly always exist (a new volume
// of an installed app), so one openat2 that refuses symlinks is tried
// first: it costs one system call where the walk costs an openat and a
// close per component. Any failure takes the walk, which makes what is
// missing and names what it refuses.
func (t *Tree) openParent(comps []string) (fd, first int, err error) {
	if len(comps) > 1 {
		if fd, ok := t.openExisting(strings.Join(comps[:len(comps)-1], "/")); ok {
			return fd, -1, nil
		}
	}
	return t.walk(comps[:len(comps)-1], true)
}

// split is rel's components. A path here names a directory below the root
// and nothing else: an absolute path, an empty component, "." or ".." is
// refused before anything is opened, whatever the kernel would make of it.
func split(rel string) ([]string, error) {
	comps := strings.Split(rel, "/")
	for _, c := range comps {
		if c == "" || c == "." || c == ".." {
			return nil, fmt.Errorf("tree: path %q has an empty, \".\" or \"..\" component; only names of directories below the root are allowed", rel)
		}
	}
	return comps, nil
}

// openExisting opens the directory rel in one openat2 call that refuses a
// symlink in any component (RESOLVE_NO_SYMLINKS) and any escape from the
// root (RESOLVE_BENEATH). It reports false on any failure, a missing
// component, a symlink, or a kernel without openat2 (before 5.6, or a
// seccomp filter that refuses it) alike: the caller then takes the walk,
// which makes what is missing and names what it refuses.
func (t *Tree) openExisting(rel string) (int, bool) {
	how := unix.OpenHow{
		// A path descriptor: what Mount does with it (fstat, open_tree,
		// the *at calls) needs no open file, and Mount opens one at every
		// call. With 8 clients an open file cost a Mount of a mounted
		// volume a third of the protocol's own cost.
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(int(t.dir.Fd()), rel, &how)
	if err != nil {
		return -1, false
	}
	return fd, true
}

// setPerm gives the directory open at fd perm's owner and mode (nothing
// when perm is nil), and fills st (when not nil) with its stat before
// that. When it has them already it changes nothing: the result is the
// same, and Mount, which runs it every time, saves two syscalls and an
// inode update.
func (t *Tree) setPerm(fd int, rel string, perm *Perm, st *unix.Stat_t) error {
	if perm == nil && st == nil {
		return nil
	}
	if st == nil {
		st = new(unix.Stat_t)
	}
	if err := unix.Fstat(fd, st); err != nil {
		return t.pathErr("stat", rel, err)
	}
	if perm == nil || st.Uid == perm.UID && st.Gid == perm.GID && st.Mode&0o7777 == perm.Mode {
		return nil
	}
	// fd may be a path descriptor, which fchown and fchmod refuse: they
	// get one of the same directory, opened through fd (".", no name to
	// resolve).
	dir, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return t.pathErr("open", rel, err)
	}
	defer closeFd(dir)
	// chown before chmod: chown may clear set-id bits that mode asks for.
	if err := unix.Fchown(dir, int(perm.UID), int(perm.GID)); err != nil {
		return t.pathErr("chown", rel, err)
	}
	if err := unix.Fchmod(dir, perm.Mode); err != nil {
		return t.pathErr("chmod", rel, err)
	}
	return nil
}

// RemoveDir deletes rel and everything below it, never following a
// symlink and never crossing into another mount (see remove). A missing rel is not an error; a symlink at rel or above it is,
// and so is a file system mounted at rel, and then nothing is deleted.
func (t *Tree) RemoveDir(rel string) error {
	comps, err := split(rel)
	if err != nil {
		return err
	}
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
	return t.remove(parent, last, fd, rel)
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
	comps, err := split(rel)
	if err != nil {
		return -1, err
	}
	if fd, ok := t.openExisting(rel); ok {
		return fd, nil
	}
	fd, _, err := t.walk(comps, false)
	return fd, err
}

// RemoveEmpty removes rel and then its parents up to and including top (a
// prefix of rel), each only while it is empty: it stops, without an error,
// at the first one that is not. A missing component is passed over.
func (t *Tree) RemoveEmpty(rel, top string) error {
	if rel != top && !strings.HasPrefix(rel, top+"/") {
		return fmt.Errorf("tree: %s is not below %s", rel, top)
	}
	if _, err := split(rel); err != nil {
		return err
	}
	for p := rel; ; p = p[:strings.LastIndexByte(p, '/')] {
		comps := strings.Split(p, "/")
		parent, _, err := t.walk(comps[:len(comps)-1], false)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		err = unix.Unlinkat(parent, comps[len(comps)-1], unix.AT_REMOVEDIR)
		closeFd(parent)
		switch {
		case err == unix.ENOTEMPTY || err == unix.EEXIST:
			return nil
		case err != nil && err != unix.ENOENT:
			return t.pathErr("remove", p, err)
		}
		if p == top {
			return nil
		}
	}
}
