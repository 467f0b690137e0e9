package driver

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/portal/portal-volume/internal/usage"
)

// wantNotMeasured checks, and takes out of status (decoded from JSON), the
// usage of a volume whose usage was never measured.
func wantNotMeasured(t *testing.T, status map[string]any) {
	t.Helper()
	u, _ := status["usage"].(map[string]any)
	if !maps.Equal(u, map[string]any{"measured": false}) {
		t.Errorf("usage in Status: %v, want measured false", status["usage"])
	}
	delete(status, "usage")
}

// usageStatus is the usage in the volume's Status, through JSON.
func usageStatus(t *testing.T, d volume.Driver, name string) map[string]any {
	t.Helper()
	data, err := json.Marshal(get(t, d, name).Status["usage"])
	if err != nil {
		t.Fatal(err)
	}
	var u map[string]any
	if err := json.Unmarshal(data, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

// waitMeasured polls the volume's Status until its usage says at least
// bytes.
func waitMeasured(t *testing.T, d volume.Driver, name string, bytes float64) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		u := usageStatus(t, d, name)
		if b, ok := u["bytes"].(float64); ok && b >= bytes {
			return u
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage of %s after 20s: %v, want at least %.0f bytes", name, u, bytes)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}

func TestUsageInStatus(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	d, err := New(Config{Root: root, SharedNames: sharedNames, BootID: "b", Log: quiet(), UsageInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	create(t, d, "photos_originals", nil)
	create(t, d, "files", map[string]string{"tree": "app_data"})
	before := time.Now().Add(-time.Second)
	if err := os.WriteFile(filepath.Join(root, "app_data/photos/originals/a.jpg"), make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	u := waitMeasured(t, d, "photos_originals", 3<<20)
	at, err := time.Parse(time.RFC3339, u["measured_at"].(string))
	if err != nil || at.Before(before.Truncate(time.Second)) || at.After(time.Now()) {
		t.Errorf("measured_at %v (%v), want now", u["measured_at"], err)
	}
	r, err := usage.Walk(context.Background(), root, "app_data/photos/originals", usage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if u["bytes"] != float64(r.Total.Bytes) || u["apparent_bytes"] != float64(r.Total.ApparentBytes) || u["files"] != 1.0 {
		t.Errorf("usage %v; a walk of the directory says %+v", u, r.Total)
	}
	// A tree volume's usage is its tree's.
	tree := waitMeasured(t, d, "files", 3<<20)
	r, err = usage.Walk(context.Background(), root, "app_data", usage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tree["bytes"] != float64(r.Total.Bytes) || tree["files"] != float64(r.Total.Files) {
		t.Errorf("tree volume's usage %v; a walk of app_data says %+v", tree, r.Total)
	}
	// Growth shows at a later refresh.
	if err := os.WriteFile(filepath.Join(root, "app_data/photos/originals/b.jpg"), make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	waitMeasured(t, d, "photos_originals", 5<<20)
}

func TestUsageOff(t *testing.T) {
	d, _, root := setup(t)
	create(t, d, "a_data", nil)
	os.WriteFile(filepath.Join(root, "app_data/a/data/f"), make([]byte, 1<<20), 0o644)
	status := get(t, d, "a_data").Status
	data, _ := json.Marshal(status)
	var decoded map[string]any
	json.Unmarshal(data, &decoded)
	wantNotMeasured(t, decoded)
}

// TestUsageWalkHoldsNoLock: while a walk runs (here, one that waits until
// the test lets it go), every call answers, a Remove of the very volume
// being walked included; Close ends a walk in progress.
func TestUsageWalkHoldsNoLock(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	d, err := New(Config{Root: root, SharedNames: sharedNames, BootID: "b", Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	closedByTest := false
	t.Cleanup(func() {
		if !closedByTest {
			d.Close()
		}
	})
	create(t, d, "a_data", map[string]string{"on_remove": "delete"})
	create(t, d, "b_data", nil)
	walking := make(chan string)
	release := make(chan struct{})
	d.usage = startUsage(root, 10*time.Millisecond, quiet(), d.volumeDirs,
		func(ctx context.Context, root, dir string) (usage.Result, error) {
			select {
			case <-release: // the walks after the test's let go
			default:
				walking <- dir
				select {
				case <-release:
				case <-ctx.Done():
					return usage.Result{}, ctx.Err()
				}
			}
			return backgroundWalk(ctx, root, dir)
		})
	dir := <-walking
	name := map[string]string{"app_data/a/data": "a_data", "app_data/b/data": "b_data"}[dir]
	calls := make(chan error)
	go func() {
		calls <- func() error {
			if err := d.Create(&volume.CreateRequest{Name: "c_data"}); err != nil {
				return err
			}
			if _, err := d.Get(&volume.GetRequest{Name: name}); err != nil {
				return err
			}
			if _, err := d.Mount(&volume.MountRequest{Name: name, ID: "x"}); err != nil {
				return err
			}
			if _, err := d.List(); err != nil {
				return err
			}
			if err := d.Unmount(&volume.UnmountRequest{Name: name, ID: "x"}); err != nil {
				return err
			}
			return d.Remove(&volume.RemoveRequest{Name: name})
		}()
	}()
	select {
	case err := <-calls:
		if err != nil {
			t.Fatalf("a call during a walk of %s: %v", dir, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("calls during a walk of %s did not return in 20s", dir)
	}
	close(release)
	// The other volumes are measured; the removed one is not asked about.
	for _, other := range []string{"a_data", "b_data", "c_data"} {
		if other != name {
			waitMeasured(t, d, other, 1)
		}
	}
	// Close with a walk waiting: it ends it.
	d.usage.stop()
	d.usage = startUsage(root, 10*time.Millisecond, quiet(), d.volumeDirs,
		func(ctx context.Context, root, dir string) (usage.Result, error) {
			select {
			case walking <- dir:
			case <-ctx.Done():
			}
			<-ctx.Done()
			return usage.Result{}, ctx.Err()
		})
	<-walking
	closed := make(chan error)
	go func() { closed <- d.Close() }()
	select {
	case err := <-closed:
		closedByTest = true
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close during a walk did not return in 20s")
	}
}

// The usage in Status is encoded byte for byte as the map of its keys
// that earlier releases answered.
func TestUsageStatusJSON(t *testing.T) {
	for _, c := range []struct {
		got  any
		want map[string]any
	}{
		{notMeasured{}, map[string]any{"measured": false}},
		{&measuredStatus{ApparentBytes: 5000, Bytes: 8192, Files: 3, MeasuredAt: "2026-12-04T12:00:00Z"},
			map[string]any{"apparent_bytes": 5000, "bytes": 8192, "files": 3, "measured_at": "2026-12-04T12:00:00Z"}},
		{&measuredStatus{ApparentBytes: 1, Bytes: 2, Files: 3, MeasuredAt: "2026-12-04T12:00:00Z", Unreadable: 4},
			map[string]any{"apparent_bytes": 1, "bytes": 2, "files": 3, "measured_at": "2026-12-04T12:00:00Z", "unreadable": 4}},
	} {
		got, err := json.Marshal(c.got)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(c.want)
		if string(got) != string(want) {
			t.Errorf("usage status encodes as %s, want %s", got, want)
		}
	}
}
