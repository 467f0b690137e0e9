package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallSystemdScript runs scripts/install-systemd.sh into a staging
// directory (DESTDIR), over what an earlier install left: the settings file
// keeps its other lines, --root replaces only PORTAL_ROOT, a run without
// --root keeps the tree it has, and the earlier release's ReadWritePaths
// drop-in (which gave the service a mount namespace of its own, so that
// dockerd never saw the views) is removed, while a drop-in of the user's
// stays.
func TestInstallSystemdScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dest := t.TempDir()
	// The tree lies in a temp directory of the test's, wherever the
	// script makes it.
	root := filepath.Join(t.TempDir(), "portal")
	write := func(rel, text string) {
		t.Helper()
		p := filepath.Join(dest, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(rel string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dest, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// As root the script runs in a mount namespace of its own in which
	// the host directories it installs to are read-only: a script that
	// stopped honouring DESTDIR fails the test and leaves the host as it
	// was.
	script := []string{"bash", filepath.Join("..", "scripts", "install-systemd.sh")}
	if os.Geteuid() == 0 {
		script = append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-ec",
			`for d in /usr/local/bin /etc/default /etc/systemd/system; do mount --bind "$d" "$d"; mount -o remount,bind,ro "$d"; done; exec "$@"`, "sh"},
			script...)
	}
	install := func(args ...string) (string, error) {
		cmd := exec.Command(script[0], append(script[1:], args...)...)
		cmd.Env = append(os.Environ(), "DESTDIR="+dest)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	const (
		settings = "etc/default/portal-volume"
		dropins  = "etc/systemd/system/portal-volume.service.d"
	)
	write(settings, "LOG_LEVEL=debug\nPORTAL_ROOT=/srv/old\n")
	write(dropins+"/root.conf", "[Service]\nReadWritePaths=/srv/old\n")
	write(dropins+"/limits.conf", "[Service]\nLimitNOFILE=65536\n")

	out, err := install("--root", root)
	if err != nil {
		t.Fatalf("install --root: %v\n%s", err, out)
	}
	if got, want := read(settings), "LOG_LEVEL=debug\nPORTAL_ROOT="+root+"\n"; got != want {
		t.Errorf("settings after --root: %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(dest, dropins, "root.conf")); !os.IsNotExist(err) {
		t.Errorf("the earlier release's ReadWritePaths drop-in is still there (%v)", err)
	}
	if got := read(dropins + "/limits.conf"); got != "[Service]\nLimitNOFILE=65536\n" {
		t.Errorf("the user's drop-in changed: %q", got)
	}
	if !strings.Contains(out, "has drop-ins") {
		t.Errorf("no note about the drop-ins that stay:\n%s", out)
	}
	for _, rel := range []string{"usr/local/bin/portal-volume", "etc/systemd/system/portal-volume.socket", "etc/systemd/system/portal-volume.service", strings.TrimPrefix(root, "/")} {
		if _, err := os.Stat(filepath.Join(dest, rel)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}

	// Again without --root, as an upgrade from a new release's source.
	out, err = install()
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	if got, want := read(settings), "LOG_LEVEL=debug\nPORTAL_ROOT="+root+"\n"; got != want {
		t.Errorf("settings after an install without --root: %q, want %q", got, want)
	}
	if !strings.Contains(out, "Portal tree "+root) {
		t.Errorf("the install does not name the tree it kept:\n%s", out)
	}

	for _, args := range [][]string{{"--root", strings.TrimPrefix(root, "/")}, {"--rot", "/srv"}, {"--root", "/srv", "extra"}} {
		before := read(settings)
		out, err := install(args...)
		if code := exitCode(err); code != 2 {
			t.Errorf("install %q: exit %d, want 2\n%s", args, code, out)
		}
		if got := read(settings); got != before {
			t.Errorf("install %q changed the settings: %q", args, got)
		}
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
