package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestMountLogMappedRoom(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, mountLogName)
	m := openMapped(t, dir)
	defer m.Close()
	mustMount(t, m, [2]string{"a", "1"})
	// What was copied into the mapping is the file's, for every reader,
	// before any close: a killed process leaves it to the kernel.
	text := textOf(t, path)
	if !bytes.HasSuffix(text, []byte(`{"v":"a","id":"1","d":1}`+"\n")) {
		t.Fatalf("log text = %q, want it to end in the Mount", text)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() <= int64(len(text)) {
		t.Fatalf("log is %d bytes with %d of text: no room", fi.Size(), len(text))
	}
	// A copy of the file as it is now is what a restart after a kill -9
	// reads.
	crashed := t.TempDir()
	if err := os.WriteFile(filepath.Join(crashed, mountLogName), readFile(t, path), 0o600); err != nil {
		t.Fatal(err)
	}
	c := openMounts(t, crashed, "boot")
	defer c.Close()
	wantCounts(t, c, map[string]int{"a": 1})

	// A clean stop leaves the text alone.
	m.Close()
	if b := readFile(t, path); !bytes.Equal(b, text) {
		t.Fatalf("log after a clean stop = %q, want its text %q", b, text)
	}
}

// A rewrite lets go of the log it replaced without holding up the calls:
// by the time Close returns, no descriptor or mapping of a replaced log is
// left, and the log holds what was counted.
func TestMountLogRewritesLetGoOfReplaced(t *testing.T) {
	dir := t.TempDir()
	m := openMapped(t, dir)
	for i := range 5 {
		mustMount(t, m, [2]string{"a", fmt.Sprint(i)})
		m.mu.Lock()
		err := m.compact()
		m.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if held := heldFiles(t, filepath.Join(dir, mountLogName)); len(held) > 0 {
		t.Fatalf("after Close the process still holds %q", held)
	}
	c := openMounts(t, dir, "boot")
	defer c.Close()
	wantCounts(t, c, map[string]int{"a": 5})
}

// heldFiles lists what this process holds open or mapped whose name
// starts with path (a replaced log is "path (deleted)").
func heldFiles(t *testing.T, path string) []string {
	t.Helper()
	var held []string
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(target, path) {
			held = append(held, "fd "+target)
		}
	}
	for line := range strings.Lines(string(readFile(t, "/proc/self/maps"))) {
		if i := strings.Index(line, path); i >= 0 {
			held = append(held, "mapping "+strings.TrimSpace(line[i:]))
		}
	}
	return held
}

