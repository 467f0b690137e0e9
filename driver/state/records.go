// Package state keeps portal-volume's state on the host, under the plugin's
// state directory (by default <root>/.portal-volume), so that it outlives the
// plugin process, its upgrades and reinstalls.
//
// Volume records are durable: one small file per volume, written to a temp
// file, fsync'd and renamed into place, so that a crash at any moment leaves
// the old record or the new one, never a torn one, and the cost of a write
// does not grow with the number of volumes. Mount counts are runtime state,
// kept apart in an append-only log that is never fsync'd (see mounts.go).
package state

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/driver/spec"
)

const (
	recordsDir = "volumes"
	corruptDir = "corrupt"
	tmpPrefix  = ".tmp-"
	lockFile   = "lock"
)

// Volume is one durable volume record.
type Volume struct {
	Name      string    `json:"name"`
	Spec      spec.Spec `json:"spec"`
	CreatedAt time.Time `json:"created_at"`
}

// Records stores one file per volume under <dir>/volumes.
type Records struct {
	dir     string
	volumes *os.File // the records directory, held open to fsync it
	lock    *os.File // flock'd: one plugin per state directory
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
		r.Close()
		return nil, nil, err
	}
	return r, vols, nil
}

// Close releases the directory and its lock.
func (r *Records) Close() error {
	return errors.Join(r.volumes.Close(), r.lock.Close())
}

// Put writes v durably, replacing any record of the same name.
func (r *Records) Put(v Volume) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return r.writeFile(fileName(v.Name), append(data, '\n'), true)
}

// Delete removes the record of name durably.
func (r *Records) Delete(name string) error {
	if err := unix.Unlinkat(int(r.volumes.Fd()), fileName(name), 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("state: delete record of %q: %w", name, err)
	}
	return r.syncDir()
}

// writeFile replaces name in the records directory atomically; with durable
// set, the data and the rename are on disk before it returns.
func (r *Records) writeFile(name string, data []byte, durable bool) error {
	tmp := tmpPrefix + rand.Text()
	dirfd := int(r.volumes.Fd())
	fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(data)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dirfd, tmp, dirfd, name)
	}
	if err != nil {
		_ = unix.Unlinkat(dirfd, tmp, 0)
		return fmt.Errorf("state: write %s: %w", name, err)
	}
	if durable {
		return r.syncDir()
	}
	return nil
}

func (r *Records) syncDir() error {
	if err := r.volumes.Sync(); err != nil {
		return fmt.Errorf("state: sync %s: %w", r.volumes.Name(), err)
	}
	return nil
}

// load reads every record, in parallel: start-up time with 100,000 volumes
// is dominated by opening files.
func (r *Records) load(log logrus.FieldLogger) ([]Volume, error) {
	names, err := r.volumes.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("state: read %s: %w", r.volumes.Name(), err)
	}
	if _, err := r.volumes.Seek(0, 0); err != nil {
		return nil, err
	}
	vols := make([]Volume, len(names))
	ok := make([]bool, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	work := make(chan int)
	for range runtime.GOMAXPROCS(0) * 2 {
		wg.Go(func() {
			for i := range work {
				vols[i], errs[i] = r.readRecord(names[i])
				ok[i] = errs[i] == nil
			}
		})
	}
	for i, name := range names {
		if strings.HasPrefix(name, tmpPrefix) {
			// An interrupted write: the record it was replacing is intact.
			_ = unix.Unlinkat(int(r.volumes.Fd()), name, 0)
			log.WithField("file", name).Info("removed temp file of an interrupted state write")
			continue
		}
		work <- i
	}
	close(work)
	wg.Wait()
	out := vols[:0]
	for i, name := range names {
		switch {
		case ok[i]:
			out = append(out, vols[i])
		case errs[i] != nil:
			r.quarantine(name, errs[i], log)
		}
	}
	return out, nil
}

func (r *Records) readRecord(name string) (Volume, error) {
	data, err := os.ReadFile(filepath.Join(r.volumes.Name(), name))
	if err != nil {
		return Volume{}, err
	}
	var v Volume
	if err := json.Unmarshal(data, &v); err != nil {
		return Volume{}, err
	}
	if fileName(v.Name) != name {
		return Volume{}, fmt.Errorf("record of %q in a file named %s", v.Name, name)
	}
	return v, nil
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
