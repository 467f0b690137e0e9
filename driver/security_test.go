package driver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/driver/state"
	"github.com/portal/portal-volume/internal/testutil"
)

// TestSwapRaceThroughMountpoint: a container that can write an app's
// directory swaps the volume's directory with a symlink to a host
// directory (renameat2 RENAME_EXCHANGE, in a loop) while the engine
// mounts the volume and bind-mounts what Mount returned, a few hundred
// times. Each Mount is either refused or returns a mountpoint whose bind
// shows the volume's own directory: never the host's. With a running
// container holding the volume, the Mounts find its view, and its path
// watched.
func TestSwapRaceThroughMountpoint(t *testing.T) {
	if !testutil.InMountNamespace(t) {
		return
	}
	for _, held := range []bool{false, true} {
		t.Run(map[bool]string{false: "each Mount makes the view", true: "the volume held mounted"}[held], func(t *testing.T) {
			swapRace(t, held)
		})
	}
}

func swapRace(t *testing.T, held bool) {
	d, root := viewDriver(t, nil)
	create(t, d, "foo_data", nil)
	if held {
		mountOf(t, d, "foo_data", "running")
	}
	app := filepath.Join(root, "app_data/foo")
	testutil.Write(t, filepath.Join(app, "data/marker"), "volume")
	host := t.TempDir()
	testutil.Write(t, filepath.Join(host, "marker"), "host")
	if err := os.Symlink(host, filepath.Join(app, "swap")); err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()

	stopSwapping := testutil.Swap(t, filepath.Join(app, "data"), filepath.Join(app, "swap"))
	const rounds = 300
	var refused, host2 int
	for i := range rounds {
		id := fmt.Sprintf("c%d", i)
		r, err := d.Mount(&volume.MountRequest{Name: "foo_data", ID: id})
		if err != nil {
			refused++
			continue
		}
		if err := unix.Mount(r.Mountpoint, target, "", unix.MS_BIND, ""); err != nil {
			t.Errorf("bind of %s: %v", r.Mountpoint, err)
		} else {
			if b, _ := os.ReadFile(filepath.Join(target, "marker")); string(b) != "volume" {
				host2++
				t.Errorf("round %d: the bind of Mountpoint %s shows %q, not the volume", i, r.Mountpoint, b)
			}
			if err := unix.Unmount(target, 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Unmount(&volume.UnmountRequest{Name: "foo_data", ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	swaps := stopSwapping()
	t.Logf("%d rounds, %d swaps: %d mounts refused, %d redirected", rounds, swaps, refused, host2)
	if refused == rounds {
		t.Fatal("every Mount was refused: the test proves nothing")
	}
	if b, _ := os.ReadFile(filepath.Join(host, "marker")); string(b) != "host" {
		t.Errorf("the host directory changed: %q", b)
	}
}

// TestMountRacesRemoveWithView: Mounts and Unmounts of a volume with a
// view, under many IDs, race Removes of it. A Remove succeeds only while
// no mount is counted, and deletes nothing a Mount returned; the counts
// stay exact.
func TestMountRacesRemoveWithView(t *testing.T) {
	d, root := viewDriver(t, nil)
	for round := range 20 {
		name := fmt.Sprintf("race%d_data", round)
		create(t, d, name, map[string]string{"on_remove": "delete"})
		testutil.Write(t, filepath.Join(root, "app_data", fmt.Sprintf("race%d", round), "data/keep"), "keep")
		var mounted atomic.Int64 // mounts returned and not yet unmounted
		var removed atomic.Bool
		var wg sync.WaitGroup
		for c := range 8 {
			wg.Go(func() {
				for i := range 20 {
					id := fmt.Sprintf("id%d", (c+i)%5)
					r, err := d.Mount(&volume.MountRequest{Name: name, ID: id})
					if err != nil {
						// What racing a Remove may answer: the volume is
						// going, or gone (its Remove may have succeeded a
						// moment before the remover says so).
						if !strings.Contains(err.Error(), "being removed") && !strings.Contains(err.Error(), "no such volume") {
							t.Errorf("mount: %v", err)
						}
						return
					}
					mounted.Add(1)
					if b, err := os.ReadFile(filepath.Join(r.Mountpoint, "keep")); err != nil || string(b) != "keep" {
						t.Errorf("read through %s while mounted: %q %v", r.Mountpoint, b, err)
					}
					mounted.Add(-1)
					if err := d.Unmount(&volume.UnmountRequest{Name: name, ID: id}); err != nil {
						t.Errorf("unmount: %v", err)
					}
				}
			})
		}
		wg.Go(func() {
			for !removed.Load() {
				if err := d.Remove(&volume.RemoveRequest{Name: name}); err == nil {
					removed.Store(true)
					if n := mounted.Load(); n > 0 {
						t.Errorf("Remove succeeded with %d mounts in use", n)
					}
				}
			}
		})
		wg.Wait()
		if n := d.mounts.Count(name); n != 0 {
			t.Fatalf("round %d: %d mounts counted after all were unmounted", round, n)
		}
		if n := d.views.Live(name); n != 0 {
			t.Fatalf("round %d: %d view mounts left", round, n)
		}
		if left, _ := os.ReadDir(d.views.Dir()); len(left) != 0 {
			t.Fatalf("round %d: views left: %v", round, left)
		}
	}
}

// TestViewsByKind: every volume is mounted through a view; an app's own
// volume behaves as with Docker's local driver (set-id and devices work),
// shared, tree and read-only views are nosuid and nodev; what Docker
// copies into the Mountpoint lands in the volume's directory.
func TestViewsByKind(t *testing.T) {
	d, root := viewDriver(t, nil)
	for _, c := range []struct {
		name   string
		opts   map[string]string
		dir    string
		nosuid bool
	}{
		{"plain_data", nil, "app_data/plain/data", false},
		{"owned_data", map[string]string{"uid": "1000", "gid": "1000", "mode": "0750"}, "app_data/owned/data", false},
		{strings.Repeat("a", 64), nil, "anonymous/" + strings.Repeat("a", 64), false},
		{"ro_data", map[string]string{"access": "ro"}, "app_data/ro/data", true},
		{"media", map[string]string{"shared": "media"}, "shared/media", true},
		{"all", map[string]string{"tree": "app_data"}, "app_data", true},
	} {
		create(t, d, c.name, c.opts)
		mp := mountOf(t, d, c.name, "copy-up")
		if !strings.HasPrefix(mp, d.views.Dir()+"/") {
			t.Errorf("%s: Mountpoint %s is not a view", c.name, mp)
		}
		opts := mountOptions(t, mp)
		if got := strings.Contains(opts, "nosuid") && strings.Contains(opts, "nodev"); got != c.nosuid {
			t.Errorf("%s: view options %q, want nosuid,nodev = %v", c.name, opts, c.nosuid)
		}
		if c.opts["access"] != "ro" && c.dir != "app_data" {
			testutil.Write(t, filepath.Join(mp, "copied"), c.name)
			if b, err := os.ReadFile(filepath.Join(root, c.dir, "copied")); err != nil || string(b) != c.name {
				t.Errorf("%s: a file written through the Mountpoint is not in %s: %q %v", c.name, c.dir, b, err)
			}
		}
		// A second mount under another ID shares the view.
		if again := mountOf(t, d, c.name, "container"); again != mp {
			t.Errorf("%s: a second ID got %s, not the view %s", c.name, again, mp)
		}
		for _, id := range []string{"copy-up", "container"} {
			if err := d.Unmount(&volume.UnmountRequest{Name: c.name, ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		if isMount(t, mp) {
			t.Errorf("%s: the view stays mounted after the last Unmount", c.name)
		}
		if err := d.Remove(&volume.RemoveRequest{Name: c.name}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(mp); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the view's directory stays after Remove: %v", c.name, err)
		}
	}
}

// mountOptions is the per-mount options of the mount at path.
func mountOptions(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 5 && f[4] == path {
			return f[5]
		}
	}
	t.Fatalf("%s is not a mount", path)
	return ""
}

// TestForgedRecords: records written into the state directory by hand,
// each saying what would make the plugin chown, mount or delete outside
// its root, are set aside at load, logged, and never acted on: Get, Mount
// and Remove know no such volume, and nothing outside the root changes.
func TestForgedRecords(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	outside := t.TempDir()
	testutil.Write(t, filepath.Join(outside, "victim/keep"), "keep")
	rel, err := filepath.Rel(root, outside)
	if err != nil || !strings.HasPrefix(rel, "..") {
		t.Fatalf("the outside directory %s is not beside the root: %s %v", outside, rel, err)
	}
	anon := strings.Repeat("ab", 32)
	forged := []state.Volume{
		// Mount would chown the outside directory to 1000:1000, 06777.
		{Name: "evil_data", Spec: spec.Spec{Kind: spec.KindApp, App: "evil", Path: "/../../" + rel + "/victim",
			UID: 1000, GID: 1000, Mode: 0o6777, Enforce: true, OnRemove: spec.Keep}},
		// Mount would return a rw view of the host's /.
		{Name: "root", Spec: spec.Spec{Kind: spec.KindTree, Tree: "../../../../../../..", Mode: spec.DefaultMode, OnRemove: spec.Keep}},
		// Remove would delete the outside directory.
		{Name: anon, Spec: spec.Spec{Kind: spec.KindAnonymous, Path: "/../../" + rel + "/victim", Mode: spec.DefaultMode, OnRemove: spec.Delete}},
		{Name: "media", Spec: spec.Spec{Kind: spec.KindShared, Shared: "../" + rel + "/victim", Mode: spec.DefaultMode, OnRemove: spec.Keep}},
	}
	stateDir := filepath.Join(root, StateDirName)
	records, _, err := state.OpenRecords(stateDir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range forged {
		if err := records.Put(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := records.Close(); err != nil {
		t.Fatal(err)
	}
	before := testutil.Snapshot(t, outside)

	for restart := range 2 {
		buf := &testutil.Buffer{}
		log := logrus.New()
		log.SetOutput(buf)
		d, err := New(Config{Root: root, SharedNames: sharedNames, BootID: "boot", Log: log,
			ViewsDir: filepath.Join(t.TempDir(), "views")})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range forged {
			if _, err := d.Get(&volume.GetRequest{Name: v.Name}); err == nil {
				t.Errorf("restart %d: Get of the forged %s succeeded", restart, v.Name)
			}
			if r, err := d.Mount(&volume.MountRequest{Name: v.Name, ID: "x"}); err == nil {
				t.Errorf("restart %d: Mount of the forged %s returned %s", restart, v.Name, r.Mountpoint)
			}
			if err := d.Remove(&volume.RemoveRequest{Name: v.Name}); err == nil {
				t.Errorf("restart %d: Remove of the forged %s succeeded", restart, v.Name)
			}
		}
		if n := strings.Count(buf.String(), "volume record set aside"); n != len(forged)*(1-restart) {
			t.Errorf("restart %d: %d records set aside, want %d:\n%s", restart, n, len(forged)*(1-restart), buf)
		}
		_ = d.views.DropAll()
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Same(t, "outside", before, testutil.Snapshot(t, outside))
	if kept, _ := os.ReadDir(filepath.Join(stateDir, "corrupt")); len(kept) != len(forged) {
		t.Errorf("%d records kept for an operator, want %d", len(kept), len(forged))
	}
}

// TestNoViewsMountsByPath: a daemon without a views directory mounts a
// volume that needs no view by its path, and says once what that leaves
// open; a volume that needs one is refused.
func TestNoViewsMountsByPath(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	buf := &testutil.Buffer{}
	log := logrus.New()
	log.SetOutput(buf)
	d, err := New(Config{Root: root, SharedNames: sharedNames, BootID: "boot", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	create(t, d, "a_data", nil)
	for i := range 3 {
		if mp := mountOf(t, d, "a_data", fmt.Sprint(i)); mp != filepath.Join(root, "app_data/a/data") {
			t.Errorf("Mountpoint %s, want the directory's path", mp)
		}
	}
	if n := strings.Count(buf.String(), "volumes are mounted by their path"); n != 1 {
		t.Errorf("%d warnings, want one:\n%s", n, buf)
	}
	if err := d.Create(&volume.CreateRequest{Name: "ro_data", Options: map[string]string{"access": "ro"}}); err == nil {
		t.Error("a volume that needs a view was created without views")
	}
}
