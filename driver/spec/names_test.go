package spec

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// pathNameOf is the name of app's volume for the path p.
func pathNameOf(app, p string) (string, error) {
	folded, err := FoldPath(p)
	if err != nil {
		return "", err
	}
	return Name(Spec{App: app, Path: folded}, app), nil
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
		{"a", "/tree", "a_tree"},
		{"a", "/tree/app_data", "a_x.475ab3602bc444de"}, // would look like TreeName(a, app_data)
		{"my_app", "/data", "my_app_data"},
	} {
		got, err := pathNameOf(c.app, c.path)
		if err != nil || got != c.want {
			t.Errorf("pathName(%q, %q) = %q, %v; want %q", c.app, c.path, got, err, c.want)
		}
	}
	if got := Name(Spec{Kind: KindShared, Shared: "media"}, "a"); got != "a_shared.media" {
		t.Errorf("SharedName = %q", got)
	}
	if got := Name(Spec{Kind: KindTree, Tree: "app_data"}, "a"); got != "a_tree.app_data" {
		t.Errorf("TreeName = %q", got)
	}
	if _, err := pathNameOf("a", "/../etc"); err == nil {
		t.Error("PathName accepted ..")
	}
}

// genPath makes a path from components likely to meet the edges of the
// naming scheme: reserved words, ".", "_", "-", non-ASCII, spaces, and long
// components.
func genPath(r *rand.Rand) string {
	atoms := []string{"a", "B", "0", "_", "-", ".", "x", "shared", "tree", "app_data", "data", "é", " ", "media", "~", "'", ":"}
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
			seen[Name(Spec{Kind: KindShared, Shared: sh}, app)] = "shared:" + sh
		}
		for _, tr := range trees {
			seen[Name(Spec{Kind: KindTree, Tree: tr}, app)] = "tree:" + tr
		}
		for i := 0; i < 20000; i++ {
			p := genPath(r)
			folded, err := FoldPath(p)
			if err != nil {
				continue
			}
			name, err := pathNameOf(app, p)
			if err != nil {
				t.Fatalf("pathName(%q, %q): %v", app, p, err)
			}
			if again, _ := pathNameOf(app, p); again != name {
				t.Fatalf("pathName(%q, %q) = %q, then %q", app, p, name, again)
			}
			if !DockerNamePattern.MatchString(name) || len(name) > MaxNameLen {
				t.Fatalf("pathName(%q, %q) = %q (%d bytes): not a valid Docker volume name", app, p, name, len(name))
			}
			if !strings.HasPrefix(name, app+"_") {
				t.Fatalf("pathName(%q, %q) = %q: want the app first", app, p, name)
			}
			if other, ok := seen[name]; ok && other != folded {
				t.Fatalf("pathName(%q, %q) = %q, the name of %q too", app, p, name, other)
			}
			seen[name] = folded
		}
		if len(seen) < 5000 {
			t.Errorf("app %s: only %d distinct names: the generator is too narrow", app, len(seen))
		}
	}
}

// The layout both ways: the volume ForDir gives for a directory has that
// directory, a name installers give it parses back to it, and every kind
// but the anonymous one (a name Docker makes) has a directory ForDir reads.
func TestLayoutBothWays(t *testing.T) {
	p := Parser{SharedNames: DefaultSharedNames}
	covered := map[Kind]bool{}
	for _, c := range []struct {
		dir  string
		opts func(Spec) map[string]string
	}{
		{"app_data/gitea/data", func(s Spec) map[string]string { return map[string]string{KeyApp: s.App, KeyPath: s.Path} }},
		{"app_data/paperless-ngx/usr/src/paperless/data", func(s Spec) map[string]string { return map[string]string{KeyApp: s.App, KeyPath: s.Path} }},
		{"shared/media", func(s Spec) map[string]string { return map[string]string{KeyShared: s.Shared} }},
		{"app_data", func(s Spec) map[string]string { return map[string]string{KeyTree: s.Tree} }},
		{"service_data", func(s Spec) map[string]string { return map[string]string{KeyTree: s.Tree} }},
		{"shared", func(s Spec) map[string]string { return map[string]string{KeyTree: s.Tree} }},
	} {
		s, err := ForDir(c.dir)
		if err != nil {
			t.Fatalf("ForDir(%s): %v", c.dir, err)
		}
		covered[s.Kind] = true
		if s.Dir() != c.dir {
			t.Errorf("ForDir(%s).Dir() = %s", c.dir, s.Dir())
		}
		name := Name(s, "proj")
		back, err := p.Parse(name, c.opts(s))
		if err != nil || back.Dir() != c.dir || back.Kind != s.Kind {
			t.Errorf("%s named %s parses to %+v, %v", c.dir, name, back, err)
		}
		if s.Kind == KindApp && !strings.Contains(name, ".") {
			if byName, err := p.Parse(name, nil); err != nil || byName.Dir() != c.dir {
				t.Errorf("%s by name alone: %+v, %v", name, byName, err)
			}
		}
	}
	for _, k := range Kinds() {
		if !covered[k] && k != KindAnonymous {
			t.Errorf("kind %s: no directory of it read back", k)
		}
	}
	anon := strings.Repeat("ab", 32)
	if s, err := p.Parse(anon, nil); err != nil || Name(s, "proj") != anon {
		t.Errorf("anonymous %s: %+v, %v", anon, s, err)
	}
	for _, dir := range []string{"app_data/gitea", "shared/media/x", "service_data/x", "anonymous/" + anon, "home", "app_data/-x/d", "app_data/a/\x01"} {
		if s, err := ForDir(dir); err == nil {
			t.Errorf("ForDir(%s) = %+v, want a refusal", dir, s)
		}
	}
}
