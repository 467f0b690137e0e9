// Fixtures (testdata/*.json; JSON holds no comments, so they are listed
// here). Every file in testdata/ must appear in fixtures or refusals below.
//
// Accepted:
//
//	gitea.json        v4.0; an object entry with uid/gid 1000 (/data) and a
//	                  string entry with a trailing slash (/backups/, owner 0:0).
//	paperless.json    v3.0; deep paths /usr/src/paperless/{data,media,consume,
//	                  export/} (four siblings under one parent, string and
//	                  object forms, a trailing slash); app name with "-".
//	syncthing.json    v2.0; trailing slashes, a path without a leading slash
//	                  (sync), doubled slashes (//var//syncthing//index//).
//	photos.json       v4.0; siblings /files/images and /files/imports, and
//	                  /files/images-cache, which shares a string prefix with
//	                  /files/images but does not lie inside it.
//	filebrowser.json  v4.0; app dirs /database and /data (uid/gid 1000) and the
//	                  shared documents, media and music mounted under /data in
//	                  the container (allowed: shared dirs never nest on the host).
//	nextcloud.json    v2.0; mixed forms: string, object with uid/gid 33, object
//	                  with path only, two shared dirs (one with a trailing slash).
//	jellyfin.json     v1.0; shared media mounted twice (/media, /data/movies:
//	                  one volume), shared music, and a hidden component
//	                  (/var/lib/jellyfin/.aspnet: hash-form name).
//	calibre-web.json  v3.0; a path with a space (hash-form name; shell quoting)
//	                  and a gid given as a JSON string ("1000").
//	edgecases.json    names: reserved first components (/shared/cache, /x/data),
//	                  "." in a component (/config.d, /.hidden), non-ASCII
//	                  (/données), "_" kept (/user_data), case (/Data vs /data),
//	                  /-_-, a name of exactly 255 bytes (path form), one of 256
//	                  and a deep one over 255 (hash form).
//	whoami.json       v4.0; no data_dirs at all: no volumes.
//
// Refused (every problem reported, with its entry index):
//
//	bad-path.json       "..", "", "/", a control character, "/./cache", "..".
//	bad-nesting.json    /var/www/html/wp-content/uploads inside /var/www and
//	                    /var/www/html, /var/www/html inside /var/www; a shared
//	                    dir under them and the sibling /var/www-cache are fine.
//	bad-duplicate.json  /data four times: "/data/", "//data", and as a shared dir.
//	bad-shared.json     unknown shared_dir "photos", empty shared_dir, a shared
//	                    dir with a uid, a shared_dir that is not a string.
//	bad-uid.json        uid -1, uid 4294967295, uid "postgres", uid 70.5,
//	                    gid 1e3, uid true (and a fine entry with uid "70" and
//	                    gid 4294967294).
//	bad-entries.json    entries that are a number, null, a list, an object
//	                    without path, a non-string path, a boolean.
package appjson

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portal/portal-volume/driver/spec"
)

// want is one expected volume. dir is spelled out as Portal's bind mounts
// spell it: app_data/<app>/<path without leading and trailing slashes>, or
// shared/<name>.
type want struct {
	name   string
	target string
	dir    string
	opts   map[string]string
}

func appVol(name, app, path, uid, gid, target, dir string) want {
	return want{name, target, dir, map[string]string{"app": app, "path": path, "uid": uid, "gid": gid}}
}

func sharedVol(name, app, shared, target string) want {
	return want{name, target, "shared/" + shared, map[string]string{"app": app, "shared": shared}}
}

var (
	long255 = strings.Repeat("a", 245)
	long256 = strings.Repeat("b", 246)
	deep    = strings.Repeat("/"+strings.Repeat("c", 50), 5)
)

