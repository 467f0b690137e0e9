// Package pathwatch tells, in one system call, whether the directories on
// a path below a root are still the ones a check found there.
//
// Mount checks a volume's path at every call: an openat2 that refuses
// symlinks, an fstat and a close. A volume mounted again and again (every
// container that starts with it) finds the same directories each time.
// Watch puts an inotify watch on the root and on each directory of the
// path, found one at a time from the root, each name's directory after
// its parent's watch is in place. From then on, every change that could
// make the check answer otherwise queues an event before the call that
// made it returns: a name on the path removed, renamed, renamed over,
// exchanged or made (IN_DELETE, IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE in
// its parent), the owner, mode or attributes of a directory on it changed
// (IN_ATTRIB), and a full queue (IN_Q_OVERFLOW). The events of a parent are
// what matter: a directory's own IN_DELETE_SELF waits until nothing holds
// it any more, and a mounted volume's view holds it. Unchanged asks the
// queue's length (FIONREAD): no event since a check means the check would
// find what it found.
//
// Placing the watches costs an openat, an inotify_add_watch and a close per
// directory. The directories above the last one are shared by many paths
// (every volume of an app has the same parents), so a Watch starts below
// the deepest of them that an earlier Watch found and that is unchanged
// since, by the same rule.
//
// What inotify cannot see is not watched: a mount placed on the path (only
// the host's root can make one) and a change made on another host of a
// network file system. The root must be on a local file system (Local),
// and a path whose last directory is on another file system than the root
// is refused. Any failure (no inotify, no /proc, a watch limit reached)
// makes Watch fail, and its caller checks every time, as without it.
package pathwatch

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// parentEvents are the changes, in a directory on the path, to the name of
// the next one, and to the owner and mode of both.
const parentEvents = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// lastEvents are the changes to the last directory itself. What happens
// inside it (the volume's own files) is not watched.
const lastEvents = unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// Watcher holds one inotify instance for the paths below one root.
type Watcher struct {
	fd      int
	root    int    // the root's descriptor, owned by the caller
	rootDev uint64 // the root's file system
	// gen counts drains of the queue, twice each: it is odd while a drain
	// reads. A Watch records it before it places its watches; what a check
	// found after it holds while no event is queued and gen is the same
	// even number.
	gen     atomic.Uint64
	drainMu sync.Mutex // one drain at a time

	mu      sync.Mutex           // guards watches, dirs, their counts and closed
	watches map[int32]*watchRef  // by watch descriptor
	dirs    map[string]*dirWatch // the latest found of each parent directory, by path
	open    map[*dirWatch]bool   // every dirWatch a Set holds, latest or not
	closed  bool                 // its descriptors are closed (and their numbers may be reused)
}

// watchRef is one watched directory and how many Sets hold it.
type watchRef struct {
	wd   int32
	refs int
	dead bool // the kernel dropped it (IN_IGNORED): nothing to remove
}

// dirWatch is a directory above the last one of a path, kept open so that
// later Watches can start below it while it is unchanged.
type dirWatch struct {
	path  string
	fd    int         // a path descriptor, closed when no Set holds it
	gen   uint64      // the generation before the Watch that found it
	chain []*watchRef // its watch and those of the directories above it
	sets  int         // Sets that hold it
}

// Set is the watches of one path, and what the Watch found.
type Set struct {
	// Gen is the generation from before the watches were placed: a check
	// of the path made after Watch returned still holds while
	// Unchanged(Gen).
	Gen uint64
	// Dev and Ino tell the last directory of the path apart.
	Dev, Ino uint64

	refs []*watchRef
	dirs []*dirWatch
}

// Open starts a watcher of the paths below the directory open at root
// (which the caller keeps open while the watcher lives).
func Open(root int) (*Watcher, error) {
	var st unix.Stat_t
	if err := unix.Fstat(root, &st); err != nil {
		return nil, err
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	w := &Watcher{fd: fd, root: root, rootDev: st.Dev,
		watches: make(map[int32]*watchRef), dirs: make(map[string]*dirWatch), open: make(map[*dirWatch]bool)}
	w.gen.Store(2)
	return w, nil
}

// Close drops every watch. Watch fails and Release does nothing after it.
func (w *Watcher) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	for d := range w.open {
		_ = unix.Close(d.fd)
	}
	return unix.Close(w.fd)
}

