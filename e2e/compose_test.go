package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portal/portal-volume/appjson"
	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/internal/testutil"
)

// TestCompose: Portal's own path: apps installed from app.json or run by
// compose and moved onto the plugin with portal-volume migrate, under each
// compose client.
func TestCompose(t *testing.T) { eachMode(t, composeCases) }

// composeClient is one of the compose programs Portal runs: Compose v2
// first, docker-compose v1 as its fallback.
type composeClient struct {
	name string // the subtest's name
	argv []string
}

var composeClients = []composeClient{
	{"v2", []string{"docker", "compose"}},
	{"v1", []string{"docker-compose"}},
}

// eachCompose runs body once per compose client, as the subtests v2 and
// v1. A missing client fails the test: scripts/deps.sh installs both.
func eachCompose(t *testing.T, body func(t *testing.T, c composeClient)) {
	for _, c := range composeClients {
		t.Run(c.name, func(t *testing.T) {
			if out, err := runCmd(c.argv[0], append(c.argv[1:], "version")...); err != nil {
				t.Fatalf("%s version: %v\n%s\nscripts/deps.sh installs Compose v2 and docker-compose v1", strings.Join(c.argv, " "), err, out)
			}
			body(t, c)
		})
	}
}

// run runs the client on the project made of files.
func (c composeClient) run(project string, files []string, args ...string) (string, error) {
	argv := append(append([]string{}, c.argv[1:]...), "-p", project)
	for _, f := range files {
		argv = append(argv, "-f", f)
	}
	return runCmd(c.argv[0], append(argv, args...)...)
}

func (c composeClient) mustRun(t *testing.T, project string, files []string, args ...string) string {
	t.Helper()
	out, err := c.run(project, files, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", c.name, strings.Join(args, " "), err, out)
	}
	return out
}

// runSplit runs a command and keeps its stdout and stderr apart.
func runSplit(name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// portalTemplate writes a compose template rendered as Portal renders it
// for app on this plugin's tree, in a directory named after the app (so
// that the compose project, and migrate's default, is the app), and
// returns its path.
func (e *env) portalTemplate(t *testing.T, app, template string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "installed_apps", app)
	file := filepath.Join(dir, "docker-compose.yml")
	rendered := strings.NewReplacer(
		"{{ fs.app_data }}", e.host("app_data/"+app),
		"{{ fs.all_app_data }}", e.host("app_data"),
		"{{ fs.shared }}", e.host("shared"),
		"IMAGE", image,
	).Replace(template)
	testutil.Write(t, file, rendered)
	return file
}

// migrate runs portal-volume migrate on file and writes the override
// beside it; it returns the override's path and the report (stderr).
func (e *env) migrate(t *testing.T, file string, args ...string) (override, report string) {
	t.Helper()
	argv := append([]string{"migrate", "--root", e.Root(), "--driver", driverName, "--socket", e.Socket(t)}, args...)
	out, report, err := runSplit(binary, append(argv, file)...)
	if err != nil {
		t.Fatalf("migrate: %v\nstderr:\n%s", err, report)
	}
	override = filepath.Join(filepath.Dir(file), "portal-volume.override.yml")
	testutil.Write(t, override, out)
	return override, report
}

