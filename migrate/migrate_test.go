// Fixtures (testdata/; YAML comments say what each one is):
//
//	immich.yml.template        five services, one app directory mounted by two
//	                           of them (one volume), shared "pictures" (beyond
//	                           the default shared names), a host file; immich.
//	filebrowser.yml.template   the whole shared and app_data trees; filebrowser.
//	paperless-ngx.yml.template deep paths, a directory whose container path
//	                           differs (usr/src/export/data at
//	                           /usr/src/paperless/export), shared documents
//	                           read-only; no version key; paperless-ngx.
//	syncthing.yml.template     the whole shared tree beside an app directory;
//	                           syncthing.
//	dozzle.yml.template        the docker socket (outside the root) beside an
//	                           app directory; dozzle (glances is alike).
//	portal-core-all-apps.yml   the shape of the one file Portal's old core
//	                           generated for all apps (root /home/portal/user_data,
//	                           "//" and "~" kept as the core wrote them).
//	long-syntax.yml            hand-written: long syntax, relative sources,
//	                           named and anonymous volumes, and every bind mount
//	                           the override cannot express.
//
// Templates are rendered as Portal renders them ({{ fs.app_data }} is
// <root>/app_data/<app>, {{ fs.all_app_data }} <root>/app_data,
// {{ fs.shared }} <root>/shared), into a temporary root prepared by the
// case. The expected override and report of each are in
// testdata/<fixture>.golden (rewrite with -update, then review).
package migrate

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// dir is a directory to make under the root, with its owner and mode.
type dir struct {
	rel      string
	uid, gid int
	mode     os.FileMode
}

type fixture struct {
	file    string
	app     string   // the app a template is rendered for
	shared  []string // the plugin's --shared; nil for the default
	project string
	dirs    []dir
	setup   func(t *testing.T, base, root string)
}

var fixtures = []fixture{
	{file: "immich.yml.template", app: "immich", project: "immich", dirs: []dir{
		{"app_data/immich/upload", 1000, 1000, 0o750},
		{"app_data/immich/pgdata", 999, 999, 0o700},
		{"shared/pictures", 0, 0, 0o755},
	}},
	{file: "immich.yml.template", app: "immich", project: "immich", shared: []string{"documents", "media", "music", "pictures"}},
	{file: "filebrowser.yml.template", app: "filebrowser", project: "filebrowser", dirs: []dir{
		{"app_data/filebrowser/data", 0, 0, 0o755},
		{"app_data/gitea/data", 1000, 1000, 0o755},
		{"shared/documents", 0, 0, 0o755},
	}},
	{file: "paperless-ngx.yml.template", app: "paperless-ngx", project: "paperless-ngx", dirs: []dir{
		{"app_data/paperless-ngx/usr/src/paperless/data", 1000, 1000, 0o755},
		{"app_data/paperless-ngx/usr/src/paperless/media", 1000, 1000, 0o2775},
		{"app_data/paperless-ngx/usr/src/export/data", 0, 0, 0o700},
	}},
	{file: "syncthing.yml.template", app: "syncthing", project: "syncthing", dirs: []dir{
		{"app_data/syncthing/var/syncthing/config", 1000, 1000, 0o700},
	}},
	{file: "dozzle.yml.template", app: "dozzle", project: "dozzle"},
	{file: "portal-core-all-apps.yml", project: "portal", dirs: []dir{
		{"app_data/gitea/data", 1000, 1000, 0o755},
		{"app_data/convos/~/convos/data", 0, 0, 0o755},
		{"shared/music", 0, 0, 0o755},
	}},
	{file: "long-syntax.yml", project: "web", dirs: []dir{
		{"app_data/web/config", 33, 33, 0o750},
		{"app_data/web/uploads", 33, 33, 0o755},
		{"app_data/web/uploads/thumbs", 33, 33, 0o755},
		{"shared/music/albums", 0, 0, 0o755},
	}, setup: func(t *testing.T, base, root string) {
		write(t, filepath.Join(root, "app_data/web/settings.ini"), "x=1\n")
		if err := os.Symlink("/etc", filepath.Join(root, "app_data/web/linked")); err != nil {
			t.Fatal(err)
		}
	}},
}

func write(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// render writes the fixture as Portal would have it on a host whose tree
// is root, and returns the compose file's path.
func render(t *testing.T, f fixture, base, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", f.file))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer(
		"{{ fs.app_data }}", root+"/app_data/"+f.app,
		"{{ fs.all_app_data }}", root+"/app_data",
		"{{ fs.shared }}", root+"/shared",
		"/home/portal/user_data", root,
	).Replace(string(data))
	if f.file == "long-syntax.yml" {
		s = string(data) // its placeholder stays, to be reported
	}
	p := filepath.Join(base, "docker-compose.yml")
	write(t, p, s)
	return p
}

