package state

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// The journal makes record changes durable with one append each, and lets
// concurrent changes share one flush: a committer goroutine writes every
// change waiting at that moment with one write and one fdatasync (a group
// commit), and each caller returns once its batch is on disk. The record
// files stay the snapshot that start-up reads; a checkpoint applies the
// journal to them in the background, off the callers' path, and then drops
// it. A change is durable when its journal line is, so a crash at any
// moment leaves the old record or the new one: start-up reads the record
// files, then the journals, oldest first; a line torn by the crash, the
// last one, fails its checksum or lacks its newline, is ignored, and is
// cut off before the next append.
//
// A checkpoint writes only what is still the latest: a record that a newer
// change in the current journal supersedes, durably, is left for the next
// checkpoint (a volume created before a rotation and removed after it then
// costs no record file at all), and start-up reads that change after the
// record files anyway.
const (
	journalName    = "journal"
	oldJournalName = "journal.old" // being checkpointed
)

// checkpointAfter is how many lines the journal gathers before it is
// checkpointed: the checkpoint's cost, a durable write per record changed,
// is shared by that many changes, and a volume created and removed within
// them costs none. Start-up reads at most about twice that many lines
// (~250 bytes each). A variable for the tests.
var checkpointAfter = 8192

// quietFor is how long the journal must go without a change before a
// checkpoint writes its next batch of record files. A checkpoint competes
// with the callers' changes for the disk (every fdatasync of the journal
// waits for the file system's commit, which then carries the checkpoint's
// files too), so it gives way while changes come in; and the longer it
// waits, the more of a burst's changes cancel out (a volume created and
// removed within it costs no record file). A variable for the tests.
var quietFor = 100 * time.Millisecond

// checkpointWorkers is how many record files a checkpoint fsyncs, renames
// or unlinks at once (see checkpoint.go): after the first, an fsync mostly
// waits for the disk to flush its cache, and concurrent flushes are
// merged.
const checkpointWorkers = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// journalEntry is one change: a record put, or the name of a record
// deleted.
type journalEntry struct {
	Put *Volume `json:"put,omitempty"`
	Del string  `json:"del,omitempty"`
}

// name is the name of the volume the entry changes.
func (e journalEntry) name() string {
	if e.Put != nil {
		return e.Put.Name
	}
	return e.Del
}

// journalLine encodes e as one line: the CRC-32C of the JSON in hex, a
// space, the JSON.
func journalLine(e journalEntry) ([]byte, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	var sum [4]byte
	c := crc32.Checksum(data, castagnoli)
	sum[0], sum[1], sum[2], sum[3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	line := make([]byte, 0, 9+len(data)+1)
	line = hex.AppendEncode(line, sum[:])
	line = append(line, ' ')
	line = append(line, data...)
	return append(line, '\n'), nil
}

// parseJournalLine decodes a line written by journalLine (without its
// newline).
func parseJournalLine(line []byte) (journalEntry, error) {
	var e journalEntry
	sum, data, ok := bytes.Cut(line, []byte{' '})
	if !ok || len(sum) != 8 {
		return e, errors.New("no checksum")
	}
	var want [4]byte
	if _, err := hex.Decode(want[:], sum); err != nil {
		return e, errors.New("bad checksum")
	}
	c := crc32.Checksum(data, castagnoli)
	if want != [4]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)} {
		return e, errors.New("checksum mismatch")
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return e, err
	}
	if (e.Put == nil) == (e.Del == "") {
		return e, errors.New("want one of put and del")
	}
	if e.Put != nil {
		e.Put.upgrade()
	}
	return e, nil
}

// readJournal reads the entries of the journal at path; a missing file has
// none. An unreadable line is logged and passed over.
func readJournal(path string, log logrus.FieldLogger) ([]journalEntry, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	defer f.Close()
	var out []journalEntry
	r := bufio.NewReader(f)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			e, perr := parseJournalLine(line[:len(line)-1])
			if perr != nil {
				log.WithFields(logrus.Fields{"file": path, "line": n, "cause": perr}).Warn("skipped unreadable journal line")
			} else {
				out = append(out, e)
			}
		} else if len(line) > 0 {
			// No newline: the last append was cut off. It was never
			// acknowledged.
			log.WithFields(logrus.Fields{"file": path, "line": n}).Info("ignored the torn last line of the journal")
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("state: read %s: %w", path, err)
		}
	}
}

