package tree

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// A delete's bounds. A container makes a tree as deep as it likes in a
// fraction of a second, and the plugin deletes it as root, so what a delete
// holds must not grow with what it deletes.
const (
	// deleteDepth is how many directories a delete holds open at once,
	// one per level. A directory deeper than that below the volume is moved
	// up, within the volume's own directory (a rename never leaves a file
	// system), and deleted from there: any depth is deleted, and a second
	// delete finishes what an interrupted one left.
	deleteDepth = 32
	// deleteBatch is how many names of one directory are read at a time.
	deleteBatch = 64
	// deleteRescans is how many times directories that gained entries while
	// they were emptied are read again before the delete gives up: someone
	// is still writing into them.
	deleteRescans = 1000
	// movedPrefix names a directory moved up to the volume's top.
	movedPrefix = ".portal-volume-deleting-"
)

// MountPointError refuses to delete across a mount point: the file system
// mounted there is not the volume's.
type MountPointError struct{ Path string }

func (e *MountPointError) Error() string {
	return fmt.Sprintf("%s is a mount point (another file system, or a bind mount); portal-volume never deletes across one: unmount it, then remove the volume again", e.Path)
}

// level is one open directory of a delete in progress.
type level struct {
	dir   *os.File // owns the descriptor
	name  string   // its name in the level above
	names []string // read and not handled yet
	eof   bool     // every name was read
}

// deleter empties and removes one directory: iteratively, from a stack of
// at most deleteDepth levels, each holding one descriptor and at most
// deleteBatch names, so that memory and descriptors stay bounded whatever
// the depth. Each change is made relative to a descriptor the walk opened;
// symlinks are unlinked, never followed; a directory on another mount than
// the volume's is never entered.
type deleter struct {
	t       *Tree
	rel     string // the directory deleted, for errors
	mnt     mountID
	stack   []*level
	moved   int // directories moved up since the top was last read from its start
	next    int // the next name suffix for a moved directory
	rescans int
}

// remove deletes the directory open at fd, name in parent, and everything
// in it. It takes fd.
func (t *Tree) remove(parent int, name string, fd int, rel string) error {
	top := os.NewFile(uintptr(fd), rel)
	pm, err := mountOf(parent)
	if err == nil {
		var m mountID
		if m, err = mountOf(fd); err == nil && m != pm {
			err = &MountPointError{Path: t.Path(rel)}
		}
	}
	if err != nil {
		top.Close()
		return err
	}
	d := &deleter{t: t, rel: rel, mnt: pm, stack: []*level{{dir: top}}}
	if err := d.run(); err != nil {
		return err
	}
	for {
		err := unix.Unlinkat(parent, name, unix.AT_REMOVEDIR)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.ENOTEMPTY && err != unix.EEXIST || d.rescans >= deleteRescans {
			return t.pathErr("remove", rel, err)
		}
		// Written to since it was emptied: empty it again.
		d.rescans++
		fd, _, err := t.openDir(parent, rel, name, false)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		d.stack = []*level{{dir: os.NewFile(uintptr(fd), rel)}}
		if err := d.run(); err != nil {
			return err
		}
	}
}

// run empties the directory at the bottom of the stack and closes it.
func (d *deleter) run() error {
	defer func() {
		for _, l := range d.stack {
			l.dir.Close()
		}
		d.stack = nil
	}()
	for len(d.stack) > 0 {
		l := d.stack[len(d.stack)-1]
		if len(l.names) > 0 {
			name := l.names[0]
			l.names = l.names[1:]
			if err := d.removeEntry(l, name); err != nil {
				return err
			}
			continue
		}
		if !l.eof {
			names, err := l.dir.Readdirnames(deleteBatch)
			if err == io.EOF {
				l.eof = true
			} else if err != nil {
				return d.t.pathErr("read", d.path(""), err)
			}
			l.names = names
			continue
		}
		if err := d.finish(l); err != nil {
			return err
		}
	}
	return nil
}

