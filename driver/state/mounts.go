package state

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

const mountLogName = "mounts.log"

// BootIDFile holds the kernel's boot id, which tells a restart of the plugin
// from a reboot of the host.
const BootIDFile = "/proc/sys/kernel/random/boot_id"

// Mounts counts the active mounts of each volume per mount ID, with
// multiplicity (Docker reuses IDs), and which engine generation each
// (volume, ID) pair was last mounted in.
//
// The counts must survive a restart or crash of the plugin but not a reboot
// (after a reboot no container holds a mount), and Mount and Unmount are
// Docker's hottest calls. So every change is one append to a log that is
// never fsync'd (a copy into its mapped room, see logFile): a killed
// process loses nothing the kernel has, and the log's header holds the boot
// id, so a log from an earlier boot is discarded.
// A torn last line (a crash mid-append) is ignored. The log is rewritten as a
// snapshot at open, when its room is used up and whenever it has grown well
// past the live entries, so its size, and the cost of a call, do not grow
// with the number of calls.
//
// An engine generation is one life of the engine that uses the plugin:
// NewGeneration starts the next. A pair last mounted in an earlier
// generation is stale: its engine is gone, and nothing it counted is known
// to be in use any more. A Mount of a stale pair takes it over (the new
// engine mounted again what it still uses: the count starts again from
// one); an Unmount of a stale pair still decrements it (a container the
// new engine restored alive stops later).
//
// Mounts is safe for concurrent use: every method holds its lock, which is
// never held for more than one append (or a rewrite, once the log has grown
// well past the live entries).
type Mounts struct {
	mu     sync.Mutex
	path   string
	bootID string
	gen    uint64                      // the current engine generation
	counts map[string]map[string]count // volume -> mount ID -> count
	live   int                         // (volume, ID) pairs with a count
	lines  int                         // entries in the log file
	out    *logFile                    // the log, open for appending
	old    sync.WaitGroup              // logs replaced by a rewrite, still being let go of
	line   []byte                      // the entry being appended, reused
	log    logrus.FieldLogger
}

type count struct {
	n   int
	gen uint64 // the generation that last mounted the pair
}

type mountHeader struct {
	BootID string `json:"boot_id"`
	Engine uint64 `json:"engine,omitempty"`
}

// mountEntry is a line of the log: a change of one pair's count, or (with
// no volume) the start of engine generation Engine. G is the pair's
// generation after the change; a change from a newer generation than the
// pair's replaces its count. Logs written before generations have no G
// and no Engine: everything in them is generation 0.
type mountEntry struct {
	Volume string `json:"v,omitempty"`
	ID     string `json:"id,omitempty"`
	Delta  int    `json:"d,omitempty"`
	G      uint64 `json:"g,omitempty"`
	Engine uint64 `json:"engine,omitempty"`
}

// appendJSON appends e as encoding/json marshals it, byte for byte (every
// release reads the log with encoding/json), without its reflection: the
// encoding was a fifth of what a Mount and Unmount of a mounted volume
// cost in process.
func (e mountEntry) appendJSON(b []byte) []byte {
	b = append(b, '{')
	first := len(b)
	key := func(b []byte, name string) []byte {
		if len(b) > first {
			b = append(b, ',')
		}
		return append(append(append(b, '"'), name...), `":`...)
	}
	if e.Volume != "" {
		b = appendJSONString(key(b, "v"), e.Volume)
	}
	if e.ID != "" {
		b = appendJSONString(key(b, "id"), e.ID)
	}
	if e.Delta != 0 {
		b = strconv.AppendInt(key(b, "d"), int64(e.Delta), 10)
	}
	if e.G != 0 {
		b = strconv.AppendUint(key(b, "g"), e.G, 10)
	}
	if e.Engine != 0 {
		b = strconv.AppendUint(key(b, "engine"), e.Engine, 10)
	}
	return append(b, '}')
}

