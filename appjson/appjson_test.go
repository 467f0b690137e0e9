// Fixtures (testdata/*.json; JSON holds no comments, so they are listed
// here). They are written in the real app.json format, in the shapes of
// real apps of Portal's app store (FreeshardBase/app-repository). Every
// file in testdata/ must appear in fixtures or refusals below, and
// testdata/names.golden holds the volumes of every accepted one (run the
// tests with -update to rewrite it, then review the diff: names must not
// change once released).
//
// Accepted:
//
//	gitea.json          v2.0; one object entry with uid/gid 1000 (gitea).
//	convos.json         no "v"; the string "~/convos/data" (convos): the
//	                    outer slashes go, "~" stays a directory name.
//	vaultwarden.json    v2.0; "/data/" (vaultwarden, bitwarden, ohmyform).
//	paperless-ngx.json  v4.0; four deep siblings /usr/src/paperless/* (paperless-ngx).
//	jelu.json           v3.1; siblings /files/images and /files/imports (jelu).
//	filebrowser.json    v4.0; /data, the shared documents, media and music
//	                    under it in the container, and the whole app_data and
//	                    service_data trees (filebrowser).
//	navidrome.json      v3.2; a string entry and shared music (navidrome).
//	photoprism.json     v3.1; a deep string entry and shared media (photoprism).
//	redmine.json        v2.0; two objects with uid 999, gid 1000 (redmine).
//	myapp.json          v4.0; string, object with uid/gid, shared: the app
//	                    store's own template app (myapp).
//	huginn.json         no "v"; an object with uid/gid 1001 (huginn).
//	element.json        v2.0; data_dirs [] (element).
//	drawio.json         v3.1; data_dirs null (drawio, and most web apps).
//	edgecases.json      v4.0; names: reserved first components (/shared/cache,
//	                    /x/data, /tree/cache; /tree alone), "." in a component,
//	                    non-ASCII, "_" kept, case, /-_-, a name of exactly 255
//	                    bytes (path form), one of 256 and a deep one (hash form).
//
// Refused (every problem reported, with its entry index):
//
//	bad-name.json       "name": "home assistant" (the real homeassistant
//	                    app.json 4.0): not an app name the plugin takes.
//	bad-version.json    "v": "5.0" (overleaf): no data_dirs in that format.
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
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portal/portal-volume/driver/spec"
)

var update = flag.Bool("update", false, "rewrite testdata/names.golden")

// want is one expected volume. dir is spelled out as Portal's core spelled
// its bind mount source: app_data/<app>/<path without outer slashes>,
// shared/<name>, or the tree.
type want struct {
	name   string
	target string
	dir    string
	opts   map[string]string
}

// appVol is an app directory; uid and gid "" mean not given.
func appVol(name, app, path, uid, gid, target, dir string) want {
	o := map[string]string{"app": app, "path": path}
	if uid != "" {
		o["uid"], o["gid"] = uid, gid
	}
	return want{name, target, dir, o}
}

func sharedVol(name, app, shared, target string) want {
	return want{name, target, "shared/" + shared, map[string]string{"app": app, "shared": shared}}
}

func treeVol(name, tree, target string) want {
	return want{name, target, tree, map[string]string{"tree": tree}}
}

var (
	long255 = strings.Repeat("a", 245)
	long256 = strings.Repeat("b", 246)
	deep    = strings.Repeat("/"+strings.Repeat("c", 50), 5)
)

