package state

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReadVolumes: a plugin's records, the checkpointed ones and those
// still in its journal, read while the plugin holds the directory, with
// nothing in the directory changed.
func TestReadVolumes(t *testing.T) {
	dir := t.TempDir()
	r, _ := openRecords(t, dir)
	for _, v := range []Volume{vol("a_data", "a", "/data"), vol("b_x", "b", "/x"), vol("gone", "c", "/y")} {
		if err := r.Put(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Delete("gone"); err != nil {
		t.Fatal(err)
	}
	// A torn temp file and a record that is not one.
	os.WriteFile(filepath.Join(dir, recordsDir, tmpPrefix+"x"), []byte("{"), 0o600)
	os.WriteFile(filepath.Join(dir, recordsDir, fileName("bad")), []byte("not json\n"), 0o600)
	listing := func() []string { return append(files(t, dir), files(t, filepath.Join(dir, recordsDir))...) }
	before := listing()

	got, err := ReadVolumes(dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b Volume) int { return strings.Compare(a.Name, b.Name) })
	sameVolumes(t, got, []Volume{vol("a_data", "a", "/data"), vol("b_x", "b", "/x")})
	if after := listing(); !slices.Equal(after, before) {
		t.Errorf("ReadVolumes changed the state directory: %v, then %v", before, after)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadVolumes(filepath.Join(dir, "missing"), quiet()); err != nil || len(got) != 0 {
		t.Errorf("a missing state directory: %v, %v; want no volumes", got, err)
	}
}
