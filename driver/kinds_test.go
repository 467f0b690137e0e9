package driver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/driver/state"
	"github.com/portal/portal-volume/internal/testutil"
)

// An owner that was not asked for is Docker's and the app's: Mount makes
// a missing directory again but never sets the owner back.
func TestOwnerNotEnforced(t *testing.T) {
	d, _, root := setup(t)
	create(t, d, "grafana_data", nil)
	dir := filepath.Join(root, "app_data/grafana/data")
	wantDir(t, dir, 0o755, 0, 0)
	if got := get(t, d, "grafana_data").Status["owner"]; got != "docker" {
		t.Fatalf("owner = %v, want docker", got)
	}
	// Docker's copy-up (or an entrypoint) gives the volume the image's owner.
	chown(t, dir, 472, 472, 0o700)
	mount(t, d, "grafana_data", "c1")
	unmount(t, d, "grafana_data", "c1")
	mount(t, d, "grafana_data", "c2")
	wantDir(t, dir, 0o700, 472, 472)

	// Asked for, the owner holds at every Mount.
	create(t, d, "pg_data", map[string]string{"uid": "999"})
	pg := filepath.Join(root, "app_data/pg/data")
	wantDir(t, pg, 0o755, 999, 0)
	chown(t, pg, 0, 0, 0o700)
	mount(t, d, "pg_data", "c3")
	wantDir(t, pg, 0o755, 999, 0)
	if got := get(t, d, "pg_data").Status["owner"]; got != "enforced" {
		t.Fatalf("owner = %v, want enforced", got)
	}
}

