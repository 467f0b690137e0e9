package spec

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var parser = Parser{SharedNames: []string{"documents", "media", "music"}}

// wantOptionError asserts err refuses key=value and says so in its text.
func wantOptionError(t *testing.T, err error, key, value string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error naming %s=%q, got none", key, value)
	}
	var oe *OptionError
	if !errors.As(err, &oe) {
		t.Fatalf("want *OptionError, got %T: %v", err, err)
	}
	if !strings.EqualFold(oe.Key, key) || oe.Value != value {
		t.Fatalf("error refuses %s=%q, want %s=%q: %v", oe.Key, oe.Value, key, value, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, oe.Key) || !strings.Contains(msg, fmt.Sprintf("%q", value)) {
		t.Fatalf("error %q does not name the key %q and the value %q", msg, oe.Key, value)
	}
	if oe.Allowed == "" {
		t.Fatalf("error %q does not say what is allowed", msg)
	}
}

// wantNameError asserts err refuses name, quotes it and shows both ways to
// name a volume.
func wantNameError(t *testing.T, err error, name string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error for name %q, got none", name)
	}
	var ne *NameError
	if !errors.As(err, &ne) {
		t.Fatalf("want *NameError, got %T: %v", err, err)
	}
	msg := err.Error()
	for _, want := range []string{fmt.Sprintf("%q", name), "<app>_<dir>", "-o app="} {
		if !strings.Contains(msg, want) {
			t.Fatalf("error %q does not contain %q", msg, want)
		}
	}
}

func TestParseApp(t *testing.T) {
	tests := []struct {
		app string
		ok  bool
	}{
		{"gitea", true},
		{"a", true},
		{"9", true},
		{"my-app_2", true},
		{"A" + strings.Repeat("b", 63), true},  // 64 characters
		{"A" + strings.Repeat("b", 64), false}, // 65
		{"", false},
		{"_app", false},
		{"-app", false},
		{"app.x", false},
		{"app/x", false},
		{"app x", false},
		{"äpp", false},
		{"app\u00e9", false},
		{"app\n", false},
		{"..", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.app), func(t *testing.T) {
			s, err := parser.Parse("data", map[string]string{"app": tc.app})
			if !tc.ok {
				wantOptionError(t, err, KeyApp, tc.app)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.App != tc.app || s.Path != "/data" {
				t.Fatalf("got app %q path %q", s.App, s.Path)
			}
		})
	}
}

func TestFoldPath(t *testing.T) {
	c255 := strings.Repeat("x", 255)
	c256 := strings.Repeat("x", 256)
	tests := []struct {
		in, want string // want "" means refused
	}{
		{"data", "/data"},
		{"/data", "/data"},
		{"/data/", "/data"},
		{"data/", "/data"},
		{"//a//b/", "/a/b"},
		{"/usr/src/paperless/data", "/usr/src/paperless/data"},
		{"/files/images", "/files/images"},
		{"a b", "/a b"},
		{"...", "/..."},
		{"a..b", "/a..b"},
		{".hidden", "/.hidden"},
		{"données/été", "/données/été"},
		{"/" + c255 + "/", "/" + c255},
		{"/" + c256, ""},
		{"a/" + c256 + "/b", ""},
		{"/", ""},
		{"", ""},
		{"///", ""},
		{".", ""},
		{"..", ""},
		{"/a/./b", ""},
		{"/a/../b", ""},
		{"../etc", ""},
		{"/a/..", ""},
		{"/a/.", ""},
		{"a\x00b", ""},
		{"a\nb", ""},
		{"a\tb", ""},
		{"a\x7fb", ""},
		{"a\u0085b", ""}, // C1 control
		{"a\xffb", ""},   // invalid UTF-8
		{"\xc3", ""},     // truncated UTF-8
	}
	for _, tc := range tests {
		name := tc.in
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			got, err := FoldPath(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("FoldPath(%q) = %q, want an error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("FoldPath(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("FoldPath(%q) = %q, want %q", tc.in, got, tc.want)
			}
			again, err := FoldPath(got)
			if err != nil || again != got {
				t.Fatalf("FoldPath(%q) = %q, %v: not idempotent", got, again, err)
			}
		})
	}
}

