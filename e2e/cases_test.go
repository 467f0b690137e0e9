package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portal/portal-volume/internal/testutil"
)

// env is what a case gets: the plugin in one mode, and helpers that clean
// up after the case whatever its outcome.
type env struct {
	plugin
	mode string
}

// create runs docker volume create with driver options; the volume is
// removed when the test ends.
func (e *env) create(t *testing.T, name string, opts ...string) (string, error) {
	t.Helper()
	args := []string{"volume", "create", "-d", driverName}
	for _, o := range opts {
		args = append(args, "-o", o)
	}
	t.Cleanup(func() { _, _ = docker("volume", "rm", "-f", name) })
	return docker(append(args, name)...)
}

func (e *env) mustCreate(t *testing.T, name string, opts ...string) {
	t.Helper()
	if _, err := e.create(t, name, opts...); err != nil {
		t.Fatal(err)
	}
}

// run runs a container of the test image to completion and returns its
// output.
func (e *env) run(t *testing.T, args ...string) string {
	t.Helper()
	return mustDocker(t, append([]string{"run", "--rm"}, args...)...)
}

// sleeper starts a container that holds its volumes until the test ends.
func (e *env) sleeper(t *testing.T, args ...string) string {
	t.Helper()
	id := mustDocker(t, append(append([]string{"run", "-d"}, args...), image, "sleep", "600")...)
	t.Cleanup(func() { _, _ = docker("rm", "-f", id) })
	return id
}

func (e *env) host(rel string) string { return filepath.Join(e.Root(), rel) }

type inspected struct {
	Name       string
	Driver     string
	Mountpoint string
	CreatedAt  string
	Status     map[string]any
}

func (e *env) inspect(t *testing.T, name string) inspected {
	t.Helper()
	var vs []inspected
	if err := json.Unmarshal([]byte(mustDocker(t, "volume", "inspect", name)), &vs); err != nil || len(vs) != 1 {
		t.Fatalf("docker volume inspect %s: %v %v", name, vs, err)
	}
	return vs[0]
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantOwner checks a host path's owner and permission bits.
func wantOwner(t *testing.T, path string, uid, gid uint32, perm os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != uid || st.Gid != gid || fi.Mode().Perm() != perm {
		t.Errorf("%s: owner %d:%d mode %v, want %d:%d %v", path, st.Uid, st.Gid, fi.Mode().Perm(), uid, gid, perm)
	}
}

// lines reports whether the file at path has exactly n lines.
func lines(path string, n int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if got := strings.Count(string(b), "\n"); got != n {
		return fmt.Errorf("%s has %d lines, want %d", path, got, n)
	}
	return nil
}

func wantGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s still exists (err %v)", path, err)
	}
}