var fixtures = []struct {
	file, app string
	want      []want
}{
	{"gitea.json", "gitea", []want{
		appVol("gitea_data", "gitea", "/data", "1000", "1000", "/data", "app_data/gitea/data"),
		appVol("gitea_backups", "gitea", "/backups", "0", "0", "/backups", "app_data/gitea/backups"),
	}},
	{"paperless.json", "paperless-ngx", []want{
		appVol("paperless-ngx_usr.src.paperless.data", "paperless-ngx", "/usr/src/paperless/data", "0", "0",
			"/usr/src/paperless/data", "app_data/paperless-ngx/usr/src/paperless/data"),
		appVol("paperless-ngx_usr.src.paperless.media", "paperless-ngx", "/usr/src/paperless/media", "0", "0",
			"/usr/src/paperless/media", "app_data/paperless-ngx/usr/src/paperless/media"),
		appVol("paperless-ngx_usr.src.paperless.consume", "paperless-ngx", "/usr/src/paperless/consume", "1000", "1000",
			"/usr/src/paperless/consume", "app_data/paperless-ngx/usr/src/paperless/consume"),
		appVol("paperless-ngx_usr.src.paperless.export", "paperless-ngx", "/usr/src/paperless/export", "1000", "1000",
			"/usr/src/paperless/export", "app_data/paperless-ngx/usr/src/paperless/export"),
	}},
	{"syncthing.json", "syncthing", []want{
		appVol("syncthing_var.syncthing.config", "syncthing", "/var/syncthing/config", "0", "0",
			"/var/syncthing/config", "app_data/syncthing/var/syncthing/config"),
		appVol("syncthing_sync", "syncthing", "/sync", "1000", "1000", "/sync", "app_data/syncthing/sync"),
		appVol("syncthing_var.syncthing.index", "syncthing", "/var/syncthing/index", "0", "0",
			"/var/syncthing/index", "app_data/syncthing/var/syncthing/index"),
	}},
	{"photos.json", "photo-library", []want{
		appVol("photo-library_files.images", "photo-library", "/files/images", "0", "0",
			"/files/images", "app_data/photo-library/files/images"),
		appVol("photo-library_files.imports", "photo-library", "/files/imports", "0", "0",
			"/files/imports", "app_data/photo-library/files/imports"),
		appVol("photo-library_files.images-cache", "photo-library", "/files/images-cache", "33", "33",
			"/files/images-cache", "app_data/photo-library/files/images-cache"),
	}},
	{"filebrowser.json", "filebrowser", []want{
		appVol("filebrowser_database", "filebrowser", "/database", "1000", "1000", "/database", "app_data/filebrowser/database"),
		appVol("filebrowser_data", "filebrowser", "/data", "1000", "1000", "/data", "app_data/filebrowser/data"),
		sharedVol("filebrowser_shared.documents", "filebrowser", "documents", "/data/documents"),
		sharedVol("filebrowser_shared.media", "filebrowser", "media", "/data/media"),
		sharedVol("filebrowser_shared.music", "filebrowser", "music", "/data/music"),
	}},
	{"nextcloud.json", "nextcloud", []want{
		appVol("nextcloud_var.www.html", "nextcloud", "/var/www/html", "0", "0", "/var/www/html", "app_data/nextcloud/var/www/html"),
		appVol("nextcloud_var.lib.nextcloud.data", "nextcloud", "/var/lib/nextcloud/data", "33", "33",
			"/var/lib/nextcloud/data", "app_data/nextcloud/var/lib/nextcloud/data"),
		sharedVol("nextcloud_shared.documents", "nextcloud", "documents", "/mnt/documents"),
		sharedVol("nextcloud_shared.media", "nextcloud", "media", "/mnt/media"),
		appVol("nextcloud_var.lib.nextcloud.previews", "nextcloud", "/var/lib/nextcloud/previews", "0", "0",
			"/var/lib/nextcloud/previews", "app_data/nextcloud/var/lib/nextcloud/previews"),
	}},
	{"jellyfin.json", "jellyfin", []want{
		appVol("jellyfin_config", "jellyfin", "/config", "0", "0", "/config", "app_data/jellyfin/config"),
		appVol("jellyfin_cache", "jellyfin", "/cache", "0", "0", "/cache", "app_data/jellyfin/cache"),
		sharedVol("jellyfin_shared.media", "jellyfin", "media", "/media"),
		sharedVol("jellyfin_shared.music", "jellyfin", "music", "/music"),
		sharedVol("jellyfin_shared.media", "jellyfin", "media", "/data/movies"),
		appVol("jellyfin_x.283dbe8db18cd590", "jellyfin", "/var/lib/jellyfin/.aspnet", "0", "0",
			"/var/lib/jellyfin/.aspnet", "app_data/jellyfin/var/lib/jellyfin/.aspnet"),
	}},
	{"calibre-web.json", "calibre-web", []want{
		appVol("calibre-web_config", "calibre-web", "/config", "1000", "1000", "/config", "app_data/calibre-web/config"),
		appVol("calibre-web_x.86c4b4e04f36505e", "calibre-web", "/books/Calibre Library", "1000", "1000",
			"/books/Calibre Library", "app_data/calibre-web/books/Calibre Library"),
	}},
	{"edgecases.json", "edgecases", []want{
		appVol("edgecases_x.d8ba763934643835", "edgecases", "/shared/cache", "0", "0", "/shared/cache", "app_data/edgecases/shared/cache"),
		appVol("edgecases_x.2b86eb1645de56a5", "edgecases", "/x/data", "0", "0", "/x/data", "app_data/edgecases/x/data"),
		appVol("edgecases_x.d1e17096f68a93c0", "edgecases", "/config.d", "0", "0", "/config.d", "app_data/edgecases/config.d"),
		appVol("edgecases_x.15e9cacd6c10143c", "edgecases", "/.hidden", "0", "0", "/.hidden", "app_data/edgecases/.hidden"),
		appVol("edgecases_x.d7740be715c930f8", "edgecases", "/données", "0", "0", "/données", "app_data/edgecases/données"),
		appVol("edgecases_user_data", "edgecases", "/user_data", "0", "0", "/user_data", "app_data/edgecases/user_data"),
		appVol("edgecases_Data", "edgecases", "/Data", "0", "0", "/Data", "app_data/edgecases/Data"),
		appVol("edgecases_data", "edgecases", "/data", "0", "0", "/data", "app_data/edgecases/data"),
		appVol("edgecases_-_-", "edgecases", "/-_-", "0", "0", "/-_-", "app_data/edgecases/-_-"),
		appVol("edgecases_"+long255, "edgecases", "/"+long255, "0", "0", "/"+long255, "app_data/edgecases/"+long255),
		appVol("edgecases_x.4e7c60aece33cf78", "edgecases", "/"+long256, "0", "0", "/"+long256, "app_data/edgecases/"+long256),
		appVol("edgecases_x.5df3820587ae295f", "edgecases", deep, "0", "0", deep, "app_data/edgecases"+deep),
	}},
	{"whoami.json", "whoami", nil},
}

