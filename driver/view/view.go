// Package view makes and removes views: mounts of a volume's directory,
// outside the Portal tree, that designate the directory the plugin
// checked (a container that swaps a path component for a symlink cannot
// redirect them) and may be read-only, id-mapped, or both.
//
// A view is a clone of the directory's mount (open_tree OPEN_TREE_CLONE,
// recursive, so that it shows what a plain bind mount of the directory
// shows), given its attributes while still detached (mount_setattr:
// nosuid and nodev when asked; read-only for access=ro; MOUNT_ATTR_IDMAP
// with a user namespace for uid/gid), then attached with move_mount at
// <views dir>/live/<one name per volume>. Making one is a handful of
// syscalls.
// Every view is private, recursively: it leaves the peer group of the
// mount it was cloned from, so a file system mounted later below the
// directory on the host never shows in the view, and nothing mounted in
// the view shows in the tree. The user namespace an id map needs is made
// at the first view with that map and released with the last one; at most
// MaxMaps distinct maps are in use at once.
//
// A volume has one view, shared by all its mounts: they are counted per
// mount ID with multiplicity, as Docker reuses mount IDs, and the last
// Unmount detaches the view (its directory stays for the next, until
// Forget). A second Mount of a mounted volume makes nothing, unless the
// directory at the volume's path is no longer the one the view shows
// (see Mount). Calls on one volume take turns; calls on different volumes
// do not wait for each other's syscalls.
//
// A container's bind mount of a view is a mount of its own, so detaching a
// view never takes anything away from a running container. Views are
// runtime state: at start every leftover in the views directory is
// detached and removed (Open), DropAll does the same for the views of an
// engine that is gone, and Close detaches them all.
//
// The views live in a tmpfs that the manager mounts at <views dir>/live
// for its life: a view's mount point exists only where that tmpfs is. The
// engine reaches a managed plugin's views through Docker's propagated
// mount; an engine that has lost that mount (dockerd, restarted without
// live-restore, can unmount it after it started the plugin again) finds no
// such path and fails the container's start, where a mount point on the
// disk underneath would have been bound empty, and the container's writes
// would have gone to the engine's disk instead of the volume.
package view

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/driver/tree"
)

// Attrs are what a view does, beyond showing the directory.
type Attrs struct {
	ReadOnly bool   // access=ro: nothing written through the view reaches the disk
	IDMap    bool   // the directory's owner is shown as UID, its group as GID
	UID, GID uint32 // the app's ids, when IDMap
	NoSuid   bool   // nosuid and nodev: no set-id program or device works
}

// MaxMaps is how many distinct id maps may be in use at once: each holds a
// user namespace, counted against root's quota, and a descriptor.
const MaxMaps = 1024

// Map is an id map of a view: on-disk Disk.UID is shown as App.UID and
// Disk.GID as App.GID; no other id is mapped.
type Map struct {
	Disk, App tree.Owner
}

// idMaps are the uid_map and gid_map of the user namespace that makes mp:
// in an idmapped mount, the line "inside outside 1" shows the file
// system's id inside as outside, and writes the caller's id outside as
// inside.
func (mp Map) idMaps() (uids, gids []syscall.SysProcIDMap) {
	return []syscall.SysProcIDMap{{ContainerID: int(mp.Disk.UID), HostID: int(mp.App.UID), Size: 1}},
		[]syscall.SysProcIDMap{{ContainerID: int(mp.Disk.GID), HostID: int(mp.App.GID), Size: 1}}
}

// RootOwnedError refuses an id-mapped view of a directory owned by root
// on disk: the app's uid would act as root there.
type RootOwnedError struct {
	Dir   string
	Owner tree.Owner
}

func (e *RootOwnedError) Error() string {
	return fmt.Sprintf("cannot give %s an id-mapped view (uid/gid): it is owned by %d:%d on disk, "+
		"and no app uid or gid is ever mapped onto root; give it an unprivileged owner first "+
		"(chown 2000:2000 %s on the host, or start portal-volume with --shared-owner UID:GID "+
		"before it makes a shared directory)", e.Dir, e.Owner.UID, e.Owner.GID, e.Dir)
}

