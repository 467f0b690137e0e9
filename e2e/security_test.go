package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/internal/testutil"
)

// TestSecurity: what no container may make the plugin do, in every mode.
func TestSecurity(t *testing.T) { eachMode(t, securityCases) }

// swapRounds is how many containers the swap race starts
// (PORTAL_E2E_SWAP_ROUNDS, default 40; before views, 16 of 60 starts
// bound the host directory).
func swapRounds() int {
	if n, err := strconv.Atoi(os.Getenv("PORTAL_E2E_SWAP_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 40
}

var securityCases = []testCase{
	// A writer of the app's directory (a container with a rw tree=app_data
	// volume can be one) swaps the volume's directory with a symlink to a
	// host directory, in a loop, while containers of the app start: each
	// start is refused or binds the volume's own directory, never the
	// host's. The swaps are made from the test, which changes nothing for
	// the plugin: it sees the same renames in the tree.
	{"SwapRaceThroughMountpoint", func(t *testing.T, e *env) {
		e.mustCreate(t, "swap_data")
		app := e.host("app_data/swap")
		if err := os.MkdirAll(filepath.Join(app, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(app, "data/marker"), []byte("volume"), 0o644); err != nil {
			t.Fatal(err)
		}
		hostDir := t.TempDir()
		if err := os.WriteFile(filepath.Join(hostDir, "marker"), []byte("host"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(hostDir, filepath.Join(app, "swap")); err != nil {
			t.Fatal(err)
		}
		stopSwapping := testutil.Swap(t, filepath.Join(app, "data"), filepath.Join(app, "swap"))
		rounds := swapRounds()
		var refused, redirected int
		for i := range rounds {
			out, err := docker("run", "--rm", "--network", "none", "-v", "swap_data:/v", image, "cat", "/v/marker")
			switch {
			case err != nil:
				refused++
			case strings.TrimSpace(out) != "volume":
				redirected++
				t.Errorf("round %d: the container's volume shows %q, not the volume's directory", i, out)
			}
		}
		swaps := stopSwapping()
		t.Logf("%d containers, %d swaps: %d refused, %d redirected", rounds, swaps, refused, redirected)
		if refused == rounds {
			t.Fatal("every container was refused: the test proves nothing")
		}
		wantNoViews(t, e, "after the containers")
	}},
	// The tree is on a shared mount, as / is on most hosts. A file system
	// the host mounts below a shared directory after a container started
	// with an access=ro volume of it reaches neither the container nor the
	// view; and the container cannot write there.
	{"LateHostMountNotInReadOnlyView", func(t *testing.T, e *env) {
		dir := e.host("shared/media")
		if err := os.MkdirAll(filepath.Join(dir, "late"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
		if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
			t.Fatal(err)
		}
		e.mustCreate(t, "media-ro", "shared=media", "access=ro")
		c := e.sleeper(t, "--network", "none", "-v", "media-ro:/v")
		late := filepath.Join(dir, "late")
		if err := unix.Mount("tmpfs", late, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Unmount(late, unix.MNT_DETACH) })
		if err := os.WriteFile(filepath.Join(late, "host-file"), []byte("host"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := docker("exec", c, "sh", "-c", "test ! -e /v/late/host-file"); err != nil {
			t.Errorf("the host's late mount shows in the container's read-only volume: %v %s", err, out)
		}
		if out, err := docker("exec", c, "sh", "-c", "touch /v/late/x"); err == nil {
			t.Errorf("touch through the read-only volume succeeded: %s", out)
		}
		if _, err := os.Lstat(filepath.Join(late, "x")); err == nil {
			t.Error("a file written through the read-only volume reached the host's mount")
		}
		for _, v := range leftViews(e) {
			path := v[strings.Index(v, ": ")+2:]
			if _, err := os.Lstat(filepath.Join(path, "late/host-file")); err == nil {
				t.Errorf("the host's late mount shows in the view %s", v)
			}
		}
		mustDocker(t, "rm", "-f", c)
		wantNoViews(t, e, fmt.Sprintf("after docker rm %s", c))
	}},
}
