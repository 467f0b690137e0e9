package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portal/portal-volume/internal/testutil"
)

// runAsClientEnv makes the test binary a client of the socket it names: it
// asks for the driver's capabilities, says "answered" on stdout, and exits
// when its stdin closes (see runAsClient).
const runAsClientEnv = "PORTAL_VOLUME_TEST_RUN_CLIENT"

func runAsClient(sock string) int {
	resp, err := unixClient(sock).Post("http://plugin/VolumeDriver.Capabilities", "application/json", strings.NewReader("{}"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	fmt.Println("answered")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// unitCapabilities is the capability bounding set of the systemd unit, as
// setpriv takes it: the daemon under test has no more than the service.
func unitCapabilities(t *testing.T) string {
	unit, err := os.ReadFile("../scripts/systemd/portal-volume.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(unit), "\n") {
		if caps, ok := strings.CutPrefix(l, "CapabilityBoundingSet="); ok {
			set := "-all"
			for _, c := range strings.Fields(caps) {
				set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
			}
			return set
		}
	}
	t.Fatal("the unit sets no CapabilityBoundingSet")
	return ""
}

// The daemon checks that the engine sees its views: run in a mount
// namespace of its own that is a slave of the host's, as systemd makes one
// for a service with ProtectSystem= and the like, it says in one error
// line that the engine (a client named dockerd, in the host's namespace)
// does not; run beside it, in one debug line that it does. Clients with
// other names are not checked. The daemon runs with the unit's
// capabilities: it may not look through the engine's /proc/<pid>/root.
func TestEngineViews(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the daemon mounts its views")
	}
	for _, tool := range []string{"unshare", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	engine := filepath.Join(t.TempDir(), "dockerd")
	if err := os.Symlink(self, engine); err != nil {
		t.Fatal(err)
	}
	caps := unitCapabilities(t)
	for _, apart := range []bool{false, true} {
		t.Run(fmt.Sprintf("apart=%v", apart), func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, "pv.sock")
			testutil.Mkdir(t, filepath.Join(dir, "root"))
			args := []string{"setpriv", "--bounding-set", caps, self,
				"--root", filepath.Join(dir, "root"), "--views", filepath.Join(dir, "views"), "--socket", sock, "--log-level", "debug"}
			if apart {
				args = append([]string{"unshare", "--mount", "--propagation", "slave"}, args...)
			}
			daemon := exec.Command(args[0], args[1:]...)
			daemon.Env = append(os.Environ(), runAsDaemonEnv+"=1")
			var out testutil.Buffer
			daemon.Stdout, daemon.Stderr = &out, &out
			if err := daemon.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				_ = daemon.Process.Signal(syscall.SIGTERM)
				_ = daemon.Wait()
			}()
			// client runs bin as a client of the daemon, once it answers,
			// and returns its pid; the client lives until the test ends.
			client := func(bin string) int {
				t.Helper()
				for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
					c := exec.Command(bin)
					c.Env = append(os.Environ(), runAsClientEnv+"="+sock)
					stdin, err := c.StdinPipe()
					if err != nil {
						t.Fatal(err)
					}
					stdout, err := c.StdoutPipe()
					if err != nil {
						t.Fatal(err)
					}
					if err := c.Start(); err != nil {
						t.Fatal(err)
					}
					// A client that got no answer (the daemon is not up yet)
					// exits without a word.
					said, _ := bufio.NewReader(stdout).ReadString('\n')
					if said == "answered\n" {
						t.Cleanup(func() { stdin.Close(); _ = c.Wait() })
						return c.Process.Pid
					}
					stdin.Close()
					_ = c.Wait()
					if time.Now().After(deadline) {
						t.Fatalf("client %s had no answer\ndaemon output:\n%s", bin, out.String())
					}
				}
			}
			// lines are the daemon's log lines that name pid.
			lines := func(pid int) []string {
				var found []string
				for _, l := range strings.Split(out.String(), "\n") {
					if strings.Contains(l, fmt.Sprintf("pid=%d ", pid)) {
						found = append(found, l)
					}
				}
				return found
			}
			other := client(self)
			// The check runs beside the connection.
			pid := client(engine)
			for deadline := time.Now().Add(10 * time.Second); len(lines(pid)) == 0 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			want, level := "the engine sees the views directory", "level=debug"
			if apart {
				want, level = "does not see the views directory", "level=error"
			}
			if found := lines(pid); len(found) != 1 || !strings.Contains(found[0], want) || !strings.Contains(found[0], level) {
				t.Fatalf("log lines that name the engine (pid %d): %q, want one at %s that says it %s\ndaemon output:\n%s",
					pid, found, level, want, out.String())
			}
			// The other client, still connected, was checked before the
			// engine was, if at all.
			if found := lines(other); len(found) > 0 {
				t.Fatalf("a client not named dockerd was checked: %q", found)
			}
		})
	}
}
