package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portal/portal-volume/driver/spec"
)

// fixtureRecords copies the records of testdata/<fixture> (made by that
// release's own binary) into a new state directory, and checks that the
// fast decoder takes every one of them.
func fixtureRecords(t *testing.T, fixture string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("testdata", fixture, recordsDir)
	if err := os.MkdirAll(filepath.Join(dir, recordsDir), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, n := range files(t, src) {
		data, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		var fast Volume
		if !fastRecord(data, &fast) {
			t.Errorf("%s/%s: the fast decoder does not take it: %s", fixture, n, data)
		}
		if err := os.WriteFile(filepath.Join(dir, recordsDir, n), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestReleaseRecords: the records release dfb505d wrote (format 1, every
// kind) load as the volumes it made, and the five it made with the
// options that mean what format 0 records meant load to exactly the specs
// the format 0 records load to.
func TestReleaseRecords(t *testing.T) {
	r, got := openRecords(t, fixtureRecords(t, "release-dfb505d"))
	defer r.Close()
	anon := strings.Repeat("5792a48c", 8)
	want := []Volume{
		{Name: "gitea_data", Spec: spec.Spec{App: "gitea", Path: "/data", Mode: 0o755, Enforce: true, OnRemove: spec.Keep}},
		{Name: "gitea-repos", Spec: spec.Spec{App: "gitea", Path: "/repos", UID: 1000, GID: 1000, Mode: 0o750, Enforce: true, OnRemove: spec.Keep}},
		{Name: "jellyfin-media", Spec: spec.Spec{Kind: spec.KindShared, App: "jellyfin", Shared: "media", Mode: 0o755, OnRemove: spec.Keep}},
		{Name: "tmp_cache", Spec: spec.Spec{App: "tmp", Path: "/cache", Mode: 0o755, Enforce: true, OnRemove: spec.Delete}},
		{Name: "mounted_data", Spec: spec.Spec{App: "mounted", Path: "/data", UID: 472, GID: 472, Mode: 0o755, Enforce: true, OnRemove: spec.Keep}},
		{Name: "grafana_data", Spec: spec.Spec{App: "grafana", Path: "/data", Mode: 0o755, OnRemove: spec.Keep}},
		{Name: "fm-apps", Spec: spec.Spec{Kind: spec.KindTree, App: "filebrowser", Tree: spec.TreeAppData, Mode: 0o755, OnRemove: spec.Keep}},
		{Name: "fm-services", Spec: spec.Spec{Kind: spec.KindTree, Tree: spec.TreeServiceData, Mode: 0o755, OnRemove: spec.Keep}},
		{Name: anon, Spec: spec.Spec{Kind: spec.KindAnonymous, Path: "/" + anon, UID: 999, Mode: 0o755, Enforce: true, OnRemove: spec.Delete}},
		{Name: "media-ro", Spec: spec.Spec{Kind: spec.KindShared, Shared: "media", UID: 1000, GID: 1000, IDMap: true, ReadOnly: true, Mode: 0o755, OnRemove: spec.Keep}},
		{Name: "reports_out", Spec: spec.Spec{App: "reports", Path: "/out", Mode: 0o755, ReadOnly: true, OnRemove: spec.Delete}},
	}
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range want {
		want[i].CreatedAt = got[0].CreatedAt // compared apart, below
	}
	for _, v := range got {
		if v.Format != 1 {
			t.Errorf("%s: format %d, want 1", v.Name, v.Format)
		}
		if !v.CreatedAt.Truncate(24 * time.Hour).Equal(day) {
			t.Errorf("%s: created at %v", v.Name, v.CreatedAt)
		}
	}
	for i := range got {
		got[i].CreatedAt = want[0].CreatedAt
	}
	sameVolumes(t, got, want)

	r0, format0 := openRecords(t, fixtureRecords(t, "format0"))
	defer r0.Close()
	byName := map[string]spec.Spec{}
	for _, v := range got {
		byName[v.Name] = v.Spec
	}
	for _, v := range format0 {
		if s, ok := byName[v.Name]; !ok || s != v.Spec {
			t.Errorf("%s: format 0 loads %+v, release dfb505d %+v", v.Name, v.Spec, s)
		}
	}
	if len(format0) != 5 {
		t.Fatalf("format 0 fixture: %d volumes", len(format0))
	}
}
