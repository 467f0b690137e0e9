// Package state keeps portal-volume's state on the host, under the plugin's
// state directory (by default <root>/.portal-volume), so that it outlives the
// plugin process, its upgrades and reinstalls.
//
// Volume records are durable: a change is one checksummed line appended to
// a journal, and concurrent changes share its flush (journal.go); a
// checkpoint writes the journal's changes to one small file per volume
// (temp file, fsync, rename; see checkpoint.go), which is what start-up
// reads before the journal. A crash at any moment leaves the old record
// or the new one, never a torn one, and the cost of a change does not grow
// with the number of volumes. Mount counts are runtime state, kept apart
// in an append-only log that is never fsync'd (see mounts.go).
package state

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

const (
	recordsDir = "volumes"
	corruptDir = "corrupt"
	tmpPrefix  = ".tmp-"
	lockFile   = "lock"
)

// Records stores one file per volume under <dir>/volumes, and the journal
// of the changes not yet written there. Its methods may be called
// concurrently (for different names): concurrent changes share the
// journal's flush.
type Records struct {
	dir     string
	volumes *os.File // the records directory, held open to fsync it
	lock    *os.File // flock'd: one plugin per state directory
	journal *journal
}

// OpenRecords takes the state directory dir (making it if missing), locks
// it against a second plugin, and loads every record. Leftover temp files of
// an interrupted write are removed; a record that cannot be read is moved to
// <dir>/corrupt and logged, never deleted.
func OpenRecords(dir string, log logrus.FieldLogger) (*Records, []Volume, error) {
	if err := os.MkdirAll(filepath.Join(dir, recordsDir), 0o700); err != nil {
		return nil, nil, fmt.Errorf("state directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("state directory: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("state directory %s is in use by another portal-volume: %w", dir, err)
	}
	volumes, err := os.Open(filepath.Join(dir, recordsDir))
	if err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("state directory: %w", err)
	}
	r := &Records{dir: dir, volumes: volumes, lock: lock}
	vols, err := r.load(log)
	if err != nil {
		r.closeFiles()
		return nil, nil, err
	}
	// The journals, oldest first, hold the changes since the record files.
	old, err := readJournal(filepath.Join(dir, oldJournalName), log)
	var current []journalEntry
	if err == nil {
		current, err = readJournal(filepath.Join(dir, journalName), log)
	}
	if err == nil {
		r.journal, err = openJournal(dir, current, r.checkpoint, log)
	}
	if err != nil {
		r.closeFiles()
		return nil, nil, err
	}
	if oldJournalThere(dir) {
		// A checkpoint was cut off, or failed: finish it, off the
		// start-up's path (one of a journal without a whole line only
		// deletes it, which lets the next rotation happen).
		r.journal.checkpointInBackground()
	}
	return r, apply(vols, append(old, current...)), nil
}

// apply gives the volumes that the record files vols and then the journal
// entries say.
func apply(vols []Volume, entries []journalEntry) []Volume {
	if len(entries) == 0 {
		return vols
	}
	at := make(map[string]int, len(vols)) // name -> index in vols of its live record
	for i, v := range vols {
		at[v.Name] = i
	}
	for _, e := range entries {
		i, ok := at[e.name()]
		switch {
		case e.Put != nil && ok:
			vols[i] = *e.Put
		case e.Put != nil:
			at[e.Put.Name] = len(vols)
			vols = append(vols, *e.Put)
		case ok:
			delete(at, e.Del)
		}
	}
	out := make([]Volume, 0, len(at))
	for i, v := range vols {
		if j, ok := at[v.Name]; ok && j == i {
			out = append(out, v)
		}
	}
	return out
}

// Close waits for changes in flight and a running checkpoint, and releases
// the directory and its lock.
func (r *Records) Close() error {
	return errors.Join(r.journal.close(), r.closeFiles())
}

func (r *Records) closeFiles() error {
	return errors.Join(r.volumes.Close(), r.lock.Close())
}

// Put writes v durably, in the current format, replacing any record of the
// same name.
func (r *Records) Put(v Volume) error {
	v.Format = RecordFormat
	return r.journal.append(journalEntry{Put: &v})
}

// Delete removes the record of name durably.
func (r *Records) Delete(name string) error {
	return r.journal.append(journalEntry{Del: name})
}

