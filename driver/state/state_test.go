package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portal/portal-volume/driver/spec"
)

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.Out = io.Discard
	return l
}

func openRecords(t *testing.T, dir string) (*Records, []Volume) {
	t.Helper()
	r, vols, err := OpenRecords(dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(vols, func(a, b Volume) int { return strings.Compare(a.Name, b.Name) })
	return r, vols
}

func vol(name, app, path string) Volume {
	return Volume{
		Name:      name,
		Spec:      spec.Spec{App: app, Path: path, UID: 1000, GID: 1001, Mode: 0o750, Enforce: true, OnRemove: spec.Delete},
		CreatedAt: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
	}
}

func sameVolumes(t *testing.T, got, want []Volume) {
	t.Helper()
	slices.SortFunc(want, func(a, b Volume) int { return strings.Compare(a.Name, b.Name) })
	if len(got) != len(want) {
		t.Fatalf("got %d volumes, want %d: %+v", len(got), len(want), got)
	}
	for i := range got {
		if got[i].Name != want[i].Name || got[i].Spec != want[i].Spec || !got[i].CreatedAt.Equal(want[i].CreatedAt) {
			t.Fatalf("volume %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestRecordsRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // made by OpenRecords
	r, vols := openRecords(t, dir)
	if len(vols) != 0 {
		t.Fatalf("new state has %d volumes", len(vols))
	}
	want := []Volume{
		vol("gitea_data", "gitea", "/data"),
		vol("paperless", "paperless", "/usr/src/paperless/data"),
		vol("with/slash and ünïcode", "a", "/x"),
		vol(strings.Repeat("long", 300), "b", "/y"),
		{Name: "media", Spec: spec.Spec{Kind: spec.KindShared, Shared: "media", Mode: 0o755, OnRemove: spec.Keep}, CreatedAt: time.Now().UTC().Truncate(time.Second)},
		// Not enforced: a record of this release keeps saying so.
		{Name: "grafana_data", Spec: spec.Spec{App: "grafana", Path: "/data", Mode: 0o755, OnRemove: spec.Keep}, CreatedAt: time.Now().UTC().Truncate(time.Second)},
		{Name: "fm", Spec: spec.Spec{Kind: spec.KindTree, Tree: spec.TreeAppData, Mode: 0o755, OnRemove: spec.Keep}, CreatedAt: time.Now().UTC().Truncate(time.Second)},
		{Name: strings.Repeat("ab", 32), Spec: spec.Spec{Path: "/" + strings.Repeat("ab", 32), Kind: spec.KindAnonymous, Mode: 0o755, OnRemove: spec.Delete}, CreatedAt: time.Now().UTC().Truncate(time.Second)},
	}
	for _, v := range want {
		if err := r.Put(v); err != nil {
			t.Fatal(err)
		}
	}
	// Put replaces a record of the same name.
	changed := vol("gitea_data", "gitea", "/data2")
	if err := r.Put(changed); err != nil {
		t.Fatal(err)
	}
	want[0] = changed
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r, got := openRecords(t, dir)
	defer r.Close()
	sameVolumes(t, got, want)
	if n := len(files(t, filepath.Join(dir, recordsDir))); n != len(want) {
		t.Fatalf("%d files for %d records", n, len(want))
	}
	if names := files(t, filepath.Join(dir, corruptDir)); len(names) != 0 {
		t.Fatalf("corrupt: %v", names)
	}
}

func TestRecordsDelete(t *testing.T) {
	dir := t.TempDir()
	r, _ := openRecords(t, dir)
	a, b := vol("a_data", "a", "/data"), vol("b_data", "b", "/data")
	for _, v := range []Volume{a, b} {
		if err := r.Put(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Delete("a_data"); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete("never-there"); err != nil {
		t.Fatalf("Delete of an unknown record: %v", err)
	}
	r.Close()
	r, got := openRecords(t, dir)
	defer r.Close()
	sameVolumes(t, got, []Volume{b})
}

func TestRecordsTornWrite(t *testing.T) {
	dir := t.TempDir()
	r, _ := openRecords(t, dir)
	a := vol("a_data", "a", "/data")
	if err := r.Put(a); err != nil {
		t.Fatal(err)
	}
	r.Close()
	// A crash mid-write leaves a temp file: a complete new record of a, a
	// half-written one, and a whole record of a volume never renamed in.
	vdir := filepath.Join(dir, recordsDir)
	newer := a
	newer.Spec.Path = "/other"
	full, _ := json.Marshal(newer)
	never, _ := json.Marshal(vol("b_data", "b", "/data"))
	for name, data := range map[string][]byte{
		tmpPrefix + "AAAA": full,
		tmpPrefix + "BBBB": full[:len(full)/2],
		tmpPrefix + "CCCC": never,
		tmpPrefix + "DDDD": nil,
	} {
		if err := os.WriteFile(filepath.Join(vdir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, got := openRecords(t, dir)
	defer r.Close()
	sameVolumes(t, got, []Volume{a})
	if names := files(t, vdir); len(names) != 1 || names[0] != fileName("a_data") {
		t.Fatalf("records directory holds %v, want only a's record", names)
	}
	if names := files(t, filepath.Join(dir, corruptDir)); len(names) != 0 {
		t.Fatalf("temp files quarantined instead of removed: %v", names)
	}
}

func TestRecordsCorrupt(t *testing.T) {
	dir := t.TempDir()
	r, _ := openRecords(t, dir)
	good := []Volume{vol("a_data", "a", "/data"), vol("b_data", "b", "/data")}
	for _, v := range append(good, vol("c_data", "c", "/data"), vol("d_data", "d", "/data")) {
		if err := r.Put(v); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	vdir := filepath.Join(dir, recordsDir)
	cFile := filepath.Join(vdir, fileName("c_data"))
	cData, err := os.ReadFile(cFile)
	if err != nil {
		t.Fatal(err)
	}
	// c is half-written, d is garbage, and e's record sits in a file named
	// for another volume.
	bad := map[string][]byte{
		fileName("c_data"): cData[:len(cData)/2],
		fileName("d_data"): []byte("\x00\x00garbage\xff"),
	}
	eData, _ := json.Marshal(vol("e_data", "e", "/data"))
	bad[fileName("not-e")] = eData
	for name, data := range bad {
		if err := os.WriteFile(filepath.Join(vdir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	r, got := openRecords(t, dir)
	sameVolumes(t, got, good)
	r.Close()

	// Every bad record is kept in corrupt/, with its content, and gone from
	// the records directory.
	cdir := filepath.Join(dir, corruptDir)
	moved := files(t, cdir)
	if len(moved) != len(bad) {
		t.Fatalf("corrupt/ holds %v, want %d files", moved, len(bad))
	}
	for name, data := range bad {
		found := false
		for _, m := range moved {
			if strings.HasPrefix(m, name+".") {
				kept, err := os.ReadFile(filepath.Join(cdir, m))
				if err != nil {
					t.Fatal(err)
				}
				if string(kept) != string(data) {
					t.Fatalf("%s: content changed", m)
				}
				found = true
			}
		}
		if !found {
			t.Fatalf("%s not kept in corrupt/ (%v)", name, moved)
		}
		if _, err := os.Stat(filepath.Join(vdir, name)); !os.IsNotExist(err) {
			t.Fatalf("%s still in the records directory: %v", name, err)
		}
	}
	// A second open loads the good ones again and moves nothing more.
	r, got = openRecords(t, dir)
	defer r.Close()
	sameVolumes(t, got, good)
	if n := len(files(t, cdir)); n != len(bad) {
		t.Fatalf("corrupt/ holds %d files after reopen", n)
	}
}

func TestRecordsLock(t *testing.T) {
	dir := t.TempDir()
	r, _ := openRecords(t, dir)
	if err := r.Put(vol("a_data", "a", "/data")); err != nil {
		t.Fatal(err)
	}
	r2, _, err := OpenRecords(dir, quiet())
	if err == nil {
		r2.Close()
		t.Fatal("a second OpenRecords of the same directory succeeded")
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Fatalf("error %q does not say the directory is in use", err)
	}
	r.Close()
	r, vols := openRecords(t, dir)
	defer r.Close()
	if len(vols) != 1 {
		t.Fatalf("after the first closed: %d volumes", len(vols))
	}
}

func TestRecordsManyParallelLoad(t *testing.T) {
	dir := t.TempDir()
	r, _ := openRecords(t, dir)
	var want []Volume
	for i := range 500 {
		v := vol(fmt.Sprintf("app%d_data", i), fmt.Sprintf("app%d", i), "/data")
		want = append(want, v)
		if err := os.WriteFile(filepath.Join(dir, recordsDir, fileName(v.Name)), mustJSON(t, v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	r, got := openRecords(t, dir)
	defer r.Close()
	sameVolumes(t, got, want)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func openMounts(t *testing.T, dir, boot string) *Mounts {
	t.Helper()
	m, err := OpenMounts(dir, boot, quiet())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func wantCounts(t *testing.T, m *Mounts, want map[string]int) {
	t.Helper()
	for v, n := range want {
		if got := m.Count(v); got != n {
			t.Fatalf("Count(%q) = %d, want %d", v, got, n)
		}
	}
}

func TestMountsCountAndReopen(t *testing.T) {
	dir := t.TempDir()
	m := openMounts(t, dir, "boot-1")
	wantCounts(t, m, map[string]int{"a": 0})
	for _, mt := range [][2]string{{"a", "id1"}, {"a", "id1"}, {"a", "id2"}, {"b", "id1"}, {"c", "x"}} {
		if err := m.Mount(mt[0], mt[1]); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := m.Unmount("c", "x"); !ok || err != nil {
		t.Fatalf("Unmount(c, x) = %v, %v", ok, err)
	}
	want := map[string]int{"a": 3, "b": 1, "c": 0, "d": 0}
	wantCounts(t, m, want)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart: same boot.
	m = openMounts(t, dir, "boot-1")
	wantCounts(t, m, want)
	// The multiplicity per ID survived: id1 of a unmounts twice.
	for range 2 {
		if ok, err := m.Unmount("a", "id1"); !ok || err != nil {
			t.Fatalf("Unmount(a, id1) = %v, %v", ok, err)
		}
	}
	if ok, _ := m.Unmount("a", "id1"); ok {
		t.Fatal("a third Unmount(a, id1) counted")
	}
	wantCounts(t, m, map[string]int{"a": 1, "b": 1})
	m.Close()

	m = openMounts(t, dir, "boot-1")
	wantCounts(t, m, map[string]int{"a": 1, "b": 1})
	m.Close()

	// A reboot: counts are gone, and stay gone.
	m = openMounts(t, dir, "boot-2")
	wantCounts(t, m, map[string]int{"a": 0, "b": 0})
	m.Close()
	m = openMounts(t, dir, "boot-1")
	wantCounts(t, m, map[string]int{"a": 0, "b": 0})
	m.Close()
}

func TestMountsUnmountUnknown(t *testing.T) {
	m := openMounts(t, t.TempDir(), "boot")
	defer m.Close()
	if err := m.Mount("a", "id1"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range [][2]string{{"a", "id2"}, {"b", "id1"}, {"", ""}} {
		ok, err := m.Unmount(tc[0], tc[1])
		if ok || err != nil {
			t.Fatalf("Unmount(%q, %q) = %v, %v; want false, nil", tc[0], tc[1], ok, err)
		}
	}
	wantCounts(t, m, map[string]int{"a": 1, "b": 0})
}

func TestMountsTornLastLine(t *testing.T) {
	dir := t.TempDir()
	m := openMounts(t, dir, "boot")
	for _, id := range []string{"1", "2", "2"} {
		if err := m.Mount("a", id); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	path := filepath.Join(dir, mountLogName)
	line, _ := json.Marshal(mountEntry{Volume: "a", ID: "3", Delta: 1})
	for cut := 1; cut < len(line); cut++ {
		// What a crash part way through an append leaves: a piece of the
		// line at the end of the text.
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(line[:cut], int64(len(textOf(t, path)))); err != nil {
			t.Fatal(err)
		}
		f.Close()
		m = openMounts(t, dir, "boot")
		wantCounts(t, m, map[string]int{"a": 3})
		// Appends after a torn line are read again after a restart.
		if err := m.Mount("b", "x"); err != nil {
			t.Fatal(err)
		}
		if ok, err := m.Unmount("b", "x"); !ok || err != nil {
			t.Fatalf("Unmount = %v, %v", ok, err)
		}
		m.Close()
	}
	if err := os.WriteFile(path, append(mustJSON(t, mountHeader{BootID: "boot"}), `{"v":"a","id":"1","d":1}`+"\n"+`{"v":"a","id"`...), 0o600); err != nil {
		t.Fatal(err)
	}
	m = openMounts(t, dir, "boot")
	wantCounts(t, m, map[string]int{"a": 1})
	if err := m.Mount("a", "1"); err != nil {
		t.Fatal(err)
	}
	m.Close()
	m = openMounts(t, dir, "boot")
	defer m.Close()
	wantCounts(t, m, map[string]int{"a": 2})
}

func TestMountsBadLog(t *testing.T) {
	for name, data := range map[string]string{
		"empty":          "",
		"garbage header": "\x00\x00\x00\n{\"v\":\"a\",\"id\":\"1\",\"d\":1}\n",
		"no header":      "{\"v\":\"a\",\"id\":\"1\",\"d\":1}\n",
		"other boot":     "{\"boot_id\":\"old\"}\n{\"v\":\"a\",\"id\":\"1\",\"d\":1}\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, mountLogName), []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
			m := openMounts(t, dir, "boot")
			wantCounts(t, m, map[string]int{"a": 0})
			if err := m.Mount("a", "1"); err != nil {
				t.Fatal(err)
			}
			m.Close()
			m = openMounts(t, dir, "boot")
			defer m.Close()
			wantCounts(t, m, map[string]int{"a": 1})
		})
	}
}

// textOf is the text of the mount log at path: up to the room after it.
func textOf(t *testing.T, path string) []byte {
	t.Helper()
	text, _, _ := bytes.Cut(readFile(t, path), []byte{0})
	return text
}

func TestMountsCompaction(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, mountLogName)
	m := openMounts(t, dir, "boot")
	for i := range 50 {
		if err := m.Mount(fmt.Sprintf("live%d", i), "id"); err != nil {
			t.Fatal(err)
		}
	}
	var maxSize int64
	for i := range 2 * compactSlack {
		id := fmt.Sprintf("container-%064d", i)
		if err := m.Mount("hot", id); err != nil {
			t.Fatal(err)
		}
		if ok, err := m.Unmount("hot", id); !ok || err != nil {
			t.Fatalf("Unmount = %v, %v", ok, err)
		}
		if i%1000 == 0 {
			maxSize = max(maxSize, int64(len(textOf(t, path))))
		}
	}
	// 4 * compactSlack appends of ~110 bytes would be 7 MB; compaction
	// keeps the log within compactSlack lines beyond the live ones.
	if limit := int64(2*50+compactSlack+1) * 120; maxSize > limit {
		t.Fatalf("mount log grew to %d bytes, want at most %d", maxSize, limit)
	}
	m.Close()
	m = openMounts(t, dir, "boot")
	defer m.Close()
	wantCounts(t, m, map[string]int{"hot": 0, "live0": 1, "live49": 1})
	if m.live != 50 {
		t.Fatalf("%d live mounts after reopen, want 50", m.live)
	}
	text := textOf(t, path)
	if len(text) > 8<<10 {
		t.Fatalf("log is %d bytes right after open with 50 live mounts", len(text))
	}
	// The room after the text is bounded too.
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if room := fi.Size() - int64(len(text)); room > minLogRoom {
		t.Fatalf("log has %d bytes of room after %d of text, want at most %d", room, len(text), minLogRoom)
	}
}

func TestReadBootID(t *testing.T) {
	want, err := os.ReadFile(BootIDFile)
	if err != nil {
		t.Skip("no boot id here")
	}
	if got := ReadBootID(); got == "" || got != strings.TrimSpace(string(want)) {
		t.Fatalf("ReadBootID() = %q", got)
	}
}

// TestFormat0Records: the records the first release wrote (testdata/format0,
// made by its own binary) load with the behaviour they had: every app
// volume's owner enforced, shared volumes as they were.
func TestFormat0Records(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join("testdata", "format0", recordsDir)
	if err := os.MkdirAll(filepath.Join(dir, recordsDir), 0o700); err != nil {
		t.Fatal(err)
	}
	names := files(t, src)
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		var fast Volume
		if !fastRecord(data, &fast) {
			t.Errorf("%s: the fast decoder does not take a format 0 record: %s", n, data)
		}
		if err := os.WriteFile(filepath.Join(dir, recordsDir, n), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, got := openRecords(t, dir)
	defer r.Close()
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	sameVolumes(t, got, []Volume{
		{Name: "gitea_data", Spec: spec.Spec{App: "gitea", Path: "/data", Mode: 0o755, Enforce: true, OnRemove: spec.Keep}, CreatedAt: at("2026-12-01T11:01:01Z")},
		{Name: "gitea-repos", Spec: spec.Spec{App: "gitea", Path: "/repos", UID: 1000, GID: 1000, Mode: 0o750, Enforce: true, OnRemove: spec.Keep}, CreatedAt: at("2026-12-01T11:01:01Z")},
		{Name: "jellyfin-media", Spec: spec.Spec{Kind: spec.KindShared, App: "jellyfin", Shared: "media", Mode: 0o755, OnRemove: spec.Keep}, CreatedAt: at("2026-12-01T11:01:02Z")},
		{Name: "tmp_cache", Spec: spec.Spec{App: "tmp", Path: "/cache", Mode: 0o755, Enforce: true, OnRemove: spec.Delete}, CreatedAt: at("2026-12-01T11:01:02Z")},
		{Name: "mounted_data", Spec: spec.Spec{App: "mounted", Path: "/data", UID: 472, GID: 472, Mode: 0o755, Enforce: true, OnRemove: spec.Keep}, CreatedAt: at("2026-12-01T11:01:02Z")},
	})
	for _, v := range got {
		if v.Format != 0 {
			t.Errorf("%s: format %d, want 0", v.Name, v.Format)
		}
	}
	if len(names) != 5 {
		t.Fatalf("fixture has %d records", len(names))
	}
}
