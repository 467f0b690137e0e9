package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestEngineRestarts: mount counts follow the engine through a SIGKILL of
// dockerd, a clean restart and a live-restore restart, with the plugin
// itself killed in the middle of each; a container with a restart policy
// comes back with its volume.
func TestEngineRestarts(t *testing.T) { eachMode(t, engineCases) }

var engineCases = []testCase{
	{"DockerdRestartRestoresContainer", func(t *testing.T, e *env) {
		if daemon == nil {
			t.Skip("needs the suite's own engine (PORTAL_E2E_DOCKERD=private)")
		}
		// A restart-policy container comes back after a daemon restart:
		// Docker restores the volume (Get), mounts it again (Mount), and
		// the counts let the volume be removed once the container goes.
		e.mustCreate(t, "dockerdrestart_data", "uid=1000", "gid=1000")
		id := runDetached(t, "--restart=always", "--user", "1000:1000",
			"-v", "dockerdrestart_data:/v", image, "sh", "-c", "echo start >> /v/starts; sleep 600")
		starts := e.host("app_data/dockerdrestart/data/starts")
		waitFor(t, "the container's first start", 30*time.Second, func() error { return lines(starts, 1) })
		if err := daemon.restart(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the container to start again", 60*time.Second, func() error { return lines(starts, 2) })
		if v := e.inspect(t, "dockerdrestart_data"); v.Status["uid"] != 1000.0 || v.Status["mounts"] != 1.0 {
			t.Errorf("after the daemon restart Status = %v, want uid 1000 and 1 mount", v.Status)
		}
		mustDocker(t, "rm", "-f", id)
		mustDocker(t, "volume", "rm", "dockerdrestart_data")
	}},
	{"DockerdKilledVolumesRemovable", func(t *testing.T, e *env) {
		needDaemon(t)
		// Two containers hold a volume each when dockerd is killed: one
		// without restart policy (the new engine finds it dead), one with
		// --restart=always (the new engine starts it again, under the
		// same mount ID).
		e.mustCreate(t, "killplain_data")
		e.mustCreate(t, "killalways_data")
		plain := e.sleeper(t, "-v", "killplain_data:/v")
		always := startAlways(t, e, "killalways_data", "app_data/killalways/data/starts")
		mark := e.logMark()
		daemon.kill()
		if e.mode == "legacy" {
			// The plugin dies too while no engine runs: its restart must
			// not pass for the engine's (a managed plugin's restart needs
			// the engine: it comes below).
			e.Restart(t)
		}
		if err := daemon.start(); err != nil {
			t.Fatal(err)
		}
		// Without live-restore the new engine stops the plugin that
		// outlived the old one and starts it again, a race in which it
		// can lose the plugin's propagated mount (see
		// docs/state-and-recovery.md): then the container fails to
		// start, and the documented remedy must bring it back.
		starts := e.host("app_data/killalways/data/starts")
		lost := ""
		waitFor(t, "the --restart=always container to start again", 60*time.Second, func() error {
			err := lines(starts, 2)
			if err != nil && e.mode == "managed" {
				if msg, _ := docker("inspect", "-f", "{{.State.Error}}", always); lostPropagatedMount(msg) {
					lost = msg
					return nil
				}
			}
			return err
		})
		if lost != "" {
			t.Logf("the --restart=always container did not start again (the engine lost the propagated mount): %s", lost)
			e.mendLostMount(t, func() error {
				if _, err := docker("start", always); err != nil {
					return err
				}
				waitFor(t, "the container's start", 30*time.Second, func() error { return lines(starts, 2) })
				return nil
			})
		}
		e.logCalls(t, "dockerd SIGKILLed and started again", mark)
		e.wantMounts(t, "killalways_data", 1)
		e.wantMounts(t, "killplain_data", 0)
		// The plugin's own restart in the middle changes nothing.
		mark = e.logMark()
		e.Restart(t)
		e.wantMounts(t, "killalways_data", 1)
		mustDocker(t, "exec", always, "true")
		e.logCalls(t, "plugin killed and started again", mark)
		mark = e.logMark()
		mustDocker(t, "rm", "-f", plain, always)
		mustDocker(t, "volume", "rm", "killplain_data", "killalways_data")
		e.logCalls(t, "containers and volumes removed", mark)
	}},
	{"DockerdStoppedVolumesRemovable", func(t *testing.T, e *env) {
		needDaemon(t)
		e.mustCreate(t, "stopplain_data")
		e.mustCreate(t, "stopalways_data")
		plain := e.sleeper(t, "-v", "stopplain_data:/v")
		always := startAlways(t, e, "stopalways_data", "app_data/stopalways/data/starts")
		// This time the plugin dies first, then the engine stops cleanly.
		e.Restart(t)
		mark := e.logMark()
		if err := daemon.restart(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the --restart=always container to start again", 60*time.Second,
			func() error { return lines(e.host("app_data/stopalways/data/starts"), 2) })
		e.logCalls(t, "dockerd stopped (SIGTERM) and started again", mark)
		e.wantMounts(t, "stopalways_data", 1)
		e.wantMounts(t, "stopplain_data", 0)
		mark = e.logMark()
		mustDocker(t, "rm", "-f", plain, always)
		mustDocker(t, "volume", "rm", "stopplain_data", "stopalways_data")
		e.logCalls(t, "containers and volumes removed", mark)
	}},
	{"LiveRestoreKeepsDataInUse", func(t *testing.T, e *env) {
		needDaemon(t)
		setLiveRestore(t, e, true)
		e.mustCreate(t, "live_data", "on_remove=delete")
		id := e.sleeper(t, "-v", "live_data:/v")
		mustDocker(t, "exec", id, "sh", "-c", "echo precious > /v/f")
		file := e.host("app_data/live/data/f")
		for _, how := range []string{"SIGTERM", "SIGKILL"} {
			mark := e.logMark()
			if how == "SIGTERM" {
				daemon.stop()
			} else {
				daemon.kill()
			}
			if err := daemon.start(); err != nil {
				t.Fatal(err)
			}
			mustDocker(t, "exec", id, "true") // the container lived through it
			e.logCalls(t, "live-restore: dockerd "+how+" and started again", mark)
			// Every engine tested leaves the living container's mount
			// alone: no Unmount (nor Mount) on the way down or up.
			if calls := e.callsSince(mark, "Mount", "Unmount"); len(calls) > 0 {
				t.Errorf("live-restore, dockerd %s: the engine sent %v", how, calls)
			}
			e.wantMounts(t, "live_data", 1)
			// Straight to the socket, as a Remove that Docker would not
			// send: refused, nothing deleted.
			if err := e.socketRemove(t, "live_data"); err == nil || !strings.Contains(err.Error(), "in use") {
				t.Errorf("Remove on the socket while the container lives: %v, want in use", err)
			}
			if got := readFile(t, file); got != "precious\n" {
				t.Fatalf("after a refused Remove the file holds %q", got)
			}
			e.Restart(t)
			if err := e.socketRemove(t, "live_data"); err == nil {
				t.Errorf("Remove on the socket after a plugin restart succeeded while the container lives")
			}
			e.wantMounts(t, "live_data", 1)
		}
		mark := e.logMark()
		mustDocker(t, "rm", "-f", id)
		e.logCalls(t, "live-restored container removed", mark)
		mustDocker(t, "volume", "rm", "live_data")
		wantGone(t, e.host("app_data/live/data"))
	}},
	{"DockerdKilledOnBusyHostLiveRestore", func(t *testing.T, e *env) {
		needDaemon(t)
		// A host running many containers has hundreds of mounts. There,
		// without live-restore, the engine restarted after a SIGKILL can
		// unmount a managed plugin's propagated mount after it started
		// the plugin again (see docs/state-and-recovery.md). With
		// live-restore it keeps the running plugin: containers old and
		// new reach their volume.
		//
		// In this order, the mounts are gone again before the engine is
		// restarted without live-restore at the end: that restart stops
		// and starts the plugin too, and must not lose the race itself.
		setLiveRestore(t, e, true)
		strayMounts(t, 300)
		e.mustCreate(t, "busyhost_data")
		id := e.sleeper(t, "-v", "busyhost_data:/v")
		daemon.kill()
		if err := daemon.start(); err != nil {
			t.Fatal(err)
		}
		mustDocker(t, "exec", id, "sh", "-c", "echo old > /v/old")
		mustDocker(t, "run", "--rm", "-v", "busyhost_data:/v", image, "sh", "-c", "echo new > /v/new")
		for _, f := range []string{"old", "new"} {
			if got := readFile(t, e.host("app_data/busyhost/data/"+f)); got != f+"\n" {
				t.Errorf("after dockerd's SIGKILL, the %s container's write reads %q in the volume's directory", f, got)
			}
		}
	}},
	{"DockerdKilledOnBusyHost", func(t *testing.T, e *env) {
		needDaemon(t)
		// The same without live-restore, Docker's default. The restarted
		// engine may have lost a managed plugin's propagated mount; then
		// a container that uses the volume fails to start, and a restart
		// of the plugin mends it. It never starts with its volume's path
		// bound to an empty directory on the engine's disk, writing there.
		strayMounts(t, 300)
		e.mustCreate(t, "busydefault_data")
		e.sleeper(t, "-v", "busydefault_data:/v")
		daemon.kill()
		if err := daemon.start(); err != nil {
			t.Fatal(err)
		}
		file := "written-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		write := func() error {
			_, err := docker("run", "--rm", "-v", "busydefault_data:/v", image, "sh", "-c", "echo new > /v/"+file)
			return err
		}
		if err := write(); err == nil {
			t.Log("the first container after dockerd's SIGKILL reached its volume")
		} else if e.mode == "legacy" || !lostPropagatedMount(err.Error()) {
			t.Fatalf("after dockerd's SIGKILL: %v", err)
		} else {
			t.Logf("the first container after dockerd's SIGKILL did not start (the engine lost the propagated mount): %v", err)
			e.mendLostMount(t, write)
		}
		written := e.host("app_data/busydefault/data/" + file)
		if got := readFile(t, written); got != "new\n" {
			t.Errorf("after dockerd's SIGKILL, the container's write reads %q in the volume's directory", got)
		}
		// The engine's directory reaches the tree through the propagated
		// mount: the same file. Any other is a write that went astray.
		found, err := exec.Command("find", daemon.dir, "-name", file).Output()
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.Stat(written)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range strings.Fields(string(found)) {
			if fi, err := os.Stat(p); err != nil || !os.SameFile(fi, want) {
				t.Errorf("the container's write is also at %s, in the engine's directory (%v)", p, err)
			}
		}
	}},
}