// Manager makes and removes the views in one directory. It is safe for
// concurrent use.
type Manager struct {
	dir    string   // where the views are: the tmpfs at <views dir>/live
	lock   *os.File // the views directory, flock'd: one plugin per directory
	log    logrus.FieldLogger
	probed chan struct{} // closed once avail is known
	avail  error         // why views cannot be made here, nil when they can

	mu    sync.Mutex       // guards views; held across syscalls only by Reconcile
	views map[string]*view // by volume

	nsMu    sync.Mutex // guards userns, held while one is made
	userns  map[Map]*userns
	maxMaps int
	mkNS    func(Map) (*os.File, error)
}

// userns is the user namespace of one id map and how many views, and
// checks in progress, use it.
type userns struct {
	f    *os.File
	refs int
}

// view is one volume's view and its mounts.
type view struct {
	mu   sync.Mutex     // one call on the volume at a time
	gone bool           // out of Manager.views: look the volume up again
	path string         // "" until made
	dev  uint64         // device and
	ino  uint64         // inode number of the directory the view shows
	ids  map[string]int // mount ID -> mounts
	n    int            // all mounts
	mp   *Map           // its id map, nil for none
	// under are the id maps of the views of replaced directories that
	// lie below the current one at path, released when path is detached.
	under []*Map
}

// Dir is a directory to make a view of: open at FD, and told apart from
// others by its device and inode number (from the caller's fstat of FD,
// which it makes anyway).
type Dir struct {
	FD       int
	Dev, Ino uint64
}

// release gives back the id maps of every view stacked at v.path.
func (v *view) release(m *Manager) {
	for _, mp := range append(v.under, v.mp) {
		m.release(mp)
	}
	v.mp, v.under = nil, nil
}

// liveDir is the name, in the views directory, of the tmpfs that holds
// the views.
const liveDir = "live"

// Open takes the views directory dir (making it, 0700, when missing),
// locks it against a second plugin, detaches and removes whatever a
// previous life left in it, mounts the tmpfs for the views, and probes
// once whether views can be made of the directory probe (the Portal
// tree's root).
func Open(dir, probe string, log logrus.FieldLogger) (*Manager, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("views directory: %w", err)
	}
	lock, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("views directory: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("views directory %s is in use by another portal-volume (give each its own --views): %w", abs, err)
	}
	m := &Manager{
		dir: filepath.Join(abs, liveDir), lock: lock, log: log,
		views: make(map[string]*view), userns: make(map[Map]*userns),
		maxMaps: MaxMaps, mkNS: newUserns, probed: make(chan struct{}),
	}
	if err := os.Mkdir(m.dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		lock.Close()
		return nil, fmt.Errorf("views directory: %w", err)
	}
	// What a previous life left: its tmpfs, with its views; views made
	// where no tmpfs could be mounted; an earlier release's views,
	// directly in the views directory. What cannot be removed is logged
	// and left; it never stops a start.
	if mounted, err := detach(m.dir); err != nil {
		log.WithError(err).WithField("path", m.dir).Error("could not detach the views of a previous life")
	} else if mounted {
		log.WithField("path", m.dir).Info("views of a previous life detached")
	}
	_ = m.sweep(m.dir, nil)
	_ = m.sweep(abs, func(path string) bool { return path == m.dir })
	if err := unix.Mount("tmpfs", m.dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700"); err != nil {
		// Views need the same privilege; the probe says what is missing.
		log.WithError(err).WithField("path", m.dir).Warn("could not mount the tmpfs for the views")
	}
	// The probe makes a user namespace, a process: off the start-up path,
	// which answers Get first.
	go func() {
		defer close(m.probed)
		m.avail = m.probe(probe)
		if m.avail != nil {
			log.WithError(m.avail).WithField("views", abs).Warn("views unavailable: volumes with access=ro, or uid/gid on shared and tree volumes, are refused, and the others are mounted by their path")
		} else {
			log.WithField("views", abs).Info("views available: every volume is mounted through one")
		}
	}()
	return m, nil
}

