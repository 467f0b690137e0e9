package state

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A checkpoint writes the old journal's changes to the record files a
// batch at a time, in four steps:
//
//  1. every record of the batch is written to a temp file of its own, not
//     yet flushed;
//  2. each temp file is fsync'd: the file system's first commit carries
//     the whole batch, and the other fsyncs find their file already on
//     disk (ext4 commits once per batch, instead of once per few records
//     when each file is written and flushed in turn);
//  3. the temp files are renamed over the records, and the records of
//     removed volumes are unlinked;
//  4. the directory is fsync'd once.
//
// A record file is renamed into place only once its content is on disk, so
// a crash at any moment leaves the old record or the new one, and the
// journal, deleted only after the checkpoint, has every change either way.

// checkpointDone says what a checkpoint did beside writing records.
type checkpointDone struct {
	passedOver int           // entries not written: the current journal changes their volume
	gaveWay    time.Duration // time spent waiting for the current journal's changes to pause
}

// checkpoint writes the journal's changes to the record files, durably.
// With a current journal (not nil), each batch waits until no change has
// come in for a while, and none of a volume that the current journal
// changes is written: a newer change of it is on disk there.
func (r *Records) checkpoint(entries []journalEntry, current currentJournal) (done checkpointDone, err error) {
	// Whatever an earlier checkpoint cut off by a crash changed in the
	// directory is durable from here: a record file that is missing now
	// stays missing (see applyBatch).
	if err := r.syncDir(); err != nil {
		return done, err
	}
	todo := latest(entries)
	size := checkpointBatch()
	for len(todo) > 0 {
		if current != nil {
			done.gaveWay += current.waitQuiet()
		}
		batch := make([]journalEntry, 0, min(len(todo), size))
		for _, e := range todo[:min(len(todo), size)] {
			if current != nil && current.superseded(e.name()) {
				done.passedOver++
				continue
			}
			batch = append(batch, e)
		}
		todo = todo[min(len(todo), size):]
		if err := r.applyBatch(batch); err != nil {
			return done, err
		}
	}
	return done, nil
}

// checkpointBatch is how many records a checkpoint writes before it flushes
// them: at most 1,024 (a full journal of 8,192 lines then costs the file
// system 8 commits), and since each holds a descriptor until its fsync, at
// most a quarter of the descriptors the process may open.
func checkpointBatch() int {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		return 64
	}
	return int(max(16, min(1024, lim.Cur/4)))
}

// tempRecord is a record written to a temp file and not yet renamed into
// place: f is nil once closed, tmp "" once renamed (or never written).
type tempRecord struct {
	name, tmp string
	f         *os.File
}

// applyBatch applies entries, one per volume, to the record files durably
// (steps 1 to 4 above). The fsyncs, renames and unlinks are made by
// checkpointWorkers at once: each mostly waits, for the disk's flush or
// for the file system to free an unlinked file's blocks. On failure, no
// temp file stays behind.
func (r *Records) applyBatch(entries []journalEntry) error {
	dirfd := int(r.volumes.Fd())
	temps := make([]tempRecord, len(entries))
	defer func() {
		for _, t := range temps {
			if t.f != nil {
				_ = t.f.Close()
			}
			if t.tmp != "" {
				_ = unix.Unlinkat(dirfd, t.tmp, 0)
			}
		}
	}()
	// One writer: creates in one directory take its lock in turn, and more
	// writers only contend with the calls beside the checkpoint.
	for i, e := range entries {
		if e.Put == nil {
			continue
		}
		t, err := r.writeTemp(e.Put)
		if err != nil {
			return err
		}
		temps[i] = t
	}
	err := parallel(len(temps), checkpointWorkers, func(i int) error {
		t := &temps[i]
		if t.f == nil {
			return nil
		}
		err := t.f.Sync()
		if cerr := t.f.Close(); err == nil {
			err = cerr
		}
		t.f = nil
		if err != nil {
			return fmt.Errorf("state: write %s: %w", t.name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var changed atomic.Bool
	err = parallel(len(entries), checkpointWorkers, func(i int) error {
		if t := &temps[i]; t.tmp != "" {
			if err := unix.Renameat(dirfd, t.tmp, dirfd, t.name); err != nil {
				return fmt.Errorf("state: write %s: %w", t.name, err)
			}
			t.tmp = ""
			changed.Store(true)
			return nil
		}
		switch err := unix.Unlinkat(dirfd, fileName(entries[i].Del), 0); err {
		case nil:
			changed.Store(true)
		case unix.ENOENT:
			// Never written (a checkpoint passed it over), or deleted by
			// an earlier checkpoint, whose changes are durable.
		default:
			return fmt.Errorf("state: delete record of %q: %w", entries[i].Del, err)
		}
		return nil
	})
	if err != nil || !changed.Load() {
		return err
	}
	return r.syncDir()
}

// writeTemp writes v's record to a new temp file in the records directory,
// and leaves it open, not flushed.
func (r *Records) writeTemp(v *Volume) (tempRecord, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return tempRecord{}, err
	}
	t := tempRecord{name: fileName(v.Name), tmp: tmpPrefix + rand.Text()}
	dirfd := int(r.volumes.Fd())
	fd, err := unix.Openat(dirfd, t.tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return tempRecord{}, fmt.Errorf("state: write %s: %w", t.name, err)
	}
	t.f = os.NewFile(uintptr(fd), t.tmp)
	if _, err = t.f.Write(append(data, '\n')); err != nil {
		_ = t.f.Close()
		_ = unix.Unlinkat(dirfd, t.tmp, 0)
		return tempRecord{}, fmt.Errorf("state: write %s: %w", t.name, err)
	}
	return t, nil
}

// syncDir makes the changes made so far to the records directory (renames,
// unlinks) durable.
func (r *Records) syncDir() error {
	if err := r.volumes.Sync(); err != nil {
		return fmt.Errorf("state: sync %s: %w", r.volumes.Name(), err)
	}
	return nil
}

// parallel calls do(i) for every i below n, from up to workers goroutines,
// and returns the first error; the calls go on after one fails.
func parallel(n, workers int, do func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(n, workers) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := do(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	wg.Wait()
	return first
}
