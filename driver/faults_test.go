package driver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/internal/testutil"
)

// Disk faults, on a small tmpfs mounted as the root: the plugin must fail
// with a clear error, keep the state it had, create nothing half way, and
// work again once the fault is gone.

// tmpfsRoot mounts a tmpfs of size bytes at a new temp dir.
func tmpfsRoot(t *testing.T, size string) string {
	t.Helper()
	requireRoot(t)
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	return root
}

func TestDiskFull(t *testing.T) {
	root := tmpfsRoot(t, "1m")
	d := newDriver(t, root, "boot-1")
	create(t, d, "before_data", map[string]string{"uid": "1000"})
	// Fill the disk.
	filler := filepath.Join(root, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	for _, b := range [][]byte{buf[:4096], buf[:512], buf[:1]} { // the last pages
		for {
			if _, err := f.Write(b); err != nil {
				break
			}
		}
	}
	f.Close()
	// A record is one journal line: the journal's last page may still
	// take a few. Long ones fill it, and then the disk refuses the next.
	long := strings.Repeat("p", 200)
	var before map[string]string
	for i := 0; ; i++ {
		before = testutil.Snapshot(t, root)
		err = d.Create(&volume.CreateRequest{Name: fmt.Sprintf("fill%d", i),
			Options: map[string]string{"app": "fill", "path": fmt.Sprintf("/%d/%s/%s/%s/%s/%s", i, long, long, long, long, long)}})
		if err != nil {
			break
		}
		if i == 16 {
			t.Fatal("creates go on succeeding on a full disk")
		}
	}
	if !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("create on a full disk: %v", err)
	}
	// The journal is cut back to where it was: only its mtime changed.
	const journal = ".portal-volume/journal"
	testutil.Same(t, "a create that failed on a full disk", testutil.WithoutDirMtimes(before, journal),
		testutil.WithoutDirMtimes(testutil.Snapshot(t, root), journal))
	if _, err := d.Get(&volume.GetRequest{Name: "full_data"}); err == nil {
		t.Error("the failed volume is known")
	}

	// The state the plugin had is intact, also after a restart.
	d.Close()
	d = newDriver(t, root, "boot-1")
	if v := get(t, d, "before_data"); v.Status["uid"] != uint32(1000) {
		t.Errorf("after a restart on a full disk: %v", v.Status)
	}
	// Space again: the same create works.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	create(t, d, "full_data", nil)
	wantDir(t, filepath.Join(root, "app_data/full/data"), 0o755, 0, 0)
}

// setImmutable sets or clears FS_IMMUTABLE_FL (linux/fs.h) on path: an
// immutable file refuses writes even to root, also through descriptors
// opened before.
func setImmutable(path string, on bool) error {
	const immutable = 0x10
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	if on {
		flags |= immutable
	} else {
		flags &^= immutable
	}
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags))
}

// journalImmutable makes the state's journal refuse writes until the test
// ends, or skips the test where the file system has no such flag.
func journalImmutable(t *testing.T, root string) {
	t.Helper()
	journal := filepath.Join(root, StateDirName, "journal")
	if err := setImmutable(journal, true); err != nil {
		t.Skipf("no immutable flag on this filesystem: %v", err)
	}
	t.Cleanup(func() { _ = setImmutable(journal, false) })
}

func TestStateNotWritable(t *testing.T) {
	_, d, root := setup(t)
	create(t, d, "ro_data", nil)
	journalImmutable(t, root)
	before := testutil.Snapshot(t, root)
	createErr(t, d, "other_data", nil, "operation not permitted")
	testutil.Same(t, "a create refused by the state directory", testutil.WithoutDirMtimes(before), testutil.WithoutDirMtimes(testutil.Snapshot(t, root)))
	if v := get(t, d, "ro_data"); v.Mountpoint != filepath.Join(root, "app_data/ro/data") {
		t.Errorf("Get with an unwritable state: %+v", v)
	}
	if err := setImmutable(filepath.Join(root, StateDirName, "journal"), false); err != nil {
		t.Fatal(err)
	}
	create(t, d, "other_data", nil)
}

func TestUnusableRootOrState(t *testing.T) {
	requireRoot(t)
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := New(Config{Root: missing, Log: quiet()}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("a missing root: %v", err)
	}
	root := t.TempDir()
	stateFile := filepath.Join(root, StateDirName)
	if err := os.WriteFile(stateFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Root: root, Log: quiet()}); err == nil || !strings.Contains(err.Error(), "state") {
		t.Errorf("a state directory that is a file: %v", err)
	}
}
