package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestVersionStamp builds the command with a stamp, as scripts/build.sh
// does, and checks what --version prints.
func TestVersionStamp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "portal-volume")
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X main.version=9.8.7-test -X main.commit=abc123def456", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	want := "portal-volume 9.8.7-test (commit abc123def456, " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	if err != nil || string(out) != want {
		t.Errorf("--version: %q, %v; want %q", out, err, want)
	}
}

func TestIsVersionFlag(t *testing.T) {
	for args, want := range map[string]bool{"--version": true, "-version": true, "--version x": false, "": false, "--root /x": false, "version": false} {
		if got := isVersionFlag(strings.Fields(args)); got != want {
			t.Errorf("isVersionFlag(%q) = %v, want %v", args, got, want)
		}
	}
	var b bytes.Buffer
	printVersion(&b)
	if !strings.HasPrefix(b.String(), "portal-volume unstamped (commit unknown, go") {
		t.Errorf("unstamped build prints %q", b.String())
	}
}