// Close detaches the tmpfs with every view in it (running containers
// keep their own mounts) and releases the user namespaces and the
// directory's lock.
func (m *Manager) Close() error {
	<-m.probed
	_, err := detach(m.dir)
	m.nsMu.Lock()
	defer m.nsMu.Unlock()
	for k, ns := range m.userns {
		ns.f.Close()
		delete(m.userns, k)
	}
	return errors.Join(err, m.lock.Close())
}

// Dir is where the views are.
func (m *Manager) Dir() string { return m.dir }

// Available is nil when views can be made, else why not. It waits for
// the probe Open started.
func (m *Manager) Available() error {
	<-m.probed
	return m.avail
}

// probe makes a detached, never attached, read-only clone of dir's own
// mount and drops it: what every view needs of the kernel. Whether a
// directory can also be id-mapped depends on its file system (a USB disk,
// NFS or ramfs mounted below the tree cannot be) and is Check's to say,
// volume by volume: it never takes the views of the other volumes away.
func (m *Manager) probe(dir string) error {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return m.check(fd, Attrs{ReadOnly: true}, tree.Owner{}, 0)
}

// Check tells whether a view with attributes a can be made of the
// directory open at dirfd, whose on-disk owner is owner, by making one, detached, and
// dropping it. The errors name what is missing.
func (m *Manager) Check(dirfd int, a Attrs, owner tree.Owner) error {
	return m.check(dirfd, a, owner, unix.AT_RECURSIVE)
}

// check is Check of the directory's mount alone (recursive 0) or with
// every mount below it (unix.AT_RECURSIVE), as a view has them.
func (m *Manager) check(dirfd int, a Attrs, owner tree.Owner, recursive int) error {
	if a.IDMap && (owner.UID == 0 || owner.GID == 0) {
		return &RootOwnedError{Owner: owner}
	}
	fd, mp, err := m.clone(dirfd, a, owner, recursive)
	if err != nil {
		return err
	}
	m.release(mp)
	return unix.Close(fd)
}

// OwnerOf is the on-disk owner of the directory open at fd.
func OwnerOf(fd int) (tree.Owner, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return tree.Owner{}, err
	}
	return tree.Owner{UID: st.Uid, GID: st.Gid}, nil
}

// Mount counts a mount of volume by id and returns the path of the
// volume's view of directory d. The first mount makes the view, with
// attributes a; later mounts share it while it shows that same directory.
// When the directory at the volume's path is another one than the view
// shows (it was deleted and made again, or moved away and replaced, while
// the volume was mounted), a view of the new one is mounted over the old
// and replaced is true: a container started from now on gets the
// directory the volume's path now designates, as with a bind mount of the
// path, while those already running keep the one they have.
func (m *Manager) Mount(volume, id string, d Dir, a Attrs) (path string, replaced bool, err error) {
	v := m.viewOf(volume)
	defer v.mu.Unlock()
	if v.path != "" && (v.dev != d.Dev || v.ino != d.Ino) {
		// The new view goes over the old: detaching the old first would
		// leave the path an empty directory for a moment, which an engine
		// binding it for an earlier answer could catch. Nothing can be
		// mounted over a deleted directory, though; its view goes first.
		_, mp, err := m.make(volume, d.FD, a) // at v.path
		switch {
		case err == nil:
			v.under = append(v.under, v.mp)
			v.mp, v.dev, v.ino = mp, d.Dev, d.Ino
		case errors.Is(err, unix.ENOENT):
			if _, derr := detach(v.path); derr != nil {
				return "", false, errors.Join(err, derr)
			}
			v.release(m)
			v.path = ""
		default:
			return "", false, err
		}
		replaced = true
	}
	if v.path == "" {
		path, mp, err := m.make(volume, d.FD, a)
		if err != nil {
			m.dropIfUnused(volume, v)
			return "", false, err
		}
		v.path, v.mp, v.dev, v.ino = path, mp, d.Dev, d.Ino
	}
	v.ids[id]++
	v.n++
	return v.path, replaced, nil
}

