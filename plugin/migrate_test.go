package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/portal/portal-volume/internal/testutil"
)

func runMG(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = runMigrate(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// portalApp lays out a Portal host in a temporary directory: the tree
// (root) and the app's rendered compose file, in a directory named after
// the app as Portal keeps it.
func portalApp(t *testing.T, app, compose string) (root, file string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "user_data")
	dir := filepath.Join(base, "core", "installed_apps", app)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "docker-compose.yml")
	compose = strings.NewReplacer("{{ fs.app_data }}", root+"/app_data/"+app, "{{ fs.shared }}", root+"/shared",
		"{{ fs.all_app_data }}", root+"/app_data").Replace(compose)
	if err := os.WriteFile(file, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, file
}

func TestMigrateCommand(t *testing.T) {
	root, file := portalApp(t, "navidrome", `services:
  navidrome:
    image: deluan/navidrome
    volumes:
      - "{{ fs.app_data }}/data:/data"
      - "{{ fs.shared }}/music:/music:ro"
      - /etc/localtime:/etc/localtime:ro
`)
	code, out, errOut := runMG("--root", root, file)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	want := `# portal-volume volumes for the bind mounts of docker-compose.yml (portal-volume migrate).
# Use: docker compose -f docker-compose.yml -f THIS_FILE up -d (or docker-compose, the same flags)
services:
  "navidrome":
    volumes:
      - "navidrome_data:/data:nocopy"
      - "navidrome_shared.music:/music:ro,nocopy"
volumes:
  "navidrome_data":
    name: "navidrome_data"
    driver: "portal-volume"
    driver_opts:
      app: "navidrome"
      path: "/data"
  "navidrome_shared.music":
    name: "navidrome_shared.music"
    driver: "portal-volume"
    driver_opts:
      app: "navidrome"
      shared: "music"
`
	if out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	wantErr := `kept services.navidrome.volumes[2] "/etc/localtime:/etc/localtime:ro": /etc/localtime is outside the root ` + root + `
replaced services.navidrome.volumes[0] "` + root + `/app_data/navidrome/data:/data" with volume navidrome_data (app_data/navidrome/data, missing: made at create)
replaced services.navidrome.volumes[1] "` + root + `/shared/music:/music:ro" with volume navidrome_shared.music (shared/music, missing: made at create)
`
	if errOut != wantErr {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, wantErr)
	}

	// The default root is the plugin's; a file of today's hosts says so.
	code, _, errOut = runMG(file)
	if code != 0 || !strings.Contains(errOut, "no bind mount under the root /home/portal/user_data: is the tree elsewhere (today's hosts: --root /home/shard/user_data") {
		t.Errorf("default root: exit %d\n%s", code, errOut)
	}
	// --project names shared and tree volumes.
	code, out, _ = runMG("--root", root, "--project", "music", file)
	if code != 0 || !strings.Contains(out, `"music_shared.music:/music:ro,nocopy"`) || !strings.Contains(out, `"navidrome_data:/data:nocopy"`) {
		t.Errorf("--project: exit %d\n%s", code, out)
	}
}

func TestMigrateRefused(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "docker-compose.yml")
	if err := os.WriteFile(bad, []byte("services:\n\tweb: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runMG("--root", dir, bad)
	if code != 1 || out != "" || errOut != "portal-volume migrate: "+bad+": not a YAML file: yaml: line 2: found character that cannot start any token; nothing was created\n" {
		t.Errorf("not YAML: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = runMG("--root", dir, filepath.Join(dir, "missing.yml"))
	if code != 1 || !strings.Contains(errOut, "missing.yml: no such file or directory; nothing was created") {
		t.Errorf("missing: exit %d, %q", code, errOut)
	}
	odd := filepath.Join(dir, "My App!", "docker-compose.yml")
	_ = os.MkdirAll(filepath.Dir(odd), 0o755)
	_ = os.WriteFile(odd, []byte("services: {a: {image: x}}\n"), 0o644)
	if code, _, errOut = runMG("--root", dir, odd); code != 0 {
		t.Errorf("project from an odd directory name: exit %d, %q", code, errOut)
	}
	for _, args := range [][]string{
		{},
		{bad, bad},
		{"--root", "relative", bad},
		{"--shared", "a,,b", bad},
		{"--socket", "rel/x.sock", bad},
		{"--nope", bad},
	} {
		if code, out, errOut := runMG(args...); code != 2 || out != "" || errOut == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	if code, _, errOut := runMG("-h"); code != 0 || !strings.Contains(errOut, "usage: portal-volume migrate") {
		t.Errorf("-h: exit %d, %q", code, errOut)
	}
}

// Adoption changes nothing: created through the socket by the real driver,
// every existing directory keeps its owner, mode and content.
func TestMigrateCreate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the directories have owners: needs root")
	}
	root, sock := servePlugin(t)
	base := filepath.Dir(root)
	dir := filepath.Join(base, "apps", "immich")
	_ = os.MkdirAll(dir, 0o755)
	file := filepath.Join(dir, "docker-compose.yml")
	compose := strings.ReplaceAll(`services:
  server:
    image: x
    volumes:
      - "ROOT/app_data/immich/upload:/usr/src/app/upload"
      - "ROOT/shared/media:/usr/src/app/upload/library"
      - "ROOT/app_data/immich/pgdata:/pg"
  ml:
    image: x
    volumes:
      - "ROOT/app_data/immich/upload:/upload"
      - "ROOT/app_data/immich/model-cache:/cache"
`, "ROOT", root)
	if err := os.WriteFile(file, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		rel      string
		uid, gid int
		mode     os.FileMode
	}{{"app_data/immich/upload", 1000, 1000, 0o750}, {"app_data/immich/pgdata", 999, 999, 0o700}, {"shared/media", 0, 0, 0o755}} {
		p := filepath.Join(root, d.rel)
		testutil.Mkdir(t, p)
		testutil.Write(t, filepath.Join(p, "kept"), "data\n")
		if err := os.Chown(p, d.uid, d.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, d.mode); err != nil {
			t.Fatal(err)
		}
	}
	before := testutil.Snapshot(t, filepath.Join(root, "app_data", "immich"))
	code, out, errOut := runMG("--root", root, "--create", "--socket", sock, file)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	for _, line := range []string{
		"created immich_upload (app_data/immich/upload)\n",
		"created immich_shared.media (shared/media)\n",
		"created immich_pgdata (app_data/immich/pgdata)\n",
		"created immich_model-cache (app_data/immich/model-cache)\n",
	} {
		if !strings.Contains(errOut, line) {
			t.Errorf("stderr lacks %q:\n%s", line, errOut)
		}
	}
	if strings.Count(errOut, "created ") != 4 || strings.Count(out, "external: true") != 4 || strings.Contains(out, "driver") {
		t.Errorf("want 4 volumes, external:\n%s\n%s", out, errOut)
	}
	after := testutil.Snapshot(t, filepath.Join(root, "app_data", "immich"))
	delete(after, "model-cache") // made by the create
	testutil.Same(t, "existing directories after migrate --create", testutil.WithoutDirMtimes(before), testutil.WithoutDirMtimes(after))
	fi, err := os.Stat(filepath.Join(root, "app_data/immich/model-cache"))
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("model-cache: %v %v", fi, err)
	}

	// Again: the same options, so the plugin takes them as they are.
	if code, _, errOut := runMG("--root", root, "--create", "--socket", sock, file); code != 0 {
		t.Errorf("again: exit %d\n%s", code, errOut)
	}
}