type wantProblem struct {
	index    int
	contains string
}

var refusals = []struct {
	file, app string
	want      []wantProblem
}{
	{"bad-path.json", "uptime-kuma", []wantProblem{
		{1, `path "/app/data/../../etc": want a path without "." or ".." components`},
		{2, `path "": want a path below the app's directory`},
		{3, `path "/": want a path below the app's directory`},
		{4, `path "/logs\a": want a path without NUL or control characters`},
		{5, `path "/./cache": want a path without "." or ".." components`},
		{6, `path "..": want a path without "." or ".." components`},
	}},
	{"bad-nesting.json", "wordpress", []wantProblem{
		{1, "nested: path /var/www/html/wp-content/uploads lies inside path /var/www of data_dirs[0]"},
		{1, "nested: path /var/www/html/wp-content/uploads lies inside path /var/www/html of data_dirs[2]"},
		{2, "nested: path /var/www/html lies inside path /var/www of data_dirs[0]"},
	}},
	{"bad-duplicate.json", "vaultwarden", []wantProblem{
		{1, "duplicate: path /data is also the path of data_dirs[0]"},
		{2, "duplicate: path /data is also the path of data_dirs[0]"},
		{3, "duplicate: path /data is also the path of data_dirs[0]"},
	}},
	{"bad-shared.json", "photoprism", []wantProblem{
		{0, `shared_dir "photos": want one of documents, media, music`},
		{1, `shared_dir "": want one of documents, media, music`},
		{2, "uid 1000: a shared_dir entry takes no uid or gid"},
		{4, `"shared_dir" is a number: want a string`},
	}},
	{"bad-uid.json", "postgres", []wantProblem{
		{0, "uid -1: want a decimal number from 0 to 4294967294"},
		{1, "uid 4294967295: want a decimal number from 0 to 4294967294"},
		{2, `uid "postgres": want a number from 0 to 4294967294`},
		{3, "uid 70.5: want a decimal number from 0 to 4294967294"},
		{4, "gid 1e3: want a decimal number from 0 to 4294967294"},
		{5, "uid is a boolean: want a number from 0 to 4294967294"},
	}},
	{"bad-entries.json", "homeassistant", []wantProblem{
		{1, "entry is a number: want a path string"},
		{2, "entry is null: want a path string"},
		{3, "entry is a list: want a path string"},
		{4, `entry has no "path"`},
		{5, `"path" is a number: want a string`},
		{6, "entry is a boolean: want a path string"},
	}},
}