// owned makes a directory of the tree with an owner, a mode and a file
// (0644, of the same owner).
func (e *env) owned(t *testing.T, rel string, uid, gid int, mode os.FileMode, file string) {
	t.Helper()
	p := e.host(rel)
	testutil.Mkdir(t, p)
	if file != "" {
		f := filepath.Join(p, file)
		testutil.Write(t, f, rel+"\n")
		if err := os.Chown(f, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// kept is what of a snapshot is still the same: every entry of before,
// as it is now, without directory mtimes (the containers add files).
func kept(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	now := testutil.Snapshot(t, dir)
	for k := range now {
		if _, ok := before[k]; !ok {
			delete(now, k)
		}
	}
	testutil.Same(t, dir, testutil.WithoutDirMtimes(before), testutil.WithoutDirMtimes(now))
}

// wantVolumeMount says that the service's container mounts target from a
// volume of the plugin, not from a bind mount.
func wantVolumeMount(t *testing.T, container, target, volume string) {
	t.Helper()
	for _, m := range containerMounts(t, container) {
		if m.Destination == target {
			if m.Type != "volume" || m.Name != volume || !strings.HasPrefix(m.Driver, driverName) {
				t.Errorf("%s: %s is %+v, want volume %s of %s", container, target, m, volume, driverName)
			}
			return
		}
	}
	t.Errorf("%s: nothing mounted at %s", container, target)
}

// waitContent waits for the file at path to hold want; on failure it
// shows what the project's containers said.
func waitContent(t *testing.T, project, path, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			logs, _ := docker("ps", "-a", "--filter", "label=com.docker.compose.project="+project, "--format", "{{.Names}} {{.Status}}")
			t.Fatalf("%s = %q, %v; want %q\ncontainers:\n%s", path, b, err, want, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serviceContainer is the id of the project's container of service.
func serviceContainer(t *testing.T, project, service string) string {
	t.Helper()
	id := mustDocker(t, "ps", "-q", "--filter", "label=com.docker.compose.project="+project,
		"--filter", "label=com.docker.compose.service="+service)
	if id == "" || strings.Contains(id, "\n") {
		t.Fatalf("project %s service %s: containers %q, want one", project, service, id)
	}
	return id
}

var composeCases = []testCase{
	{"AppJSONInstall", func(t *testing.T, e *env) {
		// The subcommand creates a real app.json's volumes through the
		// plugin's socket and prints the compose override; a container run
		// with it, under each compose client, writes into exactly the
		// directories Portal's bind mounts used, with their owners.
		for _, fixture := range []string{"paperless-ngx", "filebrowser", "gitea"} {
			t.Run(fixture, func(t *testing.T) {
				eachCompose(t, func(t *testing.T, c composeClient) {
					file := filepath.Join(repoRoot, "appjson", "testdata", fixture+".json")
					data, err := os.ReadFile(file)
					if err != nil {
						t.Fatal(err)
					}
					app, err := appjson.AppName(data)
					if err != nil {
						t.Fatal(err)
					}
					want, err := appjson.FromAppJSON(data, app, nil)
					if err != nil {
						t.Fatal(err)
					}
					var targets []string
					for _, v := range want {
						t.Cleanup(func() { _, _ = docker("volume", "rm", "-f", v.Name) })
						targets = append(targets, v.Target)
					}
					// No --socket: --create goes through the engine's API,
					// which finds the plugin in either mode.
					override, err := runCmd(binary, "appjson", "--create", "--format", "compose",
						"--driver", driverName, file)
					if err != nil {
						t.Fatalf("appjson --create: %v\n%s", err, override)
					}
					dir := t.TempDir()
					base := "version: \"3.8\"\nservices:\n  " + app + ":\n    image: " + image +
						"\n    network_mode: none\n    command: [\"sh\", \"-c\", \"for d in " + strings.Join(targets, " ") +
						"; do echo " + fixture + " > $$d/e2e-written; done\"]\n"
					// The override is written from the reply: stdout carries the
					// compose file, the report lines go to stderr (merged here).
					override = override[strings.Index(override, "# portal-volume volumes"):]
					for name, text := range map[string]string{"base.yml": base, "override.yml": override} {
						if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
							t.Fatal(err)
						}
					}
					c.mustRun(t, "e2e"+fixture, []string{filepath.Join(dir, "base.yml"), filepath.Join(dir, "override.yml")}, "run", "--rm", app)
					for _, v := range want {
						if got := readFile(t, e.host(filepath.Join(v.Spec.Dir(), "e2e-written"))); got != fixture+"\n" {
							t.Errorf("%s (%s): file = %q", v.Spec.Dir(), v.Name, got)
						}
						if v.Spec.Kind == spec.KindApp {
							wantOwner(t, e.host(v.Spec.Dir()), v.Spec.UID, v.Spec.GID, 0o755)
						} else {
							t.Cleanup(func() { os.Remove(e.host(filepath.Join(v.Spec.Dir(), "e2e-written"))) })
						}
					}
				})
			})
		}
	}},
	{"ComposeDriverOpts", func(t *testing.T, e *env) {
		dir := t.TempDir()
		compose := `version: "3.8"
services:
  app:
    image: ` + image + `
    user: "1000:1000"
    command: sh -c 'echo composed > /data/out && echo img > /images/f'
    volumes:
      - data:/data
      - images:/images
volumes:
  data:
    driver: ` + driverName + `
    driver_opts:
      uid: "1000"
      gid: "1000"
  images:
    driver: ` + driverName + `
    driver_opts:
      app: composeapp
      path: /files/images/
      uid: "1000"
      gid: "1000"
      on_remove: delete
`
		file := filepath.Join(dir, "docker-compose.yml")
		if err := os.WriteFile(file, []byte(compose), 0o644); err != nil {
			t.Fatal(err)
		}
		eachCompose(t, func(t *testing.T, c composeClient) {
			dc := func(args ...string) (string, error) { return c.run("composeapp", []string{file}, args...) }
			t.Cleanup(func() { _, _ = dc("down", "-v", "--remove-orphans") })
			if out, err := dc("run", "--rm", "app"); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if got := readFile(t, e.host("app_data/composeapp/data/out")); got != "composed\n" {
				t.Errorf("data/out = %q", got)
			}
			wantOwner(t, e.host("app_data/composeapp/files/images/f"), 1000, 1000, 0o644)
			if out, err := dc("down", "-v"); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			// down -v removes both volumes: data (keep) stays, images goes.
			if got := readFile(t, e.host("app_data/composeapp/data/out")); got != "composed\n" {
				t.Errorf("after down -v, data/out = %q", got)
			}
			wantGone(t, e.host("app_data/composeapp/files/images"))
		})
	}},
	{"ComposeMigrateAdopts", func(t *testing.T, e *env) {
		// A rendered Portal template whose directories already hold data
		// with owners of their own, as on a Portal host today: migrated,
		// the app runs on the same directories; up, down -v and up again
		// change none of them. (/var/cache/app/ ends in "/": Compose v2
		// cleans it before merging, docker-compose v1 does not.)
		e.owned(t, "app_data/migrated/config", 1000, 1000, 0o750, "settings.txt")
		e.owned(t, "app_data/migrated/var/lib/db", 999, 999, 0o700, "db.dat")
		e.owned(t, "shared/documents", 0, 0, 0o755, "letter.txt")
		file := e.portalTemplate(t, "migrated", `version: '3.5'
services:
  web:
    image: IMAGE
    user: "1000:1000"
    network_mode: none
    command: ["sh", "-c", "cat /config/settings.txt /docs/letter.txt > /config/seen 2>&1; test -d /var/cache/app || exit 1; trap 'exit 0' TERM; sleep 600 & wait"]
    volumes:
      - "{{ fs.app_data }}/config:/config"
      - "{{ fs.shared }}/documents:/docs:ro"
      - "{{ fs.app_data }}/cache:/var/cache/app/"
      - /etc/hostname:/etc/host-name:ro
  db:
    image: IMAGE
    user: "999:999"
    network_mode: none
    command: ["sh", "-c", "cat /var/lib/db/db.dat > /var/lib/db/seen; trap 'exit 0' TERM; sleep 600 & wait"]
    volumes:
      - "{{ fs.app_data }}/var/lib/db:/var/lib/db"
  worker:
    image: IMAGE
    user: "1000:1000"
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]
    volumes:
      - "{{ fs.app_data }}/config:/etc/app:ro"
`)
		override, report := e.migrate(t, file)
		for _, want := range []string{
			"replaced services.web.volumes[0] \"" + e.host("app_data/migrated/config") + ":/config\" with volume migrated_config (app_data/migrated/config, adopted with owner 1000:1000 mode 0750)",
			"replaced services.db.volumes[0] \"" + e.host("app_data/migrated/var/lib/db") + ":/var/lib/db\" with volume migrated_var.lib.db (app_data/migrated/var/lib/db, adopted with owner 999:999 mode 0700)",
			"with volume migrated_shared.documents (shared/documents, adopted as it is)",
			"with volume migrated_cache (app_data/migrated/cache, missing: made at create)",
			"kept services.web.volumes[3] \"/etc/hostname:/etc/host-name:ro\": /etc/hostname is outside the root",
		} {
			if !strings.Contains(report, want) {
				t.Errorf("migrate's report lacks %q:\n%s", want, report)
			}
		}
		eachCompose(t, func(t *testing.T, c composeClient) {
			files := []string{file, override}
			t.Cleanup(func() { _, _ = c.run("migrated", files, "down", "-v") })
			before := testutil.Snapshot(t, e.host("app_data/migrated"))
			docs := testutil.Snapshot(t, e.host("shared/documents"))
			for round := 1; round <= 2; round++ {
				c.mustRun(t, "migrated", files, "up", "-d")
				waitContent(t, "migrated", e.host("app_data/migrated/config/seen"), "app_data/migrated/config\nshared/documents\n")
				waitContent(t, "migrated", e.host("app_data/migrated/var/lib/db/seen"), "app_data/migrated/var/lib/db\n")
				web, db, worker := serviceContainer(t, "migrated", "web"), serviceContainer(t, "migrated", "db"), serviceContainer(t, "migrated", "worker")
				wantVolumeMount(t, web, "/config", "migrated_config")
				wantVolumeMount(t, worker, "/etc/app", "migrated_config")
				if got := mustDocker(t, "exec", worker, "cat", "/etc/app/settings.txt"); got != "app_data/migrated/config" {
					t.Errorf("worker reads %q from the shared volume", got)
				}
				if _, err := docker("exec", worker, "touch", "/etc/app/x"); err == nil {
					t.Error("worker wrote through its read-only mount")
				}
				wantVolumeMount(t, db, "/var/lib/db", "migrated_var.lib.db")
				wantVolumeMount(t, web, "/docs", "migrated_shared.documents")
				c.mustRun(t, "migrated", files, "down", "-v")
				if out, _ := docker("volume", "ls", "-q", "--filter", "name=migrated_"); strings.TrimSpace(out) != "" {
					t.Errorf("round %d: volumes left after down -v: %s", round, out)
				}
				kept(t, e.host("app_data/migrated"), before)
				kept(t, e.host("shared/documents"), docs)
				wantOwner(t, e.host("app_data/migrated/config"), 1000, 1000, 0o750)
				wantOwner(t, e.host("app_data/migrated/var/lib/db"), 999, 999, 0o700)
				wantOwner(t, e.host("app_data/migrated/cache"), 0, 0, 0o755)
				for _, f := range []string{"app_data/migrated/config/seen", "app_data/migrated/var/lib/db/seen"} {
					if err := os.Remove(e.host(f)); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}},
	{"ComposeMigrateWholeTrees", func(t *testing.T, e *env) {
		// A file manager as Portal ships it: its own directory, the whole
		// shared tree and the whole app_data tree (here in the long syntax;
		// both targets end in "/", which the clients read differently).
		e.owned(t, "app_data/notes/files", 1000, 1000, 0o755, "note.txt")
		e.owned(t, "shared/music", 0, 0, 0o755, "song.txt")
		file := e.portalTemplate(t, "fbrowser", `version: '3.5'
services:
  fbrowser:
    image: IMAGE
    network_mode: none
    command: ["sh", "-c", "cat /data/app_data/notes/files/note.txt /data/shared/music/song.txt > /data/seen; trap 'exit 0' TERM; sleep 600 & wait"]
    volumes:
      - "{{ fs.app_data }}/data:/data"
      - "{{ fs.shared }}:/data/shared/"
      - type: bind
        source: "{{ fs.all_app_data }}"
        target: /data/app_data/
`)
		override, report := e.migrate(t, file)
		for _, want := range []string{"with volume fbrowser_tree.shared (shared, adopted as it is)",
			"with volume fbrowser_tree.app_data (app_data, adopted as it is)", "with volume fbrowser_data (app_data/fbrowser/data, missing"} {
			if !strings.Contains(report, want) {
				t.Errorf("migrate's report lacks %q:\n%s", want, report)
			}
		}
		eachCompose(t, func(t *testing.T, c composeClient) {
			files := []string{file, override}
			t.Cleanup(func() { _, _ = c.run("fbrowser", files, "down", "-v") })
			notes := testutil.Snapshot(t, e.host("app_data/notes"))
			c.mustRun(t, "fbrowser", files, "up", "-d")
			seen := e.host("app_data/fbrowser/data/seen")
			waitContent(t, "fbrowser", seen, "app_data/notes/files\nshared/music\n")
			id := serviceContainer(t, "fbrowser", "fbrowser")
			wantVolumeMount(t, id, "/data/app_data", "fbrowser_tree.app_data")
			wantVolumeMount(t, id, "/data/shared", "fbrowser_tree.shared")
			c.mustRun(t, "fbrowser", files, "down", "-v")
			kept(t, e.host("app_data/notes"), notes)
			wantOwner(t, e.host("app_data"), 0, 0, 0o755)
			if got := readFile(t, e.host("shared/music/song.txt")); got != "shared/music\n" {
				t.Errorf("song after down -v: %q", got)
			}
			if err := os.Remove(seen); err != nil {
				t.Error(err)
			}
		})
	}},
	{"ComposeMigrateSharedBeyondDefaults", func(t *testing.T, e *env) {
		// Immich's shared "pictures" is no default shared name: migrate
		// says how to allow it; with the plugin and migrate told, the
		// volumes are created through the socket and named external.
		e.owned(t, "app_data/photos/upload", 1000, 1000, 0o750, "asset.jpg")
		e.owned(t, "shared/pictures", 0, 0, 0o755, "holiday.jpg")
		file := e.portalTemplate(t, "photos", `version: '3.5'
services:
  photos-server:
    image: IMAGE
    user: "1000:1000"
    network_mode: none
    command: ["sh", "-c", "cat /usr/src/app/upload/asset.jpg /usr/src/app/upload/library/holiday.jpg > /usr/src/app/upload/seen-server 2>&1; trap 'exit 0' TERM; sleep 600 & wait"]
    volumes:
      - "{{ fs.app_data }}/upload:/usr/src/app/upload"
      - "{{ fs.shared }}/pictures:/usr/src/app/upload/library"
  photos-microservices:
    image: IMAGE
    user: "1000:1000"
    network_mode: none
    command: ["sh", "-c", "ls /usr/src/app/upload/library > /usr/src/app/upload/seen-micro; trap 'exit 0' TERM; sleep 600 & wait"]
    volumes:
      - "{{ fs.app_data }}/upload:/usr/src/app/upload"
      - "{{ fs.shared }}/pictures:/usr/src/app/upload/library"
`)
		_, report := e.migrate(t, file)
		if !strings.Contains(report, `shared directory "pictures" is not one the plugin allows (documents,media,music): run the plugin with --shared documents,media,music,pictures`) {
			t.Errorf("migrate without pictures allowed:\n%s", report)
		}
		shared := "documents,media,music,pictures"
		t.Cleanup(func() { e.Configure(t, "SHARED_DIRS=documents,media,music") })
		e.Configure(t, "SHARED_DIRS="+shared)
		names := []string{"photos_upload", "photos_shared.pictures"}
		for _, n := range names {
			t.Cleanup(func() { _, _ = docker("volume", "rm", "-f", n) })
		}
		before := testutil.Snapshot(t, e.host("app_data/photos"))
		override, report := e.migrate(t, file, "--shared", shared, "--create")
		if !strings.Contains(report, "created photos_upload (app_data/photos/upload)\ncreated photos_shared.pictures (shared/pictures)\n") {
			t.Errorf("migrate --create:\n%s", report)
		}
		if b, _ := os.ReadFile(override); strings.Count(string(b), "external: true") != 2 {
			t.Errorf("override:\n%s", b)
		}
		eachCompose(t, func(t *testing.T, c composeClient) {
			files := []string{file, override}
			t.Cleanup(func() { _, _ = c.run("photos", files, "down") })
			c.mustRun(t, "photos", files, "up", "-d")
			for f, want := range map[string]string{
				"app_data/photos/upload/seen-server": "app_data/photos/upload\nshared/pictures\n",
				"app_data/photos/upload/seen-micro":  "holiday.jpg\n",
			} {
				waitContent(t, "photos", e.host(f), want)
			}
			for _, svc := range []string{"photos-server", "photos-microservices"} {
				id := serviceContainer(t, "photos", svc)
				wantVolumeMount(t, id, "/usr/src/app/upload", "photos_upload")
				wantVolumeMount(t, id, "/usr/src/app/upload/library", "photos_shared.pictures")
			}
			c.mustRun(t, "photos", files, "down")
			kept(t, e.host("app_data/photos"), before)
			for _, f := range []string{"seen-server", "seen-micro"} {
				_ = os.Remove(e.host("app_data/photos/upload/" + f))
			}
		})
	}},
	{"MigrateBadInput", func(t *testing.T, e *env) {
		// One clear message each, and nothing created: not on disk, not
		// in Docker.
		outside := t.TempDir()
		testutil.Mkdir(t, e.host("app_data/linked"))
		if err := os.Symlink(outside, e.host("app_data/linked/data")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(e.host("app_data/linked")) })
		dir := t.TempDir()
		write := func(name, text string) string {
			p := filepath.Join(dir, name)
			testutil.Write(t, p, strings.ReplaceAll(text, "ROOT", e.Root()))
			return p
		}
		for _, c := range []struct {
			name string
			argv []string
			code int
			want string
		}{
			{"not YAML", []string{"migrate", "--create", write("notyaml.yml", "services:\n\tweb:\n\t\timage: x\n")}, 1,
				"not a YAML file: yaml: line 2: found character that cannot start any token; nothing was created"},
			{"dotdot", []string{"migrate", "--create", write("dotdot.yml", "services:\n  web:\n    image: x\n    volumes:\n      - ROOT/app_data/evil/data/../../../../etc:/x\n")}, 0,
				`ROOT/app_data/evil/data/../../../../etc leaves the root ROOT through ".."`},
			{"symlink", []string{"migrate", "--create", write("symlink.yml", "services:\n  web:\n    image: x\n    volumes:\n      - ROOT/app_data/linked/data:/data\n")}, 0,
				"ROOT/app_data/linked/data is a symlink: the plugin follows no symlink below the root"},
			{"app.json name", []string{"appjson", "--create", filepath.Join(repoRoot, "appjson/testdata/bad-name.json")}, 1,
				`app name "home assistant": want 1 to 64 of A-Z a-z 0-9 _ -, starting with a letter or digit`},
		} {
			t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
				tree := testutil.Snapshot(t, e.Root())
				outsideBefore := testutil.Snapshot(t, outside)
				vols := mustDocker(t, "volume", "ls", "-q")
				argv := append([]string{c.argv[0], "--root", e.Root(), "--driver", driverName, "--socket", e.Socket(t)}, c.argv[1:]...)
				if c.argv[0] == "appjson" {
					argv = append([]string{"appjson", "--driver", driverName, "--socket", e.Socket(t)}, c.argv[1:]...)
				}
				_, stderr, err := runSplit(binary, argv...)
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				want := strings.ReplaceAll(c.want, "ROOT", e.Root())
				if code != c.code || !strings.Contains(stderr, want) || strings.Count(stderr, "\n") > 2 {
					t.Errorf("exit %d, stderr:\n%s\nwant exit %d and one message with %q", code, stderr, c.code, want)
				}
				testutil.Same(t, "the tree", tree, testutil.Snapshot(t, e.Root()))
				testutil.Same(t, "the symlink's target", outsideBefore, testutil.Snapshot(t, outside))
				if now := mustDocker(t, "volume", "ls", "-q"); now != vols {
					t.Errorf("volumes before:\n%s\nafter:\n%s", vols, now)
				}
			})
		}
	}},
	{"ComposeVolumeSubpath", func(t *testing.T, e *env) {
		needAPI(t, 45, "compose's volume subpath (--mount volume-subpath, Docker 26)")
		// A file manager given one shared directory out of the whole
		// tree, and an app one directory of its own volume.
		testutil.Write(t, e.host("shared/documents/e2e-csub/f"), "shared\n")
		t.Cleanup(func() { os.RemoveAll(e.host("shared/documents/e2e-csub")) })
		testutil.Write(t, e.host("app_data/csub/data/conf/f"), "app\n")
		file := filepath.Join(t.TempDir(), "docker-compose.yml")
		testutil.Write(t, file, `services:
  files:
    image: `+image+`
    command: sh -c 'cat /docs/f /conf/f && echo composed > /docs/w'
    volumes:
      - type: volume
        source: tree
        target: /docs
        volume:
          subpath: documents/e2e-csub
      - type: volume
        source: data
        target: /conf
        volume:
          subpath: conf
volumes:
  tree:
    driver: `+driverName+`
    driver_opts:
      tree: shared
  data:
    driver: `+driverName+`
`)
		eachCompose(t, func(t *testing.T, c composeClient) {
			if c.name == "v1" {
				t.Skip("docker-compose v1 has no volume subpath")
			}
			t.Cleanup(func() { _, _ = c.run("csub", []string{file}, "down", "-v") })
			out := c.mustRun(t, "csub", []string{file}, "run", "--rm", "files")
			if !strings.Contains(out, "shared\napp") {
				t.Errorf("the service read %q, want the shared file and the app's", out)
			}
			if got := readFile(t, e.host("shared/documents/e2e-csub/w")); got != "composed\n" {
				t.Errorf("written through the subpath: %q", got)
			}
			c.mustRun(t, "csub", []string{file}, "down", "-v")
			// Tree and app volumes (keep) leave their data.
			if got := readFile(t, e.host("app_data/csub/data/conf/f")); got != "app\n" {
				t.Errorf("after down -v: %q", got)
			}
		})
	}},
}
