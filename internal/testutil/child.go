package testutil

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// childEnv marks a test binary started by RunChild: its value is the name
// of the test that runs in it.
const childEnv = "PORTAL_VOLUME_TEST_CHILD"

// IsChild tells whether the calling test runs in the child process that
// RunChild started for it.
func IsChild(t testing.TB) bool { return os.Getenv(childEnv) == t.Name() }

// RunChild runs the calling (top-level) test again, alone, in a child
// process of this test binary made with the clone flags given, and
// returns when it ended: the test fails when the child failed, and is
// skipped when the child skipped. Its output is logged. The test must
// start with `if !IsChild(t) { RunChild(...); return }`.
func RunChild(t testing.TB, cloneflags uintptr, env ...string) *os.ProcessState {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
	cmd.Env = append(append(os.Environ(), childEnv+"="+t.Name()), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneflags, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	t.Logf("child process:\n%s", out)
	switch {
	case err != nil:
		t.Fatalf("the child process failed: %v", err)
	case strings.Contains(string(out), "--- SKIP"):
		t.Skip("skipped in the child process")
	}
	return cmd.ProcessState
}

// InMountNamespace runs the calling (top-level) test in a child process
// in a mount namespace of its own, with every mount private, so that what
// it mounts reaches no other namespace and goes when it ends. It returns
// true in the child, which goes on with the test, and false in the parent,
// which returns: `if !testutil.InMountNamespace(t) { return }`.
func InMountNamespace(t testing.TB) bool {
	t.Helper()
	if !IsChild(t) {
		if os.Geteuid() != 0 {
			t.Skip("needs root for a mount namespace")
		}
		RunChild(t, syscall.CLONE_NEWNS)
		return false
	}
	// What unshare(1) does: a new namespace's mounts are peers of the old
	// ones until made private.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make / private: %v", err)
	}
	return true
}