// lostPropagatedMount answers whether a container's start failed the way
// it does when the engine has lost the managed plugin's propagated mount:
// the view's path does not exist on the engine's side.
func lostPropagatedMount(msg string) bool {
	return strings.Contains(msg, "propagated-mount") && strings.Contains(msg, "no such file or directory")
}

// mendLostMount applies the documented remedy for a lost propagated mount,
// a restart of the plugin, and then retry. On a busy host the restart can
// lose the same race (disable returns before the engine's unmount ends):
// the remedy, as the docs give it, may take a second.
func (e *env) mendLostMount(t *testing.T, retry func() error) {
	t.Helper()
	for try := 1; ; try++ {
		e.Restart(t)
		err := retry()
		if err == nil {
			return
		}
		if try == 3 {
			t.Fatalf("after %d restarts of the plugin: %v", try, err)
		}
		t.Logf("after restart %d of the plugin: %v", try, err)
	}
}

// strayMounts makes n bind mounts in the suite's mount namespace (which
// its engine shares), as a host running many containers has, and
// unmounts them when the test ends.
func strayMounts(t *testing.T, n int) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		at := filepath.Join(dir, strconv.Itoa(i))
		if err := os.Mkdir(at, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(src, at, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := unix.Unmount(at, unix.MNT_DETACH); err != nil {
				t.Error(err)
			}
		})
	}
}

