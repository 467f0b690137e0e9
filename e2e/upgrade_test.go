package e2e

import (
	"os"
	"strings"
	"testing"
)

// firstRelease is the commit of the first release: its records have no
// word on owner enforcement, and it enforced every app volume's owner.
const firstRelease = "67eef64"

// TestUpgrade: volumes of every kind, made by the first release's own
// build (by name, with options, shared, delete on remove, one held by a
// running container), keep doing what they did under this one.
func TestUpgrade(t *testing.T) {
	eachMode(t, []testCase{{"UpgradeFromFirstRelease", upgradeFromFirstRelease}})
}

func upgradeFromFirstRelease(t *testing.T, e *env) {
	old := buildRevision(t, firstRelease, e.mode == "managed")
	t.Cleanup(func() { e.Run(t, release{}) })
	e.Run(t, old)

	for _, n := range []string{"upg_data", "upg-opts", "upg-media", "upg_tmp", "upg_live"} {
		t.Cleanup(func() { _, _ = docker("volume", "rm", "-f", n) })
	}
	e.run(t, "--volume-driver", driverName, "-v", "upg_data:/v", image, "sh", "-c", "echo old > /v/f")
	e.mustCreate(t, "upg-opts", "app=upg", "path=/conf/", "uid=1000", "gid=1000", "mode=0750")
	e.mustCreate(t, "upg-media", "shared=media", "app=upg")
	e.mustCreate(t, "upg_tmp", "on_remove=delete")
	e.mustCreate(t, "upg_live", "uid=472", "gid=472")
	live := e.sleeper(t, "-v", "upg_live:/v")
	before := map[string]inspected{}
	for _, n := range []string{"upg_data", "upg-opts", "upg-media", "upg_tmp", "upg_live"} {
		before[n] = e.inspect(t, n)
	}

	e.Run(t, release{})

	for n, b := range before {
		a := e.inspect(t, n)
		if e.mode == "managed" {
			// The tree moved below the propagated mount, beside the views.
			b.Mountpoint = strings.Replace(b.Mountpoint, "/portal/", "/mnt/pv/tree/", 1)
		}
		if a.CreatedAt != b.CreatedAt || a.Mountpoint != b.Mountpoint {
			t.Errorf("%s: CreatedAt %s -> %s, Mountpoint %s -> %s", n, b.CreatedAt, a.CreatedAt, b.Mountpoint, a.Mountpoint)
		}
		for _, k := range []string{"app", "path", "uid", "gid", "mode", "shared", "on_remove"} {
			if a.Status[k] != b.Status[k] {
				t.Errorf("%s: Status %s %v -> %v", n, k, b.Status[k], a.Status[k])
			}
		}
		want := "enforced"
		if n == "upg-media" {
			want = "docker"
		}
		if a.Status["owner"] != want {
			t.Errorf("%s: owner %v, want %s", n, a.Status["owner"], want)
		}
	}
	if got := e.inspect(t, "upg_live").Status["mounts"]; got != 1.0 {
		t.Errorf("mounts of the volume a container holds across the upgrade = %v, want 1", got)
	}
	// The creates that made them still succeed, and only those. Sent to
	// the plugin itself: dockerd answers a create of a name it knows
	// without asking the driver, whatever the options.
	for body, want := range map[string]string{
		`{"Name":"upg_data"}`: "",
		`{"Name":"upg-opts","Opts":{"app":"upg","path":"/conf","uid":"1000","gid":"1000","mode":"750"}}`: "",
		`{"Name":"upg-media","Opts":{"shared":"media","app":"upg"}}`:                                     "",
		`{"Name":"upg_data","Opts":{"uid":"5"}}`:                                                         "other options",
	} {
		got, err := pluginCall(e.Socket(t), "VolumeDriver.Create", body)
		if err != nil || want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("Create %s: %q, %v; want %q", body, got, err, want)
		}
	}
	// upg_data was made without options by a release that enforced
	// 0:0 0755: it still does, whatever the image or app did to it.
	dir := e.host("app_data/upg/data")
	if err := os.Chown(dir, 472, 472); err != nil {
		t.Fatal(err)
	}
	if out := e.run(t, "-v", "upg_data:/v", image, "sh", "-c", "stat -c %u:%g /v; cat /v/f"); out != "0:0\nold" {
		t.Errorf("upg_data after the upgrade: %q", out)
	}
	mustDocker(t, "rm", "-f", live)
	if got := e.inspect(t, "upg_live").Status["mounts"]; got != 0.0 {
		t.Errorf("mounts once the container is gone = %v, want 0", got)
	}
	mustDocker(t, "volume", "rm", "upg_live", "upg_tmp", "upg_data")
	wantGone(t, e.host("app_data/upg/tmp"))
	if got := readFile(t, e.host("app_data/upg/data/f")); got != "old\n" {
		t.Errorf("kept data = %q", got)
	}
}