func TestTree(t *testing.T) {
	d, _, root := setup(t)
	create(t, d, "fm-apps", map[string]string{"tree": "app_data", "app": "filebrowser"})
	create(t, d, "fm-apps-2", map[string]string{"tree": "app_data"})
	create(t, d, "fm-services", map[string]string{"tree": "service_data"})
	wantDir(t, filepath.Join(root, "service_data"), 0o755, 0, 0)
	if mp := mount(t, d, "fm-apps", "c1"); mp != filepath.Join(root, "app_data") {
		t.Fatalf("Mountpoint %s", mp)
	}
	st := get(t, d, "fm-apps").Status
	if st["tree"] != "app_data" || st["app"] != "filebrowser" || st["path"] != "" {
		t.Fatalf("Status %v", st)
	}
	// App volumes inside a tree, made after it, in both directions of
	// the nesting rule.
	create(t, d, "gitea_data", map[string]string{"uid": "1000", "gid": "1000"})
	create(t, d, "fm-shared", map[string]string{"tree": "shared"})
	create(t, d, "media", map[string]string{"shared": "media"})
	// An existing tree is never chowned.
	chown(t, filepath.Join(root, "shared"), 1000, 1000, 0o770)
	mount(t, d, "fm-shared", "c2")
	wantDir(t, filepath.Join(root, "shared"), 0o770, 1000, 1000)

	testutil.Write(t, filepath.Join(root, "app_data/gitea/data/repo"), "kept")
	unmount(t, d, "fm-apps", "c1")
	unmount(t, d, "fm-shared", "c2")
	for _, n := range []string{"fm-apps", "fm-apps-2", "fm-services", "fm-shared"} {
		if err := d.Remove(&volume.RemoveRequest{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(root, "app_data/gitea/data/repo")); err != nil || string(got) != "kept" {
		t.Fatalf("after the tree volumes went: %q, %v", got, err)
	}
	wantDir(t, filepath.Join(root, "service_data"), 0o755, 0, 0)
}

func TestAnonymous(t *testing.T) {
	requireRoot(t)
	name := strings.Repeat("0123456789abcdef", 4)
	for _, policy := range []string{"", spec.Delete, spec.Keep} {
		t.Run("policy="+policy, func(t *testing.T) {
			root := t.TempDir()
			d, err := New(Config{Root: root, SharedNames: sharedNames, Anonymous: policy, BootID: "b", Log: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			create(t, d, name, nil)
			dir := filepath.Join(root, "anonymous", name)
			wantDir(t, dir, 0o755, 0, 0)
			if mp := mount(t, d, name, "c"); mp != dir {
				t.Fatalf("Mountpoint %s", mp)
			}
			testutil.Write(t, filepath.Join(dir, "sub/f"), "x")
			unmount(t, d, name, "c")
			if err := d.Remove(&volume.RemoveRequest{Name: name}); err != nil {
				t.Fatal(err)
			}
			if policy == spec.Keep {
				if !exists(filepath.Join(dir, "sub/f")) {
					t.Fatal("keep deleted the data")
				}
			} else if exists(dir) {
				t.Fatal("delete left the directory")
			}
			wantDir(t, filepath.Join(root, "anonymous"), 0o755, 0, 0)
		})
	}
	t.Run("policy=refuse", func(t *testing.T) {
		root := t.TempDir()
		d, err := New(Config{Root: root, SharedNames: sharedNames, Anonymous: spec.Refuse, BootID: "b", Log: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		before := testutil.Snapshot(t, root)
		createErr(t, d, name, nil, name, "anonymous", "ANONYMOUS_VOLUMES")
		testutil.Same(t, "refused anonymous", before, testutil.Snapshot(t, root))
	})
}

// A record of the first release keeps the behaviour it had (its owner was
// enforced), and the Create that made it still succeeds.
func TestFormat0Volume(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	stateDir := filepath.Join(root, StateDirName)
	r, _, err := state.OpenRecords(stateDir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	// The first release's exact bytes (driver/state/testdata/format0).
	rec := `{"name":"gitea_data","spec":{"App":"gitea","Path":"/data","UID":0,"GID":0,"Mode":493,"Shared":"","OnRemove":"keep"},"created_at":"2026-12-01T11:01:01Z"}`
	src := filepath.Join("state", "testdata", "format0", "volumes", "c31228e27338f3d1e3de511872e52821.json")
	if b, err := os.ReadFile(src); err != nil || strings.TrimSpace(string(b)) != rec {
		t.Fatalf("fixture %s: %q, %v", src, b, err)
	}
	testutil.Write(t, filepath.Join(stateDir, "volumes", filepath.Base(src)), rec+"\n")
	d := newDriver(t, root, "b")
	dir := filepath.Join(root, "app_data/gitea/data")
	create(t, d, "gitea_data", nil) // as docker run -v gitea_data:/x does
	if got := get(t, d, "gitea_data"); got.Status["owner"] != "enforced" || got.CreatedAt != "2026-12-01T11:01:01Z" {
		t.Fatalf("Status %v, CreatedAt %s", got.Status, got.CreatedAt)
	}
	testutil.Mkdir(t, dir)
	chown(t, dir, 472, 472, 0o700)
	mount(t, d, "gitea_data", "c")
	wantDir(t, dir, 0o755, 0, 0)
	createErr(t, d, "gitea_data", map[string]string{"uid": "1"}, "other options")
}

// TestListFollowsChanges: List's answer, built once per change, shows
// every Create and Remove at once, and an answer handed out is never
// changed afterwards (Docker may still be encoding it).
func TestListFollowsChanges(t *testing.T) {
	d, _, _ := setup(t)
	create(t, d, "a_data", nil)
	first, err := d.List()
	if err != nil || len(first.Volumes) != 1 {
		t.Fatalf("List: %+v, %v", first, err)
	}
	again, _ := d.List()
	if again != first {
		t.Error("an unchanged List was built again")
	}
	create(t, d, "b_data", nil)
	if got := listing(t, d); len(got) != 2 || got["b_data"] == "" {
		t.Fatalf("after a create: %v", got)
	}
	if err := d.Remove(&volume.RemoveRequest{Name: "a_data"}); err != nil {
		t.Fatal(err)
	}
	if got := listing(t, d); len(got) != 1 || got["a_data"] != "" {
		t.Fatalf("after a remove: %v", got)
	}
	if len(first.Volumes) != 1 || first.Volumes[0].Name != "a_data" {
		t.Fatalf("an answer handed out changed: %+v", first.Volumes)
	}
}
