package mountinfo

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portal/portal-volume/internal/testutil"
)

const fixture = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:25 / /proc rw,nosuid shared:12 - proc proc rw
41 22 8:17 / /srv rw,relatime shared:20 - ext4 /dev/sdb1 rw
52 41 8:17 /portal\040tree/app_data /srv/apps rw shared:20 - ext4 /dev/sdb1 rw
53 22 8:1 /home/a\134b\011c /mnt/x\040y rw - ext4 /dev/sda1 rw
60 41 8:33 / /srv/over rw - ext4 /dev/sdc1 rw
61 41 8:17 /data /srv/over rw - ext4 /dev/sdb1 rw
`

func TestParse(t *testing.T) {
	ms, err := Parse(strings.NewReader(fixture))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 7 {
		t.Fatalf("%d mounts, want 7", len(ms))
	}
	if got, want := ms[3], (Mount{Dev: "8:17", Root: "/portal tree/app_data", MountPoint: "/srv/apps"}); got != want {
		t.Errorf("escaped space: %+v, want %+v", got, want)
	}
	if got, want := ms[4], (Mount{Dev: "8:1", Root: "/home/a\\b\tc", MountPoint: "/mnt/x y"}); got != want {
		t.Errorf("escaped backslash and tab: %+v, want %+v", got, want)
	}
	if _, err := Parse(strings.NewReader("1 2 3\n")); err == nil {
		t.Error("a short line was accepted")
	}
}

func TestLocate(t *testing.T) {
	ms, err := Parse(strings.NewReader(fixture))
	if err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]Dir{
		"/home/portal/app_data/x": {"8:1", "/home/portal/app_data/x"},
		"/srv":                    {"8:17", "/"},
		"/srv/shared/media":       {"8:17", "/shared/media"},
		"/srv/apps/gitea/data/":   {"8:17", "/portal tree/app_data/gitea/data"},
		"/srv/appsx":              {"8:17", "/appsx"},
		"/srv/over/f":             {"8:17", "/data/f"}, // the later of two mounts on one point is on top
	} {
		got, err := locate(ms, dir)
		if err != nil || got != want {
			t.Errorf("locate(%q) = %+v, %v; want %+v", dir, got, err, want)
		}
	}
}

func TestContains(t *testing.T) {
	d := Dir{"8:17", "/portal/app_data/x/data"}
	for m, want := range map[Mount]bool{
		{Dev: "8:17", Root: "/portal/app_data/x/data"}:          true,
		{Dev: "8:17", Root: "/portal/app_data/x/data/sub"}:      true,
		{Dev: "8:17", Root: "/portal/app_data/x/data//deleted"}: true,
		{Dev: "8:17", Root: "/portal/app_data/x/database"}:      false,
		{Dev: "8:17", Root: "/portal/app_data/x"}:               false, // a parent: a tree, not this volume
		{Dev: "8:18", Root: "/portal/app_data/x/data"}:          false,
	} {
		if got := d.Contains(m); got != want {
			t.Errorf("Contains(%+v) = %v, want %v", m, got, want)
		}
	}
	if !(Dir{"8:1", "/"}).Contains(Mount{Dev: "8:1", Root: "/any"}) {
		t.Error("a file system's root does not contain its directories")
	}
}

// TestMountedForReal bind-mounts a directory in a child's mount namespace
// of its own, as Docker does for a container, and asks the kernel.
func TestMountedForReal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	vol := filepath.Join(base, "app_data", "x y", "data")
	other := filepath.Join(base, "app_data", "x y", "database")
	target := filepath.Join(base, "target")
	for _, d := range []string{filepath.Join(vol, "sub"), other, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	at, err := Locate(vol)
	if err != nil {
		t.Fatal(err)
	}
	otherAt, err := Locate(other)
	if err != nil {
		t.Fatal(err)
	}
	wantMounted := func(d Dir, want bool) {
		t.Helper()
		got, scan, err := Mounted("/proc", d)
		if err != nil || got != want {
			t.Fatalf("Mounted(%+v) = %v (%+v), %v; want %v", d, got, scan, err, want)
		}
	}
	wantMounted(at, false)

	// The child bind-mounts a directory below the volume, as a container
	// given a subdirectory would, and holds it until its stdin closes.
	release := testutil.HoldBindMount(t, filepath.Join(vol, "sub"), target)
	// Not in this namespace: only in the child's.
	if ms, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(ms), target) {
		t.Fatal("the bind mount leaked into the test's namespace")
	}
	wantMounted(at, true)
	wantMounted(otherAt, false) // a sibling whose name has the volume's as prefix

	release()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _, err := Mounted("/proc", at)
		if err == nil && !got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still mounted after the namespace went: %v %v", got, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMountedRefusesPrivatePIDNamespace(t *testing.T) {
	// A proc whose self is pid 1 is a PID namespace of its own: it cannot
	// see containers, so it must not answer "mounted nowhere".
	proc := t.TempDir()
	if err := os.Symlink("1", filepath.Join(proc, "self")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Mounted(proc, Dir{"8:1", "/x"}); err == nil {
		t.Fatal("no error for a private PID namespace")
	}
}

// TestMountedUnprivileged: the kernel lets any process read any other's
// mountinfo (it is mode 0444, with no ptrace check, unlike ns/mnt), so a
// plugin with fewer capabilities than a container still sees the
// container's mounts. The scan runs in a child as nobody and must find a
// bind mount that a root process holds in a namespace of its own.
func TestMountedUnprivileged(t *testing.T) {
	if d := os.Getenv("MOUNTINFO_SCAN_AS_CHILD"); d != "" {
		dev, root, _ := strings.Cut(d, " ")
		got, scan, err := Mounted("/proc", Dir{dev, root})
		if err != nil || !got || scan.Unreadable != 0 {
			t.Fatalf("as nobody: Mounted = %v (%+v), %v; want true with nothing unreadable", got, scan, err)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount and to run a child as nobody")
	}
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	vol, target := filepath.Join(base, "vol"), filepath.Join(base, "target")
	for _, d := range []string{vol, target} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	at, err := Locate(vol)
	if err != nil {
		t.Fatal(err)
	}
	testutil.HoldBindMount(t, vol, target)
	// nobody must be able to run the test binary: a copy in a directory
	// it may enter.
	dir := t.TempDir()
	bin := filepath.Join(dir, "mountinfo.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	child := exec.Command(bin, "-test.run=^TestMountedUnprivileged$", "-test.count=1")
	child.Dir = dir
	child.Env = append(os.Environ(), "MOUNTINFO_SCAN_AS_CHILD="+at.Dev+" "+at.Root)
	child.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := child.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