// load reads every record, in parallel: start-up time with 100,000 volumes
// is dominated by opening files. Each worker takes a run of names at a time
// and reads through the directory's descriptor with one reused buffer, into
// a slice of the run's own: one shared slice of every record, written
// while the garbage collector scans it, costs a copy-on-write fault and a
// TLB shootdown per page.
func (r *Records) load(log logrus.FieldLogger) ([]Volume, error) {
	names, err := r.volumes.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("state: read %s: %w", r.volumes.Name(), err)
	}
	if _, err := r.volumes.Seek(0, 0); err != nil {
		return nil, err
	}
	dirfd := int(r.volumes.Fd())
	const run = 256
	type batch struct {
		vols []Volume
		errs map[int]error // by index in names
	}
	batches := make([]batch, (len(names)+run-1)/run)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) * 2 {
		wg.Go(func() {
			buf := make([]byte, 4096)
			for {
				first := int(next.Add(run)) - run
				if first >= len(names) {
					return
				}
				b := &batches[first/run]
				b.vols = make([]Volume, 0, run)
				for i := first; i < min(first+run, len(names)); i++ {
					if strings.HasPrefix(names[i], tmpPrefix) {
						continue
					}
					var v Volume
					var err error
					if v, buf, err = r.readRecord(dirfd, names[i], buf); err != nil {
						if b.errs == nil {
							b.errs = map[int]error{}
						}
						b.errs[i] = err
						continue
					}
					b.vols = append(b.vols, v)
				}
			}
		})
	}
	wg.Wait()
	n := 0
	for _, b := range batches {
		n += len(b.vols)
	}
	out := make([]Volume, 0, n)
	for _, b := range batches {
		out = append(out, b.vols...)
	}
	for i, name := range names {
		if strings.HasPrefix(name, tmpPrefix) {
			// An interrupted write: the record it was replacing is intact.
			_ = unix.Unlinkat(dirfd, name, 0)
			log.WithField("file", name).Info("removed temp file of an interrupted state write")
		} else if err := batches[i/run].errs[i]; err != nil {
			r.quarantine(name, err, log)
		}
	}
	return out, nil
}

// recordOpenFlags: no symlink is followed, and a FIFO cannot block.
const recordOpenFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOFOLLOW

// maxRecordBytes bounds one record (they are a few hundred bytes): a file
// that is not ours must not make the start-up read without end.
const maxRecordBytes = 1 << 20

// readRecord reads the record name in the directory open at dirfd, into buf
// (grown as needed and returned for the next call). openat, read and close:
// os.ReadFile would add a stat, poller set-up and teardown, and a path walk
// per file, which at 100,000 records is most of the start-up. See
// recordOpenFlags and maxRecordBytes for what a stray file cannot do.
func (r *Records) readRecord(dirfd int, name string, buf []byte) (Volume, []byte, error) {
	fail := func(op string, err error) (Volume, []byte, error) {
		return Volume{}, buf, &os.PathError{Op: op, Path: filepath.Join(r.volumes.Name(), name), Err: err}
	}
	fd, err := unix.Openat(dirfd, name, recordOpenFlags, 0)
	for err == unix.EINTR {
		fd, err = unix.Openat(dirfd, name, recordOpenFlags, 0)
	}
	if err != nil {
		return fail("open", err)
	}
	n := 0
	for {
		if n == len(buf) {
			if n >= maxRecordBytes {
				unix.Close(fd)
				return fail("read", fmt.Errorf("record larger than %d bytes", maxRecordBytes))
			}
			buf = append(buf, make([]byte, len(buf))...)
		}
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return fail("read", err)
		}
		if m == 0 {
			break
		}
		n += m
	}
	unix.Close(fd)
	var v Volume
	if err := decodeRecord(buf[:n], &v); err != nil {
		return Volume{}, buf, err
	}
	v.upgrade()
	if !isFileName(v.Name, name) {
		return Volume{}, buf, fmt.Errorf("record of %q in a file named %s", v.Name, name)
	}
	return v, buf, nil
}

// quarantine moves an unreadable record aside, keeping it for an operator.
func (r *Records) quarantine(name string, cause error, log logrus.FieldLogger) {
	dst := filepath.Join(r.dir, corruptDir)
	err := os.MkdirAll(dst, 0o700)
	if err == nil {
		err = os.Rename(filepath.Join(r.volumes.Name(), name),
			filepath.Join(dst, name+"."+time.Now().UTC().Format("20060102T150405Z")))
	}
	log.WithFields(logrus.Fields{"file": name, "cause": cause, "moved_to": dst, "move_error": err}).
		Warn("unreadable volume record set aside")
}

// fileName is a record's file name: a hash, since volume names may be longer
// than a file name may be or hold characters a file name should not.
func fileName(volume string) string {
	sum := sha256.Sum256([]byte(volume))
	return hex.EncodeToString(sum[:16]) + ".json"
}

// isFileName tells whether name is fileName(volume), without allocating:
// it runs for every record at every start.
func isFileName(volume, name string) bool {
	sum := sha256.Sum256([]byte(volume))
	var b [2*16 + len(".json")]byte
	hex.Encode(b[:2*16], sum[:16])
	copy(b[2*16:], ".json")
	return string(b[:]) == name
}
