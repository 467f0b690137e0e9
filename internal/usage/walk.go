// Package usage measures how much of the disk a directory tree uses: bytes
// on disk (allocated blocks, as du counts them), apparent bytes and files.
//
// The tree is one that containers write, so the walk trusts nothing in it:
// it never follows a symlink (a symlink counts as itself), never crosses
// into another mount (a container's mount, a view, a disk mounted under the
// tree), counts a file with several hard links once, and skips what it
// cannot read, saying how much and where first. Memory stays bounded: only
// inodes with more than one link are remembered, and the directories
// waiting to be read are kept depth first, by path. Directories are read in
// parallel by a bounded number of workers, each holding one descriptor at a
// time; each is opened by its path below the start, resolved by the kernel
// following no symlink and crossing no mount (openat2). So a directory
// whose path is longer than the kernel resolves at once (PATH_MAX) is
// reported as unreadable: a walk that kept every ancestor open instead
// would let a deep enough tree exhaust the descriptors.
package usage

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Usage is what a tree, or part of it, uses.
type Usage struct {
	// Bytes on disk: allocated 512-byte blocks, as du counts them.
	Bytes int64 `json:"bytes"`
	// ApparentBytes: the sizes (st_size) of every entry, directories
	// too, as du --apparent-size counts them.
	ApparentBytes int64 `json:"apparent_bytes"`
	// Files: every inode that is not a directory, a hard-linked one once.
	Files int64 `json:"files"`
	// Dirs: directories, the walk's start included.
	Dirs int64 `json:"dirs"`
}

func (u *Usage) add(o Usage) {
	u.Bytes += o.Bytes
	u.ApparentBytes += o.ApparentBytes
	u.Files += o.Files
	u.Dirs += o.Dirs
}

// Result is one walk's answer.
type Result struct {
	Total Usage
	// Tracked has, for each directory of Options.Track that the walk
	// found, the usage of its whole subtree.
	Tracked map[string]Usage
	// Unreadable counts the entries that could not be read (a directory
	// that could not be opened or listed, an entry that could not be
	// stat'd); FirstUnreadable is the first of them in path order.
	Unreadable      int64
	FirstUnreadable string
	// Mounts counts the mount points met (and not crossed) below the
	// start; FirstMount is the first in path order.
	Mounts     int64
	FirstMount string
}

// Options tune a walk. The zero value is a walk with DefaultWorkers.
type Options struct {
	// Workers is how many directories are read at once; 0: DefaultWorkers.
	Workers int
	// Track lists directories, relative to the start ("a/b"), whose
	// subtrees' usage the Result gives one by one.
	Track []string
	// Background runs the walk's threads in the idle I/O class (their
	// reads wait for any other I/O on the disk) and at the lowest CPU
	// priority (nice 19).
	Background bool
	// Progress, when set, is updated as the walk goes.
	Progress *Progress
}

// DefaultWorkers: reading directories is mostly waiting for the disk, so
// more workers than cores keep its queue full on a cold cache.
var DefaultWorkers = max(4, 2*runtime.GOMAXPROCS(0))

// Progress is what a running walk has counted so far; its fields may be
// read at any time.
type Progress struct {
	Bytes atomic.Int64
	Files atomic.Int64
	Dirs  atomic.Int64
}

// Walk measures the directory dir, a path relative to root ("" or "." is
// root itself). root is the operator's and may hold symlinks; dir is
// resolved below root following no symlink and crossing no mount. Below
// dir, nothing on another mount than dir's is counted.
func Walk(ctx context.Context, root, dir string, o Options) (Result, error) {
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Result{}, fmt.Errorf("usage: open %s: %w", root, err)
	}
	defer unix.Close(rootfd)
	dir = strings.Trim(filepath.Clean("/"+dir), "/")
	startPath := filepath.Join(root, dir)
	start, err := openBeneath(rootfd, dir)
	if err != nil {
		return Result{}, fmt.Errorf("usage: open %s: %w", startPath, err)
	}
	defer unix.Close(start)
	var st unix.Statx_t
	if err := unix.Statx(start, "", unix.AT_EMPTY_PATH, statxMask, &st); err != nil {
		return Result{}, fmt.Errorf("usage: stat %s: %w", startPath, err)
	}
	w := newWalker(ctx, start, startPath, &st, o)
	w.run()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	return w.result(), nil
}