// fixtures spells out the volumes of the accepted files by hand; the names
// are checked once more against names.golden.
var fixtures = []struct {
	file, app string
	want      []want
}{
	{"gitea.json", "gitea", []want{
		appVol("gitea_data", "gitea", "/data", "1000", "1000", "/data", "app_data/gitea/data"),
	}},
	{"convos.json", "convos", []want{
		appVol("convos_x.79a9b5a372095dbd", "convos", "/~/convos/data", "", "", "/~/convos/data", "app_data/convos/~/convos/data"),
	}},
	{"vaultwarden.json", "vaultwarden", []want{
		appVol("vaultwarden_data", "vaultwarden", "/data", "", "", "/data", "app_data/vaultwarden/data"),
	}},
	{"paperless-ngx.json", "paperless-ngx", []want{
		appVol("paperless-ngx_usr.src.paperless.data", "paperless-ngx", "/usr/src/paperless/data", "", "",
			"/usr/src/paperless/data", "app_data/paperless-ngx/usr/src/paperless/data"),
		appVol("paperless-ngx_usr.src.paperless.media", "paperless-ngx", "/usr/src/paperless/media", "", "",
			"/usr/src/paperless/media", "app_data/paperless-ngx/usr/src/paperless/media"),
		appVol("paperless-ngx_usr.src.paperless.consume", "paperless-ngx", "/usr/src/paperless/consume", "", "",
			"/usr/src/paperless/consume", "app_data/paperless-ngx/usr/src/paperless/consume"),
		appVol("paperless-ngx_usr.src.paperless.export", "paperless-ngx", "/usr/src/paperless/export", "", "",
			"/usr/src/paperless/export", "app_data/paperless-ngx/usr/src/paperless/export"),
	}},
	{"jelu.json", "jelu", []want{
		appVol("jelu_config", "jelu", "/config", "", "", "/config", "app_data/jelu/config"),
		appVol("jelu_database", "jelu", "/database", "", "", "/database", "app_data/jelu/database"),
		appVol("jelu_files.images", "jelu", "/files/images", "", "", "/files/images", "app_data/jelu/files/images"),
		appVol("jelu_files.imports", "jelu", "/files/imports", "", "", "/files/imports", "app_data/jelu/files/imports"),
	}},
	{"filebrowser.json", "filebrowser", []want{
		appVol("filebrowser_data", "filebrowser", "/data", "", "", "/data", "app_data/filebrowser/data"),
		sharedVol("filebrowser_shared.documents", "filebrowser", "documents", "/data/documents"),
		sharedVol("filebrowser_shared.media", "filebrowser", "media", "/data/media"),
		sharedVol("filebrowser_shared.music", "filebrowser", "music", "/data/music"),
		treeVol("filebrowser_tree.app_data", "app_data", "/data/portal_core/app_data"),
		treeVol("filebrowser_tree.service_data", "service_data", "/data/portal_core/service_data"),
	}},
	{"navidrome.json", "navidrome", []want{
		appVol("navidrome_data", "navidrome", "/data", "", "", "/data", "app_data/navidrome/data"),
		sharedVol("navidrome_shared.music", "navidrome", "music", "/music"),
	}},
	{"photoprism.json", "photoprism", []want{
		appVol("photoprism_photoprism.storage", "photoprism", "/photoprism/storage", "", "",
			"/photoprism/storage", "app_data/photoprism/photoprism/storage"),
		sharedVol("photoprism_shared.media", "photoprism", "media", "/photoprism/originals"),
	}},
	{"redmine.json", "redmine", []want{
		appVol("redmine_usr.src.redmine.files", "redmine", "/usr/src/redmine/files", "999", "1000",
			"/usr/src/redmine/files", "app_data/redmine/usr/src/redmine/files"),
		appVol("redmine_usr.src.redmine.sqlite", "redmine", "/usr/src/redmine/sqlite", "999", "1000",
			"/usr/src/redmine/sqlite", "app_data/redmine/usr/src/redmine/sqlite"),
	}},
	{"myapp.json", "myapp", []want{
		appVol("myapp_user_data", "myapp", "/user_data", "", "", "/user_data", "app_data/myapp/user_data"),
		appVol("myapp_more_data", "myapp", "/more_data", "1000", "1000", "/more_data", "app_data/myapp/more_data"),
		sharedVol("myapp_shared.media", "myapp", "media", "/media_data"),
	}},
	{"huginn.json", "huginn", []want{
		appVol("huginn_var.lib.mysql", "huginn", "/var/lib/mysql", "1001", "1001", "/var/lib/mysql", "app_data/huginn/var/lib/mysql"),
	}},
	{"element.json", "element", nil},
	{"drawio.json", "drawio", nil},
	{"edgecases.json", "edgecases", []want{
		appVol("edgecases_x.d8ba763934643835", "edgecases", "/shared/cache", "", "", "/shared/cache", "app_data/edgecases/shared/cache"),
		appVol("edgecases_x.2b86eb1645de56a5", "edgecases", "/x/data", "", "", "/x/data", "app_data/edgecases/x/data"),
		appVol("edgecases_x.580ef989dfb02c50", "edgecases", "/tree/cache", "", "", "/tree/cache", "app_data/edgecases/tree/cache"),
		appVol("edgecases_x.d1e17096f68a93c0", "edgecases", "/config.d", "", "", "/config.d", "app_data/edgecases/config.d"),
		appVol("edgecases_x.15e9cacd6c10143c", "edgecases", "/.hidden", "", "", "/.hidden", "app_data/edgecases/.hidden"),
		appVol("edgecases_x.d7740be715c930f8", "edgecases", "/données", "", "", "/données", "app_data/edgecases/données"),
		appVol("edgecases_user_data", "edgecases", "/user_data", "", "", "/user_data", "app_data/edgecases/user_data"),
		appVol("edgecases_Data", "edgecases", "/Data", "", "", "/Data", "app_data/edgecases/Data"),
		appVol("edgecases_data", "edgecases", "/data", "", "", "/data", "app_data/edgecases/data"),
		appVol("edgecases_-_-", "edgecases", "/-_-", "", "", "/-_-", "app_data/edgecases/-_-"),
		appVol("edgecases_"+long255, "edgecases", "/"+long255, "", "", "/"+long255, "app_data/edgecases/"+long255),
		appVol("edgecases_x.4e7c60aece33cf78", "edgecases", "/"+long256, "", "", "/"+long256, "app_data/edgecases/"+long256),
		appVol("edgecases_x.5df3820587ae295f", "edgecases", deep, "", "", deep, "app_data/edgecases"+deep),
	}},
}