// appendJSONString appends s quoted as encoding/json quotes it. Volume
// names and Docker's mount IDs need no escaping; anything else (control
// characters, HTML's <>&, quotes, non-ASCII) is left to encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// OpenMounts loads the mount log in dir written during boot bootID and
// rewrites it as a snapshot. Counts from another boot are dropped.
func OpenMounts(dir, bootID string, log logrus.FieldLogger) (*Mounts, error) {
	m := &Mounts{path: filepath.Join(dir, mountLogName), bootID: bootID, counts: map[string]map[string]count{}, log: log}
	current, end, torn, err := m.replay()
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
		if m.out, err = openLogFile(m.path, end, torn); err != nil {
			return nil, err
		}
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

// replay reads the log into the counts. current tells whether the log is
// this boot's; end is the length of its text, and torn whether that ends
// without a newline.
func (m *Mounts) replay() (current bool, end int64, torn bool, err error) {
	f, err := os.Open(m.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, 0, false, nil
	}
	if err != nil {
		return false, 0, false, fmt.Errorf("state: %w", err)
	}
	defer f.Close()
	text := &logText{r: f}
	r := bufio.NewReaderSize(text, 64<<10)
	defer func() { end, torn = text.n, text.last != '\n' }()
	line, long, err := readLine(r)
	if err != nil && err != io.EOF {
		return false, 0, false, fmt.Errorf("state: read %s: %w", m.path, err)
	}
	var h mountHeader
	if long || json.Unmarshal(line, &h) != nil || h.BootID != m.bootID {
		if len(line) > 0 || long {
			m.log.WithField("log_boot_id", h.BootID).Info("mount counts are from an earlier boot; starting with none")
		}
		return false, 0, false, nil
	}
	m.gen = h.Engine
	for err == nil {
		line, long, err = readLine(r)
		if long {
			m.log.Warn("skipped a mount log line too long to be an entry")
			continue
		}
		if len(line) == 0 {
			continue
		}
		var e mountEntry
		if json.Unmarshal(line, &e) != nil {
			// Only the last line can be torn; anything else is not ours.
			m.log.WithField("line", string(line)).Warn("skipped unreadable mount log line")
			continue
		}
		if e.Volume == "" {
			m.gen = max(m.gen, e.Engine)
		} else {
			m.add(e.Volume, e.ID, e.Delta, e.G)
		}
		m.lines++
	}
	if err != io.EOF {
		return false, 0, false, fmt.Errorf("state: read %s: %w", m.path, err)
	}
	return true, 0, false, nil
}

// readLine returns r's next line without its newline, and io.EOF with the
// last one. A line longer than r's buffer (no entry is) is passed over
// whole, and reported as long.
func readLine(r *bufio.Reader) (line []byte, long bool, err error) {
	line, err = r.ReadSlice('\n')
	for err == bufio.ErrBufferFull {
		line, long = nil, true
		_, err = r.ReadSlice('\n')
	}
	return bytes.TrimSuffix(line, []byte{'\n'}), long, err
}

// logText reads the text of a log: up to its first NUL byte, where the
// room after the text begins. It counts what it read, and keeps its last
// byte.
type logText struct {
	r    io.Reader
	n    int64
	last byte
	done bool
}

func (t *logText) Read(p []byte) (int, error) {
	if t.done {
		return 0, io.EOF
	}
	n, err := t.r.Read(p)
	if i := bytes.IndexByte(p[:n], 0); i >= 0 {
		n, err, t.done = i, nil, true
	}
	if n > 0 {
		t.n += int64(n)
		t.last = p[n-1]
	}
	return n, err
}

// compact rewrites the log as header plus one entry per live count, and
// opens it for appending.
func (m *Mounts) compact() error {
	tmp := m.path + tmpPrefix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	// One write for a snapshot of about 600 pairs: the rewrite holds the
	// lock that every Mount and Unmount waits for.
	w := bufio.NewWriterSize(f, snapshotBuffer)
	err = json.NewEncoder(w).Encode(mountHeader{BootID: m.bootID, Engine: m.gen})
	var line []byte
	for v, ids := range m.counts {
		for id, c := range ids {
			if err == nil {
				line = append(mountEntry{Volume: v, ID: id, Delta: c.n, G: c.gen}.appendJSON(line[:0]), '\n')
				_, err = w.Write(line)
			}
		}
	}
	if err == nil {
		err = w.Flush()
	}
	size, _ := f.Seek(0, io.SeekCurrent)
	if err == nil {
		addRoom(f, size)
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
	out, err := openLogFile(m.path, size, false)
	if err != nil {
		return err
	}
	if old := m.out; old != nil {
		// Unmapping the replaced log and closing it, which frees its
		// blocks, took as long as the rest of the rewrite: it is done
		// without the lock.
		m.old.Go(old.discard)
	}
	m.out, m.lines = out, m.live
	return nil
}

// snapshotBuffer is the write buffer of a rewrite.
const snapshotBuffer = 64 << 10

// Close closes the log, once the logs that rewrites replaced are let go of.
func (m *Mounts) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.old.Wait()
	return m.out.Close()
}

// Generation is the current engine generation.
func (m *Mounts) Generation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// NewGeneration starts the next engine generation: every count so far
// becomes stale.
func (m *Mounts) NewGeneration() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.write(mountEntry{Engine: m.gen + 1}); err != nil {
		return err
	}
	m.gen++
	m.compactIfLong()
	return nil
}