var cases = []struct {
	name string
	run  func(t *testing.T, e *env)
}{
	{"CreateByNameAndWrite", func(t *testing.T, e *env) {
		e.mustCreate(t, "byname_data")
		e.run(t, "-v", "byname_data:/v", image, "sh", "-c", "echo hello > /v/file")
		if got := readFile(t, e.host("app_data/byname/data/file")); got != "hello\n" {
			t.Errorf("host file = %q", got)
		}
		wantOwner(t, e.host("app_data/byname/data"), 0, 0, 0o755)
		wantOwner(t, e.host("app_data/byname"), 0, 0, 0o755)
	}},
	{"CreateWithOptionsNonRootWriter", func(t *testing.T, e *env) {
		e.mustCreate(t, "opts-vol", "app=optsapp", "path=/deep/data/", "uid=1000", "gid=1001", "mode=0750")
		out := e.run(t, "--user", "1000:1001", "-v", "opts-vol:/v", image, "sh", "-c", "id -u > /v/uid && cat /v/uid")
		if out != "1000" {
			t.Errorf("container wrote %q", out)
		}
		wantOwner(t, e.host("app_data/optsapp/deep/data"), 1000, 1001, 0o750)
		wantOwner(t, e.host("app_data/optsapp/deep/data/uid"), 1000, 1001, 0o644)
		wantOwner(t, e.host("app_data/optsapp/deep"), 0, 0, 0o755)
	}},
	{"DockerRunCreatesByName", func(t *testing.T, e *env) {
		t.Cleanup(func() { _, _ = docker("volume", "rm", "-f", "runapp_cache") })
		e.run(t, "-v", "runapp_cache:/v", "--volume-driver", driverName, image, "sh", "-c", "echo x > /v/f")
		if got := readFile(t, e.host("app_data/runapp/cache/f")); got != "x\n" {
			t.Errorf("host file = %q", got)
		}
		if v := e.inspect(t, "runapp_cache"); !strings.HasPrefix(v.Driver, driverName) {
			t.Errorf("driver %q", v.Driver)
		}
	}},
	{"ImageDirectoryCopiedOwnerKept", func(t *testing.T, e *env) {
		// Docker copies the image's /seed, and its root owner, into the
		// empty volume; Mount applies uid/gid again before the container
		// starts, so the non-root app can still write.
		e.mustCreate(t, "copyup_seed", "uid=1000", "gid=1000")
		out := e.run(t, "--user", "1000:1000", "-v", "copyup_seed:/seed", image,
			"sh", "-c", "cat /seed/file && touch /seed/mine && echo ok")
		if !strings.Contains(out, "from the image") || !strings.HasSuffix(out, "ok") {
			t.Errorf("container output %q", out)
		}
		wantOwner(t, e.host("app_data/copyup/seed"), 1000, 1000, 0o755)
		wantOwner(t, e.host("app_data/copyup/seed/mine"), 1000, 1000, 0o644)
	}},
	{"InspectStatus", func(t *testing.T, e *env) {
		e.mustCreate(t, "status-vol", "APP=statusapp", "Path=/data/", "uid=33", "gid=34", "mode=750", "on_remove=delete")
		v := e.inspect(t, "status-vol")
		want := map[string]any{"app": "statusapp", "path": "/data", "uid": 33.0, "gid": 34.0,
			"mode": "0750", "shared": "", "on_remove": "delete", "mounts": 0.0}
		for k, w := range want {
			if v.Status[k] != w {
				t.Errorf("Status[%s] = %#v, want %#v", k, v.Status[k], w)
			}
		}
		created, err := time.Parse(time.RFC3339, v.CreatedAt)
		if err != nil || time.Since(created) > time.Hour {
			t.Errorf("CreatedAt %q: %v", v.CreatedAt, err)
		}
		e.sleeper(t, "-v", "status-vol:/v")
		if got := e.inspect(t, "status-vol").Status["mounts"]; got != 1.0 {
			t.Errorf("mounts while a container runs = %v, want 1", got)
		}
	}},
	{"RemoveKeepsData", func(t *testing.T, e *env) {
		e.mustCreate(t, "keep_data")
		e.run(t, "-v", "keep_data:/v", image, "sh", "-c", "echo precious > /v/f")
		mustDocker(t, "volume", "rm", "keep_data")
		if got := readFile(t, e.host("app_data/keep/data/f")); got != "precious\n" {
			t.Errorf("after rm: %q", got)
		}
		// Creating it again adopts the directory with its data.
		e.mustCreate(t, "keep_data")
		if out := e.run(t, "-v", "keep_data:/v", image, "cat", "/v/f"); out != "precious" {
			t.Errorf("after re-create the container reads %q", out)
		}
	}},
	{"RemoveDeletesOnlyItsOwnDirectory", func(t *testing.T, e *env) {
		e.mustCreate(t, "rm-images", "app=rmapp", "path=/files/images", "on_remove=delete")
		e.mustCreate(t, "rm-imports", "app=rmapp", "path=/files/imports")
		outside := e.host("canary")
		if err := os.WriteFile(outside, []byte("alive"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(outside) })
		// The container plants symlinks to outside its volume: Remove must
		// unlink them, never follow them.
		e.run(t, "-v", "rm-images:/v", "-v", "rm-imports:/w", image, "sh", "-c",
			"mkdir -p /v/a/b && echo x > /v/a/b/f && ln -s / /v/root && ln -s ../imports /v/sibling && ln -s ../../../../canary /v/up && echo y > /w/f")
		mustDocker(t, "volume", "rm", "rm-images")
		wantGone(t, e.host("app_data/rmapp/files/images"))
		if got := readFile(t, e.host("app_data/rmapp/files/imports/f")); got != "y\n" {
			t.Errorf("sibling volume's file = %q", got)
		}
		if got := readFile(t, outside); got != "alive" {
			t.Errorf("canary = %q", got)
		}
		wantOwner(t, e.host("app_data/rmapp/files"), 0, 0, 0o755)
	}},
	{"SharedDirectory", func(t *testing.T, e *env) {
		e.mustCreate(t, "share-a", "shared=media", "app=player")
		e.mustCreate(t, "share-b", "shared=media")
		e.run(t, "-v", "share-a:/media", image, "sh", "-c", "echo song > /media/e2e-song")
		t.Cleanup(func() { os.Remove(e.host("shared/media/e2e-song")) })
		if out := e.run(t, "-v", "share-b:/m", image, "cat", "/m/e2e-song"); out != "song" {
			t.Errorf("second shared volume reads %q", out)
		}
		mustDocker(t, "volume", "rm", "share-a", "share-b")
		if got := readFile(t, e.host("shared/media/e2e-song")); got != "song\n" {
			t.Errorf("after rm: %q", got)
		}
	}},
	{"AdoptExistingDirectory", func(t *testing.T, e *env) {
		dir := e.host("app_data/adopt/data")
		if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "sub/old"), []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		e.mustCreate(t, "adopt_data", "uid=1000", "gid=1000")
		wantOwner(t, dir, 1000, 1000, 0o755)
		wantOwner(t, filepath.Join(dir, "sub"), 0, 0, 0o700)
		wantOwner(t, filepath.Join(dir, "sub/old"), 0, 0, 0o600)
		if got := readFile(t, filepath.Join(dir, "sub/old")); got != "old" {
			t.Errorf("content %q", got)
		}
	}},
	{"BadInputRefusedTreeUnchanged", func(t *testing.T, e *env) {
		e.mustCreate(t, "dup_data")
		outside := t.TempDir()
		if err := os.MkdirAll(e.host("app_data/evil"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, e.host("app_data/evil/data")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(e.host("app_data/evil")) })
		before, outsideBefore := testutil.Snapshot(t, e.Root()), testutil.Snapshot(t, outside)
		for _, c := range []struct {
			name string
			opts []string
			want []string
		}{
			{"noseparator", nil, []string{`"noseparator"`, "<app>_<dir>", "-o app="}},
			{"bad_uid", []string{"uid=abc"}, []string{"uid", `"abc"`}},
			{"bad_gid", []string{"gid=4294967295"}, []string{"gid", `"4294967295"`, "4294967294"}},
			{"bad_mode", []string{"mode=8000"}, []string{"mode", `"8000"`, "07777"}},
			{"bad-path", []string{"app=badpath", "path=/a/../b"}, []string{"path", `"/a/../b"`}},
			{"root-path", []string{"app=badpath", "path=/"}, []string{"path", `"/"`}},
			{"path-no-app", []string{"path=/x"}, []string{"path", "app"}},
			{"bad_shared", []string{"shared=videos"}, []string{"shared", `"videos"`, "documents, media, music"}},
			{"shared_uid", []string{"shared=media", "uid=1"}, []string{"uid=1", "shared", "owned by 0:0", "chown"}},
			{"shared_delete", []string{"shared=media", "on_remove=delete"}, []string{"on_remove", "shared"}},
			{"bad_policy", []string{"on_remove=sometimes"}, []string{"on_remove", `"sometimes"`, "keep"}},
			{"bad_key", []string{"colour=blue"}, []string{"colour", `"blue"`, "known keys"}},
			{"bad-app", []string{"app=bad.app"}, []string{"app", `"bad.app"`}},
			{"twice", []string{"app=x", "APP=y"}, []string{"twice"}},
			{"dup-dir", []string{"app=dup", "path=data"}, []string{`"dup_data"`}},
			{"nest-in", []string{"app=dup", "path=/data/inner"}, []string{`"dup_data"`, "nest"}},
			{"evil_data", nil, []string{"app_data/evil/data", "symlink"}},
		} {
			out, err := e.create(t, c.name, c.opts...)
			if err == nil {
				t.Errorf("create %s %v succeeded", c.name, c.opts)
				continue
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("create %s %v: error %q does not contain %q", c.name, c.opts, strings.TrimSpace(out), w)
				}
			}
		}
		testutil.Same(t, "refused creates", testutil.WithoutDirMtimes(before), testutil.WithoutDirMtimes(testutil.Snapshot(t, e.Root())))
		testutil.Same(t, "the symlink's target", outsideBefore, testutil.Snapshot(t, outside))
		// And the nesting rule holds the other way: a volume may not
		// contain one.
		e.mustCreate(t, "outer-ok", "app=nestout", "path=/a/b")
		if out, err := e.create(t, "outer-bad", "app=nestout", "path=/a"); err == nil || !strings.Contains(out, `"outer-ok"`) {
			t.Errorf("a volume containing another was not refused: %v %s", err, out)
		}
	}},
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
	{"DockerdRestartRestoresContainer", func(t *testing.T, e *env) {
		if daemon == nil {
			t.Skip("needs the suite's own engine (PORTAL_E2E_DOCKERD=private)")
		}
		// A restart-policy container comes back after a daemon restart:
		// Docker restores the volume (Get), mounts it again (Mount), and
		// the counts let the volume be removed once the container goes.
		e.mustCreate(t, "dockerdrestart_data", "uid=1000", "gid=1000")
		id := mustDocker(t, "run", "-d", "--restart=always", "--user", "1000:1000",
			"-v", "dockerdrestart_data:/v", image, "sh", "-c", "echo start >> /v/starts; sleep 600")
		t.Cleanup(func() { _, _ = docker("rm", "-f", id) })
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