// statxMask: what the walk needs of every entry.
const statxMask = unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_NLINK | unix.STATX_INO |
	unix.STATX_SIZE | unix.STATX_BLOCKS | unix.STATX_MNT_ID

// dirOpenFlags: a directory is opened for getdents only; O_NOFOLLOW (and
// RESOLVE_NO_SYMLINKS for the path up to it) keeps a symlink from being
// followed.
const dirOpenFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NOCTTY

// openBeneath opens the directory rel below the directory at dirfd,
// following no symlink and crossing no mount on the way: a path that does
// fails (ELOOP, EXDEV).
func openBeneath(dirfd int, rel string) (int, error) {
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{Flags: dirOpenFlags,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV}
	for {
		fd, err := unix.Openat2(dirfd, rel, &how)
		if err != unix.EINTR && err != unix.EAGAIN {
			return fd, err
		}
	}
}

// fileKey names an inode.
type fileKey struct{ dev, ino uint64 }

// job is a directory waiting to be read.
type job struct {
	rel   string // relative to the start; "" is the start
	group int32  // the deepest tracked directory it is in; -1: none
}

type walker struct {
	ctx        context.Context
	startfd    int
	startPath  string
	dev        uint64
	mnt        uint64 // the start's mount id; 0 when the kernel gives none
	workers    int
	background bool
	progress   *Progress

	track  map[string]int32 // tracked directory -> its index
	parent []int32          // tracked index -> the deepest tracked directory containing it, -1: none
	found  []bool           // tracked index -> met by the walk (under mu)

	mu      sync.Mutex
	cond    *sync.Cond
	pending []job // depth first: the last pushed is read first
	busy    int   // workers reading a directory

	linksMu sync.Mutex
	links   map[fileKey]link // inodes with more than one link, seen

	// Each worker's counts, merged at the end.
	counts []*counts
}

type counts struct {
	total      Usage
	groups     []Usage // by tracked index: what is directly in it
	unreadable int64
	firstBad   string
	mounts     int64
	firstMount string
}

func newWalker(ctx context.Context, startfd int, startPath string, st *unix.Statx_t, o Options) *walker {
	w := &walker{ctx: ctx, startfd: startfd, startPath: startPath,
		dev: unix.Mkdev(st.Dev_major, st.Dev_minor), workers: o.Workers, background: o.Background,
		progress: o.Progress, track: map[string]int32{}, links: map[fileKey]link{}}
	if st.Mask&unix.STATX_MNT_ID != 0 {
		w.mnt = st.Mnt_id
	}
	if w.workers <= 0 {
		w.workers = DefaultWorkers
	}
	for _, t := range o.Track {
		t = strings.Trim(filepath.Clean("/"+t), "/")
		if _, ok := w.track[t]; !ok {
			w.track[t] = int32(len(w.track))
		}
	}
	w.parent = make([]int32, len(w.track))
	w.found = make([]bool, len(w.track))
	for t, i := range w.track {
		w.parent[i] = -1
		for p := t; p != ""; {
			if j := strings.LastIndexByte(p, '/'); j >= 0 {
				p = p[:j]
			} else {
				p = ""
			}
			if k, ok := w.track[p]; ok {
				w.parent[i] = k
				break
			}
		}
	}
	w.cond = sync.NewCond(&w.mu)
	w.counts = make([]*counts, w.workers)
	for i := range w.counts {
		w.counts[i] = &counts{groups: make([]Usage, len(w.track))}
	}
	// The start directory itself.
	g := w.groupOf("", -1)
	c := w.counts[0]
	c.add(g, Usage{Bytes: int64(st.Blocks) * 512, ApparentBytes: int64(st.Size), Dirs: 1})
	w.pending = append(w.pending, job{rel: "", group: g})
	return w
}

