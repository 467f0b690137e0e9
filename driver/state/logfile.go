package state

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// logFile is the mount log open for appending.
//
// Where the file system allows, the log is written with room after its
// text (allocated, read as NUL bytes) and the whole file is mapped into
// memory, shared: an append is then a copy into the page cache. The kernel
// keeps what was copied when the process is killed, as it keeps a write(2),
// and no system call is made under the lock that every Mount and Unmount
// takes. A log without room (the file system cannot allocate it, or an
// earlier release wrote the log) is appended to by write(2) at the end of
// its text. The log's text ends at its first NUL byte.
type logFile struct {
	f      *os.File
	mem    []byte // the mapped file; nil when appending by write(2)
	off    int64  // where the next line goes: the end of the text
	torn   bool   // the last append may have stopped part way: end its line first
	failed bool   // the mapping faulted: start a new log before the next append
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
func (l *logFile) Close() error {
	var err error
	if l.mem != nil {
		err = errors.Join(unix.Munmap(l.mem), l.f.Truncate(l.off))
		l.mem = nil
	}
	return errors.Join(err, l.f.Close())
}