// journalWrite is one change waiting for the committer.
type journalWrite struct {
	name string // of the volume it changes
	line []byte
	done chan error
}

// journal is the open journal and its committer.
type journal struct {
	dir     string   // the state directory
	dirFile *os.File // held open to fsync it
	writes  chan *journalWrite
	stopped chan struct{}
	log     logrus.FieldLogger

	// The committer's own: no lock.
	f    *os.File
	size int64 // of f: where the next batch starts, all of it on disk
	// failed is why no batch is written any more: one failed, and the
	// journal could not be cut back to size (see cutBack).
	failed error

	// Written by the committer, read by a checkpoint as it paces itself.
	lines      atomic.Int64 // in the current journal
	opened     time.Time    // the clock lastCommit counts from (monotonic)
	lastCommit atomic.Int64 // when the last batch was on disk, ns since opened

	// checkpoint applies entries to the record files, giving way to the
	// changes of the current journal and passing over (and counting) the
	// volumes they change, when it is not nil.
	checkpoint func(entries []journalEntry, current currentJournal) (checkpointDone, error)
	busy       sync.WaitGroup // a checkpoint running
	// checkpointing is set while a checkpoint of the old journal runs;
	// failedAt is when the last one failed (ns since opened, 0: none).
	checkpointing atomic.Bool
	failedAt      atomic.Int64
	closeOnce     sync.Once

	// changed holds the volumes that the current journal changes, once
	// its line is on disk: what supersedes the old journal's entries.
	changedMu sync.Mutex
	changed   map[string]struct{}

	appending sync.RWMutex // held shared by appends, exclusively by close
	closed    bool         // under appending
}

var errJournalClosed = errors.New("state: closed")

// openJournal opens (making it if missing) the journal in dir for
// appending, and starts its committer. current is what the journal holds.
func openJournal(dir string, current []journalEntry, checkpoint func([]journalEntry, currentJournal) (checkpointDone, error), log logrus.FieldLogger) (*journal, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	j := &journal{dir: dir, dirFile: d, writes: make(chan *journalWrite, 64), stopped: make(chan struct{}),
		log: log, checkpoint: checkpoint, changed: make(map[string]struct{}, len(current)), opened: time.Now()}
	j.lines.Store(int64(len(current)))
	for _, e := range current {
		j.changed[e.name()] = struct{}{}
	}
	if j.f, err = j.create(); err != nil {
		d.Close()
		return nil, err
	}
	if j.size, err = j.f.Seek(0, io.SeekEnd); err == nil && j.size > 0 {
		// A crash may have cut the last line, which the replay ignored:
		// it goes, or the next append would complete it. A killed plugin
		// may also have left lines written and not yet flushed: they
		// supersede the old journal only once on disk.
		if j.size, err = lineEnd(j.f, j.size); err == nil {
			err = j.f.Truncate(j.size)
		}
		if err == nil {
			err = unix.Fdatasync(int(j.f.Fd()))
		}
	}
	if err != nil {
		j.f.Close()
		d.Close()
		return nil, fmt.Errorf("state: %w", err)
	}
	go j.commit()
	return j, nil
}

// create opens the journal for appending and makes its name durable.
func (j *journal) create() (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(j.dir, journalName), os.O_RDWR|os.O_CREATE|os.O_APPEND|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if err := j.dirFile.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("state: sync %s: %w", j.dir, err)
	}
	return f, nil
}

// append makes e durable, with every other change that waits at the same
// moment.
func (j *journal) append(e journalEntry) error {
	line, err := journalLine(e)
	if err != nil {
		return err
	}
	w := &journalWrite{name: e.name(), line: line, done: make(chan error, 1)}
	j.appending.RLock()
	defer j.appending.RUnlock()
	if j.closed {
		return errJournalClosed
	}
	j.writes <- w
	return <-w.done
}