// groupOf is the group of the directory rel, found in a directory of group
// parent.
func (w *walker) groupOf(rel string, parent int32) int32 {
	if len(w.track) == 0 {
		return parent
	}
	if i, ok := w.track[rel]; ok {
		w.mu.Lock()
		w.found[i] = true
		w.mu.Unlock()
		return i
	}
	return parent
}

func (c *counts) add(group int32, u Usage) {
	c.total.add(u)
	if group >= 0 {
		c.groups[group].add(u)
	}
}

func (c *counts) bad(path string) {
	c.unreadable++
	if c.firstBad == "" || path < c.firstBad {
		c.firstBad = path
	}
}

func (c *counts) mount(path string) {
	c.mounts++
	if c.firstMount == "" || path < c.firstMount {
		c.firstMount = path
	}
}

func (w *walker) run() {
	var wg sync.WaitGroup
	for i := range w.workers {
		c := w.counts[i]
		wg.Go(func() {
			if w.background {
				// The priorities are the thread's: this goroutine keeps
				// its thread, and the thread ends with it (no Unlock), so
				// that no other goroutine inherits them.
				runtime.LockOSThread()
				setBackground()
			}
			buf := make([]byte, direntBufSize)
			var found []job
			for {
				j, ok := w.next(found)
				if !ok {
					return
				}
				found = w.read(j, c, buf, found[:0])
			}
		})
	}
	wg.Wait()
}

// next hands back the directories found by the last read and takes the
// next one to read; false when there is none left (or the walk is
// cancelled).
func (w *walker) next(found []job) (job, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if found != nil {
		w.busy--
		w.pending = append(w.pending, found...)
		if len(found) > 1 {
			w.cond.Broadcast()
		} else if len(found) == 1 {
			w.cond.Signal()
		}
	}
	for len(w.pending) == 0 && w.busy > 0 && w.ctx.Err() == nil {
		w.cond.Wait()
	}
	if len(w.pending) == 0 || w.ctx.Err() != nil {
		w.cond.Broadcast() // the others see the end too
		return job{}, false
	}
	j := w.pending[len(w.pending)-1]
	w.pending = w.pending[:len(w.pending)-1]
	w.busy++
	return j, true
}

// direntBufSize: one getdents call reads this much of a directory.
const direntBufSize = 64 << 10

func (w *walker) path(rel string) string {
	if rel == "" {
		return w.startPath
	}
	return w.startPath + "/" + rel
}