// The pages of the room just beyond the text are made ready for writing,
// the first window at once and the next ones by the log's own goroutine,
// and pages beyond are left alone. A page made ready is in the process's
// page table before an append reaches it; without, only an append puts
// it there, with a page fault.
func TestMountLogPagesReadyAhead(t *testing.T) {
	probe, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(probe)
	if err := unix.Madvise(probe, unix.MADV_POPULATE_WRITE); err != nil {
		t.Skipf("this kernel cannot make pages ready for writing: %v", err)
	}
	pagemap, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer pagemap.Close()
	m := openMapped(t, t.TempDir())
	defer m.Close()
	mem, page := m.out.mem, int64(os.Getpagesize())
	// mapped tells, for each page of the log from byte from to byte to,
	// whether the page table has it (pagemap's bit 63).
	mapped := func(from, to int64) string {
		var b strings.Builder
		entry := make([]byte, 8)
		for off := from &^ (page - 1); off < to; off += page {
			addr := uintptr(unsafe.Pointer(&mem[off]))
			if _, err := pagemap.ReadAt(entry, int64(addr)/page*8); err != nil {
				t.Fatal(err)
			}
			if entry[7]&0x80 != 0 {
				b.WriteByte('+')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	window := int64(prefaultWindow)
	check := func(what string, start int64) {
		t.Helper()
		ready, beyond := mapped(start, start+window), mapped(start+window+page, start+2*window)
		if strings.Contains(ready, ".") || strings.Contains(beyond, "+") {
			t.Errorf("%s: pages of the window ahead of byte %d in the page table: %s, beyond it: %s; want all of the window's, none beyond",
				what, start, ready, beyond)
		}
	}
	check("at the start", m.out.off)
	line := []byte(`{"v":"a","id":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","d":1}` + "\n")
	for end := m.out.off + window/2 + 1; m.out.off < end; {
		if err := m.out.append(line); err != nil {
			t.Fatal(err)
		}
	}
	// Stopping the goroutine waits for what was asked of it.
	m.out.ahead.stop()
	m.out.ahead = nil
	check("half a window on", m.out.off)
}

func TestMountLogWithoutRoom(t *testing.T) {
	defer func(a func(*os.File, int64) error) { allocate = a }(allocate)
	allocate = func(*os.File, int64) error { return errors.ErrUnsupported }
	dir := t.TempDir()
	path := filepath.Join(dir, mountLogName)
	m := openMounts(t, dir, "boot")
	if m.out.mem != nil {
		t.Fatal("a log without room is mapped")
	}
	for _, id := range []string{"1", "2", "2"} {
		if err := m.Mount("a", id); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := m.Unmount("a", "1"); !ok || err != nil {
		t.Fatalf("Unmount = %v, %v", ok, err)
	}
	if b := readFile(t, path); bytes.IndexByte(b, 0) >= 0 {
		t.Fatalf("a log without room has NUL bytes: %q", b)
	}
	m.Close()
	m = openMounts(t, dir, "boot")
	defer m.Close()
	wantCounts(t, m, map[string]int{"a": 2})
}

// A log that cannot be rewritten at open (a full disk) is appended to
// where its text ends, in the room a killed daemon left.
func TestMountLogRoomKeptWhenRewriteFails(t *testing.T) {
	dir := t.TempDir()
	m := openMounts(t, dir, "boot")
	mustMount(t, m, [2]string{"a", "1"})
	crash(m)
	tmp := m.path + tmpPrefix
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	m = openMapped(t, dir)
	mustMount(t, m, [2]string{"a", "2"})
	crash(m)
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	m = openMounts(t, dir, "boot")
	defer m.Close()
	wantCounts(t, m, map[string]int{"a": 2})
}

// openMapped opens the mount log in dir, and skips the test where the
// file system gives the log no mapped room.
func openMapped(t *testing.T, dir string) *Mounts {
	t.Helper()
	m := openMounts(t, dir, "boot")
	if m.out.mem == nil {
		m.Close()
		t.Skip("this file system gives the log no mapped room")
	}
	return m
}

// crash lets go of m as a killed daemon does: the log keeps its room.
func crash(m *Mounts) {
	if m.out.ahead != nil {
		m.out.ahead.stop()
		m.out.ahead = nil
	}
	if m.out.mem != nil {
		_ = unix.Munmap(m.out.mem)
	}
	m.out.f.Close()
}

// A log cut short behind its mapping makes the next append fault: that
// Mount fails, the daemon goes on, and the next Mount starts a new log.
func TestMountLogCutShortBehindMapping(t *testing.T) {
	dir := t.TempDir()
	m := openMapped(t, dir)
	defer m.Close()
	mustMount(t, m, [2]string{"a", "1"})
	if err := os.Truncate(m.path, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Mount("a", "2"); err == nil || !strings.Contains(err.Error(), "faulted") {
		t.Fatalf("an append to a log cut short behind its mapping: %v, want a fault", err)
	}
	wantCounts(t, m, map[string]int{"a": 1})
	if err := m.Mount("a", "3"); err != nil {
		t.Fatal(err)
	}
	m.Close()
	m = openMounts(t, dir, "boot")
	wantCounts(t, m, map[string]int{"a": 2})
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzMountLog opens a log of any text, followed by room (data's bytes
// from its first NUL on, as NULs), that cannot be rewritten (so appends go
// after its text, as on a full disk), counts one Mount, and opens it
// again: the counts read back are the counts the first open had, whatever
// the text was and however much room followed it.
func FuzzMountLog(f *testing.F) {
	header := `{"boot_id":"boot","engine":1}` + "\n"
	f.Add([]byte(header + `{"v":"a","id":"1","d":1,"g":1}` + "\n"))
	f.Add([]byte(header + `{"v":"a","id":"1","d":1,"g":1}` + "\n" + `{"v":"a","id"`))
	f.Add([]byte(header + `{"v":"a","id":"1","d":1,"g":1}` + "\n\x00\x00\x00\x00"))
	f.Add([]byte(header + `{"engine":2}` + "\n" + `{"v":"a","id":"x","d":3,"g":1}` + "\n\n"))
	f.Add([]byte(header + `{"v":"a","id":"1","d":1,"g":1}` + "\x00" + `{"v":"a","id":"2","d":1,"g":1}` + "\n"))
	f.Add([]byte(`{"boot_id":"boot"`))
	f.Add([]byte("\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, mountLogName)
		text, _, _ := bytes.Cut(data, []byte{0})
		room := make([]byte, len(data)-len(text))
		if err := os.WriteFile(path, append(bytes.Clone(text), room...), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(path+tmpPrefix, 0o700); err != nil {
			t.Fatal(err)
		}
		m, err := OpenMounts(dir, "boot", quiet())
		if err != nil {
			return // not this boot's log, and no rewrite to replace it
		}
		if err := m.Mount("a", "x"); err != nil {
			t.Fatal(err)
		}
		want, gen := m.counts, m.gen
		m.Close()
		m = openMounts(t, dir, "boot")
		defer m.Close()
		if !reflect.DeepEqual(m.counts, want) || m.gen != gen {
			t.Fatalf("reopened: counts %v, generation %d; want %v, %d", m.counts, m.gen, want, gen)
		}
	})
}

// FuzzMountEntryJSON: an entry appended to the log is what encoding/json
// marshals, byte for byte, whatever its names, IDs and numbers.
func FuzzMountEntryJSON(f *testing.F) {
	f.Add("app_data", strings.Repeat("0123456789abcdef", 4), 1, uint64(1), uint64(0))
	f.Add("", "", 0, uint64(0), uint64(7))
	f.Add("a<b", "\"q\"\\\n", -3, uint64(1<<63), uint64(1))
	f.Add("a>b", "a&b", 2, uint64(0), uint64(0))
	f.Add(`a"b`, `a\b`, 0, uint64(0), uint64(0))
	f.Add("\x7f\u2028é\xff", "x", 0, uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, volume, id string, delta int, g, engine uint64) {
		e := mountEntry{Volume: volume, ID: id, Delta: delta, G: g, Engine: engine}
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.appendJSON([]byte("kept")); string(got) != "kept"+string(want) {
			t.Fatalf("appendJSON(%#v) = %q, want %q", e, got[4:], want)
		}
	})
}

// BenchmarkMountLog is a Mount and an Unmount of a volume that stays
// mounted, counted in a log with mapped room and in one appended to by
// write(2), 8 goroutines at once.
func BenchmarkMountLog(b *testing.B) {
	for _, mode := range []string{"mapped", "write"} {
		b.Run(mode, func(b *testing.B) {
			if mode == "write" {
				defer func(a func(*os.File, int64) error) { allocate = a }(allocate)
				allocate = func(*os.File, int64) error { return errors.ErrUnsupported }
			}
			m, err := OpenMounts(b.TempDir(), "boot", quiet())
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			if err := m.Mount("vol", "running"); err != nil {
				b.Fatal(err)
			}
			id := strings.Repeat("0123456789abcdef", 4)
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := m.Mount("vol", id); err != nil {
						b.Error(err)
						return
					}
					if _, err := m.Unmount("vol", id); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkMountLogRewrite is the rewrite of a log holding 1,000 live
// pairs, as it holds up the Mount or Unmount that starts it (and every
// other that waits for the lock meanwhile).
func BenchmarkMountLogRewrite(b *testing.B) {
	m, err := OpenMounts(b.TempDir(), "boot", quiet())
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for i := range 1000 {
		if err := m.Mount(fmt.Sprintf("v%05d_data", i), fmt.Sprintf("%064x", i)); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		m.mu.Lock()
		err := m.compact()
		m.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
	}
}
