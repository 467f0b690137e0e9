package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestUsage: a volume's disk usage, in docker volume inspect and from
// portal-volume usage, in every mode.
func TestUsage(t *testing.T) { eachMode(t, usageCases) }

// tenMiB is what the case's container writes.
const tenMiB = 10 << 20

// usageBytes is the bytes of the usage in a volume's Status; an error
// while it has none (never measured).
func (e *env) usageBytes(t *testing.T, name string) (float64, error) {
	u, _ := e.inspect(t, name).Status["usage"].(map[string]any)
	b, ok := u["bytes"].(float64)
	if !ok {
		return 0, fmt.Errorf("usage in Status: %v", u)
	}
	return b, nil
}

var usageCases = []testCase{
	{"DiskUsage", func(t *testing.T, e *env) {
		t.Cleanup(func() { e.Configure(t, "USAGE_INTERVAL=24h") })
		e.Configure(t, "USAGE_INTERVAL=1s")
		e.mustCreate(t, "usageapp_data")
		e.mustCreate(t, "usage-files", "tree=app_data")
		e.run(t, "--network", "none", "-v", "usageapp_data:/v", image, "dd", "if=/dev/zero", "of=/v/ten", "bs=1048576", "count=10")

		// After a refresh, docker volume inspect shows it, for the
		// volume and for the tree that holds it.
		for _, name := range []string{"usageapp_data", "usage-files"} {
			waitFor(t, "the usage of "+name+" in docker volume inspect", time.Minute, func() error {
				b, err := e.usageBytes(t, name)
				if err == nil && b < tenMiB {
					err = fmt.Errorf("usage %.0f bytes, want at least %d", b, tenMiB)
				}
				return err
			})
		}
		t.Logf("docker volume inspect usageapp_data:\n%s", mustDocker(t, "volume", "inspect", "usageapp_data"))
		u := e.inspect(t, "usageapp_data").Status["usage"].(map[string]any)
		if at, err := time.Parse(time.RFC3339, fmt.Sprint(u["measured_at"])); err != nil || time.Since(at) > 5*time.Minute {
			t.Errorf("measured_at %v: %v", u["measured_at"], err)
		}
		if u["files"] != 1.0 {
			t.Errorf("files %v, want 1", u["files"])
		}

		// portal-volume usage reads the tree on the host, the daemon
		// running or not.
		out, err := runCmd(binary, "usage", "--root", e.Root())
		t.Logf("portal-volume usage:\n%s", out)
		if err != nil {
			t.Fatalf("portal-volume usage: %v\n%s", err, out)
		}
		out, err = runCmd(binary, "usage", "--json", "--root", e.Root())
		if err != nil {
			t.Fatalf("portal-volume usage: %v\n%s", err, out)
		}
		var rep struct {
			Total   struct{ Bytes int64 }
			Entries []struct {
				Kind, Name string
				Bytes      int64
				Volumes    []struct {
					Name  string
					Bytes int64
				}
			}
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("portal-volume usage --json: %v\n%s", err, out)
		}
		found := false
		for _, a := range rep.Entries {
			if a.Kind != "app" || a.Name != "usageapp" {
				continue
			}
			found = true
			if a.Bytes < tenMiB || len(a.Volumes) != 1 || a.Volumes[0].Name != "usageapp_data" || a.Volumes[0].Bytes < tenMiB {
				t.Errorf("app usageapp in portal-volume usage: %+v, want at least %d bytes in volume usageapp_data", a, tenMiB)
			}
		}
		if !found || rep.Total.Bytes < tenMiB {
			t.Errorf("portal-volume usage lists no app usageapp, or a total under 10 MiB:\n%s", out)
		}
	}},
}