// read counts the entries of the directory j and appends its
// subdirectories to found. It returns found, never nil.
func (w *walker) read(j job, c *counts, buf []byte, found []job) []job {
	if found == nil {
		found = []job{}
	}
	var fd int
	var err error
	if j.rel == "" {
		fd, err = unix.Dup(w.startfd)
	} else {
		fd, err = openBeneath(w.startfd, j.rel)
	}
	switch {
	case err == unix.ENOENT || err == unix.ENOTDIR:
		return found // removed or replaced since it was listed
	case err == unix.EXDEV:
		c.mount(w.path(j.rel)) // mounted on since it was listed
		return found
	case err != nil:
		c.bad(w.path(j.rel))
		return found
	}
	defer unix.Close(fd)
	var here Usage // what is directly in j, not in a subdirectory
	var st unix.Statx_t
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			c.bad(w.path(j.rel))
			break
		}
		if n == 0 {
			break
		}
		for off := 0; off < n; {
			e, ok := parseDirent(buf[off:n])
			if !ok {
				break
			}
			off += e.reclen
			if e.isDot() {
				continue
			}
			if err := statxAt(fd, e.name, &st); err != nil {
				if err != unix.ENOENT {
					c.bad(w.path(join(j.rel, e.String())))
				}
				continue
			}
			if unix.Mkdev(st.Dev_major, st.Dev_minor) != w.dev ||
				(w.mnt != 0 && st.Mask&unix.STATX_MNT_ID != 0 && st.Mnt_id != w.mnt) {
				c.mount(w.path(join(j.rel, e.String())))
				continue
			}
			u := Usage{Bytes: int64(st.Blocks) * 512, ApparentBytes: int64(st.Size)}
			mode := uint32(st.Mode) & unix.S_IFMT
			if mode == unix.S_IFDIR {
				rel := join(j.rel, e.String())
				g := w.groupOf(rel, j.group)
				u.Dirs = 1
				if g == j.group {
					here.add(u)
				} else {
					c.add(g, u)
				}
				found = append(found, job{rel: rel, group: g})
				continue
			}
			u.Files = 1
			if st.Nlink > 1 {
				first, from := w.claimLink(fileKey{unix.Mkdev(st.Dev_major, st.Dev_minor), st.Ino}, j, e)
				if !first {
					if from != j.group {
						c.move(u, from, j.group)
					}
					continue
				}
			}
			here.add(u)
		}
	}
	c.add(j.group, here)
	if p := w.progress; p != nil {
		p.Bytes.Add(here.Bytes)
		p.Files.Add(here.Files)
		p.Dirs.Add(1)
	}
	return found
}

// claimLink tells whether the inode, met at entry e of directory j, is
// met for the first time. When tracked directories are asked for, a file
// with several links belongs to the directory of its first path in path
// order, whatever order the workers meet its links in, so that each run
// gives the same figures: when this link's path comes first, the file
// moves here, and from is the group it leaves (else from is j's group).
func (w *walker) claimLink(k fileKey, j job, e direntry) (first bool, from int32) {
	var path string
	if len(w.track) > 0 {
		path = join(j.rel, e.String())
	}
	w.linksMu.Lock()
	defer w.linksMu.Unlock()
	l, seen := w.links[k]
	if !seen {
		w.links[k] = link{group: j.group, path: path}
		return true, j.group
	}
	if len(w.track) == 0 || path >= l.path {
		return false, j.group
	}
	w.links[k] = link{group: j.group, path: path}
	return false, l.group
}

// link is where a file with several links is counted.
type link struct {
	group int32  // the group it is counted in
	path  string // the link's path; "" when no directory is tracked
}

// move moves u, counted in the group from, to the group to.
func (c *counts) move(u Usage, from, to int32) {
	if from >= 0 {
		g := &c.groups[from]
		g.Bytes -= u.Bytes
		g.ApparentBytes -= u.ApparentBytes
		g.Files -= u.Files
	}
	if to >= 0 {
		c.groups[to].add(u)
	}
}

func (w *walker) result() Result {
	var r Result
	groups := make([]Usage, len(w.track))
	for _, c := range w.counts {
		r.Total.add(c.total)
		for i, u := range c.groups {
			groups[i].add(u)
		}
		r.Unreadable += c.unreadable
		if c.firstBad != "" && (r.FirstUnreadable == "" || c.firstBad < r.FirstUnreadable) {
			r.FirstUnreadable = c.firstBad
		}
		r.Mounts += c.mounts
		if c.firstMount != "" && (r.FirstMount == "" || c.firstMount < r.FirstMount) {
			r.FirstMount = c.firstMount
		}
	}
	// A tracked directory's subtree holds what is directly in it and
	// the subtrees of the tracked directories below it.
	inclusive := slices.Clone(groups)
	for i := range groups {
		for p := w.parent[i]; p >= 0; p = w.parent[p] {
			inclusive[p].add(groups[i])
		}
	}
	r.Tracked = make(map[string]Usage, len(w.track))
	for t, i := range w.track {
		if w.found[i] {
			r.Tracked[t] = inclusive[i]
		}
	}
	return r
}

func join(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}
