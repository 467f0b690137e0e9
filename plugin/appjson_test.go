package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"

	"github.com/portal/portal-volume/driver"
)

func fixture(name string) string { return filepath.Join("..", "appjson", "testdata", name) }

func runAJ(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = runAppJSON(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "app.json")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAppJSONCommands(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{fixture("gitea.json")}, `docker volume create -d portal-volume -o app=gitea -o path=/data -o uid=1000 -o gid=1000 gitea_data
docker volume create -d portal-volume -o app=gitea -o path=/backups -o uid=0 -o gid=0 gitea_backups
`},
		// Quoting; flags after FILE.
		{[]string{fixture("calibre-web.json"), "--format", "commands"}, `docker volume create -d portal-volume -o app=calibre-web -o path=/config -o uid=1000 -o gid=1000 calibre-web_config
docker volume create -d portal-volume -o app=calibre-web -o 'path=/books/Calibre Library' -o uid=1000 -o gid=1000 calibre-web_x.86c4b4e04f36505e
`},
		// One shared directory mounted twice is one volume; --app wins over "id".
		{[]string{"--app", "jf", fixture("jellyfin.json")}, `docker volume create -d portal-volume -o app=jf -o path=/config -o uid=0 -o gid=0 jf_config
docker volume create -d portal-volume -o app=jf -o path=/cache -o uid=0 -o gid=0 jf_cache
docker volume create -d portal-volume -o app=jf -o shared=media jf_shared.media
docker volume create -d portal-volume -o app=jf -o shared=music jf_shared.music
docker volume create -d portal-volume -o app=jf -o path=/var/lib/jellyfin/.aspnet -o uid=0 -o gid=0 jf_x.283dbe8db18cd590
`},
		{[]string{fixture("whoami.json")}, ""},
	} {
		code, out, errOut := runAJ(c.args...)
		if code != 0 || out != c.want || errOut != "" {
			t.Errorf("%v: exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", c.args, code, out, c.want, errOut)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"path=/data":    "path=/data",
		"path=/a b":     "'path=/a b'",
		"path=/it's":    `'path=/it'\''s'`,
		"path=/$HOME":   "'path=/$HOME'",
		"path=/données": "'path=/données'",
		"":              "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

const filebrowserCompose = `# portal-volume volumes of app filebrowser, from its app.json data_dirs.
# Use as an override file: docker-compose -f docker-compose.yml -f THIS_FILE up -d
services:
  "filebrowser":
    volumes:
      - "filebrowser_database:/database:nocopy"
      - "filebrowser_data:/data:nocopy"
      - "filebrowser_shared.documents:/data/documents:nocopy"
      - "filebrowser_shared.media:/data/media:nocopy"
      - "filebrowser_shared.music:/data/music:nocopy"
volumes:
  "filebrowser_database":
    name: "filebrowser_database"
    driver: "portal-volume"
    driver_opts:
      app: "filebrowser"
      path: "/database"
      uid: "1000"
      gid: "1000"
  "filebrowser_data":
    name: "filebrowser_data"
    driver: "portal-volume"
    driver_opts:
      app: "filebrowser"
      path: "/data"
      uid: "1000"
      gid: "1000"
  "filebrowser_shared.documents":
    name: "filebrowser_shared.documents"
    driver: "portal-volume"
    driver_opts:
      app: "filebrowser"
      shared: "documents"
  "filebrowser_shared.media":
    name: "filebrowser_shared.media"
    driver: "portal-volume"
    driver_opts:
      app: "filebrowser"
      shared: "media"
  "filebrowser_shared.music":
    name: "filebrowser_shared.music"
    driver: "portal-volume"
    driver_opts:
      app: "filebrowser"
      shared: "music"
`

func TestAppJSONCompose(t *testing.T) {
	code, out, errOut := runAJ("--format", "compose", fixture("filebrowser.json"))
	if code != 0 || out != filebrowserCompose || errOut != "" {
		t.Errorf("exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, out, filebrowserCompose, errOut)
	}

	// A target with ":" takes the long syntax; --service names the service;
	// a shared volume mounted twice is declared once.
	p := writeFile(t, `{"id": "odd", "data_dirs": ["/a:b", {"path": "/m", "shared_dir": "media"}, {"path": "/n", "shared_dir": "media"}]}`)
	want := `# portal-volume volumes of app odd, from its app.json data_dirs.
# Use as an override file: docker-compose -f docker-compose.yml -f THIS_FILE up -d
services:
  "web":
    volumes:
      - type: volume
        source: "odd_x.0568d01c0020be53"
        target: "/a:b"
        volume:
          nocopy: true
      - "odd_shared.media:/m:nocopy"
      - "odd_shared.media:/n:nocopy"
volumes:
  "odd_x.0568d01c0020be53":
    name: "odd_x.0568d01c0020be53"
    driver: "portal-volume"
    driver_opts:
      app: "odd"
      path: "/a:b"
      uid: "0"
      gid: "0"
  "odd_shared.media":
    name: "odd_shared.media"
    driver: "portal-volume"
    driver_opts:
      app: "odd"
      shared: "media"
`
	code, out, errOut = runAJ("--format", "compose", "--service", "web", p)
	if code != 0 || out != want {
		t.Errorf("exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, out, want, errOut)
	}

	code, out, _ = runAJ("--format", "compose", fixture("whoami.json"))
	if code != 0 || out != "# app whoami has no data_dirs: no volumes to mount.\n" {
		t.Errorf("whoami: exit %d, %q", code, out)
	}
}

func TestAppJSONRefused(t *testing.T) {
	code, out, errOut := runAJ(fixture("bad-nesting.json"))
	want := `portal-volume appjson: ../appjson/testdata/bad-nesting.json: 3 problems; nothing was created
  data_dirs[1]: nested: path /var/www/html/wp-content/uploads lies inside path /var/www of data_dirs[0]; volumes may not nest
  data_dirs[1]: nested: path /var/www/html/wp-content/uploads lies inside path /var/www/html of data_dirs[2]; volumes may not nest
  data_dirs[2]: nested: path /var/www/html lies inside path /var/www of data_dirs[0]; volumes may not nest
`
	if code != 1 || out != "" || errOut != want {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant:\n%s", code, out, errOut, want)
	}
	for _, f := range []string{"bad-path.json", "bad-duplicate.json", "bad-shared.json", "bad-uid.json", "bad-entries.json"} {
		for _, format := range []string{"commands", "compose"} {
			code, out, errOut := runAJ("--format", format, fixture(f))
			if code != 1 || out != "" || !strings.Contains(errOut, "problems; nothing was created") {
				t.Errorf("%s --format %s: exit %d, stdout %q, stderr %q", f, format, code, out, errOut)
			}
		}
	}
}

func TestAppJSONAppName(t *testing.T) {
	noID := writeFile(t, `{"name": "Thing", "data_dirs": ["/data", "/data/x"]}`)
	code, out, errOut := runAJ(noID)
	want := `: 2 problems; nothing was created
  no app name: give --app NAME, or an "id" in the app.json
  data_dirs[1]: nested: path /data/x lies inside path /data of data_dirs[0]; volumes may not nest
`
	if code != 1 || out != "" || !strings.HasSuffix(errOut, want) {
		t.Errorf("no app name: exit %d, stdout %q\nstderr:\n%s\nwant ...%s", code, out, errOut, want)
	}
	code, out, _ = runAJ("--app", "thing", writeFile(t, `{"data_dirs": ["/data"]}`))
	if code != 0 || !strings.HasSuffix(out, " thing_data\n") {
		t.Errorf("--app: exit %d, %q", code, out)
	}
	for _, c := range []struct{ args []string }{
		{[]string{writeFile(t, `{"id": "My App", "data_dirs": ["/data"]}`)}},
		{[]string{writeFile(t, `{"id": 7, "data_dirs": ["/data"]}`)}},
		{[]string{"--app", "a.b", fixture("gitea.json")}},
	} {
		code, out, errOut := runAJ(c.args...)
		if code != 1 || out != "" || !strings.Contains(errOut, "1 problem;") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", c.args, code, out, errOut)
		}
	}
}

func TestAppJSONUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{fixture("gitea.json"), fixture("paperless.json")},
		{"--format", "yaml", fixture("gitea.json")},
		{"--shared", "media,,music", fixture("gitea.json")},
		{"--socket", "rel/ative.sock", fixture("gitea.json")},
		{"--bogus", fixture("gitea.json")},
	} {
		code, out, errOut := runAJ(args...)
		if code != 2 || out != "" || errOut == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and a message", args, code, out, errOut)
		}
	}
	code, _, errOut := runAJ("-h")
	if code != 0 || !strings.Contains(errOut, "usage: portal-volume appjson") {
		t.Errorf("-h: exit %d, %q", code, errOut)
	}
	code, _, errOut = runAJ(filepath.Join(t.TempDir(), "missing.json"))
	if code != 1 || !strings.Contains(errOut, "missing.json: no such file or directory") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
	// --shared is what the plugin allows.
	code, _, errOut = runAJ("--shared", "documents,music", fixture("filebrowser.json"))
	if code != 1 || !strings.Contains(errOut, `data_dirs[3]: shared_dir "media": want one of documents, music`) {
		t.Errorf("--shared: exit %d, %q", code, errOut)
	}
}

