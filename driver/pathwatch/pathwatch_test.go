package pathwatch

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// testTree makes root/a/b/c and a directory x beside a, and opens a watcher of
// root.
func testTree(t *testing.T) (root string, w *Watcher) {
	t.Helper()
	root = t.TempDir()
	for _, d := range []string{"a/b/c", "x"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if !Local(int(f.Fd())) {
		t.Skip("the test's directory is not on a local file system")
	}
	w, err = Open(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); f.Close() })
	return root, w
}

func watch(t *testing.T, w *Watcher, rel string) (gen uint64, s *Set) {
	t.Helper()
	s, err := w.Watch(rel)
	if err != nil {
		t.Fatal(err)
	}
	if !w.Unchanged(s.Gen) {
		t.Fatal("a path just watched is not unchanged")
	}
	return s.Gen, s
}

// TestChangesSeen: every change that would make a check of a/b/c find
// something else, or refuse it, is seen; what happens inside c, or beside
// the path, is not.
func TestChangesSeen(t *testing.T) {
	changes := []struct {
		name   string
		change func(t *testing.T, root string)
	}{
		{"the last directory deleted", func(t *testing.T, root string) {
			must(t, os.Remove(filepath.Join(root, "a/b/c")))
		}},
		{"the last directory moved away", func(t *testing.T, root string) {
			must(t, os.Rename(filepath.Join(root, "a/b/c"), filepath.Join(root, "x/c")))
		}},
		{"the last directory renamed over", func(t *testing.T, root string) {
			must(t, os.Mkdir(filepath.Join(root, "x/new"), 0o755))
			// os.Rename refuses a directory as the target; the system call does not.
			must(t, unix.Rename(filepath.Join(root, "x/new"), filepath.Join(root, "a/b/c")))
		}},
		{"the last directory exchanged", func(t *testing.T, root string) {
			must(t, unix.Renameat2(unix.AT_FDCWD, filepath.Join(root, "x"), unix.AT_FDCWD, filepath.Join(root, "a/b/c"), unix.RENAME_EXCHANGE))
		}},
		{"the last directory's owner changed", func(t *testing.T, root string) {
			requireRoot(t)
			must(t, os.Chown(filepath.Join(root, "a/b/c"), 1234, 1234))
		}},
		{"the last directory's mode changed", func(t *testing.T, root string) {
			must(t, os.Chmod(filepath.Join(root, "a/b/c"), 0o700))
		}},
		{"a parent moved away", func(t *testing.T, root string) {
			must(t, os.Rename(filepath.Join(root, "a/b"), filepath.Join(root, "x/b")))
		}},
		{"a parent's mode changed", func(t *testing.T, root string) {
			must(t, os.Chmod(filepath.Join(root, "a/b"), 0o700))
		}},
		{"the first directory replaced by a symlink to itself", func(t *testing.T, root string) {
			// The path still leads to the same c, through a symlink: a
			// check that refuses symlinks would refuse it.
			must(t, os.Rename(filepath.Join(root, "a"), filepath.Join(root, "a.real")))
			must(t, os.Symlink("a.real", filepath.Join(root, "a")))
		}},
		{"a parent replaced by a symlink to itself", func(t *testing.T, root string) {
			must(t, os.Rename(filepath.Join(root, "a/b"), filepath.Join(root, "a/b.real")))
			must(t, os.Symlink("b.real", filepath.Join(root, "a/b")))
		}},
		{"a parent exchanged with a symlink", func(t *testing.T, root string) {
			must(t, os.Symlink("b", filepath.Join(root, "a/link")))
			must(t, unix.Renameat2(unix.AT_FDCWD, filepath.Join(root, "a/link"), unix.AT_FDCWD, filepath.Join(root, "a/b"), unix.RENAME_EXCHANGE))
		}},
	}
	for _, tc := range changes {
		t.Run(tc.name, func(t *testing.T) {
			root, w := testTree(t)
			gen, _ := watch(t, w, "a/b/c")
			tc.change(t, root)
			if w.Unchanged(gen) {
				t.Fatal("the change was not seen")
			}
			if w.Unchanged(gen) {
				t.Fatal("the change was seen once, then forgotten")
			}
		})
	}

	quiet := []struct {
		name   string
		change func(t *testing.T, root string)
	}{
		{"files made, written and deleted in the last directory", func(t *testing.T, root string) {
			p := filepath.Join(root, "a/b/c/file")
			must(t, os.WriteFile(p, []byte("data"), 0o644))
			must(t, os.Mkdir(p+".d", 0o755))
			must(t, os.Rename(p, p+".d/file"))
			must(t, os.RemoveAll(p+".d"))
		}},
		{"a directory beside the path changed", func(t *testing.T, root string) {
			must(t, os.Mkdir(filepath.Join(root, "x/y"), 0o755))
			must(t, os.Remove(filepath.Join(root, "x/y")))
		}},
	}
	for _, tc := range quiet {
		t.Run(tc.name, func(t *testing.T) {
			root, w := testTree(t)
			gen, _ := watch(t, w, "a/b/c")
			tc.change(t, root)
			if !w.Unchanged(gen) {
				t.Fatal("a change that leaves the path as it was counted as a change")
			}
		})
	}
}