func readFixture(t testing.TB, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestEveryFixtureIsListed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, f := range fixtures {
		listed[f.file] = true
	}
	for _, r := range refusals {
		listed[r.file] = true
	}
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("fixture %s has no expectations in appjson_test.go", f)
		}
		delete(listed, filepath.Base(f))
	}
	for f := range listed {
		t.Errorf("expectations for %s, which is not in testdata", f)
	}
	if len(files) < 10 {
		t.Errorf("%d fixtures, want at least 10", len(files))
	}
}

func TestFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.file, func(t *testing.T) {
			data := readFixture(t, f.file)
			if id, err := AppID(data); err != nil || id != f.app {
				t.Errorf("AppID = %q, %v; want %q", id, err, f.app)
			}
			vols, err := FromAppJSON(data, f.app, nil)
			if err != nil {
				t.Fatalf("refused:\n%v", err)
			}
			if len(vols) != len(f.want) {
				t.Fatalf("%d volumes, want %d: %+v", len(vols), len(f.want), vols)
			}
			for i, v := range vols {
				w := f.want[i]
				if v.Index != i {
					t.Errorf("[%d] Index = %d", i, v.Index)
				}
				if v.Name != w.name {
					t.Errorf("[%d] Name = %q, want %q", i, v.Name, w.name)
				}
				if v.Target != w.target {
					t.Errorf("[%d] Target = %q, want %q", i, v.Target, w.target)
				}
				if v.Dir != w.dir {
					t.Errorf("[%d] Dir = %q, want %q", i, v.Dir, w.dir)
				}
				if fmt.Sprint(v.Options) != fmt.Sprint(w.opts) {
					t.Errorf("[%d] Options = %v, want %v", i, v.Options, w.opts)
				}
				if (v.Shared != "") != (v.Form == FormShared) || v.Shared != w.opts["shared"] {
					t.Errorf("[%d] Form %v, Shared %q; want shared %q", i, v.Form, v.Shared, w.opts["shared"])
				}
				if v.Form != FormShared && (fmt.Sprint(v.UID) != w.opts["uid"] || fmt.Sprint(v.GID) != w.opts["gid"]) {
					t.Errorf("[%d] owner %d:%d, want %s:%s", i, v.UID, v.GID, w.opts["uid"], w.opts["gid"])
				}
			}
		})
	}
}