// Local tells whether the file system of the directory open at fd is one
// whose every change goes through this kernel, so that inotify sees it.
func Local(fd int) bool {
	var fs unix.Statfs_t
	if unix.Fstatfs(fd, &fs) != nil {
		return false
	}
	switch uint32(fs.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC,
		unix.TMPFS_MAGIC, unix.F2FS_SUPER_MAGIC, 0x2fc12fc1: // ZFS
		return true
	}
	return false
}

// Unchanged tells whether nothing watched has changed since generation
// gen: no event waits in the queue, none was drained since, and gen was
// not taken while a drain read. The queue is read before the generation,
// and a drain moves the generation on before it reads: an event read by a
// drain that this call did not see in the queue has moved the generation
// on by the time it is loaded. A generation taken while a drain reads is
// odd and never holds, since that drain may go on to read the event of a
// change made after it was taken; the drain's second step moves the
// generation on after its last read.
func (w *Watcher) Unchanged(gen uint64) bool {
	if w.drainQueued() {
		return false
	}
	return gen%2 == 0 && w.gen.Load() == gen
}

// drainQueued drains the queue when an event waits in it (or its length
// cannot be read), and tells whether it did.
func (w *Watcher) drainQueued() bool {
	n, err := unix.IoctlGetInt(w.fd, unix.TIOCINQ) // FIONREAD, by its name for terminals
	if err != nil || n > 0 {
		w.drain()
		return true
	}
	return false
}

// drain empties the queue, moving the generation on before it reads and
// again after (which also covers the events a full queue lost: they
// happened before the read ended).
func (w *Watcher) drain() {
	w.drainMu.Lock()
	defer w.drainMu.Unlock()
	w.gen.Add(1)
	defer w.gen.Add(1)
	w.readEvents()
}