func needDaemon(t *testing.T) {
	if daemon == nil {
		t.Skip("needs the suite's own engine (PORTAL_E2E_DOCKERD=private)")
	}
}

// setLiveRestore restarts the suite's engine with live-restore on or off,
// and back as it was when the test ends.
func setLiveRestore(t *testing.T, e *env, on bool) {
	t.Helper()
	if err := daemon.setLiveRestore(on); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := daemon.setLiveRestore(!on); err != nil {
			t.Error(err)
		}
		if err := daemon.restart(); err != nil {
			t.Error(err)
		}
		if on && e.mode == "managed" {
			// The engine, started without live-restore, stopped and
			// started again the plugin that outlived it: the race in
			// which it can lose the plugin's mounts (see
			// docs/state-and-recovery.md). The next case gets a plugin
			// the engine sees.
			e.Restart(t)
		}
	})
	if err := daemon.restart(); err != nil {
		t.Fatal(err)
	}
}

// startAlways runs a --restart=always container that appends a line to
// starts (a host path below the root) at every start.
func startAlways(t *testing.T, e *env, vol, starts string) string {
	t.Helper()
	id := runDetached(t, "--restart=always", "-v", vol+":/v", image,
		"sh", "-c", "echo start >> /v/starts; sleep 600")
	waitFor(t, "the container's first start", 30*time.Second, func() error { return lines(e.host(starts), 1) })
	return id
}

