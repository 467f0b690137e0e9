package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

func TestCheckTree(t *testing.T) {
	for _, c := range []struct {
		source, served string
		hasState       bool
		refused        []string // what the refusal names; nil: served
	}{
		{"/srv/p", "", false, nil},      // first start: a new tree
		{"/srv/p", "", true, nil},       // first start of this release on an old tree
		{"/srv/p", "/srv/p", true, nil}, // every start after
		{"/srv/q", "/srv/p", true, nil}, // another tree with volumes of its own
		{"/srv/q", "/srv/p", false, []string{`"/srv/q"`, "(/srv/p)", "DATA_SOURCE=/srv/p", "mkdir /srv/q/.portal-volume"}},
		{"/srv/p", "/srv/p", false, []string{"/srv/p has no state", "mounted", "mkdir /srv/p/.portal-volume"}},
	} {
		err := checkTree(c.source, c.served, c.hasState)
		if c.refused == nil {
			if err != nil {
				t.Errorf("%+v: %v", c, err)
			}
			continue
		}
		if !errors.Is(err, errRefused) {
			t.Errorf("%+v: %v, want a refusal", c, err)
			continue
		}
		for _, want := range c.refused {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%+v: %q does not say %q", c, err, want)
			}
		}
	}
}

// TestMountTree mounts a tree as the managed plugin does, in a mount
// namespace of the test's own: a directory stands for the host's /, with a
// symlink that only resolves there.
func TestMountTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts: needs root")
	}
	// The thread keeps the namespace; it is never unlocked, so the runtime
	// ends it with the test.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		t.Skipf("unshare: %v", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	for _, d := range []string{"srv/portal/.portal-volume", "srv/empty"} {
		if err := os.MkdirAll(filepath.Join(host, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(host, "srv/portal/f"), []byte("tree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Absolute: resolved inside the plugin it would miss.
	if err := os.Symlink("/srv/portal", filepath.Join(host, "data")); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "pv", "tree")
	log := logrus.New()
	log.SetOutput(io.Discard)
	mountHost := func() {
		t.Helper()
		if err := unix.Mount(host, host, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
	}

	mountHost()
	if err := mountTree(host, "/data", root, log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	if got, err := os.ReadFile(filepath.Join(root, "f")); string(got) != "tree\n" {
		t.Errorf("tree at the root: %q, %v", got, err)
	}
	if mounted(t, host) {
		t.Error("the host's / is still mounted after the tree was")
	}
	if got, _ := readServedTree(root); got != "/data" {
		t.Errorf("recorded tree %q, want /data", got)
	}
	if err := unix.Unmount(root, 0); err != nil {
		t.Fatal(err)
	}

	// Another tree without a state: refused, nothing mounted, the record
	// kept; the host's / stays for the stop.
	mountHost()
	t.Cleanup(func() { _ = unix.Unmount(host, unix.MNT_DETACH) })
	err := mountTree(host, "/srv/empty", root, log)
	if !errors.Is(err, errRefused) || !strings.Contains(err.Error(), "(/data)") {
		t.Errorf("another, empty tree: %v", err)
	}
	if mounted(t, root) {
		t.Error("a refused tree was mounted")
	}
	if got, _ := readServedTree(root); got != "/data" {
		t.Errorf("recorded tree after a refusal %q, want /data", got)
	}
	if _, err := os.Stat(filepath.Join(host, "srv/empty/.portal-volume")); !os.IsNotExist(err) {
		t.Errorf("a refused tree got a state: %v", err)
	}
	for source, want := range map[string]string{"": "DATA_SOURCE is empty", "/srv/missing": "want an existing directory", "/srv/portal/f": "want an existing directory", "/../etc": "clean absolute path"} {
		if err := mountTree(host, source, root, log); !errors.Is(err, errRefused) || !strings.Contains(err.Error(), want) {
			t.Errorf("DATA_SOURCE=%q: %v, want a refusal saying %q", source, err, want)
		}
	}
}

// mounted tells whether dir is a mount point in this thread's namespace.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}