// prepare makes the fixture's directories with their owners and modes.
func prepare(t *testing.T, f fixture, base, root string) {
	t.Helper()
	for _, d := range f.dirs {
		p := filepath.Join(root, d.rel)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, d.uid, d.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, d.mode.Perm()|modeBits(d.mode)); err != nil {
			t.Fatal(err)
		}
	}
	if f.setup != nil {
		f.setup(t, base, root)
	}
}

// modeBits turns the octal special bits of a literal into Go's.
func modeBits(m os.FileMode) os.FileMode {
	var b os.FileMode
	if m&0o4000 != 0 {
		b |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		b |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		b |= os.ModeSticky
	}
	return b
}

// report is the plan in words, with the root spelled ROOT and the
// compose file's directory BASE.
func report(p *Plan, base, root string) string {
	var b strings.Builder
	for _, r := range p.Replaced {
		fmt.Fprintf(&b, "replaced %s -> %s %s exists=%v\n", r.Mount, r.Volume.Name, r.Volume.Spec.Dir(), r.Volume.Exists)
	}
	for _, k := range p.Kept {
		fmt.Fprintf(&b, "kept %s\n", k)
	}
	return strings.NewReplacer(root, "ROOT", base, "BASE").Replace(b.String())
}

func TestFixtures(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the fixtures' directories have owners: needs root")
	}
	seen := map[string]bool{}
	for i, f := range fixtures {
		seen[f.file] = true
		t.Run(fmt.Sprintf("%d-%s", i, f.file), func(t *testing.T) {
			base := t.TempDir()
			root := filepath.Join(base, "user_data")
			prepare(t, f, base, root)
			file := render(t, f, base, root)
			data, _ := os.ReadFile(file)
			cf, err := Read(data)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := MakePlan(cf, Config{Root: root, SharedNames: f.shared, Project: f.project, Dir: base, Home: "/root"})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			plan.Override(&out, "docker-compose.yml", "portal-volume", false)
			got := report(plan, base, root) + "---\n" + out.String()
			checkYAML(t, out.Bytes(), plan)

			golden := filepath.Join("testdata", fmt.Sprintf("%s.%d.golden", f.file, i))
			if *update {
				write(t, golden, got)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("plan and override differ from %s:\n%s", golden, got)
			}
		})
	}
	files, _ := filepath.Glob("testdata/*.y*ml*")
	for _, f := range files {
		if !strings.HasSuffix(f, ".golden") && !seen[filepath.Base(f)] {
			t.Errorf("%s is in no case", f)
		}
	}
}

// checkYAML reads the override back: it is YAML, every replaced mount is
// there in the syntax and with the target of the bind mount, with nocopy,
// and every volume has its name.
func checkYAML(t *testing.T, data []byte, p *Plan) {
	t.Helper()
	var o struct {
		Services map[string]struct {
			Volumes []yaml.Node
		}
		Volumes map[string]struct {
			Name       string
			Driver     string
			DriverOpts map[string]string `yaml:"driver_opts"`
		}
	}
	if err := yaml.Unmarshal(data, &o); err != nil {
		t.Fatalf("override is not YAML: %v\n%s", err, data)
	}
	n := 0
	for _, r := range p.Replaced {
		found := false
		for i, v := range o.Services[r.Mount.Service].Volumes {
			m, err := readMount(r.Mount.Service, i, &v)
			if err != nil {
				t.Fatalf("override entry %d of %s: %v", i, r.Mount.Service, err)
			}
			var nocopy bool
			if m.Long {
				var lv struct{ Volume struct{ Nocopy bool } }
				_ = v.Decode(&lv)
				nocopy = lv.Volume.Nocopy
			} else {
				nocopy = strings.HasSuffix(m.Spec, "nocopy")
			}
			if m.Target == r.Mount.Target && m.Long == r.Mount.Long && m.Source == r.Volume.Name && !m.Bind &&
				nocopy && m.ReadOnly == r.Mount.ReadOnly {
				found = true
			}
		}
		if !found {
			t.Errorf("override lacks %s", r.Mount)
		}
		n++
	}
	for _, v := range p.Volumes {
		ov := o.Volumes[v.Name]
		if ov.Name != v.Name || fmt.Sprint(ov.DriverOpts) != fmt.Sprint(v.Options) {
			t.Errorf("volume %s: %+v, want options %v", v.Name, ov, v.Options)
		}
	}
	total := 0
	for _, s := range o.Services {
		total += len(s.Volumes)
	}
	if total != n {
		t.Errorf("override has %d mounts, the plan %d", total, n)
	}
}