func (e *env) wantMounts(t *testing.T, name string, n float64) {
	t.Helper()
	if got := e.inspect(t, name).Status["mounts"]; got != n {
		t.Errorf("%s: Status mounts = %v, want %v", name, got, n)
	}
}

// pluginLog is the plugin's output: its own in legacy mode, dockerd's log
// (which holds it) in managed mode.
func (e *env) pluginLog() string {
	if e.mode == "managed" {
		return daemon.Logs()
	}
	return e.Logs()
}

func (e *env) logMark() int { return len(e.pluginLog()) }

// logCalls logs what the plugin was asked since mark, one call a line:
// the record of what the engine really does.
func (e *env) logCalls(t *testing.T, what string, mark int) {
	t.Helper()
	log := e.pluginLog()
	var calls []string
	for _, l := range strings.Split(log[min(mark, len(log)):], "\n") {
		for _, w := range []string{"call=", "engine", "stale", "state loaded", "msg=serving", "shutting down", "Starting up", "Processing signal"} {
			if strings.Contains(l, w) && !strings.Contains(l, "call=Capabilities") {
				calls = append(calls, l)
				break
			}
		}
	}
	t.Logf("%s: the plugin saw:\n%s", what, strings.Join(calls, "\n"))
}

// callsSince lists the calls of the given kinds (such as "Mount") that
// the plugin logged since mark.
func (e *env) callsSince(mark int, kinds ...string) []string {
	log := e.pluginLog()
	var calls []string
	for _, l := range strings.Split(log[min(mark, len(log)):], "\n") {
		for _, k := range kinds {
			if strings.Contains(l, "call="+k+" ") {
				calls = append(calls, k)
			}
		}
	}
	return calls
}

// socketRemove sends VolumeDriver.Remove straight to the plugin's socket.
func (e *env) socketRemove(t *testing.T, name string) error {
	t.Helper()
	sock := e.Socket(t)
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := c.Post("http://plugin/VolumeDriver.Remove", "application/json", strings.NewReader(`{"Name":"`+name+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var res struct{ Err string }
	_ = json.Unmarshal(b, &res)
	if resp.StatusCode != http.StatusOK || res.Err != "" {
		return fmt.Errorf("VolumeDriver.Remove: %s %s", resp.Status, b)
	}
	return nil
}
