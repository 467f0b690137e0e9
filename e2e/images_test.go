package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestImages: images that behave like the ones people run: VOLUME
// declarations (anonymous volumes), a non-root USER, an entrypoint that
// chowns its data directory, a directory Docker copies into an empty
// volume. These are the cases where the engine copies an image's content
// and owner into a volume, which its image store does.
func TestImages(t *testing.T) { eachMode(t, imageCases) }

var anonymousName = regexp.MustCompile(`^[0-9a-f]{64}$`)

type containerMount struct {
	Type, Name, Source, Destination, Driver string
}

func containerMounts(t *testing.T, id string) []containerMount {
	t.Helper()
	var ms []containerMount
	if err := json.Unmarshal([]byte(mustDocker(t, "inspect", "-f", "{{json .Mounts}}", id)), &ms); err != nil {
		t.Fatal(err)
	}
	return ms
}

// anonymousDirs lists the directories below <root>/anonymous.
func (e *env) anonymousDirs(t *testing.T) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir(e.host("anonymous"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, d := range ents {
		out[d.Name()] = true
	}
	return out
}

// newAnonymousDirs is what appeared below <root>/anonymous since before.
func (e *env) newAnonymousDirs(t *testing.T, before map[string]bool) []string {
	t.Helper()
	var out []string
	for n := range e.anonymousDirs(t) {
		if !before[n] {
			out = append(out, n)
		}
	}
	return out
}

var imageCases = []testCase{
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
	{"ImageVolumesBecomeAnonymousVolumes", func(t *testing.T, e *env) {
		t.Cleanup(func() { _, _ = docker("volume", "rm", "-f", "anonimg_data") })
		id := runDetached(t, "--volume-driver", driverName, "-v", "anonimg_data:/data",
			volumesImage, "sh", "-c", "echo mine > /data/f; echo cache > /var/cache/app/c; sleep 600")
		var anon []containerMount
		for _, m := range containerMounts(t, id) {
			if m.Destination == "/data" {
				continue
			}
			if !anonymousName.MatchString(m.Name) || !strings.HasPrefix(m.Driver, driverName) {
				t.Errorf("mount %+v: want an anonymous volume of %s", m, driverName)
			}
			anon = append(anon, m)
		}
		if len(anon) != 2 {
			t.Fatalf("anonymous mounts %+v, want two (/var/lib/db and /var/cache/app)", anon)
		}
		for _, m := range anon {
			dir := e.host("anonymous/" + m.Name)
			wantOwner(t, dir, 0, 0, 0o755)
			if m.Destination == "/var/lib/db" {
				// Docker copied the image's directory into the empty volume.
				if got := readFile(t, filepath.Join(dir, "seed")); got != "db seed\n" {
					t.Errorf("copied seed = %q", got)
				}
			}
			if v := e.inspect(t, m.Name); v.Status["owner"] != "docker" || v.Status["on_remove"] != "delete" {
				t.Errorf("Status of %s = %v", m.Name, v.Status)
			}
		}
		cache := anon[0]
		if cache.Destination != "/var/cache/app" {
			cache = anon[1]
		}
		waitFor(t, "the container's write to /var/cache/app", 30*time.Second, func() error {
			_, err := os.Stat(e.host("anonymous/" + cache.Name + "/c"))
			return err
		})
		mustDocker(t, "rm", "-f", "-v", id)
		for _, m := range anon {
			wantGone(t, e.host("anonymous/"+m.Name))
			if out, err := docker("volume", "inspect", m.Name); err == nil {
				t.Errorf("volume %s still there after rm -v: %s", m.Name, out)
			}
		}
		if got := readFile(t, e.host("app_data/anonimg/data/f")); got != "mine\n" {
			t.Errorf("named volume's file after rm -v = %q", got)
		}
		e.inspect(t, "anonimg_data") // the named volume stays
	}},
	{"AnonymousVolumesOfRunRmLeaveNothing", func(t *testing.T, e *env) {
		before := e.anonymousDirs(t)
		e.run(t, "--volume-driver", driverName, "-v", "/x", image, "sh", "-c", "echo a > /x/f")
		e.run(t, "--mount", "type=volume,dst=/y,volume-driver="+driverName, image, "sh", "-c", "echo b > /y/f")
		if left := e.newAnonymousDirs(t, before); len(left) > 0 {
			t.Errorf("docker run --rm left %v below anonymous/", left)
		}
	}},
	{"AnonymousKeepAndRefuse", func(t *testing.T, e *env) {
		t.Cleanup(func() { e.Configure(t, "ANONYMOUS_VOLUMES=delete") })
		e.Configure(t, "ANONYMOUS_VOLUMES=keep")
		before := e.anonymousDirs(t)
		e.run(t, "--volume-driver", driverName, "-v", "/x", image, "sh", "-c", "echo kept > /x/f")
		left := e.newAnonymousDirs(t, before)
		if len(left) != 1 {
			t.Fatalf("with keep, new anonymous directories %v, want one", left)
		}
		t.Cleanup(func() { os.RemoveAll(e.host("anonymous/" + left[0])) })
		if got := readFile(t, e.host("anonymous/"+left[0]+"/f")); got != "kept\n" {
			t.Errorf("kept file = %q", got)
		}
		if out, err := docker("volume", "inspect", left[0]); err == nil {
			t.Errorf("the kept volume is still known to Docker: %s", out)
		}

		e.Configure(t, "ANONYMOUS_VOLUMES=refuse")
		before = e.anonymousDirs(t)
		out, err := docker("run", "--rm", "--volume-driver", driverName, "-v", "/x", image, "true")
		if err == nil {
			t.Fatalf("refuse: docker run succeeded: %s", out)
		}
		for _, w := range []string{"anonymous", "ANONYMOUS_VOLUMES", "<app>_<dir>"} {
			if !strings.Contains(out, w) {
				t.Errorf("refusal %q does not say %q", strings.TrimSpace(out), w)
			}
		}
		if left := e.newAnonymousDirs(t, before); len(left) > 0 {
			t.Errorf("a refused anonymous volume left %v", left)
		}
	}},
	{"NonRootImageWritesItsVolume", func(t *testing.T, e *env) {
		// What Docker's local driver does is the reference: the image's
		// owner reaches the empty volume by copy-up, and stays.
		script := "stat -c %u:%g /var/lib/app; echo wrote >> /var/lib/app/log && echo wrote"
		t.Cleanup(func() { _, _ = docker("volume", "rm", "-f", "e2elocal_grafana") })
		var local []string
		for range 2 {
			local = append(local, e.run(t, "-v", "e2elocal_grafana:/var/lib/app", userImage, "sh", "-c", script))
		}
		t.Cleanup(func() { _, _ = docker("volume", "rm", "-f", "grafana_data") })
		for i := range 2 {
			got := e.run(t, "--volume-driver", driverName, "-v", "grafana_data:/var/lib/app", userImage, "sh", "-c", script)
			if got != "472:472\nwrote" || got != local[i] {
				t.Errorf("run %d: %q, local driver %q, want 472:472 and wrote", i+1, got, local[i])
			}
		}
		wantOwner(t, e.host("app_data/grafana/data"), 472, 472, 0o755)
		if got := readFile(t, e.host("app_data/grafana/data/log")); got != "wrote\nwrote\n" {
			t.Errorf("log = %q", got)
		}
		if got := readFile(t, e.host("app_data/grafana/data/grafana.ini")); got != "ini\n" {
			t.Errorf("copied grafana.ini = %q", got)
		}
	}},
	{"EntrypointChownStays", func(t *testing.T, e *env) {
		t.Cleanup(func() { _, _ = docker("volume", "rm", "-f", "pgchown_data") })
		// As a database image's entrypoint does: chown the data
		// directory, then run as that user.
		first := e.run(t, "--volume-driver", driverName, "-v", "pgchown_data:/data", image, "sh", "-c",
			"chown 999:999 /data && chmod 700 /data && stat -c %u:%g:%a /data")
		second := e.run(t, "--volume-driver", driverName, "-v", "pgchown_data:/data", image, "stat", "-c", "%u:%g:%a", "/data")
		if first != "999:999:700" || second != "999:999:700" {
			t.Errorf("owner after the chown %q, in the next run %q, want 999:999:700 twice", first, second)
		}
		wantOwner(t, e.host("app_data/pgchown/data"), 999, 999, 0o700)
	}},
	{"ExplicitOwnerOverImageOwner", func(t *testing.T, e *env) {
		// Asked for, the owner wins over the image's (472) at every
		// start: the app as 1000 writes, the image's user cannot.
		e.mustCreate(t, "forced_data", "uid=1000", "gid=1000")
		for i := range 2 {
			got := e.run(t, "--user", "1000:1000", "-v", "forced_data:/var/lib/app", userImage, "sh", "-c",
				"stat -c %u:%g /var/lib/app; echo w >> /var/lib/app/log && echo wrote")
			if got != "1000:1000\nwrote" {
				t.Errorf("run %d: %q", i+1, got)
			}
		}
		wantOwner(t, e.host("app_data/forced/data"), 1000, 1000, 0o755)
		if v := e.inspect(t, "forced_data"); v.Status["owner"] != "enforced" {
			t.Errorf("Status %v", v.Status)
		}
	}},
}