// TestWatchRefusesSymlinks: a path with a symlink is not watched (the
// check refuses it anyway).
func TestWatchRefusesSymlinks(t *testing.T) {
	root, w := testTree(t)
	must(t, os.Symlink("a", filepath.Join(root, "l")))
	if _, err := w.Watch("l/b/c"); err == nil {
		t.Fatal("a path through a symlink was watched")
	}
	if len(w.watches) != 0 {
		t.Errorf("a failed Watch left %d watches", len(w.watches))
	}
}

// TestOverflow: when the queue overflows, every check is void, also one
// whose generation was taken while the queue was being read.
func TestOverflow(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Skip(err)
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || max > 1<<16 {
		t.Skipf("max_queued_events %q: too many events to make here", b)
	}
	root, w := testTree(t)
	gen, _ := watch(t, w, "a/b/c")
	// Each file makes two events in b, which is watched.
	for i := 0; i <= max/2; i++ {
		p := filepath.Join(root, "a/b", strconv.Itoa(i))
		must(t, os.WriteFile(p, nil, 0o644))
		must(t, os.Remove(p))
	}
	if w.Unchanged(gen) {
		t.Fatal("an overflowed queue was taken for no change")
	}
	if got := w.gen.Load(); got != gen+2 {
		t.Errorf("generation %d after a drain of an overflowed queue, want %d (once before the read, once after)", got, gen+2)
	}
}

// TestWatchDuringDrain: a Watch made while a drain reads the queue is
// not taken for unchanged after a change that the same drain then reads:
// neither while that drain still reads nor after it.
func TestWatchDuringDrain(t *testing.T) {
	root, w := testTree(t)
	_, s0 := watch(t, w, "a/b/c")
	must(t, os.Mkdir(filepath.Join(root, "a/b/other"), 0o755)) // an event to drain
	var s1 *Set
	reads := 0
	testHookRead = func() {
		switch reads++; reads {
		case 1: // the first event read: a Watch, then a change after it
			var err error
			if s1, err = w.Watch("a/b/c"); err != nil {
				t.Error(err)
				return
			}
			must(t, os.Rename(filepath.Join(root, "a/b"), filepath.Join(root, "a/b.real")))
			must(t, os.Symlink("b.real", filepath.Join(root, "a/b")))
		case 2: // the change's events read, the queue empty, the drain not over
			if s1 != nil && w.Unchanged(s1.Gen) {
				t.Error("a Watch made while a drain read was taken for unchanged, while the drain read, after a/b became a symlink")
			}
		}
	}
	t.Cleanup(func() { testHookRead = func() {} })
	if w.Unchanged(s0.Gen) {
		t.Fatal("the first change was not seen")
	}
	if s1 == nil {
		t.Fatal("the drain did not run the hook")
	}
	if w.Unchanged(s1.Gen) {
		t.Fatal("a Watch made while a drain read was taken for unchanged after a/b became a symlink")
	}
}