// commit is the committer: it takes every change waiting, writes them with
// one write and one fdatasync, and answers each.
func (j *journal) commit() {
	defer close(j.stopped)
	var buf []byte
	for w := range j.writes {
		batch := []*journalWrite{w}
	more:
		for {
			select {
			case w, ok := <-j.writes:
				if !ok {
					break more
				}
				batch = append(batch, w)
			default:
				break more
			}
		}
		buf = buf[:0]
		for _, w := range batch {
			buf = append(buf, w.line...)
		}
		err := j.failed
		if err == nil {
			var n int
			n, err = j.f.Write(buf)
			if err == nil {
				err = unix.Fdatasync(int(j.f.Fd()))
			}
			if err == nil {
				j.size += int64(len(buf))
			} else {
				if n > 0 { // else the journal is as it was
					j.cutBack(err)
				}
				err = fmt.Errorf("state: journal: %w", err)
			}
		}
		if err == nil {
			j.changedMu.Lock()
			for _, w := range batch {
				j.changed[w.name] = struct{}{}
			}
			j.changedMu.Unlock()
		}
		for _, w := range batch {
			w.done <- err
		}
		if err == nil {
			j.lastCommit.Store(int64(time.Since(j.opened)))
			if j.lines.Add(int64(len(batch))) >= int64(checkpointAfter) {
				j.rotate()
			}
		}
	}
}

// cutBack cuts off, and flushes the cut of, what a failed batch may have
// written (a full disk writes a part; a failed flush leaves pages whose
// fate is unknown): the journal is then as it was, and none of the
// batch's lines, whose changes were refused, can reach the disk later.
// Where that fails too, no batch is written any more: the journal's end is
// unknown, and a later flush could make a refused change durable or cut
// an acknowledged one.
func (j *journal) cutBack(cause error) {
	err := j.f.Truncate(j.size)
	if err == nil {
		err = unix.Fdatasync(int(j.f.Fd()))
	}
	if err != nil {
		j.failed = fmt.Errorf("an earlier write failed (%v) and could not be cut off (%v): restart portal-volume once the disk is sound", cause, err)
		j.log.WithError(j.failed).Error("the journal refuses every change from now on")
	}
}

// lineEnd is where the last whole line of f, of size bytes, ends.
func lineEnd(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 4096)
	for end := size; end > 0; {
		n := min(end, int64(len(buf)))
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return end - n + int64(i) + 1, nil
		}
		end -= n
	}
	return 0, nil
}

// checkpointRetry is how long after a failed checkpoint of the old journal
// (a full disk) the next is tried, while the current journal is full.
var checkpointRetry = time.Minute

// oldJournalThere tells whether a journal being checkpointed (or whose
// checkpoint failed) is in dir. Any answer but "not found" counts as there:
// treating a journal that is there as gone would let an older journal be
// applied over newer changes.
func oldJournalThere(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, oldJournalName))
	return !errors.Is(err, fs.ErrNotExist)
}

// rotate starts a checkpoint of the journal, unless one is running: the
// journal becomes the old one, and changes go to a new journal meanwhile.
func (j *journal) rotate() {
	if oldJournalThere(j.dir) {
		// The last checkpoint has not finished, or it failed: the journal
		// grows meanwhile, and a failed one is tried again now and then.
		if j.failedAt.Load() != 0 && time.Since(j.opened)-time.Duration(j.failedAt.Load()) >= checkpointRetry {
			j.checkpointInBackground()
		}
		return
	}
	old := filepath.Join(j.dir, oldJournalName)
	if err := os.Rename(filepath.Join(j.dir, journalName), old); err != nil {
		j.log.WithError(err).Warn("could not start a checkpoint of the journal")
		return
	}
	f, err := j.create()
	if err != nil {
		// The old journal is whole and stays readable; go on appending to
		// it under its new name, and try again later.
		_ = os.Rename(old, filepath.Join(j.dir, journalName))
		j.log.WithError(err).Warn("could not start a checkpoint of the journal")
		return
	}
	j.f.Close()
	j.f, j.size = f, 0
	j.lines.Store(0)
	j.changedMu.Lock()
	j.changed = make(map[string]struct{})
	j.changedMu.Unlock()
	j.checkpointInBackground()
}

