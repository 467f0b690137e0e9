package driver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/portal/portal-volume/internal/testutil"
)

// holdMount bind-mounts dir as a container's mount would, until the test
// ends or release is called.
func holdMount(t *testing.T, dir string) (release func()) {
	return testutil.HoldBindMount(t, dir, t.TempDir())
}

func engineStarted(t *testing.T, d *Driver) {
	t.Helper()
	if err := d.EngineStarted(); err != nil {
		t.Fatal(err)
	}
}

// TestEngineRestartContainersGone: the engine that mounted is gone and so
// are its containers: the counts neither show nor block Remove.
func TestEngineRestartContainersGone(t *testing.T) {
	d, dd, root := setup(t)
	create(t, d, "gone", map[string]string{"app": "a", "on_remove": "delete"})
	create(t, d, "back", map[string]string{"app": "b"})
	mount(t, d, "gone", "c1")
	mount(t, d, "back", "c2")
	mount(t, d, "back", "c2")
	engineStarted(t, dd)
	// The new engine brings one container back, under the same ID: that
	// takes the earlier count over rather than adding to it.
	mount(t, d, "back", "c2")
	if n := mounts(t, d, "back"); n != 1 {
		t.Fatalf("back: mounts %d, want 1", n)
	}
	if n := mounts(t, d, "gone"); n != 0 {
		t.Fatalf("gone: mounts %d, want 0 (nothing has its directory mounted)", n)
	}
	if err := d.Remove(&volume.RemoveRequest{Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(root, "app_data/a/gone")) {
		t.Fatal("on_remove=delete kept the directory")
	}
	if err := d.Remove(&volume.RemoveRequest{Name: "back"}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Remove of a volume the new engine mounted: %v", err)
	}
	unmount(t, d, "back", "c2")
	if err := d.Remove(&volume.RemoveRequest{Name: "back"}); err != nil {
		t.Fatal(err)
	}
}

// TestEngineRestartContainerLives: a container the earlier engine started
// still has the directory mounted (live-restore): its count stays, Remove
// refuses and deletes nothing, across a restart of the plugin too, and
// its Unmount later still counts.
func TestEngineRestartContainerLives(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	d := newDriver(t, root, "boot-1")
	create(t, d, "live", map[string]string{"app": "a", "on_remove": "delete"})
	dir := mount(t, d, "live", "c1")
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	release := holdMount(t, dir)
	engineStarted(t, d)
	check := func(d *Driver) {
		t.Helper()
		if n := mounts(t, d, "live"); n != 1 {
			t.Fatalf("mounts %d, want 1: the directory is still mounted", n)
		}
		if err := d.Remove(&volume.RemoveRequest{Name: "live"}); err == nil || !strings.Contains(err.Error(), "in use") {
			t.Fatalf("Remove while a container of the earlier engine lives: %v", err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "precious" {
			t.Fatalf("data after a refused Remove: %q %v", b, err)
		}
	}
	check(d)
	d.Close()
	d = newDriver(t, root, "boot-1") // the plugin restarts: same engine
	check(d)
	// The container stops: its Unmount counts though it is stale.
	release()
	unmount(t, d, "live", "c1")
	if n := mounts(t, d, "live"); n != 0 {
		t.Fatalf("mounts %d after the Unmount, want 0", n)
	}
	if err := d.Remove(&volume.RemoveRequest{Name: "live"}); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(root, "app_data/a/live")) {
		t.Fatal("on_remove=delete kept the directory")
	}
}

// TestEngineRestartStaleDroppedWhenUnmounted: a live-restored container
// that died unseen (no Unmount): once the kernel shows the directory
// mounted nowhere, the count goes, and Remove works.
func TestEngineRestartStaleDroppedWhenUnmounted(t *testing.T) {
	d, dd, _ := setup(t)
	create(t, d, "v", map[string]string{"app": "a"})
	dir := mount(t, d, "v", "c1")
	release := holdMount(t, dir)
	engineStarted(t, dd)
	if n := mounts(t, d, "v"); n != 1 {
		t.Fatalf("mounts %d, want 1", n)
	}
	release()
	if n := mounts(t, d, "v"); n != 0 {
		t.Fatalf("mounts %d once the directory is mounted nowhere, want 0", n)
	}
	if dd.mounts.Stale("v") != 0 {
		t.Fatal("the stale count was not dropped")
	}
	if err := d.Remove(&volume.RemoveRequest{Name: "v"}); err != nil {
		t.Fatal(err)
	}
}

// TestEngineStaleUnknownKeepsData: where the kernel cannot be asked (no
// readable /proc), stale counts count: Remove refuses rather than guess.
func TestEngineStaleUnknownKeepsData(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	d, err := New(Config{Root: root, SharedNames: sharedNames, BootID: "b", Log: quiet(), Proc: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	create(t, d, "v", map[string]string{"app": "a", "on_remove": "delete"})
	mount(t, d, "v", "c1")
	engineStarted(t, d)
	if err := d.Remove(&volume.RemoveRequest{Name: "v"}); err == nil {
		t.Fatal("Remove succeeded though nobody can tell whether the directory is in use")
	}
	if !exists(filepath.Join(root, "app_data/a/v")) {
		t.Fatal("directory deleted")
	}
}
