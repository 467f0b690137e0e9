package driver

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/driver/tree"
	"github.com/portal/portal-volume/internal/testutil"
)

// warm mounts name until a Mount skips the check of its path: the first
// makes the view, the second checks the path under watches, the third
// finds the path unchanged. It returns the view's path.
func warm(t *testing.T, d *Driver, name string) string {
	t.Helper()
	mp := mountOf(t, d, name, "first")
	mountOf(t, d, name, "second")
	c := d.byName[name].checked.Load()
	if c == nil || !d.watcher.Unchanged(c.Gen) {
		t.Fatal("after two Mounts, the path of the volume is not watched: the test would prove nothing")
	}
	if got := mountOf(t, d, name, "third"); got != mp {
		t.Fatalf("a Mount of an unchanged path returned %s, not the view %s", got, mp)
	}
	return mp
}

// TestMountOfUnchangedPath: once a mounted volume's path is watched, a
// Mount after any change to it answers as a Mount that checks: a deleted
// or replaced directory gets a view of the one now at the path, a symlink
// anywhere on the path is refused, an owner or mode changed is set back.
func TestMountOfUnchangedPath(t *testing.T) {
	type outcome int
	const (
		sameDir outcome = iota // the Mount shows the directory it showed
		newDir                 // it shows the directory now at the path
		refused                // it fails, naming a symlink
	)
	changes := []struct {
		name   string
		change func(t *testing.T, root, dir, outside string)
		want   outcome
	}{
		{"nothing", func(*testing.T, string, string, string) {}, sameDir},
		{"deleted", func(t *testing.T, _, dir, _ string) {
			must(t, os.RemoveAll(dir))
		}, newDir},
		{"moved away and made again", func(t *testing.T, _, dir, _ string) {
			must(t, os.Rename(dir, dir+".moved"))
			testutil.Mkdir(t, dir)
		}, newDir},
		{"exchanged with another directory", func(t *testing.T, _, dir, _ string) {
			testutil.Mkdir(t, dir+".other")
			must(t, unix.Renameat2(unix.AT_FDCWD, dir+".other", unix.AT_FDCWD, dir, unix.RENAME_EXCHANGE))
		}, newDir},
		{"owner changed", func(t *testing.T, _, dir, _ string) {
			must(t, os.Chown(dir, 0, 0))
		}, sameDir},
		{"mode changed", func(t *testing.T, _, dir, _ string) {
			must(t, os.Chmod(dir, 0o777))
		}, sameDir},
		{"replaced by a symlink out", func(t *testing.T, _, dir, outside string) {
			must(t, os.Rename(dir, dir+".moved"))
			must(t, os.Symlink(outside, dir))
		}, refused},
		{"its app directory replaced by a symlink to itself", func(t *testing.T, root, _, _ string) {
			app := filepath.Join(root, "app_data/app")
			must(t, os.Rename(app, app+".real"))
			must(t, os.Symlink("app.real", app))
		}, refused},
		{"app_data replaced by a symlink to itself", func(t *testing.T, root, _, _ string) {
			must(t, os.Rename(filepath.Join(root, "app_data"), filepath.Join(root, "app_data.real")))
			must(t, os.Symlink("app_data.real", filepath.Join(root, "app_data")))
		}, refused},
	}
	for _, tc := range changes {
		t.Run(tc.name, func(t *testing.T) {
			d, root := viewDriver(t, nil)
			if d.watcher == nil {
				t.Skip("paths cannot be watched here")
			}
			outside := t.TempDir()
			create(t, d, "app_data", map[string]string{"uid": "1000", "mode": "0750"})
			dir := filepath.Join(root, "app_data/app/data")
			mp := warm(t, d, "app_data")
			testutil.Write(t, filepath.Join(mp, "before"), "before")

			tc.change(t, root, dir, outside)
			r, err := d.Mount(&volume.MountRequest{Name: "app_data", ID: "next"})
			switch {
			case tc.want == refused && err == nil:
				t.Fatalf("Mount after the change returned %s, want a refusal", r.Mountpoint)
			case tc.want == refused:
				if !errors.Is(err, tree.ErrSymlink) || !strings.Contains(err.Error(), root) {
					t.Errorf("the refusal does not name the symlink: %v", err)
				}
				if uid, _ := ownerOf(t, outside); uid != 0 {
					t.Errorf("the directory outside was given to uid %d", uid)
				}
			case err != nil:
				t.Fatalf("Mount after the change: %v", err)
			default:
				testutil.Write(t, filepath.Join(r.Mountpoint, "after"), "after")
				if b, err := os.ReadFile(filepath.Join(dir, "after")); err != nil || string(b) != "after" {
					t.Errorf("a write through the Mountpoint is not in %s: %q %v", dir, b, err)
				}
				_, err := os.Stat(filepath.Join(r.Mountpoint, "before"))
				if kept := err == nil; kept != (tc.want == sameDir) {
					t.Errorf("the Mountpoint shows the directory from before the change: %v, want %v", kept, tc.want == sameDir)
				}
				var st unix.Stat_t
				must(t, unix.Stat(dir, &st))
				if st.Uid != 1000 || st.Mode&0o7777 != 0o750 {
					t.Errorf("%s is uid %d mode %o after the Mount, want the enforced 1000 and 0750", dir, st.Uid, st.Mode&0o7777)
				}
			}

			ids := []string{"first", "second", "third"}
			if err == nil {
				ids = append(ids, "next")
			}
			for _, id := range ids {
				if err := d.Unmount(&volume.UnmountRequest{Name: "app_data", ID: id}); err != nil {
					t.Fatal(err)
				}
			}
			if n := d.liveViews("app_data"); n != 0 {
				t.Errorf("%d view mounts after the last Unmount", n)
			}
			must(t, d.Remove(&volume.RemoveRequest{Name: "app_data"}))
		})
	}
}

// TestRemoveReleasesWatches: a removed volume's path is no longer watched,
// and a volume of the same name made again is checked afresh.
func TestRemoveReleasesWatches(t *testing.T) {
	d, _ := viewDriver(t, nil)
	if d.watcher == nil {
		t.Skip("paths cannot be watched here")
	}
	create(t, d, "app_data", nil)
	v := d.byName["app_data"]
	warm(t, d, "app_data")
	for _, id := range []string{"first", "second", "third"} {
		must(t, d.Unmount(&volume.UnmountRequest{Name: "app_data", ID: id}))
	}
	must(t, d.Remove(&volume.RemoveRequest{Name: "app_data"}))
	if v.checked.Load() != nil {
		t.Error("a removed volume keeps the watches of its path")
	}
	create(t, d, "app_data", nil)
	if d.byName["app_data"].checked.Load() != nil {
		t.Error("a volume made again starts with the check of the one before")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