// currentJournal is what a checkpoint of the old journal asks of the
// current one.
type currentJournal interface {
	// superseded tells whether the current journal changes volume name:
	// an entry of the old journal for it need not reach the record files.
	superseded(name string) bool
	// waitQuiet returns once no change has come in for quietFor, or at
	// once when the current journal is full (the checkpoint must then go
	// on, or the journals would grow without bound), and says how long it
	// waited.
	waitQuiet() time.Duration
}

func (j *journal) superseded(name string) bool {
	j.changedMu.Lock()
	defer j.changedMu.Unlock()
	_, ok := j.changed[name]
	return ok
}

func (j *journal) waitQuiet() time.Duration {
	var waited time.Duration
	for j.lines.Load() < int64(checkpointAfter) {
		since := time.Since(j.opened) - time.Duration(j.lastCommit.Load())
		if since >= quietFor {
			break
		}
		time.Sleep(quietFor - since)
		waited += quietFor - since
	}
	return waited
}

// checkpointInBackground checkpoints the old journal off the caller's
// path, unless that runs already; close waits for it.
func (j *journal) checkpointInBackground() {
	if !j.checkpointing.CompareAndSwap(false, true) {
		return
	}
	j.busy.Add(1)
	go func() {
		defer j.busy.Done()
		defer j.checkpointing.Store(false)
		j.failedAt.Store(0)
		if !j.checkpointOrWarn(oldJournalName, j) {
			j.failedAt.Store(max(int64(time.Since(j.opened)), 1))
		}
	}()
}

// checkpointOrWarn checkpoints the journal named name (see checkpointFile)
// and tells whether it did; a failure is logged, and the journal kept to
// be applied again.
func (j *journal) checkpointOrWarn(name string, current currentJournal) bool {
	path := filepath.Join(j.dir, name)
	if err := j.checkpointFile(path, current); err != nil {
		j.log.WithError(err).WithField("file", path).Warn("checkpoint of the journal failed; it is kept and applied again")
		return false
	}
	return true
}

// checkpointFile applies the journal at path to the record files (giving
// way to current, when not nil), then deletes it.
func (j *journal) checkpointFile(path string, current currentJournal) error {
	start := time.Now()
	entries, err := readJournal(path, j.log)
	if err != nil {
		return err
	}
	done, err := j.checkpoint(entries, current)
	if err != nil {
		return err
	}
	// The journal's removal is flushed before anything newer can rely on
	// it: an old journal back after a crash would undo newer changes.
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := j.dirFile.Sync(); err != nil {
		return fmt.Errorf("state: sync %s: %w", j.dir, err)
	}
	j.log.WithFields(logrus.Fields{"file": path, "lines": len(entries), "passed_over": done.passedOver,
		"gave_way": done.gaveWay.Round(time.Millisecond), "duration": time.Since(start).Round(time.Millisecond)}).
		Info("journal checkpointed into the record files")
	return nil
}

// close stops the journal and checkpoints what it holds: a clean stop
// leaves the record files alone telling the state.
func (j *journal) close() error {
	var err error
	j.closeOnce.Do(func() {
		err = j.stop()
		// An old journal that a failed checkpoint left goes first: the
		// current one is checkpointed (and deleted) only after it, or the
		// next start would apply the old journal's changes over newer ones.
		oldGone := !oldJournalThere(j.dir) || j.checkpointOrWarn(oldJournalName, nil)
		if oldGone && j.lines.Load() > 0 {
			j.checkpointOrWarn(journalName, nil)
		}
		err = errors.Join(err, j.dirFile.Close())
	})
	return err
}

// stop refuses new changes, lets the committer answer those in flight,
// waits for a running checkpoint, and closes the journal file.
func (j *journal) stop() error {
	j.appending.Lock()
	j.closed = true
	j.appending.Unlock()
	close(j.writes)
	<-j.stopped
	j.busy.Wait()
	return j.f.Close()
}

// latest keeps the last entry per volume name, in the order of their last
// change: what a checkpoint must apply.
func latest(entries []journalEntry) []journalEntry {
	last := make(map[string]int, len(entries))
	for i, e := range entries {
		last[e.name()] = i
	}
	out := make([]journalEntry, 0, len(last))
	for i, e := range entries {
		if last[e.name()] == i {
			out = append(out, e)
		}
	}
	return out
}
