package tree

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/internal/testutil"
)

// deepLevels is how deep a tree TestRemoveDirDeep deletes: what a
// container makes in a fraction of a second, and what a delete that holds
// a path or a descriptor per level cannot delete in a few GB.
const deepLevels = 20000

// makeDeep makes deepLevels nested directories below dir, with a file and
// a symlink at every hundredth level, through descriptors (the path is far
// longer than PATH_MAX).
func makeDeep(t *testing.T, dir string) {
	t.Helper()
	testutil.Mkdir(t, dir)
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range deepLevels {
		if err := unix.Mkdirat(fd, "d", 0o755); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			f, err := unix.Openat(fd, "f"+strconv.Itoa(i), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			unix.Close(f)
			if err := unix.Symlinkat("/", fd, "root"); err != nil {
				t.Fatal(err)
			}
		}
		next, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = next
	}
	unix.Close(fd)
}

// TestRemoveDirDeep deletes a tree 20,000 levels deep in a child process
// that may hold no more than 64 descriptors, and bounds the child's peak
// memory: a delete's memory and descriptors do not grow with depth.
func TestRemoveDirDeep(t *testing.T) {
	const maxRSS = 200 << 20
	if testutil.IsChild(t) {
		// The child deletes; its limits make a delete that holds a
		// descriptor per level fail with EMFILE.
		lim := unix.Rlimit{Cur: 64, Max: 64}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
		tr, err := Open(os.Getenv("DEEP_ROOT"))
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		if err := tr.RemoveDir("app_data/a/deep"); err != nil {
			t.Fatal(err)
		}
		return
	}
	root := t.TempDir()
	makeDeep(t, filepath.Join(root, "app_data/a/deep"))
	testutil.Write(t, filepath.Join(root, "app_data/a/keep"), "keep")
	ps := testutil.RunChild(t, 0, "DEEP_ROOT="+root)
	if _, err := os.Lstat(filepath.Join(root, "app_data/a/deep")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the deep directory is still there: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "app_data/a/keep")); err != nil {
		t.Fatalf("a sibling went: %v", err)
	}
	rss := ps.SysUsage().(*syscall.Rusage).Maxrss << 10
	t.Logf("%d levels deleted in %v user, %v system, peak RSS %d MiB", deepLevels, ps.UserTime(), ps.SystemTime(), rss>>20)
	if rss > maxRSS {
		t.Fatalf("deleting %d levels took %d MiB at its peak, more than %d", deepLevels, rss>>20, maxRSS>>20)
	}
}

// TestRemoveDirStopsAtMount: a file system mounted inside a volume, or at
// it, is never emptied; the delete stops with an error that names the
// mount point, and once it is unmounted a second delete finishes.
func TestRemoveDirStopsAtMount(t *testing.T) {
	if !testutil.InMountNamespace(t) {
		return
	}
	tr, root := open(t)
	vol := filepath.Join(root, "app_data/a/data")
	for i := range 50 {
		testutil.Write(t, filepath.Join(vol, "x/y/file"+strconv.Itoa(i)), "data")
	}
	for _, mnt := range []string{filepath.Join(vol, "x/y/mnt"), vol + "2"} {
		testutil.Mkdir(t, mnt)
		if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		testutil.Write(t, filepath.Join(mnt, "host-data/keep"), "keep")
	}
	// The bind mount of a directory of the same file system counts too.
	testutil.Mkdir(t, filepath.Join(root, "elsewhere/sub"))
	testutil.Write(t, filepath.Join(root, "elsewhere/sub/keep"), "keep")
	testutil.Mkdir(t, filepath.Join(vol, "bound"))
	if err := unix.Mount(filepath.Join(root, "elsewhere"), filepath.Join(vol, "bound"), "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}

	// Each delete stops at a mount point it names, which keeps its content;
	// once that is unmounted the next delete goes on to the next one.
	mounts := map[string]string{ // mount point -> a file on it
		filepath.Join(vol, "x/y/mnt"): "host-data/keep",
		filepath.Join(vol, "bound"):   "sub/keep",
		vol + "2":                     "host-data/keep",
	}
	for len(mounts) > 0 {
		rel := "app_data/a/data"
		if len(mounts) == 1 {
			rel = "app_data/a/data2"
		}
		err := tr.RemoveDir(rel)
		var mp *MountPointError
		if !errors.As(err, &mp) {
			t.Fatalf("RemoveDir(%s) = %v, want a mount point error", rel, err)
		}
		if _, ok := mounts[mp.Path]; !ok {
			t.Fatalf("the error names %s, not a mount point left: %v", mp.Path, err)
		}
		for m, keep := range mounts {
			if _, err := os.Stat(filepath.Join(m, keep)); err != nil {
				t.Fatalf("the file system mounted at %s was emptied: %v", m, err)
			}
		}
		if err := unix.Unmount(mp.Path, 0); err != nil {
			t.Fatal(err)
		}
		delete(mounts, mp.Path)
	}
	if _, err := os.Stat(filepath.Join(root, "elsewhere/sub/keep")); err != nil {
		t.Fatalf("the bind mount's source was emptied: %v", err)
	}
	for _, rel := range []string{"app_data/a/data", "app_data/a/data2"} {
		if err := tr.RemoveDir(rel); err != nil {
			t.Fatalf("RemoveDir(%s) after the unmount: %v", rel, err)
		}
		if _, err := os.Lstat(filepath.Join(root, rel)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s still there: %v", rel, err)
		}
	}
}

// TestDotComponentsRefused: no call takes a path with an empty, "." or
// ".." component, even one that would stay below the root, and a refusal
// changes nothing, inside the root or beside it.
func TestDotComponentsRefused(t *testing.T) {
	tr, root := open(t)
	testutil.Mkdir(t, filepath.Join(root, "app_data/a/data"))
	testutil.Mkdir(t, filepath.Join(filepath.Dir(root), "beside"))
	before := testutil.Snapshot(t, filepath.Dir(root))
	for _, rel := range []string{
		"..", "../beside", "app_data/../../beside", "app_data/a/../a/data", "./app_data",
		"app_data/./a", "app_data//a", "/app_data", "app_data/a/data/", "", ".",
		"app_data/a/data/..", "app_data/../../escape/new",
	} {
		if _, err := tr.MakeDir(rel, &Perm{Owner: Owner{UID: 1000, GID: 1000}, Mode: 0o6777}); err == nil {
			t.Errorf("MakeDir(%q) succeeded", rel)
		}
		if err := tr.RemoveDir(rel); err == nil {
			t.Errorf("RemoveDir(%q) succeeded", rel)
		}
		if fd, err := tr.OpenDir(rel); err == nil {
			unix.Close(fd)
			t.Errorf("OpenDir(%q) succeeded", rel)
		}
		if err := tr.RemoveEmpty(rel, rel); err == nil {
			t.Errorf("RemoveEmpty(%q) succeeded", rel)
		}
	}
	testutil.Same(t, "the root's parent", before, testutil.Snapshot(t, filepath.Dir(root)))
}
