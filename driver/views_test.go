package driver

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/driver/tree"
	"github.com/portal/portal-volume/internal/testutil"
)

// viewDriver is a driver that makes views, in a directory outside root.
func viewDriver(t testing.TB, owner *tree.Owner) (*Driver, string) {
	t.Helper()
	requireRoot(t)
	root := t.TempDir()
	d, err := New(Config{Root: root, SharedNames: sharedNames, BootID: "boot", Log: quiet(),
		ViewsDir: filepath.Join(t.TempDir(), "views"), SharedOwner: owner})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.views.DropAll(); _ = d.Close() })
	if err := d.views.Available(); err != nil {
		t.Skipf("no views on this kernel: %v", err)
	}
	return d, root
}

func mountOf(t testing.TB, d *Driver, name, id string) string {
	t.Helper()
	r, err := d.Mount(&volume.MountRequest{Name: name, ID: id})
	if err != nil {
		t.Fatalf("Mount(%s, %s): %v", name, id, err)
	}
	return r.Mountpoint
}

func isMount(t testing.TB, path string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

// TestReadOnlyVolume: the container gets a read-only view outside the
// tree; the last Unmount of the ID removes it; Remove waits for it.
func TestReadOnlyVolume(t *testing.T) {
	d, root := viewDriver(t, nil)
	create(t, d, "app_data", map[string]string{"access": "ro"})
	testutil.Write(t, filepath.Join(root, "app_data/app/data/f"), "x")
	mp := mountOf(t, d, "app_data", "id1")
	if strings.HasPrefix(mp, root) || !strings.HasPrefix(mp, d.views.Dir()+"/") {
		t.Fatalf("Mountpoint %s: want a view in %s", mp, d.views.Dir())
	}
	if mountOf(t, d, "app_data", "id1") != mp {
		t.Fatal("a second mount of the same ID got another view")
	}
	if b, err := os.ReadFile(filepath.Join(mp, "f")); err != nil || string(b) != "x" {
		t.Errorf("read: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(mp, "g"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write through access=ro: %v, want EROFS", err)
	}
	if s := get(t, d, "app_data").Status; s["access"] != "ro" {
		t.Errorf("Status access = %v", s["access"])
	}
	for i := range 2 {
		if err := d.Remove(&volume.RemoveRequest{Name: "app_data"}); err == nil {
			t.Fatal("Remove of a volume with a live view succeeded")
		}
		if err := d.Unmount(&volume.UnmountRequest{Name: "app_data", ID: "id1"}); err != nil {
			t.Fatal(err)
		}
		if isMount(t, mp) != (i == 0) {
			t.Fatalf("after unmount %d: view mounted = %v", i+1, !(i == 0))
		}
	}
	if err := d.Remove(&volume.RemoveRequest{Name: "app_data"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(mp); !os.IsNotExist(err) {
		t.Errorf("view directory left after Remove: %v", err)
	}
}

// TestIDMappedSharedVolume: two apps of different uids share a directory
// owned by an unprivileged user; each sees it as its own; on disk the files
// belong to the directory's owner.
func TestIDMappedSharedVolume(t *testing.T) {
	d, root := viewDriver(t, &tree.Owner{UID: 2000, GID: 2000})
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	create(t, d, "a", map[string]string{"shared": "media", "uid": "1000", "gid": "1000"})
	create(t, d, "b", map[string]string{"shared": "media", "uid": "1001", "gid": "1001"})
	dir := filepath.Join(root, "shared/media")
	if uid, gid := ownerOf(t, dir); uid != 2000 || gid != 2000 {
		t.Fatalf("shared directory made %d:%d, want the shared owner 2000:2000", uid, gid)
	}
	for p := d.views.Dir(); p != os.TempDir(); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	ma, mb := mountOf(t, d, "a", "x"), mountOf(t, d, "b", "y")
	if uid, _ := ownerOf(t, ma); uid != 1000 {
		t.Errorf("a's view shows uid %d", uid)
	}
	if uid, _ := ownerOf(t, mb); uid != 1001 {
		t.Errorf("b's view shows uid %d", uid)
	}
	runAs(t, 1000, func() error { return os.WriteFile(filepath.Join(ma, "fa"), []byte("a"), 0o644) })
	runAs(t, 1001, func() error { return os.WriteFile(filepath.Join(mb, "fb"), []byte("b"), 0o644) })
	for _, f := range []string{"fa", "fb"} {
		if uid, gid := ownerOf(t, filepath.Join(dir, f)); uid != 2000 || gid != 2000 {
			t.Errorf("%s is %d:%d on disk", f, uid, gid)
		}
		if uid, _ := ownerOf(t, filepath.Join(mb, f)); uid != 1001 {
			t.Errorf("%s shows as uid %d in b's view", f, uid)
		}
	}
}

// TestEngineStartedDropsViews: a new engine's start drops the views of the
// one before; the volume can then be removed once its mounts are uncounted.
func TestEngineStartedDropsViews(t *testing.T) {
	d, _ := viewDriver(t, nil)
	create(t, d, "app_data", map[string]string{"access": "ro"})
	mp := mountOf(t, d, "app_data", "old")
	if err := d.EngineStarted(); err != nil {
		t.Fatal(err)
	}
	if isMount(t, mp) || d.liveViews("app_data") != 0 {
		t.Fatalf("view %s still there after a new engine started", mp)
	}
	if err := d.Unmount(&volume.UnmountRequest{Name: "app_data", ID: "old"}); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(&volume.RemoveRequest{Name: "app_data"}); err != nil {
		t.Fatal(err)
	}
}

// TestRestartKeepsViewsWithCounts: a restart of the plugin (not of the
// engine) detaches its views but keeps the mount counts. A container of
// the engine that mounts the volume again under an ID counted before the
// restart keeps its view until its own Unmount, and the last Unmount of
// all leaves no view behind.
func TestRestartKeepsViewsWithCounts(t *testing.T) {
	requireRoot(t)
	cfg := Config{Root: t.TempDir(), SharedNames: sharedNames, BootID: "boot", Log: quiet(),
		ViewsDir: filepath.Join(t.TempDir(), "views")}
	before, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := before.views.Available(); err != nil {
		_ = before.Close()
		t.Skipf("no views on this kernel: %v", err)
	}
	create(t, before, "app_data", nil)
	mountOf(t, before, "app_data", "reused")
	if err := before.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.views.DropAll(); _ = d.Close() })
	mp := mountOf(t, d, "app_data", "reused")
	unmount := func(want int) {
		t.Helper()
		if err := d.Unmount(&volume.UnmountRequest{Name: "app_data", ID: "reused"}); err != nil {
			t.Fatal(err)
		}
		if n := d.mounts.Count("app_data"); n != want {
			t.Fatalf("%d mounts counted, want %d", n, want)
		}
	}
	unmount(1) // the mount from before the restart
	if !isMount(t, mp) {
		t.Fatalf("the view %s went while the mount that got it is counted", mp)
	}
	testutil.Write(t, filepath.Join(mp, "through-view"), "x")
	unmount(0)
	if isMount(t, mp) || d.liveViews("app_data") != 0 {
		t.Fatalf("view %s left after the last Unmount", mp)
	}
	if err := d.Remove(&volume.RemoveRequest{Name: "app_data"}); err != nil {
		t.Fatal(err)
	}
}

// TestDirectoryReplacedWhileMounted: the directory of a mounted volume
// is deleted (and Mount makes it again), or moved away and replaced; the
// next container writes into the directory now at the volume's path, as
// with a bind mount of the path, not into the one that is gone, and the
// last Unmount leaves no view behind.
func TestDirectoryReplacedWhileMounted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replace func(t *testing.T, dir string)
	}{
		{"deleted", func(t *testing.T, dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}},
		{"moved away and made again", func(t *testing.T, dir string) {
			if err := os.Rename(dir, dir+".moved"); err != nil {
				t.Fatal(err)
			}
			testutil.Mkdir(t, dir)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, root := viewDriver(t, nil)
			create(t, d, "app_data", map[string]string{"uid": "1000", "mode": "0750"})
			dir := filepath.Join(root, "app_data/app/data")
			testutil.Write(t, filepath.Join(mountOf(t, d, "app_data", "running"), "before"), "before")
			tc.replace(t, dir)
			testutil.Write(t, filepath.Join(mountOf(t, d, "app_data", "next"), "after"), "after")
			if b, err := os.ReadFile(filepath.Join(dir, "after")); err != nil || string(b) != "after" {
				t.Errorf("the next container's write is not in %s: %q %v", dir, b, err)
			}
			if uid, _ := ownerOf(t, dir); uid != 1000 {
				t.Errorf("%s is owned by %d, want the enforced 1000", dir, uid)
			}
			for _, id := range []string{"running", "next"} {
				if err := d.Unmount(&volume.UnmountRequest{Name: "app_data", ID: id}); err != nil {
					t.Fatal(err)
				}
			}
			if n := d.liveViews("app_data"); n != 0 {
				t.Errorf("%d view mounts after the last Unmount", n)
			}
			if isMount(t, filepath.Join(d.views.Dir(), "app_data")) {
				t.Errorf("a view is still mounted after the last Unmount")
			}
		})
	}
}