// finish ends a level read to its end: the top is read again when
// directories were moved up into it; any other is removed from the level
// above, or read again when it gained entries meanwhile.
func (d *deleter) finish(l *level) error {
	if len(d.stack) == 1 {
		if d.moved == 0 {
			d.stack = d.stack[:0]
			return l.dir.Close()
		}
		d.moved = 0
		return d.rewind(l)
	}
	d.stack = d.stack[:len(d.stack)-1]
	l.dir.Close()
	up := d.stack[len(d.stack)-1]
	err := unix.Unlinkat(int(up.dir.Fd()), l.name, unix.AT_REMOVEDIR)
	switch {
	case err == nil || err == unix.ENOENT:
		return nil
	case (err == unix.ENOTEMPTY || err == unix.EEXIST) && d.rescans < deleteRescans:
		// Written to since it was read: handle it again.
		d.rescans++
		up.names = append([]string{l.name}, up.names...)
		return nil
	default:
		return d.t.pathErr("remove", d.path(l.name), err)
	}
}

func (d *deleter) rewind(l *level) error {
	if _, err := l.dir.Seek(0, io.SeekStart); err != nil {
		return d.t.pathErr("read", d.path(""), err)
	}
	l.eof = false
	return nil
}

// removeEntry deletes name in the directory of level l: a file or symlink
// is unlinked, a directory is entered (a level pushed) or, at the depth
// bound, moved up to the top.
func (d *deleter) removeEntry(l *level, name string) error {
	dirfd := int(l.dir.Fd())
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return d.t.pathErr("remove", d.path(name), err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return d.t.pathErr("open", d.path(name), err)
	}
	m, err := mountOf(fd)
	if err == nil && m != d.mnt {
		err = &MountPointError{Path: d.t.Path(d.path(name))}
	}
	if err != nil {
		closeFd(fd)
		return err
	}
	if len(d.stack) < deleteDepth {
		d.stack = append(d.stack, &level{dir: os.NewFile(uintptr(fd), name), name: name})
		return nil
	}
	closeFd(fd)
	return d.moveUp(dirfd, name)
}

// moveUp renames the directory name in dirfd to a fresh name in the top
// directory, where the delete reaches it again from depth one. Whatever
// was swapped in for name meanwhile is moved instead: the top unlinks a
// file or symlink, and a mount point cannot be renamed.
func (d *deleter) moveUp(dirfd int, name string) error {
	top := int(d.stack[0].dir.Fd())
	for {
		to := fmt.Sprintf("%s%d", movedPrefix, d.next)
		d.next++
		err := unix.Renameat2(dirfd, name, top, to, unix.RENAME_NOREPLACE)
		switch err {
		case nil:
			d.moved++
			return nil
		case unix.EEXIST:
			continue
		case unix.ENOENT:
			return nil
		default:
			return fmt.Errorf("%s nests deeper than %d levels below %s, and moving it up to be deleted from there failed: %w",
				d.t.Path(d.path(name)), deleteDepth, d.t.Path(d.rel), err)
		}
	}
}

// path is name's path below the root, in the directory at the top of the
// stack; made only for errors.
func (d *deleter) path(name string) string {
	parts := []string{d.rel}
	for i, l := range d.stack {
		if i > 0 {
			parts = append(parts, l.name)
		}
	}
	if name != "" {
		parts = append(parts, name)
	}
	return strings.Join(parts, "/")
}

// mountID tells mounts apart: the kernel's mount ID where statx gives it
// (Linux 5.8), and the device too, which tells different file systems
// apart where it does not.
type mountID struct {
	id  uint64
	dev uint64
}

func mountOf(fd int) (mountID, error) {
	var st unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st); err != nil {
		return mountID{}, fmt.Errorf("statx: %w", err)
	}
	m := mountID{dev: uint64(st.Dev_major)<<32 | uint64(st.Dev_minor)}
	if st.Mask&unix.STATX_MNT_ID != 0 {
		m.id = st.Mnt_id
	}
	return m, nil
}