// The entry forms and what was written are kept.
func TestEntryAsWritten(t *testing.T) {
	vols, err := FromAppJSON([]byte(`{"data_dirs": ["/a/", {"path": "b", "uid": 5, "gid": 6}, {"path": "/m//", "shared_dir": "media"}]}`), "app", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%v %q %d:%d | %v %q %d:%d | %v %q %q", vols[0].Form, vols[0].Path, vols[0].UID, vols[0].GID,
		vols[1].Form, vols[1].Path, vols[1].UID, vols[1].GID, vols[2].Form, vols[2].Path, vols[2].Shared)
	want := `string "/a/" 0:0 | object "b" 5:6 | shared "/m//" "media"`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestRefusals(t *testing.T) {
	for _, r := range refusals {
		t.Run(r.file, func(t *testing.T) {
			vols, err := FromAppJSON(readFixture(t, r.file), r.app, nil)
			if vols != nil {
				t.Errorf("volumes returned with an error: %+v", vols)
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error %v (%T), want Problems", err, err)
			}
			if len(ps) != len(r.want) {
				t.Fatalf("%d problems, want %d:\n%v", len(ps), len(r.want), err)
			}
			for i, p := range ps {
				w := r.want[i]
				if p.Index != w.index || !strings.Contains(p.Reason, w.contains) {
					t.Errorf("problem %d = %s\nwant data_dirs[%d]: ...%s...", i, p, w.index, w.contains)
				}
				if !strings.HasPrefix(p.String(), fmt.Sprintf("data_dirs[%d]: ", p.Index)) {
					t.Errorf("problem %d reads %q: want it to name its entry", i, p)
				}
			}
		})
	}
}

// Every volume's options, as the plugin gets them, parse without error and
// mean the directory Portal's bind mount used; a path-form name of one
// component means it even without options (SPEC.md's <app>_<dir> rule).
func TestVolumesParseWithSpec(t *testing.T) {
	p := spec.Parser{SharedNames: DefaultSharedNames}
	for _, f := range fixtures {
		vols, err := FromAppJSON(readFixture(t, f.file), f.app, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vols {
			s, err := p.Parse(v.Name, v.Options)
			if err != nil {
				t.Errorf("%s[%d] %s: %v", f.file, i, v.Name, err)
				continue
			}
			if s.Dir() != f.want[i].dir {
				t.Errorf("%s[%d] %s: parses to %s, want %s", f.file, i, v.Name, s.Dir(), f.want[i].dir)
			}
			if s.Shared == "" && !strings.Contains(v.Target[1:], "/") && !strings.Contains(f.app, "_") &&
				!strings.Contains(v.Name, ".") {
				byName, err := p.Parse(v.Name, nil)
				if err != nil || byName.Dir() != s.Dir() {
					t.Errorf("%s by name alone: %s, %v; want %s", v.Name, byName.Dir(), err, s.Dir())
				}
			}
		}
	}
}

func TestNames(t *testing.T) {
	for _, c := range []struct{ app, path, want string }{
		{"gitea", "/data", "gitea_data"},
		{"gitea", "data/", "gitea_data"},
		{"myapp", "/user_data", "myapp_user_data"},
		{"a", "/usr/src/paperless/data", "a_usr.src.paperless.data"},
		{"a", "/shared", "a_shared"}, // one component: path form
		{"a", "/x", "a_x"},
		{"a", "/shared/media", "a_x.f2faca62367075e6"}, // would look like SharedName(a, media)
		{"a", "/x/1", "a_x.e58085d4dd003293"},
		{"my_app", "/data", "my_app_data"},
	} {
		got, err := PathName(c.app, c.path)
		if err != nil || got != c.want {
			t.Errorf("PathName(%q, %q) = %q, %v; want %q", c.app, c.path, got, err, c.want)
		}
	}
	if got := SharedName("a", "media"); got != "a_shared.media" {
		t.Errorf("SharedName = %q", got)
	}
	if _, err := PathName("a", "/../etc"); err == nil {
		t.Error("PathName accepted ..")
	}
}

// genPath makes a path from components likely to meet the edges of the
// naming scheme: reserved words, ".", "_", "-", non-ASCII, spaces, and long
// components.
func genPath(r *rand.Rand) string {
	atoms := []string{"a", "B", "0", "_", "-", ".", "x", "shared", "data", "é", " ", "media", "~", "'", ":"}
	n := 1 + r.IntN(4)
	comps := make([]string, n)
	for i := range comps {
		var b strings.Builder
		for k := 1 + r.IntN(4); k > 0; k-- {
			b.WriteString(atoms[r.IntN(len(atoms))])
		}
		if r.IntN(40) == 0 {
			b.WriteString(strings.Repeat("z", 100+r.IntN(150)))
		}
		comps[i] = b.String()
	}
	p := strings.Join(comps, "/")
	if r.IntN(2) == 0 {
		p = "/" + p
	}
	if r.IntN(4) == 0 {
		p += "/"
	}
	return p
}

// A quick property test: over generated paths and apps, names are valid
// Docker names of at most 255 bytes, deterministic, and distinct for
// distinct folded paths (and distinct from shared names).
func TestNameProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	apps := []string{"a", "gitea", "paperless-ngx", "my_app", strings.Repeat("q", 64)}
	for _, app := range apps {
		seen := map[string]string{} // name -> folded path or "shared:<name>"
		for _, sh := range []string{"documents", "media", "music", "a.b", "x"} {
			seen[SharedName(app, sh)] = "shared:" + sh
		}
		for i := 0; i < 20000; i++ {
			p := genPath(r)
			folded, err := spec.FoldPath(p)
			if err != nil {
				continue
			}
			name, err := PathName(app, p)
			if err != nil {
				t.Fatalf("PathName(%q, %q): %v", app, p, err)
			}
			if again, _ := PathName(app, p); again != name {
				t.Fatalf("PathName(%q, %q) = %q, then %q", app, p, name, again)
			}
			if !DockerNamePattern.MatchString(name) || len(name) > MaxNameLen {
				t.Fatalf("PathName(%q, %q) = %q (%d bytes): not a valid Docker volume name", app, p, name, len(name))
			}
			if !strings.HasPrefix(name, app+"_") {
				t.Fatalf("PathName(%q, %q) = %q: want the app first", app, p, name)
			}
			if other, ok := seen[name]; ok && other != folded {
				t.Fatalf("PathName(%q, %q) = %q, the name of %q too", app, p, name, other)
			}
			seen[name] = folded
		}
		if len(seen) < 5000 {
			t.Errorf("app %s: only %d distinct names: the generator is too narrow", app, len(seen))
		}
	}
}

func TestBadAppName(t *testing.T) {
	data := readFixture(t, "gitea.json")
	for _, app := range []string{"", "My App", "-gitea", "gitea.io", strings.Repeat("a", 65)} {
		_, err := FromAppJSON(data, app, nil)
		var ps Problems
		if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Index != -1 || !strings.Contains(ps[0].Reason, fmt.Sprintf("app name %q", app)) {
			t.Errorf("app %q: %v; want one problem naming the app", app, err)
		}
	}
	// The entries are still judged, each once.
	_, err := FromAppJSON(readFixture(t, "bad-uid.json"), "Bad App", nil)
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 7 || ps[0].Index != -1 || ps[1].Index != 0 {
		t.Errorf("bad app and bad uids: %v; want the app's problem and the six entries'", err)
	}
}

func TestWholeFile(t *testing.T) {
	for _, c := range []struct{ data, want string }{
		{``, "app.json is not a JSON object"},
		{`[]`, "app.json is not a JSON object"},
		{`{"data_dirs": "/data"}`, "data_dirs is not a list"},
		{`{"data_dirs": {"path": "/data"}}`, "data_dirs is not a list"},
		{`{"data_dirs": ["/a"]`, "app.json is not a JSON object"},
	} {
		_, err := FromAppJSON([]byte(c.data), "app", nil)
		var ps Problems
		if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Index != -1 || !strings.Contains(ps[0].Reason, c.want) {
			t.Errorf("%q: %v; want %q", c.data, err, c.want)
		}
	}
	for _, data := range []string{`{}`, `{"data_dirs": null}`, `{"data_dirs": []}`, `{"id": 5, "data_dirs": []}`} {
		vols, err := FromAppJSON([]byte(data), "app", nil)
		if err != nil || len(vols) != 0 {
			t.Errorf("%s: %v, %v; want no volumes", data, vols, err)
		}
	}
}

func TestAppID(t *testing.T) {
	for _, c := range []struct{ data, id, err string }{
		{`{"id": "gitea"}`, "gitea", ""},
		{`{"name": "Gitea"}`, "", ""},
		{`{"id": null}`, "", ""},
		{`{"id": 5}`, "", `"id" is not a string`},
		{`[1]`, "", "not a JSON object"},
	} {
		id, err := AppID([]byte(c.data))
		if id != c.id || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("AppID(%s) = %q, %v; want %q, %q", c.data, id, err, c.id, c.err)
		}
	}
}