// MountShown counts a mount of volume by id on its view when the view is
// made and shows the directory dev, ino. ok is false, and nothing is
// counted, when it does not: the caller then mounts with Mount.
func (m *Manager) MountShown(volume, id string, dev, ino uint64) (path string, ok bool) {
	v := m.existing(volume)
	if v == nil {
		return "", false
	}
	defer v.mu.Unlock()
	if v.path == "" || v.dev != dev || v.ino != ino {
		return "", false
	}
	v.ids[id]++
	v.n++
	return v.path, true
}

// Counted takes n mounts of volume by id that an earlier life of the
// plugin counted: its views went when this manager opened, but the counts
// did not, and an Unmount of one of those mounts must not detach a view
// that a later Mount of the same ID was given. They count as the view's
// mounts (it has no path until a Mount makes one), so that its last
// Unmount is the volume's last.
func (m *Manager) Counted(volume, id string, n int) {
	v := m.viewOf(volume)
	defer v.mu.Unlock()
	v.ids[id] += n
	v.n += n
}

// viewOf returns volume's view, made (empty) when it has none, locked.
func (m *Manager) viewOf(volume string) *view {
	for {
		m.mu.Lock()
		v := m.views[volume]
		if v == nil {
			v = &view{ids: make(map[string]int)}
			m.views[volume] = v
		}
		m.mu.Unlock()
		v.mu.Lock()
		if !v.gone {
			return v
		}
		v.mu.Unlock()
	}
}

// existing returns volume's view, locked, or nil when it has none.
func (m *Manager) existing(volume string) *view {
	m.mu.Lock()
	v := m.views[volume]
	m.mu.Unlock()
	if v == nil {
		return nil
	}
	v.mu.Lock()
	if v.gone {
		v.mu.Unlock()
		return nil
	}
	return v
}

// dropIfUnused takes v, locked, out of the views when it has no mounts.
func (m *Manager) dropIfUnused(volume string, v *view) {
	if v.n > 0 {
		return
	}
	v.gone = true
	m.mu.Lock()
	if m.views[volume] == v {
		delete(m.views, volume)
	}
	m.mu.Unlock()
}

// make makes and attaches the view of volume, and returns its path and id
// map.
func (m *Manager) make(volume string, dirfd int, a Attrs) (string, *Map, error) {
	var owner tree.Owner
	if a.IDMap {
		var err error
		if owner, err = OwnerOf(dirfd); err != nil {
			return "", nil, err
		}
		if owner.UID == 0 || owner.GID == 0 {
			// Create refused this; the owner changed since.
			return "", nil, &RootOwnedError{Owner: owner}
		}
	}
	fd, mp, err := m.clone(dirfd, a, owner, unix.AT_RECURSIVE)
	if err != nil {
		return "", nil, err
	}
	defer unix.Close(fd)
	path := m.dir + "/" + name(volume)
	// The directory is most often there from the volume's last view.
	err = unix.MoveMount(fd, "", unix.AT_FDCWD, path, unix.MOVE_MOUNT_F_EMPTY_PATH)
	if err == unix.ENOENT {
		if err = unix.Mkdir(path, 0o700); err == nil || err == unix.EEXIST {
			err = unix.MoveMount(fd, "", unix.AT_FDCWD, path, unix.MOVE_MOUNT_F_EMPTY_PATH)
		}
	}
	if err != nil {
		m.release(mp)
		return "", nil, fmt.Errorf("view %s: move_mount: %w", path, err)
	}
	return path, mp, nil
}

// Unmount uncounts one mount of volume by id; the last mount of the volume
// detaches its view. It reports whether the mount was known.
func (m *Manager) Unmount(volume, id string) (bool, error) {
	v := m.existing(volume)
	if v == nil {
		return false, nil
	}
	defer v.mu.Unlock()
	if v.ids[id] == 0 {
		return false, nil
	}
	if v.n == 1 && v.path != "" {
		// The directory stays for the volume's next view: a mkdir and an
		// rmdir in the views directory, with every Mount and Unmount of
		// other volumes waiting on its lock (and, on a journalling file
		// system, on its commits), cost more than the mount calls. Forget,
		// at the volume's Remove, and Reconcile remove it.
		if _, err := detach(v.path); err != nil {
			return true, err
		}
		v.release(m)
		v.path = ""
	}
	if v.ids[id]--; v.ids[id] == 0 {
		delete(v.ids, id)
	}
	v.n--
	m.dropIfUnused(volume, v)
	return true, nil
}