// runAs runs f on a thread whose fsuid and fsgid are uid: what a
// container process of that uid does when it writes.
func runAs(t *testing.T, uid int, f func() error) {
	t.Helper()
	done := make(chan error)
	go func() {
		// The thread is never given back: its ids are changed.
		lockThread()
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETFSGID, uintptr(uid), 0, 0); e != 0 {
			done <- e
			return
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETFSUID, uintptr(uid), 0, 0); e != 0 {
			done <- e
			return
		}
		done <- f()
	}()
	if err := <-done; err != nil {
		t.Fatalf("as uid %d: %v", uid, err)
	}
}

func ownerOf(t testing.TB, p string) (uint32, uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Gid
}

// TestViewRefusals: an id-mapped view of a root-owned directory, views
// that cannot be made (no views directory, a file system without idmapped
// mounts): Create is refused with an error naming the option, and nothing
// stays on disk or in state.
func TestViewRefusals(t *testing.T) {
	d, root := viewDriver(t, nil)
	before := testutil.WithoutDirMtimes(testutil.Snapshot(t, root))
	err := d.Create(&volume.CreateRequest{Name: "a", Options: map[string]string{"shared": "media", "uid": "1000"}})
	if err == nil || !strings.Contains(err.Error(), "owned by 0:0") || !strings.Contains(err.Error(), "chown 2000:2000 "+filepath.Join(root, "shared/media")) {
		t.Errorf("id-mapped view of a root-owned directory: %v", err)
	}
	testutil.Same(t, "tree after a refused create", before, testutil.WithoutDirMtimes(testutil.Snapshot(t, root)))

	plain := newDriver(t, t.TempDir(), "boot")
	err = plain.Create(&volume.CreateRequest{Name: "app_data", Options: map[string]string{"access": "ro"}})
	if err == nil || !strings.Contains(err.Error(), "access=ro") || !strings.Contains(err.Error(), "no views directory") {
		t.Errorf("access=ro without views: %v", err)
	}

	ramfs := filepath.Join(root, "shared/music")
	testutil.Mkdir(t, ramfs)
	if err := unix.Mount("ramfs", ramfs, "ramfs", 0, "mode=0755"); err != nil {
		t.Skipf("ramfs: %v", err)
	}
	defer unix.Unmount(ramfs, unix.MNT_DETACH)
	if err := os.Chown(ramfs, 2000, 2000); err != nil {
		t.Fatal(err)
	}
	err = d.Create(&volume.CreateRequest{Name: "m", Options: map[string]string{"shared": "music", "uid": "1000"}})
	if err == nil || !strings.Contains(err.Error(), "uid=1000 gid=0 on a shared or tree volume") || !strings.Contains(err.Error(), "needs idmapped mounts") {
		t.Errorf("id-mapped view on ramfs: %v", err)
	}
	if _, err := d.Get(&volume.GetRequest{Name: "m"}); err == nil {
		t.Error("the refused volume is known")
	}
}

