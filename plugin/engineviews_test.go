package main

import (
	"fmt"
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
// asks for the driver's capabilities and exits (see runAsClient).
const runAsClientEnv = "PORTAL_VOLUME_TEST_RUN_CLIENT"

func runAsClient(sock string) int {
	resp, err := unixClient(sock).Post("http://plugin/VolumeDriver.Capabilities", "application/json", strings.NewReader("{}"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	return 0
}

// The daemon checks that the engine sees its views: run in a mount
// namespace of its own that is a slave of the host's, as systemd makes one
// for a service with ProtectSystem= and the like, it says in one error
// line that the engine (a client named dockerd, in the host's namespace)
// does not; run beside it, in one debug line that it does. Clients with
// other names are not checked.
func TestEngineViews(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the daemon mounts its views")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	engine := filepath.Join(t.TempDir(), "dockerd")
	if err := os.Symlink(self, engine); err != nil {
		t.Fatal(err)
	}
	for _, apart := range []bool{false, true} {
		t.Run(fmt.Sprintf("apart=%v", apart), func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, "pv.sock")
			testutil.Mkdir(t, filepath.Join(dir, "root"))
			args := []string{self, "--root", filepath.Join(dir, "root"), "--views", filepath.Join(dir, "views"), "--socket", sock, "--log-level", "debug"}
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
			// client runs bin as a client of the daemon and returns its pid.
			client := func(bin string) int {
				t.Helper()
				var err error
				for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					c := exec.Command(bin)
					c.Env = append(os.Environ(), runAsClientEnv+"="+sock)
					if err = c.Run(); err == nil {
						return c.Process.Pid
					}
				}
				t.Fatalf("client %s: %v\ndaemon output:\n%s", bin, err, out.String())
				return 0
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
			// Whether a peer is the engine is decided as its connection is
			// accepted, before it is answered: a client that is not has no
			// line once it has its answer.
			if found := lines(client(self)); len(found) > 0 {
				t.Fatalf("a client not named dockerd was checked: %q", found)
			}
			// The check itself runs beside the connection.
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
		})
	}
}