// Forget removes the directory of volume's view, when it has no view: for
// a volume that is removed.
func (m *Manager) Forget(volume string) error {
	v := m.viewOf(volume)
	defer v.mu.Unlock()
	defer m.dropIfUnused(volume, v)
	if v.path != "" {
		return nil
	}
	path := filepath.Join(m.dir, name(volume))
	if err := unix.Rmdir(path); err != nil && err != unix.ENOENT {
		return fmt.Errorf("view %s: %w", path, err)
	}
	return nil
}

// Live is the number of mounts of volume through its view.
func (m *Manager) Live(volume string) int {
	v := m.existing(volume)
	if v == nil {
		return 0
	}
	defer v.mu.Unlock()
	return v.n
}

// DropAll detaches and removes every view: for when the engine that
// mounted them is gone (a new dockerd process). Containers that still run
// keep their own mounts.
func (m *Manager) DropAll() error {
	m.mu.Lock()
	views := m.views
	m.views = make(map[string]*view)
	m.mu.Unlock()
	var errs []error
	for _, v := range views {
		v.mu.Lock()
		v.gone = true
		if v.path != "" {
			_, err := remove(v.path)
			errs = append(errs, err)
			v.release(m)
		}
		v.mu.Unlock()
	}
	return errors.Join(append(errs, m.Reconcile())...)
}

// Reconcile detaches and removes everything in the views directory that
// is no view of this manager: what a killed plugin left behind. Each entry
// removed, or that could not be, is logged.
func (m *Manager) Reconcile() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reconcile()
}

func (m *Manager) reconcile() error {
	// By name: a view being made has no path yet.
	live := make(map[string]bool, len(m.views))
	for volume := range m.views {
		live[filepath.Join(m.dir, name(volume))] = true
	}
	return m.sweep(m.dir, func(path string) bool { return live[path] })
}

// sweep detaches and removes every entry of dir but those keep (nil:
// none) keeps.
func (m *Manager) sweep(dir string, keep func(path string) bool) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("views directory: %w", err)
	}
	var errs []error
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		if keep != nil && keep(path) {
			continue
		}
		mounted, err := remove(path)
		if err != nil {
			errs = append(errs, err)
			m.log.WithError(err).WithField("path", path).Error("could not remove a stale view")
			continue
		}
		if mounted { // an empty directory, left for a next view, says nothing
			m.log.WithField("path", path).Info("stale view removed")
		}
	}
	return errors.Join(errs...)
}

// remove detaches every mount stacked at path and removes the directory,
// and tells whether anything was mounted there. Only directories are ever
// removed: a stray file is an error.
func remove(path string) (mounted bool, err error) {
	if mounted, err = detach(path); err != nil {
		return mounted, err
	}
	if err := unix.Rmdir(path); err != nil && err != unix.ENOENT {
		return mounted, fmt.Errorf("view %s: %w", path, err)
	}
	return mounted, nil
}

// detach detaches every mount stacked at path, leaves the directory, and
// tells whether anything was mounted there.
func detach(path string) (mounted bool, err error) {
	for {
		err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		switch err {
		case nil:
			mounted = true
		case unix.EINVAL, unix.ENOENT: // not a mount point (any more), or gone
			return mounted, nil
		default:
			return mounted, fmt.Errorf("view %s: umount: %w", path, err)
		}
	}
}

