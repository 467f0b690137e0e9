package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"
)

const mountLogName = "mounts.log"

// BootIDFile holds the kernel's boot id, which tells a restart of the plugin
// from a reboot of the host.
const BootIDFile = "/proc/sys/kernel/random/boot_id"

// Mounts counts the active mounts of each volume per mount ID, with
// multiplicity (Docker reuses IDs).
//
// The counts must survive a restart or crash of the plugin but not a reboot
// (after a reboot no container holds a mount), and Mount and Unmount are
// Docker's hottest calls. So every change is one append to a log that is
// never fsync'd: a killed process loses nothing the kernel has, and the log's
// header holds the boot id, so a log from an earlier boot is discarded.
// A torn last line (a crash mid-append) is ignored. The log is rewritten as a
// snapshot at open and whenever it has grown well past the live entries, so
// its size, and the cost of a call, do not grow with the number of calls.
type Mounts struct {
	path   string
	bootID string
	counts map[string]map[string]int // volume -> mount ID -> count
	live   int                       // (volume, ID) pairs with a count
	lines  int                       // entries in the log file
	file   *os.File                  // the log, open for appending
	torn   bool                      // the last append failed part way
	log    logrus.FieldLogger
}

type mountHeader struct {
	BootID string `json:"boot_id"`
}

type mountEntry struct {
	Volume string `json:"v"`
	ID     string `json:"id"`
	Delta  int    `json:"d"`
}

// OpenMounts loads the mount log in dir written during boot bootID and
// rewrites it as a snapshot. Counts from another boot are dropped.
func OpenMounts(dir, bootID string, log logrus.FieldLogger) (*Mounts, error) {
	m := &Mounts{path: filepath.Join(dir, mountLogName), bootID: bootID, counts: map[string]map[string]int{}, log: log}
	current, err := m.replay()
	if err != nil {
		return nil, err
	}
	if err := m.compact(); err != nil {
		// A full disk must not keep the plugin from starting (Docker drops
		// volumes whose Get fails while it restores): go on appending to
		// the log as it is, when it is this boot's.
		if !current {
			return nil, err
		}
		log.WithError(err).Warn("could not rewrite the mount log; appending to it as it is")
		if m.file, err = os.OpenFile(m.path, os.O_WRONLY|os.O_APPEND, 0); err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
		m.torn = true // the log may end in a torn line
	}
	return m, nil
}

// ReadBootID returns the current boot id, or "" where the kernel has none.
func ReadBootID() string {
	b, err := os.ReadFile(BootIDFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// replay reads the log into the counts; current tells whether the log is
// this boot's.
func (m *Mounts) replay() (current bool, err error) {
	f, err := os.Open(m.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		return false, nil
	}
	var h mountHeader
	if json.Unmarshal(sc.Bytes(), &h) != nil || h.BootID != m.bootID {
		m.log.WithField("log_boot_id", h.BootID).Info("mount counts are from an earlier boot; starting with none")
		return false, nil
	}
	for sc.Scan() {
		var e mountEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// Only the last line can be torn; anything else is not ours.
			m.log.WithField("line", sc.Text()).Warn("skipped unreadable mount log line")
			continue
		}
		m.add(e.Volume, e.ID, e.Delta)
		m.lines++
	}
	return true, nil
}

// compact rewrites the log as header plus one entry per live count, and
// opens it for appending.
func (m *Mounts) compact() error {
	tmp := m.path + tmpPrefix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	err = enc.Encode(mountHeader{BootID: m.bootID})
	for v, ids := range m.counts {
		for id, n := range ids {
			if err == nil {
				err = enc.Encode(mountEntry{v, id, n})
			}
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, m.path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("state: rewrite mount log: %w", err)
	}
	f, err = os.OpenFile(m.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if m.file != nil {
		m.file.Close()
	}
	m.file, m.torn, m.lines = f, false, m.live
	return nil
}

// Close closes the log.
func (m *Mounts) Close() error { return m.file.Close() }

// Count is the number of active mounts of volume.
func (m *Mounts) Count(volume string) int {
	n := 0
	for _, c := range m.counts[volume] {
		n += c
	}
	return n
}

// Mount records one more mount of volume under id.
func (m *Mounts) Mount(volume, id string) error {
	return m.change(volume, id, +1)
}

// Unmount records one mount fewer of volume under id. It reports false, and
// changes nothing, when no such mount is counted.
func (m *Mounts) Unmount(volume, id string) (bool, error) {
	if m.counts[volume][id] == 0 {
		return false, nil
	}
	return true, m.change(volume, id, -1)
}

func (m *Mounts) change(volume, id string, delta int) error {
	line, err := json.Marshal(mountEntry{volume, id, delta})
	if err != nil {
		return err
	}
	if m.torn {
		// End the torn line first, so that it costs only itself.
		line = append([]byte{'\n'}, line...)
	}
	if _, err := m.file.Write(append(line, '\n')); err != nil {
		m.torn = true
		return fmt.Errorf("state: mount log: %w", err)
	}
	m.torn = false
	m.add(volume, id, delta)
	m.lines++
	if m.lines > 2*m.live+1024 {
		// The change is logged: a failed rewrite only postpones the next.
		if err := m.compact(); err != nil {
			m.log.WithError(err).Warn("could not rewrite the mount log")
		}
	}
	return nil
}

func (m *Mounts) add(volume, id string, delta int) {
	ids := m.counts[volume]
	if ids == nil {
		ids = map[string]int{}
		m.counts[volume] = ids
	}
	before := ids[id]
	after := max(before+delta, 0)
	switch {
	case before == 0 && after > 0:
		m.live++
	case before > 0 && after == 0:
		m.live--
	}
	if after == 0 {
		delete(ids, id)
		if len(ids) == 0 {
			delete(m.counts, volume)
		}
		return
	}
	ids[id] = after
}
