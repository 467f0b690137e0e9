package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portal/portal-volume/internal/testutil"
)

// TestVolumes: named volumes of every kind made, written, inspected,
// removed and refused through docker's own commands.
func TestVolumes(t *testing.T) { eachMode(t, volumeCases) }

var volumeCases = []testCase{
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
}