// TestFoldPathLongPath: a path that is accepted must fold to a path that is
// accepted again (the length limit applies to the folded path), or a volume
// could be created whose own canonical options are refused.
func TestFoldPathLongPath(t *testing.T) {
	in := strings.Repeat("a/", 1023) + "aa" // 2048 bytes, folds to 2049
	for _, p := range []string{in, in[:len(in)-1], "/" + in[:len(in)-1], "/" + in} {
		got, err := FoldPath(p)
		if err != nil {
			continue // refusing is fine; accepting something not re-acceptable is not
		}
		if again, err := FoldPath(got); err != nil || again != got {
			t.Fatalf("FoldPath of a %d-byte path gave %d bytes, which folds to %d bytes, %v",
				len(p), len(got), len(again), err)
		}
	}
	if got, err := FoldPath(in[:len(in)-1]); err != nil || len(got) != 2048 {
		t.Fatalf("a path folding to 2048 bytes: %d bytes, %v", len(got), err)
	}
	if got, err := FoldPath("/" + in); err == nil {
		t.Fatalf("a path folding to 2049 bytes accepted (%d bytes)", len(got))
	}
	// A long run of slashes around a short path is still that path.
	if got, err := FoldPath(strings.Repeat("/", 3000) + "data" + strings.Repeat("/", 3000)); err != nil || got != "/data" {
		t.Fatalf("got %q, %v; want /data", got, err)
	}
}

func TestParsePathOption(t *testing.T) {
	tests := []struct {
		path, want string
	}{
		{"data", "/data"},
		{"/data/", "/data"},
		{"//a//b/", "/a/b"},
		{"/usr/src/paperless/data", "/usr/src/paperless/data"},
		{"/", ""},
		{"", ""},
		{"/a/../b", ""},
		{"/a/./b", ""},
		{"a\x00", ""},
		{"a\x1b[31m", ""},
		{"\xff", ""},
		{"/" + strings.Repeat("é", 128), ""}, // 256 bytes
		{"/" + strings.Repeat("é", 127) + "x", "/" + strings.Repeat("é", 127) + "x"}, // 255 bytes
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%.40q", tc.path), func(t *testing.T) {
			s, err := parser.Parse("vol", map[string]string{"app": "gitea", "path": tc.path})
			if tc.want == "" {
				wantOptionError(t, err, KeyPath, tc.path)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Path != tc.want {
				t.Fatalf("path %q, want %q", s.Path, tc.want)
			}
		})
	}
}