// clone makes the detached view of the directory open at dirfd, with the
// mounts below it when recursive is unix.AT_RECURSIVE, and returns its id
// map, which it holds (nil for none); the caller attaches the view or
// closes it and releases the map.
func (m *Manager) clone(dirfd int, a Attrs, owner tree.Owner, recursive int) (int, *Map, error) {
	// Private, in the same call as the rest: open_tree's clone joins the
	// peer group of a shared source, and a mount propagated into it before
	// this call gets the view's attributes too.
	attr := unix.MountAttr{Propagation: unix.MS_PRIVATE}
	if a.NoSuid {
		attr.Attr_set |= unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	}
	if a.ReadOnly {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	var mp *Map
	if a.IDMap {
		mp = &Map{Disk: owner, App: tree.Owner{UID: a.UID, GID: a.GID}}
		ns, err := m.acquire(*mp)
		if err != nil {
			return -1, nil, err
		}
		attr.Attr_set |= unix.MOUNT_ATTR_IDMAP
		attr.Userns_fd = uint64(ns.Fd())
	}
	fd, err := unix.OpenTree(dirfd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|uint(recursive))
	if err != nil {
		m.release(mp)
		return -1, nil, &UnsupportedError{Op: "open_tree", Err: err, IDMap: a.IDMap}
	}
	if err := unix.MountSetattr(fd, "", uint(unix.AT_EMPTY_PATH|recursive), &attr); err != nil {
		unix.Close(fd)
		m.release(mp)
		return -1, nil, &UnsupportedError{Op: "mount_setattr", Err: err, IDMap: a.IDMap}
	}
	return fd, mp, nil
}

// acquire returns the user namespace of map mp, made at its first use,
// and counts a use of it.
func (m *Manager) acquire(mp Map) (*os.File, error) {
	m.nsMu.Lock()
	defer m.nsMu.Unlock()
	if ns := m.userns[mp]; ns != nil {
		ns.refs++
		return ns.f, nil
	}
	if len(m.userns) >= m.maxMaps {
		return nil, &TooManyMapsError{Max: m.maxMaps, Map: mp}
	}
	f, err := m.mkNS(mp)
	if err != nil {
		return nil, &UnsupportedError{Op: "user namespace", Err: err, IDMap: true}
	}
	m.userns[mp] = &userns{f: f, refs: 1}
	return f, nil
}

// release uncounts a use of map mp (nothing for nil); the last one closes
// its user namespace. A view made with it keeps the namespace alive in the
// kernel as long as the view is mounted, without a descriptor.
func (m *Manager) release(mp *Map) {
	if mp == nil {
		return
	}
	m.nsMu.Lock()
	defer m.nsMu.Unlock()
	ns := m.userns[*mp]
	if ns == nil {
		return
	}
	if ns.refs--; ns.refs == 0 {
		ns.f.Close()
		delete(m.userns, *mp)
	}
}

// TooManyMapsError refuses a view with an id map beyond the MaxMaps in use.
type TooManyMapsError struct {
	Max int
	Map Map
}

func (e *TooManyMapsError) Error() string {
	return fmt.Sprintf("cannot show a directory owned by %d:%d as %d:%d: %d distinct uid/gid maps are in use, "+
		"the most portal-volume keeps at once; stop containers whose volumes have other uid/gid values first",
		e.Map.Disk.UID, e.Map.Disk.GID, e.Map.App.UID, e.Map.App.GID, e.Max)
}

// UnsupportedError says that the kernel or the file system cannot make a
// view, and which volume options need one.
type UnsupportedError struct {
	Op    string
	Err   error
	IDMap bool
}

func (e *UnsupportedError) Error() string {
	if e.IDMap {
		return fmt.Sprintf("this kernel or file system cannot make an id-mapped view (%s: %v): "+
			"uid/gid on a shared or tree volume needs idmapped mounts (Linux 5.12 or later; "+
			"ext4, xfs, btrfs, or tmpfs from 6.3) and CAP_SYS_ADMIN", e.Op, e.Err)
	}
	return fmt.Sprintf("this kernel cannot make a view (%s: %v): views, which access=ro needs, "+
		"need open_tree and mount_setattr (Linux 5.12 or later) and CAP_SYS_ADMIN", e.Op, e.Err)
}

func (e *UnsupportedError) Unwrap() error { return e.Err }

// name is the view's directory name: fixed length, whatever the volume
// name holds.
func name(volume string) string {
	h := sha256.Sum256([]byte(volume))
	return hex.EncodeToString(h[:16])
}