// TestFileSystemBelowTreeAtStart: a file system without idmapped mounts,
// mounted below the tree before the plugin starts (a USB disk at
// shared/music), leaves views available for every other volume: a plain
// app volume still gets a view, and only an id-mapped view on that file
// system is refused.
func TestFileSystemBelowTreeAtStart(t *testing.T) {
	viewDriver(t, nil) // skips where the kernel makes no views at all
	root := t.TempDir()
	music := filepath.Join(root, "shared/music")
	testutil.Mkdir(t, music)
	if err := unix.Mount("ramfs", music, "ramfs", 0, "mode=0755"); err != nil {
		t.Skipf("ramfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(music, unix.MNT_DETACH) })
	if err := os.Chown(music, 2000, 2000); err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Root: root, SharedNames: sharedNames, BootID: "boot", Log: quiet(),
		ViewsDir: filepath.Join(t.TempDir(), "views")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.views.DropAll(); _ = d.Close() })
	if err := d.views.Available(); err != nil {
		t.Fatalf("a ramfs below the tree made views unavailable: %v", err)
	}
	create(t, d, "foo_data", nil)
	if mp := mountOf(t, d, "foo_data", "c1"); !isMount(t, mp) {
		t.Errorf("Mountpoint %s is no view", mp)
	}
	err = d.Create(&volume.CreateRequest{Name: "m", Options: map[string]string{"shared": "music", "uid": "1000", "gid": "1000"}})
	if err == nil || !strings.Contains(err.Error(), "needs idmapped mounts") {
		t.Errorf("id-mapped view on ramfs: %v", err)
	}
}

