package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"

	"github.com/portal/portal-volume/driver/tree"
	"github.com/portal/portal-volume/internal/testutil"
)

var sharedNames = []string{"documents", "media", "music"}

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.Out = io.Discard
	l.SetLevel(logrus.WarnLevel) // as the daemon runs in the benchmarks: no per-call lines built
	return l
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
}

func newDriver(t testing.TB, root, boot string) *Driver {
	t.Helper()
	d, err := New(Config{Root: root, SharedNames: sharedNames, BootID: boot, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// setup gives a driver on a fresh root, as the volume.Driver Docker sees.
func setup(t *testing.T) (volume.Driver, *Driver, string) {
	t.Helper()
	requireRoot(t)
	root := t.TempDir()
	d := newDriver(t, root, "boot-1")
	return d, d, root
}

func create(t *testing.T, d volume.Driver, name string, opts map[string]string) {
	t.Helper()
	if err := d.Create(&volume.CreateRequest{Name: name, Options: opts}); err != nil {
		t.Fatalf("Create(%s, %v): %v", name, opts, err)
	}
}

func createErr(t *testing.T, d volume.Driver, name string, opts map[string]string, contains ...string) error {
	t.Helper()
	err := d.Create(&volume.CreateRequest{Name: name, Options: opts})
	if err == nil {
		t.Fatalf("Create(%s, %v) succeeded, want an error", name, opts)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Fatalf("Create(%s, %v): error %q does not contain %q", name, opts, err, c)
		}
	}
	return err
}

func get(t *testing.T, d volume.Driver, name string) *volume.Volume {
	t.Helper()
	r, err := d.Get(&volume.GetRequest{Name: name})
	if err != nil {
		t.Fatalf("Get(%s): %v", name, err)
	}
	if r.Volume == nil || r.Volume.Name != name {
		t.Fatalf("Get(%s) = %+v", name, r.Volume)
	}
	return r.Volume
}

func mount(t *testing.T, d volume.Driver, name, id string) string {
	t.Helper()
	r, err := d.Mount(&volume.MountRequest{Name: name, ID: id})
	if err != nil {
		t.Fatalf("Mount(%s, %s): %v", name, id, err)
	}
	return r.Mountpoint
}

func unmount(t *testing.T, d volume.Driver, name, id string) {
	t.Helper()
	if err := d.Unmount(&volume.UnmountRequest{Name: name, ID: id}); err != nil {
		t.Fatalf("Unmount(%s, %s): %v", name, id, err)
	}
}

func mounts(t *testing.T, d volume.Driver, name string) int {
	t.Helper()
	n, ok := get(t, d, name).Status["mounts"].(int)
	if !ok {
		t.Fatalf("mounts of %s is %T", name, get(t, d, name).Status["mounts"])
	}
	return n
}

func wantDir(t *testing.T, p string, perm fs.FileMode, uid, gid uint32) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != fs.ModeDir|perm || st.Uid != uid || st.Gid != gid {
		t.Fatalf("%s: %v %d:%d, want %v %d:%d", p, fi.Mode(), st.Uid, st.Gid, fs.ModeDir|perm, uid, gid)
	}
}

func chown(t *testing.T, p string, uid, gid int, mode fs.FileMode) {
	t.Helper()
	if err := os.Chown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func listing(t *testing.T, d volume.Driver) map[string]string {
	t.Helper()
	r, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, v := range r.Volumes {
		if _, dup := out[v.Name]; dup {
			t.Fatalf("List has %s twice", v.Name)
		}
		out[v.Name] = v.Mountpoint
	}
	return out
}

func TestCreateLayout(t *testing.T) {
	d, _, root := setup(t)
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	tests := []struct {
		name string
		opts map[string]string
		dir  string
		perm fs.FileMode
		uid  uint32
		gid  uint32
	}{
		{"gitea_data", nil, "app_data/gitea/data", 0o755, 0, 0},
		{"myapp_user_data", map[string]string{"uid": "1000", "gid": "1000"}, "app_data/myapp/user_data", 0o755, 1000, 1000},
		{"gitea-repos", map[string]string{"app": "gitea", "path": "/repos/", "uid": "1000", "gid": "1001", "mode": "750"}, "app_data/gitea/repos", 0o750, 1000, 1001},
		{"paperless-data", map[string]string{"app": "paperless", "path": "/usr/src/paperless/data", "mode": "0700", "uid": "4294967294"}, "app_data/paperless/usr/src/paperless/data", 0o700, 4294967294, 0},
		{"more_data", map[string]string{"app": "x"}, "app_data/x/more_data", 0o755, 0, 0},
		{"files-images", map[string]string{"app": "immich", "path": "/files/images"}, "app_data/immich/files/images", 0o755, 0, 0},
		{"files-imports", map[string]string{"app": "immich", "path": "files/imports", "mode": "2770", "gid": "33"}, "app_data/immich/files/imports", 0o770 | fs.ModeSetgid, 0, 33},
		{"media", map[string]string{"shared": "media"}, "shared/media", 0o755, 0, 0},
		{"jellyfin-music", map[string]string{"shared": "music", "app": "jellyfin"}, "shared/music", 0o755, 0, 0},
	}
	for _, tc := range tests {
		create(t, d, tc.name, tc.opts)
		want := filepath.Join(root, tc.dir)
		wantDir(t, want, tc.perm, tc.uid, tc.gid)
		// Every parent made is root-owned 0755, whatever the umask.
		for p := filepath.Dir(want); p != root; p = filepath.Dir(p) {
			wantDir(t, p, 0o755, 0, 0)
		}
		if got := get(t, d, tc.name).Mountpoint; got != want {
			t.Fatalf("Get(%s).Mountpoint = %s, want %s", tc.name, got, want)
		}
		pr, err := d.Path(&volume.PathRequest{Name: tc.name})
		if err != nil || pr.Mountpoint != want {
			t.Fatalf("Path(%s) = %+v, %v", tc.name, pr, err)
		}
		if got := mount(t, d, tc.name, "id-"+tc.name); got != want {
			t.Fatalf("Mount(%s) = %s, want %s", tc.name, got, want)
		}
		wantDir(t, want, tc.perm, tc.uid, tc.gid)
	}
	l := listing(t, d)
	if len(l) != len(tests) {
		t.Fatalf("List has %d volumes, want %d: %v", len(l), len(tests), l)
	}
	for _, tc := range tests {
		if l[tc.name] != filepath.Join(root, tc.dir) {
			t.Fatalf("List: %s at %q", tc.name, l[tc.name])
		}
	}
	if c := d.Capabilities(); c.Capabilities.Scope != "local" {
		t.Fatalf("scope %q", c.Capabilities.Scope)
	}
}

func TestStatus(t *testing.T) {
	d, _, _ := setup(t)
	before := time.Now().Add(-time.Second)
	create(t, d, "v", map[string]string{"APP": "gitea", "path": "/data/", "uid": "1000", "gid": "1001", "mode": "750", "on_remove": "delete"})
	create(t, d, "m", map[string]string{"shared": "media"})
	mount(t, d, "v", "a")
	mount(t, d, "v", "a")

	v := get(t, d, "v")
	created, err := time.Parse(time.RFC3339, v.CreatedAt)
	if err != nil {
		t.Fatalf("CreatedAt %q: %v", v.CreatedAt, err)
	}
	if created.Before(before.Truncate(time.Second)) || created.After(time.Now()) {
		t.Fatalf("CreatedAt %v is not now", created)
	}
	// Through JSON, as Docker sees it.
	data, err := json.Marshal(v.Status)
	if err != nil {
		t.Fatal(err)
	}
	var status map[string]any
	if err := json.Unmarshal(data, &status); err != nil {
		t.Fatal(err)
	}
	wantNotMeasured(t, status)
	want := map[string]any{
		"app": "gitea", "path": "/data", "uid": 1000.0, "gid": 1001.0, "mode": "0750",
		"shared": "", "tree": "", "on_remove": "delete", "owner": "enforced", "mounts": 2.0, "access": "rw",
	}
	if !maps.Equal(status, want) {
		t.Fatalf("Status = %s, want %v", data, want)
	}

	data, _ = json.Marshal(get(t, d, "m").Status)
	status = nil
	_ = json.Unmarshal(data, &status)
	wantNotMeasured(t, status)
	want = map[string]any{
		"app": "", "path": "", "uid": 0.0, "gid": 0.0, "mode": "0755",
		"shared": "media", "tree": "", "on_remove": "keep", "owner": "docker", "mounts": 0.0, "access": "rw",
	}
	if !maps.Equal(status, want) {
		t.Fatalf("Status = %s, want %v", data, want)
	}
}

func TestCreateAdopt(t *testing.T) {
	d, _, root := setup(t)
	dir := filepath.Join(root, "app_data/gitea/data")
	testutil.Write(t, filepath.Join(dir, "gitea/conf/app.ini"), "[server]\n")
	testutil.Write(t, filepath.Join(dir, "git/repo/HEAD"), "ref: refs/heads/main\n")
	if err := os.Symlink("/etc", filepath.Join(dir, "etc-link")); err != nil {
		t.Fatal(err)
	}
	chown(t, filepath.Join(dir, "gitea/conf/app.ini"), 5, 6, 0o600)
	chown(t, dir, 7, 8, 0o711)
	chown(t, filepath.Join(root, "app_data/gitea"), 9, 9, 0o700)
	before := testutil.Snapshot(t, root)

	create(t, d, "gitea_data", map[string]string{"uid": "1000", "gid": "1000", "mode": "750"})

	wantDir(t, dir, 0o750, 1000, 1000)
	after := testutil.Snapshot(t, root)
	for k, v := range before {
		if k == "app_data/gitea/data" || k == ".portal-volume" || strings.HasPrefix(k, ".portal-volume/") || k == "." {
			continue
		}
		if after[k] != v {
			t.Fatalf("%s changed: %q -> %q", k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok && !strings.HasPrefix(k, ".portal-volume") {
			t.Fatalf("%s appeared", k)
		}
	}
}

func TestCreateIdempotent(t *testing.T) {
	d, drv, root := setup(t)
	create(t, d, "v", map[string]string{"app": "gitea", "path": "/data", "mode": "0750", "uid": "1000"})
	past := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	drv.byName["v"].CreatedAt = past // as if made long ago
	dir := filepath.Join(root, "app_data/gitea/data")
	chown(t, dir, 1, 2, 0o700)
	before := testutil.Snapshot(t, root)
	for _, opts := range []map[string]string{
		{"app": "gitea", "path": "/data", "mode": "0750", "uid": "1000"},
		{"APP": "gitea", "Path": "data/", "MODE": "750", "uid": "01000", "gid": "0", "on_remove": "keep"},
		{"app": "gitea", "path": "//data//", "mode": "00750", "uid": "1000"},
	} {
		create(t, d, "v", opts)
	}
	testutil.Same(t, "root", before, testutil.Snapshot(t, root))
	if got := get(t, d, "v").CreatedAt; got != past.Format(time.RFC3339) {
		t.Fatalf("CreatedAt %s, want %s", got, past.Format(time.RFC3339))
	}
	if len(listing(t, d)) != 1 {
		t.Fatal("more than one volume")
	}
}

func TestCreateDifferentOptions(t *testing.T) {
	d, _, root := setup(t)
	create(t, d, "v", map[string]string{"app": "gitea", "path": "/data", "uid": "1000"})
	create(t, d, "del", map[string]string{"app": "x", "on_remove": "delete"})
	before := testutil.Snapshot(t, root)
	for _, opts := range []map[string]string{
		{"app": "gitea", "path": "/data", "uid": "1001"},
		{"app": "gitea", "path": "/data"},
		{"app": "gitea", "path": "/data", "uid": "1000", "mode": "700"},
		{"app": "gitea", "path": "/data", "uid": "1000", "on_remove": "delete"},
		{"app": "gitea", "path": "/data2", "uid": "1000"},
		{"app": "other", "path": "/data", "uid": "1000"},
		{"shared": "media"},
	} {
		createErr(t, d, "v", opts, `"v"`, "already exists", "remove", "create it again")
	}
	createErr(t, d, "del", map[string]string{"app": "x"}, `"del"`, "on_remove=delete", "move the data away")
	testutil.Same(t, "root", before, testutil.Snapshot(t, root))
	if s := get(t, d, "v").Status; s["uid"] != uint32(1000) || s["path"] != "/data" {
		t.Fatalf("status changed: %v", s)
	}
}

func TestOneNamePerDir(t *testing.T) {
	d, _, _ := setup(t)
	create(t, d, "gitea_data", nil)
	for _, tc := range []struct {
		name string
		opts map[string]string
	}{
		{"data", map[string]string{"app": "gitea"}},
		{"gitea-data", map[string]string{"app": "gitea", "path": "/data/"}},
		{"other", map[string]string{"app": "gitea", "path": "data", "uid": "1000"}},
	} {
		createErr(t, d, tc.name, tc.opts, `"gitea_data"`, "already belongs")
	}
	// Another app's /data is another directory.
	create(t, d, "forgejo_data", nil)
	if len(listing(t, d)) != 2 {
		t.Fatal("refused names were recorded")
	}
}

func TestNesting(t *testing.T) {
	d, _, _ := setup(t)
	create(t, d, "files", map[string]string{"app": "a", "path": "/files"})
	createErr(t, d, "images", map[string]string{"app": "a", "path": "/files/images"}, `"files"`, "inside", "nest")
	createErr(t, d, "deep", map[string]string{"app": "a", "path": "/files/x/y/z"}, `"files"`, "nest")

	create(t, d, "b-images", map[string]string{"app": "b", "path": "/files/images"})
	create(t, d, "b-imports", map[string]string{"app": "b", "path": "/files/imports"})
	create(t, d, "b-deep", map[string]string{"app": "b", "path": "/files/x/y/z"})
	createErr(t, d, "b-files", map[string]string{"app": "b", "path": "/files"}, "contains", "nest")
	createErr(t, d, "b-x", map[string]string{"app": "b", "path": "/files/x"}, `"b-deep"`, "contains")
	// A name prefix is not a parent.
	create(t, d, "b-files2", map[string]string{"app": "b", "path": "/files2"})
	create(t, d, "b-fil", map[string]string{"app": "b", "path": "/fil"})
	create(t, d, "b-files-images", map[string]string{"app": "b", "path": "/files/images2"})
	// Shared volumes are exempt, and never nest with app volumes.
	create(t, d, "m1", map[string]string{"shared": "media", "app": "a"})
	create(t, d, "m2", map[string]string{"shared": "media", "app": "b"})

	// Removing the outer volume frees the paths below it.
	if err := d.Remove(&volume.RemoveRequest{Name: "files"}); err != nil {
		t.Fatal(err)
	}
	create(t, d, "images", map[string]string{"app": "a", "path": "/files/images"})
	createErr(t, d, "files", map[string]string{"app": "a", "path": "/files"}, `"images"`, "contains")
}

func TestShared(t *testing.T) {
	d, _, root := setup(t)
	// An existing shared directory is used as it is.
	media := filepath.Join(root, "shared/media")
	testutil.Write(t, filepath.Join(media, "film.mkv"), "film")
	chown(t, media, 1000, 1000, 0o700)
	before := testutil.Snapshot(t, filepath.Join(root, "shared"))

	create(t, d, "media", map[string]string{"shared": "media"})
	create(t, d, "jellyfin-media", map[string]string{"shared": "media", "app": "jellyfin"})
	create(t, d, "plex_media", map[string]string{"shared": "media"})
	for _, name := range []string{"media", "jellyfin-media", "plex_media"} {
		if p := mount(t, d, name, "c1"); p != media {
			t.Fatalf("Mount(%s) = %s", name, p)
		}
	}
	wantDir(t, media, 0o700, 1000, 1000)
	for _, name := range []string{"media", "jellyfin-media"} {
		unmount(t, d, name, "c1")
		if err := d.Remove(&volume.RemoveRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Same(t, "shared", before, testutil.Snapshot(t, filepath.Join(root, "shared")))

	createErr(t, d, "x", map[string]string{"shared": "media", "on_remove": "delete"}, "on_remove")
	createErr(t, d, "x", map[string]string{"shared": "videos"}, "shared", "videos", "documents, media, music")
	createErr(t, d, "x", map[string]string{"shared": "media", "uid": "1000"}, "uid", "1000")

	// A missing shared directory is made root-owned 0755 by the first
	// Create, and made again by Mount if it vanished.
	create(t, d, "docs", map[string]string{"shared": "documents"})
	docs := filepath.Join(root, "shared/documents")
	wantDir(t, docs, 0o755, 0, 0)
	if err := os.Remove(docs); err != nil {
		t.Fatal(err)
	}
	mount(t, d, "docs", "c")
	wantDir(t, docs, 0o755, 0, 0)
}

func TestMountRepairs(t *testing.T) {
	d, _, root := setup(t)
	create(t, d, "v", map[string]string{"app": "a", "path": "/x/data", "uid": "1000", "gid": "1000", "mode": "750"})
	dir := filepath.Join(root, "app_data/a/x/data")

	// Docker copied an image's directory and its owner into the volume.
	testutil.Write(t, filepath.Join(dir, "from-image"), "x")
	chown(t, dir, 0, 0, 0o755)
	mount(t, d, "v", "c1")
	wantDir(t, dir, 0o750, 1000, 1000)
	if !exists(filepath.Join(dir, "from-image")) {
		t.Fatal("content lost")
	}

	// The directory and its parent vanished.
	if err := os.RemoveAll(filepath.Join(root, "app_data/a/x")); err != nil {
		t.Fatal(err)
	}
	mount(t, d, "v", "c2")
	wantDir(t, dir, 0o750, 1000, 1000)
	wantDir(t, filepath.Join(root, "app_data/a/x"), 0o755, 0, 0)
	if n := mounts(t, d, "v"); n != 2 {
		t.Fatalf("mounts %d, want 2", n)
	}
}

func TestMountRefusesSymlink(t *testing.T) {
	d, _, root := setup(t)
	outside := t.TempDir()
	testutil.Write(t, filepath.Join(outside, "secret"), "s")
	chown(t, outside, 0, 0, 0o700)
	create(t, d, "v", map[string]string{"app": "a", "path": "/data", "uid": "1000", "mode": "777", "on_remove": "delete"})
	dir := filepath.Join(root, "app_data/a/data")
	for _, link := range []string{dir, filepath.Join(root, "app_data/a"), filepath.Join(root, "app_data")} {
		t.Run(filepath.Base(link), func(t *testing.T) {
			if err := os.RemoveAll(filepath.Join(root, "app_data")); err != nil {
				t.Fatal(err)
			}
			testutil.Mkdir(t, filepath.Dir(link))
			if err := os.Symlink(outside, link); err != nil {
				t.Fatal(err)
			}
			beforeOut, beforeRoot := testutil.Snapshot(t, outside), testutil.Snapshot(t, root)
			_, err := d.Mount(&volume.MountRequest{Name: "v", ID: "c"})
			if !errors.Is(err, tree.ErrSymlink) || !strings.Contains(err.Error(), link) {
				t.Fatalf("Mount through a symlink at %s: %v", link, err)
			}
			// Remove with on_remove=delete refuses too and deletes nothing.
			err = d.Remove(&volume.RemoveRequest{Name: "v"})
			if !errors.Is(err, tree.ErrSymlink) {
				t.Fatalf("Remove through a symlink at %s: %v", link, err)
			}
			testutil.Same(t, "outside", beforeOut, testutil.Snapshot(t, outside))
			testutil.Same(t, "root", beforeRoot, testutil.Snapshot(t, root))
			if n := mounts(t, d, "v"); n != 0 {
				t.Fatalf("a refused mount was counted: %d", n)
			}
		})
	}
}

func TestMountCounting(t *testing.T) {
	d, _, root := setup(t)
	create(t, d, "v", map[string]string{"app": "a", "on_remove": "delete"})
	create(t, d, "w", map[string]string{"app": "b"})
	mount(t, d, "v", "c1")
	mount(t, d, "v", "c1") // Docker reuses IDs
	mount(t, d, "v", "c2")
	mount(t, d, "w", "c1")
	if n := mounts(t, d, "v"); n != 3 {
		t.Fatalf("mounts %d, want 3", n)
	}
	// Unknown names and IDs unmount without error and change nothing.
	unmount(t, d, "v", "c3")
	unmount(t, d, "nothing", "c1")
	unmount(t, d, "nothing", "")
	if n := mounts(t, d, "v"); n != 3 {
		t.Fatalf("mounts %d, want 3", n)
	}

	for _, left := range []int{2, 1, 0} {
		err := d.Remove(&volume.RemoveRequest{Name: "v"})
		if err == nil || !strings.Contains(err.Error(), "in use") {
			t.Fatalf("Remove of a mounted volume: %v", err)
		}
		if !exists(filepath.Join(root, "app_data/a/v")) {
			t.Fatal("data of a mounted volume deleted")
		}
		id := "c1"
		if left == 0 {
			id = "c2"
		}
		unmount(t, d, "v", id)
		if n := mounts(t, d, "v"); n != left {
			t.Fatalf("mounts %d, want %d", n, left)
		}
	}
	unmount(t, d, "v", "c1") // one too many
	if err := d.Remove(&volume.RemoveRequest{Name: "v"}); err != nil {
		t.Fatal(err)
	}
	if n := mounts(t, d, "w"); n != 1 {
		t.Fatalf("w: mounts %d, want 1", n)
	}
}

func TestRemove(t *testing.T) {
	d, _, root := setup(t)
	outside := t.TempDir()
	testutil.Write(t, filepath.Join(outside, "secret"), "s")
	create(t, d, "keep", map[string]string{"app": "a", "path": "/files/keep"})
	create(t, d, "del", map[string]string{"app": "a", "path": "/files/del", "on_remove": "delete"})
	create(t, d, "sib", map[string]string{"app": "a", "path": "/files/delx"})
	create(t, d, "m", map[string]string{"shared": "media"})
	for _, v := range []string{"keep", "del", "sib"} {
		dir := get(t, d, v).Mountpoint
		testutil.Write(t, filepath.Join(dir, "a/b/c/file"), "data")
		if err := os.Symlink(outside, filepath.Join(dir, "a/out")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "secret")); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Write(t, filepath.Join(root, "shared/media/song"), "la")
	beforeOut := testutil.Snapshot(t, outside)

	keepBefore := testutil.Snapshot(t, filepath.Join(root, "app_data/a/files/keep"))
	if err := d.Remove(&volume.RemoveRequest{Name: "keep"}); err != nil {
		t.Fatal(err)
	}
	testutil.Same(t, "kept", keepBefore, testutil.Snapshot(t, filepath.Join(root, "app_data/a/files/keep")))

	sibBefore := testutil.Snapshot(t, filepath.Join(root, "app_data/a/files/delx"))
	if err := d.Remove(&volume.RemoveRequest{Name: "del"}); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(root, "app_data/a/files/del")) {
		t.Fatal("on_remove=delete left the directory")
	}
	wantDir(t, filepath.Join(root, "app_data/a/files"), 0o755, 0, 0)
	wantDir(t, filepath.Join(root, "app_data/a"), 0o755, 0, 0)
	testutil.Same(t, "sibling", sibBefore, testutil.Snapshot(t, filepath.Join(root, "app_data/a/files/delx")))
	testutil.Same(t, "outside", beforeOut, testutil.Snapshot(t, outside))

	// Only the volume's own directory goes; its empty parents stay.
	create(t, d, "lonely", map[string]string{"app": "z", "path": "/p/q", "on_remove": "delete"})
	if err := d.Remove(&volume.RemoveRequest{Name: "lonely"}); err != nil {
		t.Fatal(err)
	}
	wantDir(t, filepath.Join(root, "app_data/z/p"), 0o755, 0, 0)
	if exists(filepath.Join(root, "app_data/z/p/q")) {
		t.Fatal("lonely not deleted")
	}

	// A delete volume whose directory vanished is removed without error.
	create(t, d, "gone", map[string]string{"app": "z", "on_remove": "delete"})
	if err := os.Remove(filepath.Join(root, "app_data/z/gone")); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(&volume.RemoveRequest{Name: "gone"}); err != nil {
		t.Fatal(err)
	}

	if err := d.Remove(&volume.RemoveRequest{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(root, "shared/media/song")) {
		t.Fatal("shared data deleted")
	}
	for _, name := range []string{"keep", "del", "m", "lonely", "gone"} {
		if _, err := d.Get(&volume.GetRequest{Name: name}); err == nil {
			t.Fatalf("%s still known after Remove", name)
		}
	}
	// The path of a removed volume is free again.
	create(t, d, "keep2", map[string]string{"app": "a", "path": "/files/keep"})
	if !exists(filepath.Join(root, "app_data/a/files/keep/a/b/c/file")) {
		t.Fatal("adopting the kept directory lost its data")
	}
}

func TestUnknownVolume(t *testing.T) {
	d, _, _ := setup(t)
	create(t, d, "known_x", nil)
	if _, err := d.Get(&volume.GetRequest{Name: "nope"}); err == nil || !strings.Contains(err.Error(), "no such volume") {
		t.Fatalf("Get: %v", err)
	}
	if err := d.Remove(&volume.RemoveRequest{Name: "nope"}); err == nil || !strings.Contains(err.Error(), "no such volume") {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := d.Path(&volume.PathRequest{Name: "nope"}); err == nil || !strings.Contains(err.Error(), "no such volume") {
		t.Fatalf("Path: %v", err)
	}
	if _, err := d.Mount(&volume.MountRequest{Name: "nope", ID: "x"}); err == nil || !strings.Contains(err.Error(), "no such volume") {
		t.Fatalf("Mount: %v", err)
	}
	if err := d.Unmount(&volume.UnmountRequest{Name: "nope", ID: "x"}); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
}

func TestRestart(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	d := newDriver(t, root, "boot-1")
	create(t, d, "gitea_data", map[string]string{"uid": "1000", "gid": "1000", "mode": "750"})
	create(t, d, "paperless", map[string]string{"app": "paperless", "path": "/usr/src/paperless/data", "on_remove": "delete"})
	create(t, d, "m", map[string]string{"shared": "media", "app": "jellyfin"})
	create(t, d, "temp_x", nil)
	mount(t, d, "gitea_data", "c1")
	mount(t, d, "gitea_data", "c1")
	mount(t, d, "m", "c2")
	mount(t, d, "temp_x", "c3")
	unmount(t, d, "temp_x", "c3")
	if err := d.Remove(&volume.RemoveRequest{Name: "temp_x"}); err != nil {
		t.Fatal(err)
	}
	state := func(d volume.Driver) map[string]string {
		out := map[string]string{}
		for name := range listing(t, d) {
			data, err := json.Marshal(get(t, d, name))
			if err != nil {
				t.Fatal(err)
			}
			out[name] = string(data)
		}
		return out
	}
	before := state(d)
	if len(before) != 3 {
		t.Fatalf("%d volumes", len(before))
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d = newDriver(t, root, "boot-1")
	if after := state(d); !maps.Equal(before, after) {
		t.Fatalf("after a restart:\n%v\nwant\n%v", after, before)
	}
	// Still refused while mounted, after the restart.
	if err := d.Remove(&volume.RemoveRequest{Name: "gitea_data"}); err == nil {
		t.Fatal("Remove of a volume mounted before the restart succeeded")
	}
	// The rules still hold for loaded volumes.
	createErr(t, d, "other", map[string]string{"app": "gitea", "path": "/data/x"}, `"gitea_data"`)
	createErr(t, d, "gitea_data", map[string]string{"uid": "1"}, "already exists")
	unmount(t, d, "gitea_data", "c1")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// A reboot: the same volumes, no mounts.
	d = newDriver(t, root, "boot-2")
	for _, name := range []string{"gitea_data", "paperless", "m"} {
		if n := mounts(t, d, name); n != 0 {
			t.Fatalf("%s: %d mounts after a reboot", name, n)
		}
		v := get(t, d, name)
		var old volume.Volume
		_ = json.Unmarshal([]byte(before[name]), &old)
		if v.CreatedAt != old.CreatedAt || v.Mountpoint != old.Mountpoint || v.Status["path"] != old.Status["path"] {
			t.Fatalf("%s changed across a reboot: %+v vs %+v", name, v, old)
		}
	}
	if err := d.Remove(&volume.RemoveRequest{Name: "gitea_data"}); err != nil {
		t.Fatal(err)
	}
}

func TestSecondDriverRefused(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	newDriver(t, root, "b")
	if d2, err := New(Config{Root: root, SharedNames: sharedNames, BootID: "b", Log: quiet()}); err == nil {
		d2.Close()
		t.Fatal("a second driver on the same state directory started")
	}
	if _, err := New(Config{Root: filepath.Join(root, "missing"), Log: quiet()}); err == nil {
		t.Fatal("New on a missing root succeeded")
	}
	// A state directory elsewhere.
	stateDir := filepath.Join(t.TempDir(), "state")
	d, err := New(Config{Root: t.TempDir(), StateDir: stateDir, SharedNames: sharedNames, BootID: "b", Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	create(t, d, "a_b", nil)
	if !exists(filepath.Join(stateDir, "volumes")) {
		t.Fatal("StateDir not used")
	}
}

// TestCallsAfterClose: a call that would change something after Close
// began (a request on a connection the engine kept open) is refused with
// one error and changes nothing; the next start finds what was there.
func TestCallsAfterClose(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	d, err := New(Config{Root: root, SharedNames: sharedNames, BootID: "b", Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	create(t, d, "kept_data", map[string]string{"on_remove": "delete"})
	mountOf(t, d, "kept_data", "before")
	create(t, d, "idle_data", map[string]string{"on_remove": "delete"})
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for call, err := range map[string]error{
		"Create":        d.Create(&volume.CreateRequest{Name: "new_data"}),
		"Remove":        d.Remove(&volume.RemoveRequest{Name: "idle_data"}),
		"Mount":         func() error { _, err := d.Mount(&volume.MountRequest{Name: "idle_data", ID: "after"}); return err }(),
		"Unmount":       d.Unmount(&volume.UnmountRequest{Name: "kept_data", ID: "before"}),
		"EngineStarted": d.EngineStarted(),
	} {
		if err == nil || !strings.Contains(err.Error(), "shutting down") {
			t.Errorf("%s after Close: %v, want a refusal that says the plugin is shutting down", call, err)
		}
	}
	if exists(filepath.Join(root, "app_data/new")) || !exists(filepath.Join(root, "app_data/idle/data")) {
		t.Error("a call after Close changed the tree")
	}
	d = newDriver(t, root, "b")
	if got := listing(t, d); len(got) != 2 || got["kept_data"] == "" || got["idle_data"] == "" {
		t.Errorf("volumes after the next start: %v", got)
	}
	if n := d.mounts.Count("kept_data"); n != 1 {
		t.Errorf("%d mounts of kept_data after the next start, want 1", n)
	}
}

// TestFailedCreateChangesNothing: whatever refuses a Create, the tree and
// the state are as they were.
func TestFailedCreateChangesNothing(t *testing.T) {
	d, _, root := setup(t)
	outside := t.TempDir()
	testutil.Write(t, filepath.Join(outside, "secret"), "s")
	testutil.Mkdir(t, filepath.Join(outside, "sub/deeper"))
	create(t, d, "files", map[string]string{"app": "a", "path": "/files", "uid": "1000"})
	create(t, d, "media", map[string]string{"shared": "media"})
	testutil.Mkdir(t, filepath.Join(root, "app_data/b"))
	if err := os.Symlink(outside, filepath.Join(root, "app_data/b/link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "app_data/c")); err != nil {
		t.Fatal(err)
	}
	testutil.Write(t, filepath.Join(root, "app_data/b/file"), "f")
	if err := os.Symlink(outside, filepath.Join(root, "shared/music")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts map[string]string
	}{
		{"bad", map[string]string{"app": "b", "uid": "-1"}},
		{"bad", map[string]string{"app": "b", "mode": "8"}},
		{"bad", map[string]string{"app": "b", "size": "1G"}},
		{"bad", map[string]string{"path": "/x"}},
		{"nounderscore", nil},
		{"b_..", nil},
		{"x", map[string]string{"shared": "photos"}},
		{"link", map[string]string{"app": "b"}},
		{"under-link", map[string]string{"app": "b", "path": "/link/sub/deeper/new"}},
		{"under-link2", map[string]string{"app": "b", "path": "/link/new/x/y"}},
		{"c_data", nil},
		{"c_sub", nil},
		{"music", map[string]string{"shared": "music"}},
		{"file", map[string]string{"app": "b"}},
		{"under-file", map[string]string{"app": "b", "path": "/file/x"}},
		{"files", map[string]string{"app": "a", "path": "/files", "uid": "1001"}},
		{"files2", map[string]string{"app": "a", "path": "/files"}},
		{"inner", map[string]string{"app": "a", "path": "/files/new/deep"}},
		{"outer", map[string]string{"app": "a", "path": "/"}},
		{"media", map[string]string{"shared": "documents"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s %v", tc.name, tc.opts), func(t *testing.T) {
			beforeRoot, beforeOut, beforeList := testutil.Snapshot(t, root), testutil.Snapshot(t, outside), listing(t, d)
			createErr(t, d, tc.name, tc.opts)
			testutil.Same(t, "root", beforeRoot, testutil.Snapshot(t, root))
			testutil.Same(t, "outside", beforeOut, testutil.Snapshot(t, outside))
			if after := listing(t, d); !maps.Equal(beforeList, after) {
				t.Fatalf("List changed: %v -> %v", beforeList, after)
			}
		})
	}
}

// TestFailedRecordWriteChangesNothing: when the record cannot be written,
// every directory Create made is gone again, parents included.
func TestFailedRecordWriteChangesNothing(t *testing.T) {
	d, _, root := setup(t)
	// With its journal immutable, the state cannot write a record.
	journalImmutable(t, root)
	// Making and removing a directory changes its parent's mtime: compare
	// without directory mtimes.
	before := testutil.WithoutDirMtimes(testutil.Snapshot(t, root))
	createErr(t, d, "v", map[string]string{"app": "newapp", "path": "/a/b/c"})
	createErr(t, d, "m", map[string]string{"shared": "media"})
	testutil.Same(t, "root", before, testutil.WithoutDirMtimes(testutil.Snapshot(t, root)))
	if len(listing(t, d)) != 0 {
		t.Fatal("a volume was recorded")
	}
}

// TestConcurrent runs every call from many goroutines: with -race it checks
// the locking, and the counts must add up.
func TestConcurrent(t *testing.T) {
	d, _, _ := setup(t)
	const workers, rounds = 8, 50
	for w := range workers {
		create(t, d, fmt.Sprintf("app%d_data", w), nil)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			name := fmt.Sprintf("app%d_data", w)
			for i := range rounds {
				other := fmt.Sprintf("app%d_data", (w+1)%workers)
				if err := d.Create(&volume.CreateRequest{Name: name}); err != nil {
					errs <- err
				}
				if _, err := d.Mount(&volume.MountRequest{Name: other, ID: fmt.Sprint("c", w, i)}); err != nil {
					errs <- err
				}
				if _, err := d.Get(&volume.GetRequest{Name: other}); err != nil {
					errs <- err
				}
				if _, err := d.List(); err != nil {
					errs <- err
				}
				if i%2 == 0 {
					if err := d.Unmount(&volume.UnmountRequest{Name: other, ID: fmt.Sprint("c", w, i)}); err != nil {
						errs <- err
					}
				}
				_ = d.Create(&volume.CreateRequest{Name: fmt.Sprintf("tmp%d_%d", w, i)})
				if err := d.Remove(&volume.RemoveRequest{Name: fmt.Sprintf("tmp%d_%d", w, i)}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range workers {
		if n := mounts(t, d, fmt.Sprintf("app%d_data", w)); n != rounds/2 {
			t.Fatalf("app%d_data: %d mounts, want %d", w, n, rounds/2)
		}
	}
	if n := len(listing(t, d)); n != workers {
		t.Fatalf("%d volumes, want %d", n, workers)
	}
}

// TestNamesSurviveRestart: a volume comes back under exactly its name; a
// name that could not (invalid UTF-8 cannot be stored as JSON) is refused.
func TestNamesSurviveRestart(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	d := newDriver(t, root, "b")
	names := []string{"données été", "with/slash", "tab\tname", strings.Repeat("n", 1000), "<&>\u2028"}
	for i, name := range names {
		create(t, d, name, map[string]string{"app": "a", "path": fmt.Sprint("/d", i)})
		mount(t, d, name, "c")
	}
	createErr(t, d, "bad\xff", map[string]string{"app": "a", "path": "/bad"}, "UTF-8")
	createErr(t, d, "bad\xff", map[string]string{"shared": "media"}, "UTF-8")
	d.Close()
	d = newDriver(t, root, "b")
	if n := len(listing(t, d)); n != len(names) {
		t.Fatalf("%d volumes after restart, want %d", n, len(names))
	}
	for _, name := range names {
		if n := mounts(t, d, name); n != 1 {
			t.Fatalf("%q: %d mounts", name, n)
		}
		unmount(t, d, name, "c")
		if err := d.Remove(&volume.RemoveRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(root, StateDirName, "corrupt")); len(entries) != 0 {
		t.Fatalf("records set aside: %v", entries)
	}
}
