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
`},
		// Quoting; flags after FILE; a plain string entry has no owner.
		{[]string{fixture("convos.json"), "--format", "commands"}, `docker volume create -d portal-volume -o app=convos -o 'path=/~/convos/data' convos_x.79a9b5a372095dbd
`},
		// --app wins over "name"; shared and tree volumes.
		{[]string{"--app", "fb", fixture("filebrowser.json")}, `docker volume create -d portal-volume -o app=fb -o path=/data fb_data
docker volume create -d portal-volume -o app=fb -o shared=documents fb_shared.documents
docker volume create -d portal-volume -o app=fb -o shared=media fb_shared.media
docker volume create -d portal-volume -o app=fb -o shared=music fb_shared.music
docker volume create -d portal-volume -o tree=app_data fb_tree.app_data
docker volume create -d portal-volume -o tree=service_data fb_tree.service_data
`},
		{[]string{fixture("element.json")}, ""},
		{[]string{fixture("drawio.json")}, ""},
	} {
		code, out, errOut := runAJ(c.args...)
		if code != 0 || out != c.want || errOut != "" {
			t.Errorf("%v: exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", c.args, code, out, c.want, errOut)
		}
	}
}

const filebrowserCompose = `# portal-volume volumes of app filebrowser, from its app.json data_dirs.
# Use as an override file: docker-compose -f docker-compose.yml -f THIS_FILE up -d
services:
  "filebrowser":
    volumes:
      - "filebrowser_data:/data:nocopy"
      - "filebrowser_shared.documents:/data/documents:nocopy"
      - "filebrowser_shared.media:/data/media:nocopy"
      - "filebrowser_shared.music:/data/music:nocopy"
      - "filebrowser_tree.app_data:/data/portal_core/app_data:nocopy"
      - "filebrowser_tree.service_data:/data/portal_core/service_data:nocopy"
volumes:
  "filebrowser_data":
    name: "filebrowser_data"
    driver: "portal-volume"
    driver_opts:
      app: "filebrowser"
      path: "/data"
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
  "filebrowser_tree.app_data":
    name: "filebrowser_tree.app_data"
    driver: "portal-volume"
    driver_opts:
      tree: "app_data"
  "filebrowser_tree.service_data":
    name: "filebrowser_tree.service_data"
    driver: "portal-volume"
    driver_opts:
      tree: "service_data"
`

func TestAppJSONCompose(t *testing.T) {
	code, out, errOut := runAJ("--format", "compose", fixture("filebrowser.json"))
	if code != 0 || out != filebrowserCompose || errOut != "" {
		t.Errorf("exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, out, filebrowserCompose, errOut)
	}

	// A target with ":" takes the long syntax; --service names the service;
	// a shared volume mounted twice is declared once.
	p := writeFile(t, `{"name": "odd", "data_dirs": ["/a:b", {"path": "/m", "shared_dir": "media"}, {"path": "/n", "shared_dir": "media"}]}`)
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

	code, out, _ = runAJ("--format", "compose", fixture("element.json"))
	if code != 0 || out != "# app element has no data_dirs: no volumes to mount.\n" {
		t.Errorf("element: exit %d, %q", code, out)
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
	for _, f := range []string{"bad-name.json", "bad-version.json", "bad-path.json", "bad-duplicate.json", "bad-shared.json", "bad-uid.json", "bad-entries.json"} {
		for _, format := range []string{"commands", "compose"} {
			code, out, errOut := runAJ("--format", format, fixture(f))
			if code != 1 || out != "" || !strings.Contains(errOut, "; nothing was created") {
				t.Errorf("%s --format %s: exit %d, stdout %q, stderr %q", f, format, code, out, errOut)
			}
		}
	}
}

func TestAppJSONAppName(t *testing.T) {
	noID := writeFile(t, `{"id": "thing", "data_dirs": ["/data", "/data/x"]}`)
	code, out, errOut := runAJ(noID)
	want := `: 2 problems; nothing was created
  no app name: give --app NAME, or a "name" in the app.json
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
		{[]string{fixture("bad-name.json")}},
		{[]string{writeFile(t, `{"name": 7, "data_dirs": ["/data"]}`)}},
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
		{fixture("gitea.json"), fixture("paperless-ngx.json")},
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
	if code != 1 || !strings.Contains(errOut, `data_dirs[2]: shared_dir "media": want one of documents, music`) {
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
	want := `created filebrowser_data (app_data/filebrowser/data)
created filebrowser_shared.documents (shared/documents)
created filebrowser_shared.media (shared/media)
created filebrowser_shared.music (shared/music)
created filebrowser_tree.app_data (app_data)
created filebrowser_tree.service_data (service_data)
`
	if code != 0 || out != want || errOut != "" {
		t.Fatalf("exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, out, want, errOut)
	}
	// The directories are where Portal's bind mounts were, owned as asked.
	for dir, owner := range map[string][2]uint32{
		"app_data/filebrowser/data": {0, 0},
		"app_data":                  {0, 0},
		"service_data":              {0, 0},
		"shared/documents":          {0, 0},
		"shared/media":              {0, 0},
		"shared/music":              {0, 0},
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
	other := writeFile(t, `{"name": "filebrowser", "data_dirs": [{"path": "/data", "uid": 33, "gid": 33}, "/config"]}`)
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
	if code != 1 || out != "" || !strings.Contains(errOut, "1 volume not created") ||
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
	f := &fakeDriver{refuse: map[string]string{"myapp_more_data": "directory app_data/myapp/more_data already belongs to volume \"old\""}}
	sock := filepath.Join(t.TempDir(), "fake.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = volume.NewHandler(f).Serve(l) }()
	defer func() { l.Close(); <-done }()

	code, out, errOut := runAJ("--create", "--socket", sock, fixture("myapp.json"))
	wantErr := `portal-volume appjson: ../appjson/testdata/myapp.json: 1 volume not created
  myapp_more_data: directory app_data/myapp/more_data already belongs to volume "old"
`
	if code != 1 || errOut != wantErr || strings.Count(out, "created ") != 2 {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant:\n%s", code, out, errOut, wantErr)
	}
	var got []string
	for _, r := range f.creates {
		got = append(got, fmt.Sprintf("%s %v", r.Name, r.Options))
	}
	want := []string{
		"myapp_user_data map[app:myapp path:/user_data]",
		"myapp_more_data map[app:myapp gid:1000 path:/more_data uid:1000]",
		"myapp_shared.media map[app:myapp shared:media]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