func TestSharedNames(t *testing.T) {
	data := []byte(`{"data_dirs": [{"path": "/photos", "shared_dir": "photos"}, {"path": "/m", "shared_dir": "media"}]}`)
	vols, err := FromAppJSON(data, "app", []string{"photos"})
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Index != 1 || !strings.Contains(ps[0].Reason, "want one of photos") {
		t.Fatalf("%v, %v; want media refused, photos allowed", vols, err)
	}
	vols, err = FromAppJSON(data, "app", []string{"photos", "media"})
	if err != nil || vols[0].Name != "app_shared.photos" || vols[0].Dir != "shared/photos" {
		t.Fatalf("%+v, %v", vols, err)
	}
	// A name the plugin's own setting would never allow is refused, not
	// turned into an invalid volume name.
	_, err = FromAppJSON([]byte(`{"data_dirs": [{"path": "/p", "shared_dir": "a/b"}]}`), "app", []string{"a/b"})
	if err == nil {
		t.Error("shared name a/b accepted")
	}
}

// Unknown fields are ignored, in the file and in entries; null means absent.
func TestUnknownFieldsAndNull(t *testing.T) {
	data := []byte(`{"version": "9.9", "services": [{"x": 1}], "data_dirs": [
		{"path": "/a", "uid": null, "gid": 7, "comment": "kept"},
		{"path": "/b", "shared_dir": null, "readonly": true}]}`)
	vols, err := FromAppJSON(data, "app", nil)
	if err != nil {
		t.Fatal(err)
	}
	if vols[0].Options["uid"] != "0" || vols[0].Options["gid"] != "7" || vols[1].Form != FormObject || vols[1].Name != "app_b" {
		t.Errorf("%+v", vols)
	}
}