// Count is the number of mounts of volume counted in the current engine
// generation.
func (m *Mounts) Count(volume string) int {
	current, _ := m.Counts(volume)
	return current
}

// Stale is the number of mounts of volume counted in earlier generations.
func (m *Mounts) Stale(volume string) int {
	_, stale := m.Counts(volume)
	return stale
}

// Counts is Count and Stale in one look-up, for Get.
func (m *Mounts) Counts(volume string) (current, stale int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.counts[volume] {
		if c.gen == m.gen {
			current += c.n
		} else {
			stale += c.n
		}
	}
	return current, stale
}

// EachCurrent calls fn for every (volume, ID) pair counted in the current
// generation, with its count, under the lock: fn must not call m.
func (m *Mounts) EachCurrent(fn func(volume, id string, n int)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for volume, ids := range m.counts {
		for id, c := range ids {
			if c.gen == m.gen {
				fn(volume, id, c.n)
			}
		}
	}
}

// Mount records one more mount of volume under id; a stale count of the
// pair is taken over.
func (m *Mounts) Mount(volume, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.change(volume, id, +1, m.gen)
}

// Unmount records one mount fewer of volume under id. It reports false, and
// changes nothing, when no such mount is counted.
func (m *Mounts) Unmount(volume, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counts[volume][id]
	if c.n == 0 {
		return false, nil
	}
	return true, m.change(volume, id, -1, c.gen)
}

// DropStale forgets the stale counts of volume and returns their IDs.
func (m *Mounts) DropStale(volume string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	for id, c := range m.counts[volume] {
		if c.gen == m.gen {
			continue
		}
		if err := m.change(volume, id, -c.n, c.gen); err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (m *Mounts) change(volume, id string, delta int, gen uint64) error {
	if err := m.write(mountEntry{Volume: volume, ID: id, Delta: delta, G: gen}); err != nil {
		return err
	}
	m.add(volume, id, delta, gen)
	m.compactIfLong()
	return nil
}

// write appends one entry to the log.
func (m *Mounts) write(e mountEntry) error {
	m.line = append(e.appendJSON(m.line[:0]), '\n')
	line := m.line
	if !m.out.fits(len(line)) {
		// The room is used up: a new log brings new room. Where none can
		// be written, the line is written at the end of the text.
		if err := m.compact(); err != nil {
			m.log.WithError(err).Warn("could not rewrite the mount log")
		}
	}
	if err := m.out.append(line); err != nil {
		return fmt.Errorf("state: mount log: %w", err)
	}
	m.lines++
	return nil
}

// compactSlack is how many lines the log may hold beyond twice the live
// entries before it is rewritten. It weighs what start-up may have to read
// beyond the snapshot (about 110 bytes a line) against how often a rewrite
// (a new file, its room allocated, the old one's freed) holds up Mount and
// Unmount; at 1,024 the rewrites cost more than the appends.
const compactSlack = 16384

// compactIfLong rewrites the log once it has grown well past the live
// entries. The last change is logged: a failed rewrite only postpones the
// next.
func (m *Mounts) compactIfLong() {
	if m.lines > 2*m.live+compactSlack {
		if err := m.compact(); err != nil {
			m.log.WithError(err).Warn("could not rewrite the mount log")
		}
	}
}

// add applies a change: one from a newer generation than the pair's
// replaces the pair's count.
func (m *Mounts) add(volume, id string, delta int, gen uint64) {
	ids := m.counts[volume]
	if ids == nil {
		ids = map[string]count{}
		m.counts[volume] = ids
	}
	c := ids[id]
	before := c.n
	if gen > c.gen {
		c = count{gen: gen}
	}
	c.n = max(c.n+delta, 0)
	switch {
	case before == 0 && c.n > 0:
		m.live++
	case before > 0 && c.n == 0:
		m.live--
	}
	if c.n == 0 {
		delete(ids, id)
		if len(ids) == 0 {
			delete(m.counts, volume)
		}
		return
	}
	ids[id] = c
}
