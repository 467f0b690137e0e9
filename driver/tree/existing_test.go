package tree

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMakeDirExisting: on an existing directory (MakeDir's one-call way,
// what every Mount takes) each part of the owner and mode that differs is
// set, set-id and sticky bits included; when all match nothing is written,
// not even the inode's change time.
func TestMakeDirExisting(t *testing.T) {
	requireRoot(t)
	tr, root := open(t)
	dir := filepath.Join(root, "app_data/a/data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	want := &Perm{Owner: Owner{UID: 1000, GID: 1001}, Mode: 0o2750}
	wantPerm := fs.ModeSetgid | 0o750
	for _, c := range []struct {
		name     string
		uid, gid int
		mode     fs.FileMode
	}{
		{"uid", 0, 1001, wantPerm},
		{"gid", 1000, 0, wantPerm},
		{"mode", 1000, 1001, 0o750},
		{"sticky", 1000, 1001, wantPerm | fs.ModeSticky},
		{"all", 0, 0, 0o755},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.Chown(dir, c.uid, c.gid); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, c.mode); err != nil {
				t.Fatal(err)
			}
			made, err := tr.MakeDir("app_data/a/data", want)
			if err != nil || made != "" {
				t.Fatalf("MakeDir: made %q, %v", made, err)
			}
			wantDir(t, dir, wantPerm, 1000, 1001)
		})
	}
	before := ctime(t, dir)
	time.Sleep(20 * time.Millisecond) // past the file system's clock tick
	if _, err := tr.MakeDir("app_data/a/data", want); err != nil {
		t.Fatal(err)
	}
	if after := ctime(t, dir); after != before {
		t.Fatalf("MakeDir with nothing to change touched the inode: ctime %v -> %v", before, after)
	}
}

func ctime(t *testing.T, p string) unix.Timespec {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ctim
}