type wantProblem struct {
	index    int
	contains string
}

var refusals = []struct {
	file, app string
	want      []wantProblem
}{
	{"bad-name.json", "home assistant", []wantProblem{
		{-1, `app name "home assistant": want 1 to 64 of A-Z a-z 0-9 _ -, starting with a letter or digit`},
	}},
	{"bad-version.json", "overleaf", []wantProblem{
		{-1, `format "v": "5.0": want "1.0" to "4.0" (format 5.0 apps have no data_dirs`},
	}},
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
		{0, `shared_dir "photos": want one of documents, media, music, or a tree: app_data, service_data`},
		{1, `shared_dir "": want one of documents, media, music, or a tree`},
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
			if name, err := AppName(data); err != nil || name != f.app {
				t.Errorf("AppName = %q, %v; want %q", name, err, f.app)
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
				if v.Spec.Dir() != w.dir {
					t.Errorf("[%d] Dir = %q, want %q", i, v.Spec.Dir(), w.dir)
				}
				if fmt.Sprint(v.Options) != fmt.Sprint(w.opts) {
					t.Errorf("[%d] Options = %v, want %v", i, v.Options, w.opts)
				}
				if (v.Spec.Shared != "" || v.Spec.Tree != "") != (v.Form == FormShared) || v.Spec.Shared != w.opts["shared"] || v.Spec.Tree != w.opts["tree"] {
					t.Errorf("[%d] Form %v, Shared %q, Tree %q; want shared %q, tree %q", i, v.Form, v.Spec.Shared, v.Spec.Tree, w.opts["shared"], w.opts["tree"])
				}
				if _, owner := w.opts["uid"]; v.Owner != owner || (owner && (fmt.Sprint(v.Spec.UID) != w.opts["uid"] || fmt.Sprint(v.Spec.GID) != w.opts["gid"])) {
					t.Errorf("[%d] owner %v %d:%d, want %s:%s", i, v.Owner, v.Spec.UID, v.Spec.GID, w.opts["uid"], w.opts["gid"])
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
	got := fmt.Sprintf("%v %q %d:%d | %v %q %d:%d | %v %q %q", vols[0].Form, vols[0].Path, vols[0].Spec.UID, vols[0].Spec.GID,
		vols[1].Form, vols[1].Path, vols[1].Spec.UID, vols[1].Spec.GID, vols[2].Form, vols[2].Path, vols[2].Spec.Shared)
	want := `string "/a/" 0:0 | object "b" 5:6 | shared "/m//" "media"`
	if vols[0].Owner || !vols[1].Owner || vols[2].Owner {
		t.Errorf("Owner %v %v %v, want false true false", vols[0].Owner, vols[1].Owner, vols[2].Owner)
	}
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
				if p.Index >= 0 && !strings.HasPrefix(p.String(), fmt.Sprintf("data_dirs[%d]: ", p.Index)) {
					t.Errorf("problem %d reads %q: want it to name its entry", i, p)
				}
			}
		})
	}
}

