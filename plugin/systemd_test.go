package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/portal/portal-volume/driver"
)

// These tests prove socket activation and readiness the way systemd does
// them, without systemd as PID 1: the daemon (this test binary, re-executed
// as portal-volume) gets a listening socket as fd 3 with LISTEN_FDS and
// LISTEN_PID, and a NOTIFY_SOCKET that the test reads.

const runAsDaemonEnv = "PORTAL_VOLUME_TEST_RUN_DAEMON"

func TestMain(m *testing.M) {
	if os.Getenv(runAsDaemonEnv) != "" {
		main()
	}
	if sock := os.Getenv(runAsClientEnv); sock != "" {
		os.Exit(runAsClient(sock))
	}
	os.Exit(m.Run())
}

// activated starts the daemon with the given sockets passed as fds 3, 4...
// LISTEN_PID must be the daemon's own pid, which only the daemon knows:
// sh sets it and execs.
func activated(t *testing.T, root string, env []string, files ...*os.File) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, self,
		"--root", root, "--views", root+"-views", "--socket", filepath.Join(t.TempDir(), "not-used.sock"), "--log-level", "debug")
	cmd.Env = append(os.Environ(), runAsDaemonEnv+"=1", "LISTEN_FDS="+strconv.Itoa(len(files)))
	cmd.Env = append(cmd.Env, env...)
	cmd.ExtraFiles = files
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("daemon output:\n%s", out.String())
		}
	})
	return cmd, &out
}

// notifySocket listens where the daemon will send sd_notify messages.
func notifySocket(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

// waitNotify reads notifications until one equals want.
func waitNotify(t *testing.T, c *net.UnixConn, want string) {
	t.Helper()
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %q from the daemon: %v", want, err)
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if line == want {
				return
			}
		}
	}
}

func listener(t *testing.T) (*os.File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plugin.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	// The daemon gets its own copy as fd 3; ours goes, the file stays.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	t.Cleanup(func() { f.Close() })
	return f, path
}

func TestSocketActivationAndReadiness(t *testing.T) {
	root := t.TempDir()
	// A volume made by an earlier run: the first request must see it.
	d, err := driver.New(driver.Config{Root: root, SharedNames: []string{"media"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Create(&volume.CreateRequest{Name: "act_data", Options: map[string]string{"uid": "7"}}); err != nil {
		t.Fatal(err)
	}
	d.Close()

	lf, sock := listener(t)
	notify, notifyPath := notifySocket(t)
	cmd, _ := activated(t, root, []string{"NOTIFY_SOCKET=" + notifyPath, "WATCHDOG_USEC=200000"}, lf)
	waitNotify(t, notify, "READY=1")

	var got volume.GetResponse
	call(t, sock, "/VolumeDriver.Get", `{"Name":"act_data"}`, &got)
	if got.Volume == nil || got.Volume.Mountpoint != root+"/app_data/act/data" || got.Volume.Status["uid"] != 7.0 {
		t.Errorf("first Get on the passed socket = %+v", got.Volume)
	}
	waitNotify(t, notify, "WATCHDOG=1")

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitNotify(t, notify, "STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Errorf("daemon exit after SIGTERM: %v", err)
	}
	// The socket is systemd's: the daemon must leave it in place.
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("activated socket file removed: %v", err)
	}
}

func TestSocketActivationRefusesWrongSockets(t *testing.T) {
	dgram := func() *os.File {
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "d.sock"), Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		f, err := c.File()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		return f
	}
	a, _ := listener(t)
	b, _ := listener(t)
	for _, tc := range []struct {
		name  string
		files []*os.File
		want  string
	}{
		{"two sockets", []*os.File{a, b}, "passed 2 sockets"},
		{"datagram socket", []*os.File{dgram()}, "not a listening unix stream socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, out := activated(t, t.TempDir(), nil, tc.files...)
			if err := cmd.Wait(); err == nil {
				t.Fatalf("daemon accepted %s", tc.name)
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("daemon output %q does not say %q", out.String(), tc.want)
			}
		})
	}
}

func call(t *testing.T, sock, path, body string, res any) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := c.Post("http://plugin"+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(res); err != nil {
		t.Fatal(err)
	}
}

// TestUnitFilesVerify lints the shipped units with systemd-analyze verify,
// pointing ExecStart at a binary that exists here.
func TestUnitFilesVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze (Debian's systemd) is needed in CI")
		}
		t.Skip("no systemd-analyze")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var units []string
	for _, name := range []string{"portal-volume.socket", "portal-volume.service"} {
		b, err := os.ReadFile(filepath.Join("..", "scripts", "systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "ExecStart=/usr/local/bin/portal-volume", "ExecStart="+self)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, filepath.Join(dir, name))
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, units...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
