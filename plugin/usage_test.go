package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portal/portal-volume/driver"
	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/driver/state"
)

func writeSized(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
}

// usageTree makes a Portal tree: two apps (one with two recorded volumes),
// two shared directories, service_data, two anonymous volumes, the
// plugin's state, and a file at the top.
func usageTree(t *testing.T) string {
	root := t.TempDir()
	writeSized(t, filepath.Join(root, "app_data/photos/originals/a.jpg"), 3<<20)
	writeSized(t, filepath.Join(root, "app_data/photos/cache/x"), 200<<10)
	writeSized(t, filepath.Join(root, "app_data/photos/loose"), 10<<10)
	writeSized(t, filepath.Join(root, "app_data/mail/data/m"), 1<<20)
	writeSized(t, filepath.Join(root, "shared/media/v.mp4"), 2<<20)
	writeSized(t, filepath.Join(root, "shared/documents/d.pdf"), 50<<10)
	writeSized(t, filepath.Join(root, "service_data/db"), 100<<10)
	writeSized(t, filepath.Join(root, "anonymous", strings.Repeat("a", 64), "f"), 30<<10)
	writeSized(t, filepath.Join(root, "anonymous", strings.Repeat("b", 64), "f"), 30<<10)
	writeSized(t, filepath.Join(root, "stray"), 5<<10)
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	recs, _, err := state.OpenRecords(filepath.Join(root, driver.StateDirName), log)
	if err != nil {
		t.Fatal(err)
	}
	for name, sp := range map[string]spec.Spec{
		"photos_originals": {App: "photos", Path: "/originals", OnRemove: spec.Keep},
		"photos_cache":     {App: "photos", Path: "/cache", OnRemove: spec.Keep},
		"mail_data":        {App: "mail", Path: "/data", OnRemove: spec.Keep},
		"media":            {Kind: spec.KindShared, Shared: "media", OnRemove: spec.Keep},
	} {
		if err := recs.Put(state.Volume{Name: name, Spec: sp, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	// The plugin may be running: usage reads its records beside it.
	t.Cleanup(func() { recs.Close() })
	return root
}

func duBytes(t *testing.T, dir string) int64 {
	out, err := exec.Command("du", "-s", "--block-size=1", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	return n
}

func TestUsageJSON(t *testing.T) {
	root := usageTree(t)
	var stdout, stderr bytes.Buffer
	if code := runUsage([]string{"--json", "--root", root}, func(string) string { return "" }, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rep usageReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if want := duBytes(t, root); rep.Total.Bytes != want {
		t.Errorf("total %d bytes, du -s --block-size=1 says %d", rep.Total.Bytes, want)
	}
	var kinds []string
	var sum int64
	for i, e := range rep.Entries {
		kinds = append(kinds, e.Kind+":"+e.Name)
		sum += e.Bytes
		if i > 0 && e.Bytes > rep.Entries[i-1].Bytes {
			t.Errorf("entry %d (%s) is larger than the one before it", i, e.Kind)
		}
		if e.Dir != "" {
			if want := duBytes(t, filepath.Join(root, e.Dir)); e.Bytes != want {
				t.Errorf("%s: %d bytes, du says %d", e.Dir, e.Bytes, want)
			}
		}
	}
	if sum != rep.Total.Bytes {
		t.Errorf("the entries add up to %d bytes, the total is %d", sum, rep.Total.Bytes)
	}
	want := "app:photos shared:media app:mail service_data: shared:documents anonymous: state: other:"
	if got := strings.Join(kinds, " "); !strings.HasPrefix(got, "app:photos shared:media app:mail service_data:") || len(kinds) != len(strings.Fields(want)) {
		t.Errorf("entries %s, want (largest first) %s", got, want)
	}
	photos := rep.Entries[0]
	if len(photos.Volumes) != 2 || photos.Volumes[0].Name != "photos_originals" || photos.Volumes[1].Name != "photos_cache" {
		t.Fatalf("photos' volumes: %+v, want photos_originals then photos_cache", photos.Volumes)
	}
	if v := photos.Volumes[0]; v.Dir != "app_data/photos/originals" || v.Bytes != duBytes(t, filepath.Join(root, v.Dir)) || v.Files != 1 {
		t.Errorf("photos_originals: %+v", v)
	}
	for _, e := range rep.Entries {
		if e.Kind == "anonymous" && e.Count != 2 {
			t.Errorf("anonymous volumes: count %d, want 2", e.Count)
		}
	}
	if rep.Unreadable != nil || rep.Mounts != nil {
		t.Errorf("unreadable %+v, mounts %+v", rep.Unreadable, rep.Mounts)
	}
}

func TestUsageText(t *testing.T) {
	root := usageTree(t)
	var stdout, stderr bytes.Buffer
	env := func(k string) string {
		if k == "PORTAL_ROOT" {
			return root
		}
		return ""
	}
	if code := runUsage(nil, env, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"app photos", "volume photos_originals (app_data/photos/originals)", "shared media", "anonymous volumes (2)", "portal-volume's state (.portal-volume)", "total " + root} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr, not a terminal, has %q", stderr.String())
	}
}

func TestUsageBadInput(t *testing.T) {
	for _, args := range [][]string{{"--root", "relative"}, {"--root", "/no/such/dir"}, {"extra"}, {"--bogus"}} {
		var stdout, stderr bytes.Buffer
		if code := runUsage(args, func(string) string { return "" }, &stdout, &stderr); code != 2 || stdout.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q; want 2 and nothing", args, code, stdout.String())
		}
	}
}
