package state

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// logFile is the mount log open for appending.
//
// Where the file system allows, the log is written with room after its
// text (allocated, read as NUL bytes) and the whole file is mapped into
// memory, shared: an append is then a copy into the page cache. The kernel
// keeps what was copied when the process is killed, as it keeps a write(2),
// and no system call is made under the lock that every Mount and Unmount
// takes. The first write to a page of the mapping faults, and the file
// system prepares the page for writing then (on ext4 tens of µs); those
// faults are taken ahead of the text (see prefaulter), so that an append
// under the lock seldom takes one. A log without room (the file system
// cannot allocate it, or an earlier release wrote the log) is appended to
// by write(2) at the end of its text. The log's text ends at its first NUL
// byte.
type logFile struct {
	f      *os.File
	mem    []byte      // the mapped file; nil when appending by write(2)
	off    int64       // where the next line goes: the end of the text
	torn   bool        // the last append may have stopped part way: end its line first
	failed bool        // the mapping faulted: start a new log before the next append
	ahead  *prefaulter // makes the room's pages ready ahead of off; nil without
}

// minLogRoom is the least room a log is written with beyond its text; it
// has as much as the text when that is more, so that the room lasts about
// as long as compactIfLong lets the log grow (compactSlack lines beyond
// twice the live entries).
const minLogRoom = 2 << 20

// allocate gives the file its room; a variable for the tests, which take
// it away.
var allocate = func(f *os.File, size int64) error {
	return unix.Fallocate(int(f.Fd()), 0, 0, size)
}

// addRoom extends the log being written at f, whose text is size bytes,
// with room. Where that fails the log stays as it is, without room.
func addRoom(f *os.File, size int64) {
	if allocate(f, size+max(minLogRoom, size)) != nil {
		// A failed allocation may have extended the file part way.
		_ = f.Truncate(size)
	}
}

// openLogFile opens the log at path, whose text is end bytes, for
// appending after its text; torn says the text may end in a torn line.
func openLogFile(path string, end int64, torn bool) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	l := &logFile{f: f, off: end, torn: torn}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("state: %w", err)
	}
	if size := fi.Size(); size > end {
		// Without a mapping the room is still there; write(2) fills it.
		l.mem, _ = unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	}
	if l.mem != nil {
		l.ahead = startPrefaulter(l.mem, l.off)
	}
	return l, nil
}

// fits tells whether a line of n bytes can be appended without a new log:
// always when appending by write(2).
func (l *logFile) fits(n int) bool {
	return !l.failed && (l.mem == nil || l.off+int64(n)+1 <= int64(len(l.mem)))
}

// append appends line, which ends in a newline.
func (l *logFile) append(line []byte) error {
	if l.torn {
		// End the torn line first, so that it costs only itself.
		line = append([]byte{'\n'}, line...)
	}
	var err error
	if l.mem != nil && l.off+int64(len(line)) <= int64(len(l.mem)) {
		err = l.store(line)
	} else {
		_, err = l.f.WriteAt(line, l.off)
	}
	if err != nil {
		l.torn = true
		return err
	}
	l.off += int64(len(line))
	l.torn = false
	if l.ahead != nil {
		l.ahead.request(l.off)
	}
	return nil
}

// store copies line into the mapping at the end of the text. A fault (the
// file was cut short behind the mapping, or the disk could not take a
// page) is an error, not a crash of the daemon.
func (l *logFile) store(line []byte) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			l.failed = true
			err = fmt.Errorf("append to the mapped log faulted: %v", r)
		}
	}()
	copy(l.mem[l.off:], line)
	return nil
}

// Close unmaps and closes the log, and gives back its room: a log that a
// clean stop left is text alone, as an earlier release wrote it and reads
// it.
func (l *logFile) Close() error { return l.close(true) }

// discard unmaps and closes a log that a rewrite replaced: its name is the
// new log's now, so its room is not given back first, and nothing it holds
// is read again.
func (l *logFile) discard() { _ = l.close(false) }

func (l *logFile) close(giveBackRoom bool) error {
	var err error
	if l.ahead != nil {
		l.ahead.stop()
		l.ahead = nil
	}
	if l.mem != nil {
		err = unix.Munmap(l.mem)
		if giveBackRoom {
			err = errors.Join(err, l.f.Truncate(l.off))
		}
		l.mem = nil
	}
	return errors.Join(err, l.f.Close())
}

// prefaulter makes the pages of a mapped log ready for writing ahead of
// its text, by madvise(MADV_POPULATE_WRITE): the fault a write would take,
// without writing. Beyond the first window, which is made ready as the
// log is opened, its goroutine does it outside the lock the appends take;
// it changes no byte, so it needs no exclusion from them, only from the
// unmapping (stop). Where the kernel cannot (before Linux 5.14) the
// appends take the faults themselves, as they would without it.
//
// Pages made ready are dirty: written back, as zeros the log's room holds
// anyway, they are made read-only again, and an append that reaches one
// later faults as before. The window ahead is kept small so that this is
// rare under a burst of Mounts, and writes little.
type prefaulter struct {
	mem    []byte
	asked  int64        // the end of what was asked for; request's alone
	target atomic.Int64 // the end of what to make ready
	wake   chan struct{}
	done   chan struct{}
}

// prefaultWindow is how far ahead of the text pages are made ready; a new
// window is asked for when the text has used half of the one before.
const prefaultWindow = 64 << 10

// startPrefaulter makes the window of mem beyond off, the end of the text
// already written, ready at once, so that the first appends after a start
// or a rewrite take no faults either, and starts the goroutine for the
// rest. It returns nil where the kernel cannot.
func startPrefaulter(mem []byte, off int64) *prefaulter {
	p := &prefaulter{mem: mem, wake: make(chan struct{}, 1), done: make(chan struct{})}
	p.asked = min(off+prefaultWindow, int64(len(mem)))
	if p.populate(off, p.asked) != nil {
		return nil
	}
	go p.run(p.asked)
	return p
}

// request asks for the pages up to a window beyond off to be made ready,
// once off has used half of what was asked for before. It never blocks.
func (p *prefaulter) request(off int64) {
	if off+prefaultWindow/2 < p.asked || p.asked == int64(len(p.mem)) {
		return
	}
	p.asked = min(off+prefaultWindow, int64(len(p.mem)))
	p.target.Store(p.asked)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run makes ready what request asks for, from ready on.
func (p *prefaulter) run(ready int64) {
	defer close(p.done)
	for range p.wake {
		end := p.target.Load()
		if end <= ready {
			continue
		}
		if p.populate(ready, end) != nil {
			// The file was cut short behind the mapping: the appends
			// find out for themselves.
			return
		}
		ready = end
	}
}

// populate takes the write faults of the pages of mem from byte from to
// byte to.
func (p *prefaulter) populate(from, to int64) error {
	if from >= to {
		return nil
	}
	from &^= int64(os.Getpagesize() - 1)
	return unix.Madvise(p.mem[from:to], unix.MADV_POPULATE_WRITE)
}

// stop ends the goroutine, waiting for a madvise under way: the mapping
// may be unmapped then.
func (p *prefaulter) stop() {
	close(p.wake)
	<-p.done
}