func TestParseIDs(t *testing.T) {
	tests := []struct {
		v    string
		want uint32
		ok   bool
	}{
		{"0", 0, true},
		{"1000", 1000, true},
		{"01000", 1000, true}, // decimal, not octal
		{"4294967294", 4294967294, true},
		{"4294967295", 0, false},
		{"4294967296", 0, false},
		{"99999999999999999999999", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"0x10", 0, false},
		{"1e3", 0, false},
		{"1_000", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"", 0, false},
		{"abc", 0, false},
	}
	for _, key := range []string{KeyUID, KeyGID} {
		for _, tc := range tests {
			t.Run(key+"="+tc.v, func(t *testing.T) {
				s, err := parser.Parse("gitea_data", map[string]string{key: tc.v})
				if !tc.ok {
					wantOptionError(t, err, key, tc.v)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				got, other := s.UID, s.GID
				if key == KeyGID {
					got, other = s.GID, s.UID
				}
				if got != tc.want || other != 0 {
					t.Fatalf("%s = %d (other id %d), want %d (other 0)", key, got, other, tc.want)
				}
			})
		}
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		v    string
		want uint32
		ok   bool
	}{
		{"750", 0o750, true},
		{"0750", 0o750, true},
		{"00750", 0o750, true},
		{"0", 0, true},
		{"7", 0o7, true},
		{"1777", 0o1777, true},
		{"07777", 0o7777, true},
		{"7777", 0o7777, true},
		{"10000", 0, false},
		{"077777", 0, false},
		{"758", 0, false},
		{"759", 0, false},
		{"8", 0, false},
		{"0o750", 0, false},
		{"-750", 0, false},
		{"+750", 0, false},
		{" 750", 0, false},
		{"rwxr-x---", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.v, func(t *testing.T) {
			s, err := parser.Parse("gitea_data", map[string]string{"mode": tc.v})
			if !tc.ok {
				wantOptionError(t, err, KeyMode, tc.v)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Mode != tc.want {
				t.Fatalf("mode %o, want %o", s.Mode, tc.want)
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	s, err := parser.Parse("gitea_data", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{App: "gitea", Path: "/data", Mode: 0o755, OnRemove: Keep}
	if s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
	if s.ModeString() != "0755" || s.Dir() != "app_data/gitea/data" {
		t.Fatalf("mode %s dir %s", s.ModeString(), s.Dir())
	}
}

func TestParseOnRemove(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{"keep", true}, {"delete", true},
		{"Keep", false}, {"DELETE", false}, {"", false}, {"purge", false}, {"keep ", false},
	} {
		t.Run(tc.v, func(t *testing.T) {
			s, err := parser.Parse("gitea_data", map[string]string{"on_remove": tc.v})
			if !tc.ok {
				wantOptionError(t, err, KeyOnRemove, tc.v)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.OnRemove != tc.v {
				t.Fatalf("on_remove %q, want %q", s.OnRemove, tc.v)
			}
		})
	}
}

func TestParseShared(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]string
		want    Spec
		errKey  string // refused naming this key
		errVal  string
		wantErr bool
	}{
		{name: "media_vol", opts: map[string]string{"shared": "media"},
			want: Spec{Kind: KindShared, Shared: "media", Mode: DefaultMode, OnRemove: Keep}},
		{name: "whatever", opts: map[string]string{"shared": "music", "app": "jellyfin"},
			want: Spec{Kind: KindShared, App: "jellyfin", Shared: "music", Mode: DefaultMode, OnRemove: Keep}},
		{name: "nounderscore", opts: map[string]string{"shared": "documents", "on_remove": "keep"},
			want: Spec{Kind: KindShared, Shared: "documents", Mode: DefaultMode, OnRemove: Keep}},
		{name: "x", opts: map[string]string{"shared": "videos"}, errKey: "shared", errVal: "videos"},
		{name: "x", opts: map[string]string{"shared": "Media"}, errKey: "shared", errVal: "Media"},
		{name: "x", opts: map[string]string{"shared": ""}, errKey: "shared", errVal: ""},
		{name: "x", opts: map[string]string{"shared": "../media"}, errKey: "shared", errVal: "../media"},
		{name: "x", opts: map[string]string{"shared": "media", "path": "/m"}, errKey: "path", errVal: "/m"},
		{name: "x", opts: map[string]string{"shared": "media", "app": "a", "path": "/m"}, errKey: "path", errVal: "/m"},
		// uid/gid on shared: an id-mapped view, never a chown.
		{name: "x", opts: map[string]string{"shared": "media", "uid": "1000"},
			want: Spec{Kind: KindShared, Shared: "media", UID: 1000, IDMap: true, Mode: DefaultMode, OnRemove: Keep}},
		{name: "x", opts: map[string]string{"shared": "media", "uid": "1000", "gid": "1001", "access": "ro"},
			want: Spec{Kind: KindShared, Shared: "media", UID: 1000, GID: 1001, IDMap: true, ReadOnly: true, Mode: DefaultMode, OnRemove: Keep}},
		{name: "x", opts: map[string]string{"shared": "media", "access": "rw"},
			want: Spec{Kind: KindShared, Shared: "media", Mode: DefaultMode, OnRemove: Keep}},
		{name: "x", opts: map[string]string{"shared": "media", "uid": "-1"}, errKey: "uid", errVal: "-1"},
		{name: "x", opts: map[string]string{"shared": "media", "gid": "x"}, errKey: "gid", errVal: "x"},
		{name: "x", opts: map[string]string{"shared": "media", "mode": "755"}, errKey: "mode", errVal: "755"},
		{name: "x", opts: map[string]string{"shared": "media", "on_remove": "delete"}, errKey: "on_remove", errVal: "delete"},
		{name: "x", opts: map[string]string{"shared": "media", "app": "_bad"}, errKey: "app", errVal: "_bad"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.opts), func(t *testing.T) {
			s, err := parser.Parse(tc.name, tc.opts)
			if tc.errKey != "" {
				wantOptionError(t, err, tc.errKey, tc.errVal)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s != tc.want {
				t.Fatalf("got %+v, want %+v", s, tc.want)
			}
			if s.Dir() != "shared/"+tc.want.Shared {
				t.Fatalf("dir %q", s.Dir())
			}
		})
	}
	// The allowed names are the configured ones, not a fixed list.
	p := Parser{SharedNames: []string{"photos"}}
	if _, err := p.Parse("x", map[string]string{"shared": "media"}); err == nil {
		t.Fatal("shared=media accepted though only photos is configured")
	} else if !strings.Contains(err.Error(), "photos") {
		t.Fatalf("error %q does not list the allowed names", err)
	}
	if s, err := p.Parse("x", map[string]string{"shared": "photos"}); err != nil || s.Shared != "photos" {
		t.Fatalf("got %+v, %v", s, err)
	}
}

// TestParseAccess: rw (the default) or ro, on any volume kind.
func TestParseAccess(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts map[string]string
		ro   bool
	}{
		{"gitea_data", nil, false},
		{"gitea_data", map[string]string{"access": "rw"}, false},
		{"gitea_data", map[string]string{"ACCESS": "ro"}, true},
		{"x", map[string]string{"app": "a", "path": "/p", "uid": "5", "access": "ro"}, true},
		{"x", map[string]string{"shared": "music", "access": "ro"}, true},
	} {
		s, err := parser.Parse(tc.name, tc.opts)
		if err != nil {
			t.Fatalf("%v: %v", tc.opts, err)
		}
		if s.ReadOnly != tc.ro || s.Access() != map[bool]string{false: AccessRW, true: AccessRO}[tc.ro] {
			t.Errorf("%v: ReadOnly %v, Access %q", tc.opts, s.ReadOnly, s.Access())
		}
		if s.IDMap != (tc.opts["shared"] != "" && tc.opts["uid"] != "") {
			t.Errorf("%v: IDMap %v", tc.opts, s.IDMap)
		}
	}
	for _, v := range []string{"", "RO", "read-only", "rw,ro"} {
		_, err := parser.Parse("gitea_data", map[string]string{"access": v})
		wantOptionError(t, err, KeyAccess, v)
		if err != nil && !strings.Contains(err.Error(), `"rw" (the default) or "ro"`) {
			t.Errorf("access=%q: %v does not say what is allowed", v, err)
		}
	}
}

func TestParseKeys(t *testing.T) {
	s, err := parser.Parse("vol", map[string]string{"APP": "gitea", "Path": "/data", "UID": "1", "gId": "2", "MODE": "700", "On_Remove": "delete"})
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{App: "gitea", Path: "/data", UID: 1, GID: 2, Mode: 0o700, Enforce: true, OnRemove: Delete}
	if s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
	if s, err := parser.Parse("x", map[string]string{"SHARED": "media"}); err != nil || s.Shared != "media" {
		t.Fatalf("SHARED: %+v, %v", s, err)
	}

	for _, tc := range []struct {
		opts     map[string]string
		key, val string
	}{
		{map[string]string{"size": "10G"}, "size", "10G"},
		{map[string]string{"app": "gitea", "owner": "1000"}, "owner", "1000"},
		{map[string]string{"app ": "gitea"}, "app ", "gitea"},
		{map[string]string{"": "x"}, "", "x"},
		{map[string]string{"o": "bind"}, "o", "bind"},
	} {
		_, err := parser.Parse("gitea_data", tc.opts)
		wantOptionError(t, err, tc.key, tc.val)
		if !strings.Contains(err.Error(), "unknown key") {
			t.Fatalf("error %q does not say the key is unknown", err)
		}
	}

	// The same key twice in different case.
	for _, opts := range []map[string]string{
		{"app": "gitea", "APP": "gitea"},
		{"uid": "1", "Uid": "2"},
		{"mode": "750", "MODE": "0750"},
	} {
		_, err := parser.Parse("gitea_data", opts)
		if err == nil {
			t.Fatalf("%v accepted", opts)
		}
		for k := range opts {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", k)) {
				t.Fatalf("error %q does not name %q", err, k)
			}
		}
		if !strings.Contains(err.Error(), "twice") {
			t.Fatalf("error %q does not say twice", err)
		}
		// The same request always gets the same error.
		for range 20 {
			_, again := parser.Parse("gitea_data", opts)
			if again.Error() != err.Error() {
				t.Fatalf("errors differ: %q and %q", err, again)
			}
		}
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		name      string
		opts      map[string]string
		app, path string
		badName   bool
		errKey    string
	}{
		{name: "gitea_data", app: "gitea", path: "/data"},
		{name: "myapp_user_data", app: "myapp", path: "/user_data"},
		{name: "my-app_x", app: "my-app", path: "/x"},
		{name: "a_b_c_d", app: "a", path: "/b_c_d"},
		{name: "gitea_data", opts: map[string]string{"uid": "1000", "gid": "1000", "mode": "0700"}, app: "gitea", path: "/data"},
		{name: "foo", badName: true},
		{name: "", badName: true},
		{name: "_x", badName: true},
		{name: "x_", badName: true},
		{name: "x__", app: "x", path: "/_"},
		{name: "-x_data", badName: true},
		{name: "x_.", badName: true},
		{name: "x_..", badName: true},
		{name: "x_a\x00", badName: true},
		{name: strings.Repeat("a", 65) + "_data", badName: true},
		{name: strings.Repeat("a", 64) + "_data", app: strings.Repeat("a", 64), path: "/data"},
		// With app and no path, the name is the path.
		{name: "gitea-data", opts: map[string]string{"app": "gitea"}, app: "gitea", path: "/gitea-data"},
		{name: "data", opts: map[string]string{"app": "gitea"}, app: "gitea", path: "/data"},
		{name: "my_data", opts: map[string]string{"app": "my_app"}, app: "my_app", path: "/my_data"},
		{name: "..", opts: map[string]string{"app": "gitea"}, badName: true},
		{name: "", opts: map[string]string{"app": "gitea"}, badName: true},
		// A path option without app is refused, even when the name would split.
		{name: "gitea_data", opts: map[string]string{"path": "/data"}, errKey: "path"},
		{name: "foo", opts: map[string]string{"path": "/data"}, errKey: "path"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%.30q%v", tc.name, tc.opts), func(t *testing.T) {
			s, err := parser.Parse(tc.name, tc.opts)
			switch {
			case tc.badName:
				wantNameError(t, err, tc.name)
				return
			case tc.errKey != "":
				wantOptionError(t, err, tc.errKey, tc.opts[tc.errKey])
				if !strings.Contains(err.Error(), "app") {
					t.Fatalf("error %q does not say path needs app", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.App != tc.app || s.Path != tc.path {
				t.Fatalf("got app %q path %q, want %q %q", s.App, s.Path, tc.app, tc.path)
			}
		})
	}
}

func TestParseEqualAfterNormalising(t *testing.T) {
	pairs := []struct {
		name1 string
		opts1 map[string]string
		name2 string
		opts2 map[string]string
		equal bool
	}{
		{"v", map[string]string{"app": "a", "path": "/data", "mode": "750"}, "v", map[string]string{"app": "a", "path": "data/", "mode": "0750"}, true},
		{"v", map[string]string{"app": "a", "path": "//data//", "uid": "0"}, "v", map[string]string{"APP": "a", "PATH": "/data", "Mode": "0755", "uid": "0", "gid": "00", "on_remove": "keep"}, true},
		// The defaults given explicitly enforce them; left out, Docker and
		// the app own the directory.
		{"v", map[string]string{"app": "a", "path": "/data"}, "v", map[string]string{"app": "a", "path": "/data", "Mode": "0755", "uid": "0", "gid": "0"}, false},
		{"fm", map[string]string{"tree": "app_data"}, "other", map[string]string{"TREE": "app_data", "on_remove": "keep"}, true},
		{"fm", map[string]string{"tree": "app_data"}, "fm", map[string]string{"tree": "service_data"}, false},
		{"a_data", nil, "a_data", map[string]string{"app": "a", "path": "/data"}, true},
		{"a_data", nil, "data", map[string]string{"app": "a"}, true},
		{"x", map[string]string{"shared": "media"}, "y", map[string]string{"Shared": "media", "on_remove": "keep"}, true},
		{"v", map[string]string{"app": "a", "path": "/data", "mode": "750"}, "v", map[string]string{"app": "a", "path": "/data", "mode": "755"}, false},
		{"v", map[string]string{"app": "a", "path": "/data", "uid": "1"}, "v", map[string]string{"app": "a", "path": "/data"}, false},
		{"v", map[string]string{"app": "a", "path": "/data"}, "v", map[string]string{"app": "a", "path": "/Data"}, false},
		{"x", map[string]string{"shared": "media"}, "x", map[string]string{"shared": "media", "app": "a"}, false},
		{"a_data", nil, "a_data", map[string]string{"on_remove": "delete"}, false},
	}
	for i, tc := range pairs {
		s1, err1 := parser.Parse(tc.name1, tc.opts1)
		s2, err2 := parser.Parse(tc.name2, tc.opts2)
		if err1 != nil || err2 != nil {
			t.Fatalf("%d: %v, %v", i, err1, err2)
		}
		if (s1 == s2) != tc.equal {
			t.Errorf("%d: %+v == %+v is %v, want %v", i, s1, s2, s1 == s2, tc.equal)
		}
	}
}

func TestParseDoesNotChangeOptions(t *testing.T) {
	opts := map[string]string{"APP": "gitea", "path": "/data/"}
	if _, err := parser.Parse("v", opts); err != nil {
		t.Fatal(err)
	}
	if len(opts) != 2 || opts["APP"] != "gitea" || opts["path"] != "/data/" {
		t.Fatalf("options changed: %v", opts)
	}
}

func TestParseInvalidUTF8Name(t *testing.T) {
	// A name is stored as JSON, which cannot hold invalid UTF-8: such a name
	// would come back as another name after a restart.
	for _, opts := range []map[string]string{
		{"app": "a", "path": "/data"},
		{"shared": "media"},
		nil,
	} {
		name := "a_d\xffta"
		if _, err := parser.Parse(name, opts); err == nil {
			t.Errorf("name %q with %v accepted", name, opts)
		} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
			t.Errorf("error %q does not quote the name", err)
		}
	}
}

func TestDirAndModeString(t *testing.T) {
	tests := []struct {
		s         Spec
		dir, mode string
	}{
		{Spec{App: "gitea", Path: "/data", Mode: 0o750}, "app_data/gitea/data", "0750"},
		{Spec{App: "p", Path: "/usr/src/paperless/data", Mode: 0o755}, "app_data/p/usr/src/paperless/data", "0755"},
		{Spec{Kind: KindShared, App: "x", Shared: "media", Mode: 0o755}, "shared/media", "0755"},
		{Spec{Kind: KindShared, Shared: "music"}, "shared/music", "0000"},
		{Spec{App: "a", Path: "/b", Mode: 0o7777}, "app_data/a/b", "7777"},
		{Spec{App: "a", Path: "/b", Mode: 0o1777}, "app_data/a/b", "1777"},
		{Spec{App: "a", Path: "/b", Mode: 0o7}, "app_data/a/b", "0007"},
	}
	for _, tc := range tests {
		if got := tc.s.Dir(); got != tc.dir {
			t.Errorf("%+v.Dir() = %q, want %q", tc.s, got, tc.dir)
		}
		if got := tc.s.ModeString(); got != tc.mode {
			t.Errorf("%+v.ModeString() = %q, want %q", tc.s, got, tc.mode)
		}
	}
}

func TestErrorTexts(t *testing.T) {
	_, err := parser.Parse("gitea_data", map[string]string{"uid": "-1"})
	if err == nil || !strings.Contains(err.Error(), "4294967294") {
		t.Fatalf("uid error %v does not give the range", err)
	}
	_, err = parser.Parse("gitea_data", map[string]string{"mode": "10000"})
	if err == nil || !strings.Contains(err.Error(), "07777") {
		t.Fatalf("mode error %v does not give the limit", err)
	}
	_, err = parser.Parse("x", map[string]string{"shared": "videos"})
	if err == nil || !strings.Contains(err.Error(), "documents, media, music") {
		t.Fatalf("shared error %v does not list the names", err)
	}
}

func TestParseEnforce(t *testing.T) {
	for _, c := range []struct {
		opts map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"on_remove": "delete"}, false},
		{map[string]string{"uid": "1000"}, true},
		{map[string]string{"gid": "0"}, true},
		{map[string]string{"mode": "0755"}, true},
	} {
		s, err := parser.Parse("app_data", c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if s.Enforce != c.want {
			t.Errorf("%v: Enforce = %v, want %v", c.opts, s.Enforce, c.want)
		}
		if !s.Enforce && (s.UID != 0 || s.GID != 0 || s.Mode != DefaultMode) {
			t.Errorf("%v: %+v", c.opts, s)
		}
	}
}

func TestParseTree(t *testing.T) {
	for _, tree := range []string{"app_data", "service_data", "shared"} {
		s, err := parser.Parse("filebrowser-"+tree, map[string]string{"tree": tree, "app": "filebrowser"})
		want := Spec{Kind: KindTree, App: "filebrowser", Tree: tree, Mode: DefaultMode, OnRemove: Keep}
		if err != nil || s != want {
			t.Fatalf("tree=%s: %+v, %v; want %+v", tree, s, err, want)
		}
		if s.Dir() != tree || s.Kind != KindTree {
			t.Errorf("tree=%s: Dir %q, Kind %v", tree, s.Dir(), s.Kind)
		}
	}
	// uid/gid on a tree: an id-mapped view, never a chown.
	s, err := parser.Parse("fm", map[string]string{"tree": "shared", "uid": "1000", "gid": "1000", "access": "ro"})
	want := Spec{Kind: KindTree, Tree: "shared", UID: 1000, GID: 1000, IDMap: true, ReadOnly: true, Mode: DefaultMode, OnRemove: Keep}
	if err != nil || s != want {
		t.Errorf("tree with uid/gid: %+v, %v; want %+v", s, err, want)
	}
	for _, c := range []struct {
		opts map[string]string
		want []string
	}{
		{map[string]string{"tree": "home"}, []string{"tree", `"home"`, "app_data, service_data, shared"}},
		{map[string]string{"tree": "app_data", "path": "/x"}, []string{"path", `"/x"`, "tree"}},
		{map[string]string{"tree": "app_data", "mode": "0700"}, []string{"mode", `"0700"`, "tree"}},
		{map[string]string{"tree": "app_data", "uid": "x"}, []string{"uid", `"x"`, "decimal"}},
		{map[string]string{"tree": "app_data", "shared": "media"}, []string{"shared", `"media"`, "tree"}},
		{map[string]string{"tree": "shared", "on_remove": "delete"}, []string{"on_remove", `"delete"`, "never deleted"}},
	} {
		_, err := parser.Parse("fm", c.opts)
		if err == nil {
			t.Errorf("%v accepted", c.opts)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not contain %q", c.opts, err, w)
			}
		}
	}
}

func TestParseAnonymous(t *testing.T) {
	name := strings.Repeat("5792a48c", 8)
	s, err := parser.Parse(name, nil)
	want := Spec{Path: "/" + name, Mode: DefaultMode, Kind: KindAnonymous, OnRemove: Delete}
	if err != nil || s != want {
		t.Fatalf("%+v, %v; want %+v", s, err, want)
	}
	if s.Dir() != "anonymous/"+name || s.Kind != KindAnonymous {
		t.Errorf("Dir %q, Kind %v", s.Dir(), s.Kind)
	}
	if s, err := (Parser{Anonymous: Keep}).Parse(name, nil); err != nil || s.OnRemove != Keep {
		t.Errorf("keep: %+v, %v", s, err)
	}
	// Owner options apply, and are enforced.
	if s, err := parser.Parse(name, map[string]string{"uid": "999"}); err != nil || !s.Enforce || s.UID != 999 || s.Kind != KindAnonymous {
		t.Errorf("uid: %+v, %v", s, err)
	}
	_, err = (Parser{Anonymous: Refuse}).Parse(name, nil)
	var refused *AnonymousRefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "ANONYMOUS_VOLUMES") {
		t.Errorf("refuse: %v", err)
	}
	for _, c := range []struct {
		opts map[string]string
		want string
	}{
		{map[string]string{"path": "/x"}, "path"},
		{map[string]string{"on_remove": "keep"}, "on_remove"},
	} {
		if _, err := parser.Parse(name, c.opts); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "anonymous") {
			t.Errorf("%v: %v", c.opts, err)
		}
	}
	// Not anonymous: upper case, another length, or an app given.
	for _, n := range []string{strings.ToUpper(name), name[:63], name + "0"} {
		if _, err := parser.Parse(n, nil); err == nil {
			t.Errorf("%q parsed without options", n)
		}
	}
	if s, err := parser.Parse(name, map[string]string{"app": "pg"}); err != nil || s.Kind == KindAnonymous || s.Dir() != "app_data/pg/"+name {
		t.Errorf("with app: %+v, %v", s, err)
	}
}
