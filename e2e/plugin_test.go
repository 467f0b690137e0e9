package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlugin: the plugin's own life under a running engine: killed and
// started again, given other settings, reinstalled.
func TestPlugin(t *testing.T) { eachMode(t, pluginCases) }

var pluginCases = []testCase{
	{"RestartKeepsVolumesAndMounts", func(t *testing.T, e *env) {
		e.mustCreate(t, "restart_data", "uid=1000", "gid=1000")
		id := e.sleeper(t, "-v", "restart_data:/v")
		e.Restart(t)
		// Right after the restart Get must be correct: Docker drops its
		// record of a volume whose Get fails.
		v := e.inspect(t, "restart_data")
		if v.Status["uid"] != 1000.0 || v.Status["mounts"] != 1.0 {
			t.Errorf("after restart Status = %v, want uid 1000 and 1 mount", v.Status)
		}
		mustDocker(t, "exec", id, "sh", "-c", "echo during > /v/f")
		mustDocker(t, "rm", "-f", id)
		if got := e.inspect(t, "restart_data").Status["mounts"]; got != 0.0 {
			t.Errorf("mounts after the container went = %v, want 0", got)
		}
		if out := e.run(t, "-v", "restart_data:/v", image, "cat", "/v/f"); out != "during" {
			t.Errorf("after restart a new container reads %q", out)
		}
	}},
	{"ManagedSettings", func(t *testing.T, e *env) {
		if e.mode != "managed" {
			t.Skip("managed mode only")
		}
		// DATA_SOURCE moves the plugin to another tree (an empty one only
		// with its state directory made first, on purpose); LOG_LEVEL=info
		// silences the per-request debug lines.
		other := t.TempDir()
		if err := os.Mkdir(filepath.Join(other, ".portal-volume"), 0o700); err != nil {
			t.Fatal(err)
		}
		mustDocker(t, "plugin", "disable", "-f", driverName)
		t.Cleanup(func() {
			_, _ = docker("plugin", "disable", "-f", driverName)
			_, _ = docker("plugin", "set", driverName, "DATA_SOURCE="+e.Root(), "LOG_LEVEL=debug")
			_, _ = docker("plugin", "enable", driverName)
		})
		mustDocker(t, "plugin", "set", driverName, "DATA_SOURCE="+other, "LOG_LEVEL=info")
		mustDocker(t, "plugin", "enable", driverName)
		e.mustCreate(t, "moved_data")
		e.run(t, "-v", "moved_data:/v", image, "sh", "-c", "echo there > /v/f")
		if got := readFile(t, filepath.Join(other, "app_data/moved/data/f")); got != "there\n" {
			t.Errorf("file in the new DATA_SOURCE = %q", got)
		}
		wantGone(t, e.host("app_data/moved"))
		if daemon != nil {
			before := strings.Count(daemon.Logs(), "call=Get")
			e.inspect(t, "moved_data")
			if after := strings.Count(daemon.Logs(), "call=Get"); after != before {
				t.Errorf("LOG_LEVEL=info still logs requests (%d debug lines more)", after-before)
			}
		}
		mustDocker(t, "volume", "rm", "moved_data")
	}},
	{"ManagedReinstallKeepsVolumes", func(t *testing.T, e *env) {
		p, ok := e.plugin.(*managedPlugin)
		if !ok {
			t.Skip("managed mode only")
		}
		e.mustCreate(t, "reinstall_data", "uid=1000", "gid=1000", "mode=0700")
		e.run(t, "-v", "reinstall_data:/v", image, "sh", "-c", "echo kept > /v/f")
		p.Reinstall(t)
		v := e.inspect(t, "reinstall_data")
		if v.Status["uid"] != 1000.0 || v.Status["mode"] != "0700" {
			t.Errorf("after reinstall Status = %v", v.Status)
		}
		if out := e.run(t, "-v", "reinstall_data:/v", image, "cat", "/v/f"); out != "kept" {
			t.Errorf("after reinstall the container reads %q", out)
		}
	}},
}
