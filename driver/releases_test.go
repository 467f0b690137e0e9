package driver

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/portal/portal-volume/internal/testutil"
)

// releaseDriver is a driver on a fresh root whose state holds the records
// of state/testdata/<fixture>, written by that release's own binary.
func releaseDriver(t *testing.T, fixture string) (*Driver, string) {
	t.Helper()
	requireRoot(t)
	root := t.TempDir()
	src := filepath.Join("state", "testdata", fixture, "volumes")
	dst := filepath.Join(root, StateDirName, "volumes")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return newDriver(t, root, "boot-1"), root
}

// TestEarlierReleasesLoadAlike: the five volumes the first release
// recorded in format 0, and that release dfb505d recorded in format 1
// with the options that mean what format 0 meant, behave alike after an
// upgrade to this release: the same Status and mountpoint, the same
// answer to a Create with those options, the owner set again at Mount,
// the data deleted or kept at Remove.
func TestEarlierReleasesLoadAlike(t *testing.T) {
	type seen struct {
		status     map[string]map[string]any
		mountpoint map[string]string
	}
	// The options release dfb505d was given; the first release was given
	// fewer, which its format enforced anyway.
	opts := map[string]map[string]string{
		"gitea_data":     {"uid": "0", "gid": "0", "mode": "0755"},
		"gitea-repos":    {"app": "gitea", "path": "/repos/", "uid": "1000", "gid": "1000", "mode": "0750"},
		"jellyfin-media": {"shared": "media", "app": "jellyfin"},
		"tmp_cache":      {"on_remove": "delete", "uid": "0", "gid": "0", "mode": "0755"},
		"mounted_data":   {"uid": "472", "gid": "472"},
	}
	run := func(fixture string) seen {
		d, root := releaseDriver(t, fixture)
		s := seen{map[string]map[string]any{}, map[string]string{}}
		for name, o := range opts {
			create(t, d, name, o) // the same options: an answer, not a refusal
			v := get(t, d, name)
			s.status[name] = v.Status
			s.mountpoint[name] = v.Mountpoint[len(root):]
		}
		repos := filepath.Join(root, "app_data/gitea/repos")
		mount(t, d, "gitea-repos", "c0") // makes the missing directory
		unmount(t, d, "gitea-repos", "c0")
		chown(t, repos, 0, 0, 0o777)
		mount(t, d, "gitea-repos", "c1")
		wantDir(t, repos, 0o750, 1000, 1000)
		unmount(t, d, "gitea-repos", "c1")
		for name, deleted := range map[string]bool{"tmp_cache": true, "gitea_data": false} {
			dir := get(t, d, name).Mountpoint
			testutil.Write(t, filepath.Join(dir, "f"), "x")
			if err := d.Remove(&volume.RemoveRequest{Name: name}); err != nil {
				t.Fatal(err)
			}
			if exists(dir) == deleted {
				t.Errorf("%s: after Remove of %s the directory exists = %v", fixture, name, exists(dir))
			}
		}
		return s
	}
	first, release := run("format0"), run("release-dfb505d")
	if !reflect.DeepEqual(first, release) {
		t.Fatalf("format 0 records:\n%v\nrelease dfb505d records:\n%v", first, release)
	}
}