// servePlugin runs the real driver on a temporary root behind a unix
// socket, as Docker would reach it.
func servePlugin(t *testing.T) (root, sock string) {
	t.Helper()
	dir := t.TempDir()
	root = filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	d, err := driver.New(driver.Config{Root: root, SharedNames: []string{"documents", "media", "music"}, BootID: "test", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	sock = filepath.Join(dir, "pv.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = volume.NewHandler(d).Serve(l)
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		d.Close()
	})
	return root, sock
}

func TestAppJSONCreate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the driver chowns to 1000:1000: needs root (TestAppJSONCreateRequests covers the protocol)")
	}
	root, sock := servePlugin(t)
	code, out, errOut := runAJ("--create", "--socket", sock, fixture("filebrowser.json"))
	want := `created filebrowser_database (app_data/filebrowser/database)
created filebrowser_data (app_data/filebrowser/data)
created filebrowser_shared.documents (shared/documents)
created filebrowser_shared.media (shared/media)
created filebrowser_shared.music (shared/music)
`
	if code != 0 || out != want || errOut != "" {
		t.Fatalf("exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, out, want, errOut)
	}
	// The directories are where Portal's bind mounts were, owned as asked.
	for dir, owner := range map[string][2]uint32{
		"app_data/filebrowser/database": {1000, 1000},
		"app_data/filebrowser/data":     {1000, 1000},
		"shared/documents":              {0, 0},
		"shared/media":                  {0, 0},
		"shared/music":                  {0, 0},
	} {
		fi, err := os.Lstat(filepath.Join(root, dir))
		if err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != owner[0] || st.Gid != owner[1] {
			t.Errorf("%s owned by %d:%d, want %d:%d", dir, st.Uid, st.Gid, owner[0], owner[1])
		}
	}

	// Again: nothing changes; with --format compose the compose file goes
	// to stdout, with the volumes external, and the report to stderr.
	code, out, errOut = runAJ("--create", "--socket", sock, "--format", "compose", fixture("filebrowser.json"))
	if code != 0 || errOut != want || !strings.Contains(out, "  \"filebrowser_data\":\n    name: \"filebrowser_data\"\n    external: true\n") ||
		strings.Contains(out, "driver") {
		t.Errorf("again, compose: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// The plugin's refusal is reported, by volume; the others are created.
	other := writeFile(t, `{"id": "filebrowser", "data_dirs": [{"path": "/data", "uid": 33, "gid": 33}, "/config"]}`)
	code, out, errOut = runAJ("--create", "--socket", sock, other)
	if code != 1 || out != "created filebrowser_config (app_data/filebrowser/config)\n" ||
		!strings.Contains(errOut, "1 volume not created\n  filebrowser_data: ") {
		t.Errorf("conflict: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// Refused input creates nothing.
	code, _, _ = runAJ("--create", "--socket", sock, fixture("bad-nesting.json"))
	if _, err := os.Lstat(filepath.Join(root, "app_data", "wordpress")); code != 1 || err == nil {
		t.Errorf("bad-nesting: exit %d, app_data/wordpress: %v", code, err)
	}
}

func TestAppJSONCreateNoPlugin(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	code, out, errOut := runAJ("--create", "--socket", sock, fixture("gitea.json"))
	if code != 1 || out != "" || !strings.Contains(errOut, "2 volumes not created") ||
		!strings.Contains(errOut, "gitea_data: plugin socket "+sock+": dial unix") {
		t.Errorf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}

// fakeDriver records Create requests and refuses the names in refuse.
type fakeDriver struct {
	mu      sync.Mutex
	creates []volume.CreateRequest
	refuse  map[string]string
}

func (f *fakeDriver) Create(r *volume.CreateRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates = append(f.creates, *r)
	if msg, ok := f.refuse[r.Name]; ok {
		return errors.New(msg)
	}
	return nil
}
func (f *fakeDriver) List() (*volume.ListResponse, error) { return &volume.ListResponse{}, nil }
func (f *fakeDriver) Get(*volume.GetRequest) (*volume.GetResponse, error) {
	return nil, errors.New("no")
}
func (f *fakeDriver) Remove(*volume.RemoveRequest) error { return nil }
func (f *fakeDriver) Path(*volume.PathRequest) (*volume.PathResponse, error) {
	return nil, errors.New("no")
}
func (f *fakeDriver) Mount(*volume.MountRequest) (*volume.MountResponse, error) {
	return nil, errors.New("no")
}
func (f *fakeDriver) Unmount(*volume.UnmountRequest) error { return nil }
func (f *fakeDriver) Capabilities() *volume.CapabilitiesResponse {
	return &volume.CapabilitiesResponse{Capabilities: volume.Capability{Scope: "local"}}
}

// The requests are what Docker sends: the name and the options, once per
// volume; a refusal is reported by name and the rest still go through.
func TestAppJSONCreateRequests(t *testing.T) {
	f := &fakeDriver{refuse: map[string]string{"jellyfin_cache": "directory app_data/jellyfin/cache already belongs to volume \"old\""}}
	sock := filepath.Join(t.TempDir(), "fake.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = volume.NewHandler(f).Serve(l) }()
	defer func() { l.Close(); <-done }()

	code, out, errOut := runAJ("--create", "--socket", sock, fixture("jellyfin.json"))
	wantErr := `portal-volume appjson: ../appjson/testdata/jellyfin.json: 1 volume not created
  jellyfin_cache: directory app_data/jellyfin/cache already belongs to volume "old"
`
	if code != 1 || errOut != wantErr || strings.Count(out, "created ") != 4 {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant:\n%s", code, out, errOut, wantErr)
	}
	var got []string
	for _, r := range f.creates {
		got = append(got, fmt.Sprintf("%s %v", r.Name, r.Options))
	}
	want := []string{
		"jellyfin_config map[app:jellyfin gid:0 path:/config uid:0]",
		"jellyfin_cache map[app:jellyfin gid:0 path:/cache uid:0]",
		"jellyfin_shared.media map[app:jellyfin shared:media]",
		"jellyfin_shared.music map[app:jellyfin shared:music]",
		"jellyfin_x.283dbe8db18cd590 map[app:jellyfin gid:0 path:/var/lib/jellyfin/.aspnet uid:0]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