// TestEventsBeforeWatch: events queued before a Watch (here of a change
// beside its path, and of the end of another path's watches) do not void
// the check made under it.
func TestEventsBeforeWatch(t *testing.T) {
	root, w := testTree(t)
	_, s0 := watch(t, w, "a/b/c")
	must(t, os.Mkdir(filepath.Join(root, "a/b/d"), 0o755))
	w.Release(s0)
	s1, err := w.Watch("a/b/d")
	must(t, err)
	if !w.Unchanged(s1.Gen) {
		t.Fatal("events older than the Watch voided it")
	}
}

// TestCloseClosesAll: Close closes the descriptors of every parent a Set
// holds, also of one a later Watch found again.
func TestCloseClosesAll(t *testing.T) {
	root, w := testTree(t)
	_, s0 := watch(t, w, "a/b/c")
	must(t, os.Mkdir(filepath.Join(root, "a/other"), 0o755))
	if w.Unchanged(s0.Gen) {
		t.Fatal("the change was not seen")
	}
	_, s1 := watch(t, w, "a/b/c") // finds a and a/b again
	var fds []int
	for _, s := range []*Set{s0, s1} {
		for _, d := range s.dirs {
			fds = append(fds, d.fd)
		}
	}
	if len(fds) != 4 {
		t.Fatalf("%d parents held, want 4 (a and a/b, twice)", len(fds))
	}
	must(t, w.Close())
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
			t.Errorf("descriptor %d of a parent is open after Close", fd)
		}
	}
}

// TestRelease: watches are counted per directory: releasing one path
// keeps the directories another still needs watched, and releasing both
// drops every watch.
func TestRelease(t *testing.T) {
	root, w := testTree(t)
	must(t, os.Mkdir(filepath.Join(root, "a/b/d"), 0o755))
	_, s1 := watch(t, w, "a/b/c")
	_, s2 := watch(t, w, "a/b/d")
	w.Release(s1)
	gen := w.gen.Load()
	for !w.Unchanged(gen) { // drain the IN_IGNORED of c's watch
		gen = w.gen.Load()
	}
	must(t, os.Rename(filepath.Join(root, "a/b/d"), filepath.Join(root, "x/d")))
	if w.Unchanged(gen) {
		t.Fatal("a change on the path still held was not seen after the other path was released")
	}
	w.Release(s2)
	if len(w.watches) != 0 || len(w.dirs) != 0 {
		t.Errorf("%d watches and %d open directories left after every path was released", len(w.watches), len(w.dirs))
	}
}

// TestParentsReused: a Watch starts below the parents an earlier one found
// only while they are unchanged; after a change, seen or not yet drained,
// it walks the path again, and refuses a symlink the change put there.
func TestParentsReused(t *testing.T) {
	for _, drained := range []bool{false, true} {
		t.Run(map[bool]string{false: "change still queued", true: "change drained"}[drained], func(t *testing.T) {
			root, w := testTree(t)
			must(t, os.Mkdir(filepath.Join(root, "a/b/d"), 0o755))
			gen, s1 := watch(t, w, "a/b/c")
			s2, err := w.Watch("a/b/d")
			must(t, err)
			if len(w.dirs) != 2 || len(s2.dirs) != 1 || s2.dirs[0] != w.dirs["a/b"] {
				t.Fatalf("the second Watch did not start below a/b: %d parents kept, %d held", len(w.dirs), len(s2.dirs))
			}
			w.Release(s2)
			must(t, os.Rename(filepath.Join(root, "a/b"), filepath.Join(root, "a/b.real")))
			must(t, os.Symlink("b.real", filepath.Join(root, "a/b")))
			if drained && w.Unchanged(gen) {
				t.Fatal("the change was not seen")
			}
			if s, err := w.Watch("a/b/d"); err == nil {
				t.Fatalf("a Watch through the symlink that replaced a/b succeeded (Gen %d, held %d parents)", s.Gen, len(s.dirs))
			}
			w.Release(s1)
			if len(w.watches) != 0 || len(w.dirs) != 0 {
				t.Errorf("%d watches and %d open directories left after every path was released", len(w.watches), len(w.dirs))
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}
