package spec

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// options rebuilds the canonical options of s: parsing them with the same
// name must give s again.
func options(s Spec) map[string]string {
	o := map[string]string{KeyOnRemove: s.OnRemove}
	if s.App != "" {
		o[KeyApp] = s.App
	}
	switch s.Kind {
	case KindShared:
		o[KeyShared] = s.Shared
		return o
	case KindTree:
		o[KeyTree] = s.Tree
		return o
	case KindAnonymous:
		delete(o, KeyOnRemove) // the daemon's setting
	default:
		o[KeyPath] = s.Path
	}
	if s.Enforce {
		o[KeyUID] = strconv.FormatUint(uint64(s.UID), 10)
		o[KeyGID] = strconv.FormatUint(uint64(s.GID), 10)
		o[KeyMode] = s.ModeString()
	}
	return o
}

func checkSpec(t *testing.T, s Spec) {
	t.Helper()
	if !s.Enforce && (s.UID != 0 || s.GID != 0 || s.Mode != DefaultMode) {
		t.Fatalf("owner given but not enforced: %+v", s)
	}
	switch s.Kind {
	case KindShared, KindTree:
		if s.Path != "" || s.Enforce || s.OnRemove != Keep || s.Shared != "" && s.Tree != "" || s.Kind == KindAnonymous {
			t.Fatalf("shared or tree spec with app-volume fields: %+v", s)
		}
		if s.Kind == KindShared && (!strings.HasPrefix(s.Dir(), "shared/") || strings.Count(s.Dir(), "/") != 1) {
			t.Fatalf("shared dir %q", s.Dir())
		}
		if s.Kind == KindTree && !slices.Contains(trees, s.Dir()) {
			t.Fatalf("tree dir %q", s.Dir())
		}
	case KindAnonymous:
		if s.App != "" || !anonymousPattern.MatchString(s.Path[1:]) {
			t.Fatalf("anonymous spec %+v", s)
		}
	default:
		if s.App == "" || !appPattern.MatchString(s.App) {
			t.Fatalf("app %q", s.App)
		}
		if !strings.HasPrefix(s.Path, "/") || len(s.Path) < 2 {
			t.Fatalf("path %q does not start with / or is empty", s.Path)
		}
		if strings.HasSuffix(s.Path, "/") {
			t.Fatalf("path %q ends with /", s.Path)
		}
	}
	if strings.Contains(s.Path, "//") {
		t.Fatalf("path %q has //", s.Path)
	}
	if strings.IndexFunc(s.Path, unicode.IsControl) >= 0 || strings.ContainsRune(s.Path, 0) {
		t.Fatalf("path %q has a control character", s.Path)
	}
	for _, c := range strings.Split(s.Dir(), "/") {
		if c == "" || c == "." || c == ".." {
			t.Fatalf("dir %q has an empty, . or .. component", s.Dir())
		}
		if len(c) > 255 {
			t.Fatalf("dir %q has a component of %d bytes", s.Dir(), len(c))
		}
	}
	if s.Mode > 0o7777 || s.UID > MaxID || s.GID > MaxID {
		t.Fatalf("out of range: %+v", s)
	}
	if s.OnRemove != Keep && s.OnRemove != Delete {
		t.Fatalf("on_remove %q", s.OnRemove)
	}
}

var sharedConfigPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func FuzzParse(f *testing.F) {
	f.Add("gitea_data", "", "", "", "", "", "", "")
	f.Add("myapp_user_data", "uid", "1000", "GID", "1000", "mode", "0750", "")
	f.Add("gitea-data", "app", "gitea", "path", "/data/", "on_remove", "delete", "")
	f.Add("v", "app", "paperless", "path", "//usr//src/paperless/data/", "mode", "750", "")
	f.Add("m", "shared", "media", "app", "jellyfin", "", "", "")
	f.Add("m", "shared", "media", "path", "/x", "", "", "")
	f.Add("m", "SHARED", "music", "on_remove", "delete", "", "", "")
	f.Add("x_..", "uid", "4294967294", "gid", "4294967295", "", "", "")
	f.Add("foo", "path", "/data", "", "", "", "", "")
	f.Add("_x", "mode", "10000", "", "", "", "", "")
	f.Add("a_b", "app", "a", "APP", "b", "", "", "")
	f.Add("a_\x00", "uid", "-1", "mode", "8", "", "", "")
	f.Add("a_"+strings.Repeat("x/", 1024), "", "", "", "", "", "", "")
	f.Add("data", "app", "a", "mode", "07777", "uid", "+1", "")
	f.Add("p", "shared", "photos.2", "", "", "", "", "photos.2")
	f.Add("fm", "tree", "app_data", "app", "filebrowser", "", "", "")
	f.Add("fm", "Tree", "service_data", "mode", "0755", "", "", "")
	f.Add("fm", "tree", "shared", "shared", "media", "", "", "")
	f.Add(strings.Repeat("ab12", 16), "", "", "", "", "", "", "")
	f.Add(strings.Repeat("ab12", 16), "uid", "999", "on_remove", "keep", "", "", "")
	f.Add(strings.Repeat("AB12", 16), "", "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, name, k1, v1, k2, v2, k3, v3, shared string) {
		opts := map[string]string{}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}, {k3, v3}} {
			if kv[0] != "" {
				opts[kv[0]] = kv[1]
			}
		}
		p := Parser{SharedNames: []string{"documents", "media", "music"}}
		// Configured names are checked by the plugin's settings
		// (plugin/settings.go); the parser trusts them.
		if sharedConfigPattern.MatchString(shared) {
			p.SharedNames = append(p.SharedNames, shared)
		}
		s, err := p.Parse(name, opts)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		checkSpec(t, s)
		// The canonical options of s, with keys in any case, give s again.
		canon := options(s)
		again, err := p.Parse(name, canon)
		if err != nil {
			t.Fatalf("canonical options %v of %+v refused: %v", canon, s, err)
		}
		if again != s {
			t.Fatalf("canonical options %v give %+v, want %+v", canon, again, s)
		}
		upper := map[string]string{}
		for k, v := range canon {
			upper[strings.ToUpper(k)] = v
		}
		if again, err := p.Parse(name, upper); err != nil || again != s {
			t.Fatalf("upper-case options %v give %+v, %v; want %+v", upper, again, err, s)
		}
	})
}

func FuzzFoldPath(f *testing.F) {
	for _, s := range []string{"data", "/data/", "//a//b/", "/", "", ".", "..", "/a/../b", "a\x00b",
		"\xff", "...", "/usr/src/paperless/data", strings.Repeat("a/", 1023) + "aa", strings.Repeat("x", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := FoldPath(p)
		if err != nil {
			return
		}
		again, err := FoldPath(got)
		if err != nil {
			t.Fatalf("FoldPath(%q) = %q, which is refused: %v", p, got, err)
		}
		if again != got {
			t.Fatalf("FoldPath(%q) = %q, FoldPath of that = %q", p, got, again)
		}
		if !strings.HasPrefix(got, "/") || strings.Contains(got, "//") || strings.HasSuffix(got, "/") {
			t.Fatalf("FoldPath(%q) = %q", p, got)
		}
		if strings.Trim(p, "/") == "" {
			t.Fatalf("FoldPath(%q) = %q, want refused", p, got)
		}
		if strings.ReplaceAll(strings.Trim(got, "/"), "/", "") != strings.ReplaceAll(p, "/", "") {
			t.Fatalf("FoldPath(%q) = %q changed more than slashes", p, got)
		}
	})
}