// TestPlainSharedVolumeIsNosuid: a shared volume without view options is
// handed out through a nosuid view too.
func TestPlainSharedVolumeIsNosuid(t *testing.T) {
	d, _ := viewDriver(t, nil)
	create(t, d, "m", map[string]string{"shared": "media"})
	mp := mountOf(t, d, "m", "id")
	var st unix.Statfs_t
	if err := unix.Statfs(mp, &st); err != nil {
		t.Fatal(err)
	}
	if st.Flags&unix.ST_NOSUID == 0 || st.Flags&unix.ST_NODEV == 0 || st.Flags&unix.ST_RDONLY != 0 {
		t.Errorf("flags of the shared volume's view: %#x, want nosuid, nodev, rw", st.Flags)
	}
}

// BenchmarkMountUnmountView: Mount+Unmount of a volume through a view, one
// new mount ID each time (a container start and stop), with its p50.
func BenchmarkMountUnmountView(b *testing.B) {
	for _, c := range []struct {
		name string
		opts map[string]string
	}{
		{"ro", map[string]string{"access": "ro"}},
		{"idmapped", map[string]string{"shared": "media", "uid": "1000", "gid": "1000"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			d, _ := viewDriver(b, &tree.Owner{UID: 2000, GID: 2000})
			if err := d.Create(&volume.CreateRequest{Name: "app_data", Options: c.opts}); err != nil {
				b.Fatal(err)
			}
			var times []time.Duration
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				id := benchName(i)
				start := time.Now()
				if _, err := d.Mount(&volume.MountRequest{Name: "app_data", ID: id}); err != nil {
					b.Fatal(err)
				}
				if err := d.Unmount(&volume.UnmountRequest{Name: "app_data", ID: id}); err != nil {
					b.Fatal(err)
				}
				times = append(times, time.Since(start))
				i++
			}
			sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
			b.ReportMetric(float64(times[len(times)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(times[len(times)*99/100].Microseconds()), "p99-µs")
			_ = slices.Max(times)
		})
	}
}

func lockThread() { runtime.LockOSThread() }