// Every volume's options, as the plugin gets them, parse without error and
// mean the directory Portal's bind mount used; a path-form name of one
// component means it even without options (the <app>_<dir> rule).
func TestVolumesParseWithSpec(t *testing.T) {
	p := spec.Parser{SharedNames: spec.DefaultSharedNames}
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
			if v.exclusive() && !strings.Contains(v.Target[1:], "/") && !strings.Contains(f.app, "_") &&
				!strings.Contains(v.Name, ".") {
				byName, err := p.Parse(v.Name, nil)
				if err != nil || byName.Dir() != s.Dir() {
					t.Errorf("%s by name alone: %s, %v; want %s", v.Name, byName.Dir(), err, s.Dir())
				}
			}
		}
	}
}

func TestBadAppName(t *testing.T) {
	data := readFixture(t, "gitea.json")
	for _, app := range []string{"", "My App", "home assistant", "-gitea", "gitea.io", strings.Repeat("a", 65)} {
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
		{`{"v": 4, "data_dirs": []}`, `"v" is a number: want a format version string`},
		{`{"v": "5.0", "data_dirs": null}`, `format "v": "5.0": want "1.0" to "4.0"`},
		{`{"v": "4", "data_dirs": []}`, `format "v": "4": want "1.0" to "4.0"`},
	} {
		_, err := FromAppJSON([]byte(c.data), "app", nil)
		var ps Problems
		if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Index != -1 || !strings.Contains(ps[0].Reason, c.want) {
			t.Errorf("%q: %v; want %q", c.data, err, c.want)
		}
	}
	for _, data := range []string{`{}`, `{"data_dirs": null}`, `{"data_dirs": []}`, `{"id": 5, "data_dirs": []}`,
		`{"v": null, "data_dirs": []}`, `{"v": "1.0"}`, `{"v": "3.1"}`, `{"v": "3.2"}`, `{"v": "4.0"}`} {
		vols, err := FromAppJSON([]byte(data), "app", nil)
		if err != nil || len(vols) != 0 {
			t.Errorf("%s: %v, %v; want no volumes", data, vols, err)
		}
	}
}

func TestAppName(t *testing.T) {
	for _, c := range []struct{ data, name, err string }{
		{`{"name": "gitea"}`, "gitea", ""},
		{`{"name": "home assistant"}`, "home assistant", ""}, // judged by FromAppJSON
		{`{"id": "gitea"}`, "", ""},
		{`{"name": null}`, "", ""},
		{`{"name": 5}`, "", `"name" is a number: want a string`},
		{`[1]`, "", "not a JSON object"},
	} {
		name, err := AppName([]byte(c.data))
		if name != c.name || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("AppName(%s) = %q, %v; want %q, %q", c.data, name, err, c.name, c.err)
		}
	}
}