func FuzzFromAppJSON(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, file := range files {
		f.Add(readFixture(f, filepath.Base(file)), "app")
	}
	for _, s := range []string{
		`{"data_dirs": ["/a", "/a/b", {"path": "/c", "shared_dir": "media"}, {"path": "/c"}]}`,
		`{"data_dirs": [{"path": "/x/1"}, {"path": "/shared/media"}, {"path": "/m", "shared_dir": "media"}]}`,
		`{"data_dirs": [{"path": "/a", "uid": 1e2, "gid": "12"}, {"path": "\u0000"}, "\ud800"]}`,
		`{"data_dirs": null}`, `[]`, ``,
	} {
		f.Add([]byte(s), "app")
	}
	f.Add([]byte(`{"data_dirs": ["/data"]}`), "my_app")
	f.Add([]byte(`{"data_dirs": ["/data"]}`), "")
	p := spec.Parser{SharedNames: DefaultSharedNames}
	f.Fuzz(func(t *testing.T, data []byte, app string) {
		vols, err := FromAppJSON(data, app, nil)
		if err != nil {
			var ps Problems
			if vols != nil || !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error %v with volumes %v", err, vols)
			}
			for _, pr := range ps {
				if pr.Index < -1 || pr.Reason == "" {
					t.Fatalf("bad problem %+v", pr)
				}
			}
			return
		}
		dirs := map[string]string{} // name -> dir
		targets := map[string]bool{}
		for i, v := range vols {
			if v.Index != i {
				t.Fatalf("volume %d has Index %d", i, v.Index)
			}
			if !DockerNamePattern.MatchString(v.Name) || len(v.Name) > MaxNameLen {
				t.Fatalf("bad name %q", v.Name)
			}
			s, err := p.Parse(v.Name, v.Options)
			if err != nil {
				t.Fatalf("%s %v: %v", v.Name, v.Options, err)
			}
			if s.Dir() != v.Dir {
				t.Fatalf("%s: Dir %s, parses to %s", v.Name, v.Dir, s.Dir())
			}
			if d, ok := dirs[v.Name]; ok && d != v.Dir {
				t.Fatalf("name %s for %s and %s", v.Name, d, v.Dir)
			}
			dirs[v.Name] = v.Dir
			if targets[v.Target] {
				t.Fatalf("target %s twice", v.Target)
			}
			targets[v.Target] = true
		}
		// No app directory lies inside another.
		appDirs := map[string]bool{}
		for _, v := range vols {
			if v.Shared == "" {
				appDirs[v.Dir] = true
			}
		}
		for d := range appDirs {
			for i := len("app_data/"); i < len(d); i++ {
				if d[i] == '/' && appDirs[d[:i]] {
					t.Fatalf("%s inside %s", d, d[:i])
				}
			}
		}
	})
}