// readEvents reads the queue until it is empty, forgetting the watches
// the kernel dropped. drainMu is held.
func (w *Watcher) readEvents() {
	var buf [4096]byte
	for {
		n, err := unix.Read(w.fd, buf[:])
		if err != nil || n <= 0 {
			break
		}
		testHookRead()
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if ev.Mask&unix.IN_IGNORED != 0 {
				w.dropped(ev.Wd)
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// testHookRead runs after each read of a drain: a test makes changes
// there that the drain then reads.
var testHookRead = func() {}

// dropped forgets a watch the kernel removed (its directory was deleted,
// or its file system unmounted).
func (w *Watcher) dropped(wd int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r := w.watches[wd]; r != nil {
		r.dead = true
		delete(w.watches, wd)
	}
}

// Watch watches the root and every directory of rel, a slash-separated
// path below it. Each directory is opened (never following a symlink)
// from its parent after the parent's watch is in place, so a change of
// any name on the path from the moment Watch starts queues an event.
func (w *Watcher) Watch(rel string) (s *Set, err error) {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return nil, errors.New("the watcher is closed")
	}
	// Events already queued are older than anything this Watch finds:
	// drained first, they void no check made under it.
	w.drainQueued()
	s = &Set{Gen: w.gen.Load()}
	defer func() {
		if err != nil {
			w.Release(s)
			s = nil
		}
	}()
	comps := strings.Split(rel, "/")
	dir, below := w.root, 0
	if d := w.unchangedParent(s, comps); d != nil {
		dir, below = d.fd, strings.Count(d.path, "/")+1
	} else if err := w.add(s, w.root, parentEvents); err != nil {
		return s, err
	}
	for i := below; i < len(comps); i++ {
		fd, err := unix.Openat(dir, comps[i], unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return s, fmt.Errorf("open %s: %w", strings.Join(comps[:i+1], "/"), err)
		}
		if i == len(comps)-1 {
			defer unix.Close(fd)
			return s, w.last(s, fd)
		}
		if err := w.add(s, fd, parentEvents); err != nil {
			_ = unix.Close(fd)
			return s, err
		}
		w.keep(s, strings.Join(comps[:i+1], "/"), fd)
		dir = fd
	}
	return s, nil
}

// unchangedParent finds the deepest parent directory of the path comps
// that an earlier Watch found and that is unchanged since, and gives s its
// watches; nil when there is none.
func (w *Watcher) unchangedParent(s *Set, comps []string) *dirWatch {
	for i := len(comps) - 1; i > 0; i-- {
		w.mu.Lock()
		d := w.dirs[strings.Join(comps[:i], "/")]
		if d != nil {
			d.sets++
		}
		w.mu.Unlock()
		if d == nil {
			continue
		}
		// Unchanged since before d was found: d is the directory at its
		// path now, and a change from here on queues an event that voids
		// s too.
		if w.Unchanged(d.gen) {
			w.mu.Lock()
			defer w.mu.Unlock()
			for _, r := range d.chain {
				r.refs++
			}
			s.refs = append(s.refs, d.chain...)
			s.dirs = append(s.dirs, d)
			return d
		}
		w.mu.Lock()
		w.letGo(d)
		w.mu.Unlock()
	}
	return nil
}

// keep records the parent directory at path p, open at fd and watched (its
// watch the last of s's), for later Watches.
func (w *Watcher) keep(s *Set, p string, fd int) {
	d := &dirWatch{path: p, fd: fd, gen: s.Gen, chain: append([]*watchRef(nil), s.refs...), sets: 1}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range d.chain {
		r.refs++ // the chain's own hold, given back when d goes
	}
	w.dirs[p] = d
	w.open[d] = true
	s.dirs = append(s.dirs, d)
}

// last watches the last directory of the path, open at fd, and records
// what it is in s.
func (w *Watcher) last(s *Set, fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Dev != w.rootDev {
		return errors.New("on another file system than the root: changes made there might not be seen")
	}
	s.Dev, s.Ino = st.Dev, st.Ino
	return w.add(s, fd, lastEvents)
}

// add watches the directory open at fd for mask, on top of what others
// watch it for.
func (w *Watcher) add(s *Set, fd int, mask uint32) error {
	// inotify takes a path; the descriptor's own entry in /proc designates
	// exactly the directory opened, whatever its path is now.
	wd, err := unix.InotifyAddWatch(w.fd, "/proc/self/fd/"+strconv.Itoa(fd), mask|unix.IN_MASK_ADD|unix.IN_ONLYDIR)
	if err != nil {
		return fmt.Errorf("inotify watch: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.watches[int32(wd)]
	if r == nil {
		r = &watchRef{wd: int32(wd)}
		w.watches[int32(wd)] = r
	}
	r.refs++
	s.refs = append(s.refs, r)
	return nil
}

// Release gives up the watches of s; a directory no Set watches any more
// is no longer watched. The removal queues an IN_IGNORED, which is drained
// like any event: the next Unchanged of every check says no, once.
func (w *Watcher) Release(s *Set) {
	if s == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	for _, d := range s.dirs {
		w.letGo(d)
	}
	w.unref(s.refs)
	s.refs, s.dirs = nil, nil
}

// letGo gives up one hold of d; the last closes it. w.mu is held.
func (w *Watcher) letGo(d *dirWatch) {
	if d.sets--; d.sets > 0 {
		return
	}
	if w.dirs[d.path] == d {
		delete(w.dirs, d.path)
	}
	delete(w.open, d)
	_ = unix.Close(d.fd)
	w.unref(d.chain)
}

// unref gives up one hold of each watch. w.mu is held.
func (w *Watcher) unref(refs []*watchRef) {
	for _, r := range refs {
		r.refs--
		if r.refs > 0 || r.dead {
			continue
		}
		delete(w.watches, r.wd)
		// It fails only for a watch the kernel has dropped already, whose
		// IN_IGNORED is still queued: nothing is left to remove.
		_, _ = unix.InotifyRmWatch(w.fd, uint32(r.wd))
	}
}