func TestReadRefuses(t *testing.T) {
	for _, c := range []struct{ data, want string }{
		{"services: [\n  - a: b\n  c", "not a YAML file: yaml: line"},
		{"{{ this is a template }}", "not a compose file"},
		{"services:\n\tweb: {}\n", "not a YAML file: yaml: line 2: found character that cannot start any token"},
		{"", "not a compose file: want a YAML mapping"},
		{"just a string", "not a compose file: want a YAML mapping"},
		{"- a\n- b\n", "not a compose file: want a YAML mapping"},
		{"web:\n  image: x\n", "no services section"},
		{"services:\n  web:\n    volumes: /data\n", "not a compose file: yaml: unmarshal errors"},
		{"services: 5\n", "not a compose file"},
	} {
		_, err := Read([]byte(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Read(%q) = %v, want %q", c.data, err, c.want)
		}
	}
}

func TestShortSyntax(t *testing.T) {
	for _, c := range []struct {
		spec, source, target string
		bind, ro             bool
		err                  string
	}{
		{"/a:/b", "/a", "/b", true, false, ""},
		{"/a:/b:ro", "/a", "/b", true, true, ""},
		{"/a:/b:rw,z", "/a", "/b", true, false, ""},
		{"./a:/b:ro,rslave", "./a", "/b", true, true, ""},
		{"~/a:/b", "~/a", "/b", true, false, ""},
		{"name:/b:nocopy", "name", "/b", false, false, ""},
		{"/anon", "", "/anon", false, false, ""},
		{"/a:/b:bogus", "", "", false, false, `unknown mode "bogus"`},
		{"/a:/b:c:d", "", "", false, false, "long syntax"},
		{":/b", "", "", false, false, "want SOURCE:TARGET"},
	} {
		m := Mount{Spec: c.spec}
		err := parseShort(&m)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want %q", c.spec, err, c.err)
			}
			continue
		}
		if err != nil || m.Source != c.source || m.Target != c.target || m.Bind != c.bind || m.ReadOnly != c.ro {
			t.Errorf("%q: %+v, %v", c.spec, m, err)
		}
	}
}

// Aliases are the entries they name; entries that cannot be read are
// reported, whatever they are.
func TestAliasesAndUnread(t *testing.T) {
	f, err := Read([]byte(`x-data: &data /r/app_data/a/data:/data
services:
  a:
    volumes:
      - *data
      - {type: bind, source: [1], target: /t}
      - [1]
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := MakePlan(f, Config{Root: "/r", Project: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Replaced) != 1 || p.Replaced[0].Volume.Name != "a_data" || len(p.Kept) != 2 ||
		!strings.Contains(p.Kept[0].Reason, "not a volume entry") || !strings.Contains(p.Kept[1].Reason, "want a string or a mapping") {
		t.Errorf("replaced %+v\nkept %v", p.Replaced, p.Kept)
	}
}

func TestProject(t *testing.T) {
	for in, want := range map[string]string{
		"/home/shard/core/installed_apps/immich": "immich",
		"/x/Paperless-NGX":                       "paperless-ngx",
		"/x/My App.v2":                           "myappv2",
		"/x/_tmp":                                "tmp",
	} {
		if got := Project(in); got != want {
			t.Errorf("Project(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPlanRefuses(t *testing.T) {
	f, err := Read([]byte("services:\n  a:\n    volumes: ['/nonexistent-portal-root/app_data/a/data:/data']\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MakePlan(f, Config{Root: "relative", Project: "a"}); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("relative root: %v", err)
	}
	if _, err := MakePlan(f, Config{Root: "/r", Project: "My App"}); err == nil || !strings.Contains(err.Error(), `project "My App"`) {
		t.Errorf("bad project: %v", err)
	}
	// Nothing on disk: a missing directory gets no owner options.
	p, err := MakePlan(f, Config{Root: "/nonexistent-portal-root", Project: "a"})
	if err != nil || len(p.Volumes) != 1 || fmt.Sprint(p.Volumes[0].Options) != "map[app:a path:/data]" || p.Volumes[0].Exists {
		t.Errorf("missing dir: %+v, %v", p, err)
	}
}

func FuzzRead(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.y*ml*")
	for _, file := range files {
		if !strings.HasSuffix(file, ".golden") {
			data, _ := os.ReadFile(file)
			f.Add(data)
		}
	}
	for _, s := range []string{"services: {a: {volumes: ['/r/shared:/s', {type: bind, source: /r/app_data, target: /t}]}}",
		"services:\n  a:\n    volumes:\n      - /r/app_data/a/b/../../../../etc:/x\n      - &x /r/shared/media:/m\n      - *x\n",
		"services: {a: {volumes: [{type: bind}, 5, [1], null, '/r/app_data/a/x:/y:ro,nocopy']}}", "[", "a: &a [*a]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := Read(data)
		if err != nil {
			return
		}
		p, err := MakePlan(cf, Config{Root: "/nonexistent-portal-root", Project: "p", Dir: "/nonexistent-portal-root/apps/p", Home: "/root"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Replaced {
			if r.Volume.Exists || strings.Contains(r.Volume.Spec.Dir(), "..") || r.Volume.Name == "" {
				t.Fatalf("%s -> %+v", r.Mount, r.Volume)
			}
		}
		var out bytes.Buffer
		p.Override(&out, "f.yml", "portal-volume", false)
		checkYAML(t, out.Bytes(), p)
	})
}
