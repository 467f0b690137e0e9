package view

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/driver/tree"
	"github.com/portal/portal-volume/internal/testutil"
)

// TestViewsArePrivate: with the tree on a shared mount (what / is on most
// hosts), a file system mounted later below a volume's directory does not
// show in its read-only view, and one mounted in the view does not show in
// the tree; the view has no peer group.
func TestViewsArePrivate(t *testing.T) {
	if !testutil.InMountNamespace(t) {
		return
	}
	base := t.TempDir()
	treeDir := filepath.Join(base, "tree")
	testutil.Mkdir(t, treeDir)
	if err := unix.Mount("tmpfs", treeDir, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(treeDir, unix.MNT_DETACH) })
	if err := unix.Mount("", treeDir, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	media := filepath.Join(treeDir, "shared/media")
	testutil.Mkdir(t, filepath.Join(media, "late"))
	testutil.Mkdir(t, filepath.Join(media, "inview"))
	world(t, media)
	m, err := Open(filepath.Join(base, "views"), treeDir, testLog())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = m.DropAll()
		m.Close()
	}()
	if err := m.Available(); err != nil {
		t.Skipf("no views here: %v", err)
	}
	fd, err := unix.Open(media, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	path, _, err := m.Mount("media", "c1", dirOf(t, fd), Attrs{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}

	// The host mounts a file system below the directory.
	if err := unix.Mount("tmpfs", filepath.Join(media, "late"), "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	testutil.Write(t, filepath.Join(media, "late/host-file"), "host")
	if _, err := os.Lstat(filepath.Join(path, "late/host-file")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file system mounted on the host after the view was made shows in it: %v", err)
	}
	if err := unix.Mkdir(filepath.Join(path, "late/x"), 0o755); !errors.Is(err, unix.EROFS) && !errors.Is(err, unix.EEXIST) {
		t.Errorf("mkdir in the read-only view: %v, want EROFS", err)
	}
	// And a file system mounted in the view stays there.
	if err := unix.Mount("tmpfs", filepath.Join(path, "inview"), "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	testutil.Write(t, filepath.Join(path, "inview/view-file"), "view")
	if _, err := os.Lstat(filepath.Join(media, "inview/view-file")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file system mounted in the view shows in the tree: %v", err)
	}
	for _, l := range mountsBelow(t, m.Dir()) {
		if fields := strings.Fields(l); fields[4] == path && (strings.Contains(l, " shared:") || strings.Contains(l, " master:")) {
			t.Errorf("the view is in a peer group: %s", l)
		}
	}
}

// TestIDMapsReleased: 1,000 views with distinct id maps, mounted at once
// and then unmounted, leave the descriptors as they were; beyond the cap
// on maps in use, a view is refused with an error that says why, and a map
// freed makes room again.
func TestIDMapsReleased(t *testing.T) {
	m, _, fd := fixture(t)
	before := openFds(t)
	const n = 1000
	for i := range n {
		uid := uint32(10000 + i)
		if err := m.Check(fd, Attrs{IDMap: true, UID: uid, GID: uid}, tree.Owner{UID: 2000, GID: 2000}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.Mount("vol"+strconv.Itoa(i), "id", dirOf(t, fd), Attrs{IDMap: true, UID: uid, GID: uid}); err != nil {
			t.Fatalf("view %d: %v", i, err)
		}
	}
	if got := openFds(t); got < before+n {
		t.Fatalf("%d descriptors with %d maps in use, %d before: the test does not see the namespaces", got, n, before)
	}
	for i := range n {
		if _, err := m.Unmount("vol"+strconv.Itoa(i), "id"); err != nil {
			t.Fatal(err)
		}
	}
	if after := openFds(t); after != before {
		t.Errorf("%d descriptors open after every view went, %d before", after, before)
	}

	m.mu.Lock()
	m.maxMaps = 3
	m.mu.Unlock()
	for i := range 3 {
		if _, _, err := m.Mount("v"+strconv.Itoa(i), "id", dirOf(t, fd), Attrs{IDMap: true, UID: uint32(3000 + i), GID: 3000}); err != nil {
			t.Fatal(err)
		}
	}
	// A second view with a map in use takes no new one.
	if _, _, err := m.Mount("again", "id", dirOf(t, fd), Attrs{IDMap: true, UID: 3000, GID: 3000}); err != nil {
		t.Fatal(err)
	}
	_, _, err := m.Mount("v3", "id", dirOf(t, fd), Attrs{IDMap: true, UID: 3003, GID: 3000})
	var tm *TooManyMapsError
	if !errors.As(err, &tm) || !strings.Contains(err.Error(), "3 distinct uid/gid maps are in use") {
		t.Fatalf("a fourth map: %v, want a TooManyMapsError", err)
	}
	if err := m.Check(fd, Attrs{IDMap: true, UID: 3003, GID: 3000}, tree.Owner{UID: 2000, GID: 2000}); !errors.As(err, &tm) {
		t.Fatalf("Check of a fourth map: %v, want a TooManyMapsError", err)
	}
	if _, err := m.Unmount("v1", "id"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Mount("v3", "id", dirOf(t, fd), Attrs{IDMap: true, UID: 3003, GID: 3000}); err != nil {
		t.Fatalf("a map after one was freed: %v", err)
	}
}

func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