func TestSharedNames(t *testing.T) {
	data := []byte(`{"data_dirs": [{"path": "/photos", "shared_dir": "photos"}, {"path": "/m", "shared_dir": "media"}]}`)
	vols, err := FromAppJSON(data, "app", []string{"photos"})
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Index != 1 || !strings.Contains(ps[0].Reason, "want one of photos, or a tree: app_data, service_data") {
		t.Fatalf("%v, %v; want media refused, photos allowed", vols, err)
	}
	vols, err = FromAppJSON(data, "app", []string{"photos", "media"})
	if err != nil || vols[0].Name != "app_shared.photos" || vols[0].Spec.Dir() != "shared/photos" {
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
	data := []byte(`{"v": "3.2", "services": [{"x": 1}], "data_dirs": [
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
		`{"v": "4.0", "name": "fb", "data_dirs": ["/d", {"path": "/d/a", "shared_dir": "app_data"}, {"path": "/s", "shared_dir": "service_data", "uid": 1}]}`,
		`{"v": "5.0"}`, `{"v": 2}`, `{"data_dirs": ["~/x/data", "/a/", {"path": "/b", "gid": 3}]}`,
		`{"data_dirs": null}`, `[]`, ``,
	} {
		f.Add([]byte(s), "app")
	}
	f.Add([]byte(`{"data_dirs": ["/data"]}`), "my_app")
	f.Add([]byte(`{"data_dirs": ["/data"]}`), "")
	p := spec.Parser{SharedNames: spec.DefaultSharedNames}
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
			if !spec.DockerNamePattern.MatchString(v.Name) || len(v.Name) > spec.MaxNameLen {
				t.Fatalf("bad name %q", v.Name)
			}
			s, err := p.Parse(v.Name, v.Options)
			if err != nil {
				t.Fatalf("%s %v: %v", v.Name, v.Options, err)
			}
			if s.Dir() != v.Spec.Dir() {
				t.Fatalf("%s: Dir %s, parses to %s", v.Name, v.Spec.Dir(), s.Dir())
			}
			if d, ok := dirs[v.Name]; ok && d != v.Spec.Dir() {
				t.Fatalf("name %s for %s and %s", v.Name, d, v.Spec.Dir())
			}
			dirs[v.Name] = v.Spec.Dir()
			if targets[v.Target] {
				t.Fatalf("target %s twice", v.Target)
			}
			targets[v.Target] = true
		}
		// No app directory lies inside another.
		appDirs := map[string]bool{}
		for _, v := range vols {
			if v.exclusive() {
				appDirs[v.Spec.Dir()] = true
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

// goldenLines are the volumes of every accepted fixture, one line each:
// file, name, directory and options (sorted).
func goldenLines(t *testing.T) []string {
	var lines []string
	for _, f := range fixtures {
		vols, err := FromAppJSON(readFixture(t, f.file), f.app, nil)
		if err != nil {
			t.Fatalf("%s: %v", f.file, err)
		}
		for _, v := range vols {
			var opts []string
			for k, val := range v.Options {
				opts = append(opts, k+"="+val)
			}
			slices.Sort(opts)
			lines = append(lines, strings.Join([]string{f.file, v.Name, v.Spec.Dir(), strings.Join(opts, " ")}, "\t"))
		}
	}
	return lines
}

// Names are part of what an installed app is: once released, a volume's
// name never changes. This holds them.
func TestNamesGolden(t *testing.T) {
	golden := filepath.Join("testdata", "names.golden")
	got := strings.Join(goldenLines(t), "\n") + "\n"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("volume names changed; names of released volumes must stay.\ngot:\n%s\nwant (%s):\n%s", got, golden, want)
	}
}
