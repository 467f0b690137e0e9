package spec

import (
	"strings"
	"testing"
)

var checkParser = Parser{SharedNames: []string{"media", "documents"}}

// TestCheckAcceptsWhatParseMakes: whatever a Create makes, a record of it
// passes Check, also after the settings that may change have.
func TestCheckAcceptsWhatParseMakes(t *testing.T) {
	anon := strings.Repeat("ab", 32)
	for _, c := range []struct {
		name string
		opts map[string]string
	}{
		{"gitea_data", nil},
		{"gitea_data", map[string]string{"uid": "1000", "gid": "1000", "mode": "0750", "on_remove": "delete"}},
		{"x", map[string]string{"app": "paperless", "path": "usr//src/data/", "access": "ro"}},
		{"m", map[string]string{"shared": "media", "uid": "1000", "gid": "1000", "access": "ro"}},
		{"m2", map[string]string{"shared": "documents", "app": "a"}},
		{"t", map[string]string{"tree": "app_data", "uid": "33", "gid": "33"}},
		{"t2", map[string]string{"tree": "shared"}},
		{anon, nil},
		{anon, map[string]string{"uid": "5"}},
	} {
		s, err := checkParser.Parse(c.name, c.opts)
		if err != nil {
			t.Fatalf("Parse(%s, %v): %v", c.name, c.opts, err)
		}
		for _, p := range []Parser{checkParser, {SharedNames: []string{"music"}, Anonymous: Refuse}} {
			if err := p.Check(c.name, s); err != nil {
				t.Errorf("Check(%s, %+v) with %+v: %v", c.name, s, p, err)
			}
		}
	}
}

// TestCheckRefusesForgedRecords: a record no Create could have made is
// refused, whatever it would have made the plugin touch.
func TestCheckRefusesForgedRecords(t *testing.T) {
	anon := strings.Repeat("ab", 32)
	for _, c := range []struct {
		why  string
		name string
		s    Spec
	}{
		{"app path escapes", "evil_data", Spec{Kind: KindApp, App: "evil", Path: "/../../../outside", UID: 1000, GID: 1000, Mode: 0o6777, Enforce: true, OnRemove: Keep}},
		{"app name escapes", "x", Spec{Kind: KindApp, App: "..", Path: "/x", OnRemove: Keep, Mode: DefaultMode}},
		{"app path dot", "evil_data", Spec{Kind: KindApp, App: "evil", Path: "/./data", OnRemove: Keep, Mode: DefaultMode}},
		{"app path not folded", "evil_data", Spec{Kind: KindApp, App: "evil", Path: "data", OnRemove: Keep, Mode: DefaultMode}},
		{"tree escapes", "t", Spec{Kind: KindTree, Tree: "../../../..", OnRemove: Keep, Mode: DefaultMode}},
		{"tree is no tree", "t", Spec{Kind: KindTree, Tree: "etc", OnRemove: Keep, Mode: DefaultMode}},
		{"shared escapes", "s", Spec{Kind: KindShared, Shared: "../../etc", OnRemove: Keep, Mode: DefaultMode}},
		{"shared dotdot", "s", Spec{Kind: KindShared, Shared: "..", OnRemove: Keep, Mode: DefaultMode}},
		{"shared deleted", "s", Spec{Kind: KindShared, Shared: "media", OnRemove: Delete, Mode: DefaultMode}},
		{"tree deleted", "t", Spec{Kind: KindTree, Tree: "app_data", OnRemove: Delete, Mode: DefaultMode}},
		{"shared chowned", "s", Spec{Kind: KindShared, Shared: "media", Enforce: true, UID: 1000, GID: 1000, Mode: 0o777, OnRemove: Keep}},
		{"anonymous escapes", anon, Spec{Kind: KindAnonymous, Path: "/../../outside", OnRemove: Delete, Mode: DefaultMode}},
		{"anonymous elsewhere", anon, Spec{Kind: KindAnonymous, Path: "/" + strings.Repeat("cd", 32), OnRemove: Delete, Mode: DefaultMode}},
		{"anonymous not anonymous", "gitea_data", Spec{Kind: KindAnonymous, Path: "/gitea_data", OnRemove: Delete, Mode: DefaultMode}},
		{"mode too wide", "gitea_data", Spec{Kind: KindApp, App: "gitea", Path: "/data", Enforce: true, Mode: 0o17777, OnRemove: Keep}},
		{"uid -1", "gitea_data", Spec{Kind: KindApp, App: "gitea", Path: "/data", Enforce: true, UID: 1<<32 - 1, Mode: 0o755, OnRemove: Keep}},
		{"unknown kind", "gitea_data", Spec{Kind: Kind(9), App: "gitea", Path: "/data"}},
		{"on_remove unknown", "gitea_data", Spec{Kind: KindApp, App: "gitea", Path: "/data", Mode: DefaultMode, OnRemove: "shred"}},
	} {
		if err := checkParser.Check(c.name, c.s); err == nil {
			t.Errorf("%s: Check(%s, %+v) passed", c.why, c.name, c.s)
		} else {
			t.Logf("%s: %v", c.why, err)
		}
	}
}

// FuzzCheck: what Parse accepts, Check accepts.
func FuzzCheck(f *testing.F) {
	f.Add("gitea_data", "", "", "", "", "")
	f.Add("x", "paperless", "/usr/src/data", "1000", "", "ro")
	f.Add("m", "", "", "1000", "media", "")
	f.Add(strings.Repeat("0", 64), "", "", "7", "", "rw")
	f.Fuzz(func(t *testing.T, name, app, path, uid, shared, access string) {
		opts := map[string]string{}
		for k, v := range map[string]string{KeyApp: app, KeyPath: path, KeyUID: uid, KeyGID: uid, KeyShared: shared, KeyAccess: access} {
			if v != "" {
				opts[k] = v
			}
		}
		s, err := checkParser.Parse(name, opts)
		if err != nil {
			return
		}
		if err := checkParser.Check(name, s); err != nil {
			t.Fatalf("Parse(%q, %v) = %+v, which Check refuses: %v", name, opts, s, err)
		}
	})
}

// BenchmarkCheck: what checking one record costs at start-up.
func BenchmarkCheck(b *testing.B) {
	s, err := checkParser.Parse("app1_data", map[string]string{"uid": "1000", "gid": "1000", "mode": "0750"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := checkParser.Check("app1_data", s); err != nil {
			b.Fatal(err)
		}
	}
}
