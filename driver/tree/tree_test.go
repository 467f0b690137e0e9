package tree

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/portal/portal-volume/internal/testutil"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
}

func stat(t *testing.T, p string) (mode fs.FileMode, uid, gid uint32) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fi.Mode(), st.Uid, st.Gid
}

func wantDir(t *testing.T, p string, perm fs.FileMode, uid, gid uint32) {
	t.Helper()
	mode, u, g := stat(t, p)
	want := fs.ModeDir | perm
	if mode != want || u != uid || g != gid {
		t.Fatalf("%s: %v %d:%d, want %v %d:%d", p, mode, u, g, want, uid, gid)
	}
}

func open(t *testing.T) (*Tree, string) {
	t.Helper()
	root := t.TempDir()
	tr, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, root
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	testutil.Mkdir(t, filepath.Dir(p))
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func TestOpen(t *testing.T) {
	tr, root := open(t)
	if tr.Root() != root {
		t.Fatalf("Root() = %q, want %q", tr.Root(), root)
	}
	if got := tr.Path("app_data/a/b"); got != root+"/app_data/a/b" {
		t.Fatalf("Path = %q", got)
	}
	if _, err := Open(filepath.Join(root, "missing")); err == nil {
		t.Fatal("Open of a missing root succeeded")
	}
	testutil.Write(t, filepath.Join(root, "file"), "x")
	if _, err := Open(filepath.Join(root, "file")); err == nil {
		t.Fatal("Open of a file succeeded")
	}
	// The root itself may be reached through a symlink.
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "root")
	symlink(t, real, link)
	tr2, err := Open(link)
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close()
	if _, err := tr2.MakeDir("a/b", nil); err != nil {
		t.Fatal(err)
	}
	wantDir(t, filepath.Join(real, "a/b"), 0o755, 0, 0)
}

func TestMakeDirParents(t *testing.T) {
	requireRoot(t)
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	tr, root := open(t)
	// A set-gid parent with another group must not decide what is made.
	testutil.Mkdir(t, filepath.Join(root, "app_data"))
	if err := os.Chown(filepath.Join(root, "app_data"), 0, 4321); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "app_data"), 0o2775|fs.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	made, err := tr.MakeDir("app_data/paperless/usr/src/data", &Perm{Owner: Owner{UID: 1000, GID: 1001}, Mode: 0o750})
	if err != nil {
		t.Fatal(err)
	}
	if made != "app_data/paperless" {
		t.Fatalf("made = %q, want app_data/paperless (the topmost made)", made)
	}
	for _, p := range []string{"app_data/paperless", "app_data/paperless/usr", "app_data/paperless/usr/src"} {
		wantDir(t, filepath.Join(root, p), 0o755, 0, 0)
	}
	wantDir(t, filepath.Join(root, "app_data/paperless/usr/src/data"), 0o750, 1000, 1001)
	// The existing parent is left as it was.
	wantDir(t, filepath.Join(root, "app_data"), 0o775|fs.ModeSetgid, 0, 4321)

	// Parents that all exist are opened in one call; only the last is made.
	made, err = tr.MakeDir("app_data/paperless/usr/src/media", &Perm{Owner: Owner{UID: 1000, GID: 1001}, Mode: 0o700})
	if err != nil || made != "app_data/paperless/usr/src/media" {
		t.Fatalf("made %q, %v; want app_data/paperless/usr/src/media", made, err)
	}
	wantDir(t, filepath.Join(root, "app_data/paperless/usr/src/media"), 0o700, 1000, 1001)
	wantDir(t, filepath.Join(root, "app_data/paperless/usr/src"), 0o755, 0, 0)
	// A missing parent below existing ones: the topmost missing is made.
	made, err = tr.MakeDir("app_data/paperless/usr/lib/data", nil)
	if err != nil || made != "app_data/paperless/usr/lib" {
		t.Fatalf("made %q, %v; want app_data/paperless/usr/lib", made, err)
	}
	wantDir(t, filepath.Join(root, "app_data/paperless/usr/lib"), 0o755, 0, 0)

	// Without an owner a new last component is root-owned 0755 too.
	made, err = tr.MakeDir("shared/media", nil)
	if err != nil || made != "shared" {
		t.Fatalf("made %q, %v; want shared", made, err)
	}
	wantDir(t, filepath.Join(root, "shared"), 0o755, 0, 0)
	wantDir(t, filepath.Join(root, "shared/media"), 0o755, 0, 0)
}

func TestMakeDirModes(t *testing.T) {
	requireRoot(t)
	tr, root := open(t)
	tests := []struct {
		mode uint32
		want fs.FileMode
	}{
		{0o750, 0o750},
		{0o700, 0o700},
		{0o000, 0},
		{0o777, 0o777},
		{0o1777, 0o777 | fs.ModeSticky},
		{0o2750, 0o750 | fs.ModeSetgid},
		{0o6750, 0o750 | fs.ModeSetgid | fs.ModeSetuid},
		{0o7777, 0o777 | fs.ModeSetgid | fs.ModeSetuid | fs.ModeSticky},
	}
	for i, tc := range tests {
		rel := fmt.Sprintf("app_data/a/d%d", i)
		made, err := tr.MakeDir(rel, &Perm{Owner: Owner{UID: 33, GID: 44}, Mode: tc.mode})
		if err != nil {
			t.Fatal(err)
		}
		wantMade := rel // only the last component was missing
		if i == 0 {
			wantMade = "app_data"
		}
		if made != wantMade {
			t.Fatalf("made %q, want %q", made, wantMade)
		}
		wantDir(t, filepath.Join(root, rel), tc.want, 33, 44)
		// Applied again to an existing directory, with another owner.
		if made, err := tr.MakeDir(rel, &Perm{Owner: Owner{UID: 0, GID: 0}, Mode: tc.mode}); err != nil || made != "" {
			t.Fatalf("made %q, %v", made, err)
		}
		wantDir(t, filepath.Join(root, rel), tc.want, 0, 0)
	}
}

func TestMakeDirAdopt(t *testing.T) {
	requireRoot(t)
	tr, root := open(t)
	dir := filepath.Join(root, "app_data/gitea/data")
	testutil.Write(t, filepath.Join(dir, "repo/config"), "[core]\n")
	testutil.Write(t, filepath.Join(dir, "db.sqlite"), "data")
	testutil.Mkdir(t, filepath.Join(dir, "empty"))
	symlink(t, "/etc/passwd", filepath.Join(dir, "link"))
	if err := os.Chown(filepath.Join(dir, "db.sqlite"), 5, 6); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	before := testutil.Snapshot(t, dir)
	parents := testutil.Snapshot(t, filepath.Join(root, "app_data"))
	delete(parents, "gitea/data")

	made, err := tr.MakeDir("app_data/gitea/data", &Perm{Owner: Owner{UID: 1000, GID: 1000}, Mode: 0o750})
	if err != nil {
		t.Fatal(err)
	}
	if made != "" {
		t.Fatalf("made = %q for an existing directory", made)
	}
	wantDir(t, dir, 0o750, 1000, 1000)
	after := testutil.Snapshot(t, dir)
	delete(before, ".")
	delete(after, ".")
	testutil.Same(t, "content", before, after)
	afterParents := testutil.Snapshot(t, filepath.Join(root, "app_data"))
	for k := range afterParents {
		if !strings.HasPrefix(k, "gitea/data") && afterParents[k] != parents[k] {
			t.Fatalf("parent %s changed: %q -> %q", k, parents[k], afterParents[k])
		}
	}

	// With no owner an existing directory is left as it is.
	if err := os.Chown(dir, 7, 8); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	made, err = tr.MakeDir("app_data/gitea/data", nil)
	if err != nil || made != "" {
		t.Fatalf("made %q, %v", made, err)
	}
	wantDir(t, dir, 0o711, 7, 8)
}

// symlinkCase plants a symlink somewhere on the way to rel.
type symlinkCase struct {
	name   string
	plant  func(t *testing.T, root, outside string)
	rel    string
	link   string // the symlink the error must name, below root
	linkIn bool   // the link points inside the root
}

func symlinkCases() []symlinkCase {
	return []symlinkCase{
		{
			name: "last component to outside",
			plant: func(t *testing.T, root, outside string) {
				symlink(t, outside, filepath.Join(root, "app_data/a/data"))
			},
			rel: "app_data/a/data", link: "app_data/a/data",
		},
		{
			name: "last component to inside",
			plant: func(t *testing.T, root, outside string) {
				testutil.Mkdir(t, filepath.Join(root, "app_data/b/other"))
				symlink(t, "../b/other", filepath.Join(root, "app_data/a/data"))
			},
			rel: "app_data/a/data", link: "app_data/a/data", linkIn: true,
		},
		{
			name: "last component dangling",
			plant: func(t *testing.T, root, outside string) {
				symlink(t, filepath.Join(outside, "missing"), filepath.Join(root, "app_data/a/data"))
			},
			rel: "app_data/a/data", link: "app_data/a/data",
		},
		{
			name: "intermediate to outside, missing below",
			plant: func(t *testing.T, root, outside string) {
				symlink(t, outside, filepath.Join(root, "app_data/a"))
			},
			rel: "app_data/a/usr/src/data", link: "app_data/a",
		},
		{
			name: "intermediate to outside, existing below",
			plant: func(t *testing.T, root, outside string) {
				testutil.Mkdir(t, filepath.Join(outside, "usr/src/data"))
				symlink(t, outside, filepath.Join(root, "app_data/a"))
			},
			rel: "app_data/a/usr/src/data", link: "app_data/a",
		},
		{
			name: "intermediate to inside",
			plant: func(t *testing.T, root, outside string) {
				testutil.Mkdir(t, filepath.Join(root, "app_data/b/files"))
				symlink(t, "../b/files", filepath.Join(root, "app_data/a/files"))
			},
			rel: "app_data/a/files/images", link: "app_data/a/files", linkIn: true,
		},
		{
			name: "top component",
			plant: func(t *testing.T, root, outside string) {
				symlink(t, outside, filepath.Join(root, "app_data"))
			},
			rel: "app_data/a/data", link: "app_data",
		},
		{
			name: "deep intermediate",
			plant: func(t *testing.T, root, outside string) {
				testutil.Mkdir(t, filepath.Join(root, "app_data/a/x/y"))
				symlink(t, outside, filepath.Join(root, "app_data/a/x/y/z"))
			},
			rel: "app_data/a/x/y/z/w/v", link: "app_data/a/x/y/z",
		},
	}
}

// plantOutside makes a directory outside the root with content an attack
// would like to change.
func plantOutside(t *testing.T) string {
	t.Helper()
	outside := t.TempDir()
	testutil.Write(t, filepath.Join(outside, "secret"), "secret")
	testutil.Mkdir(t, filepath.Join(outside, "sub"))
	testutil.Write(t, filepath.Join(outside, "sub/file"), "file")
	if err := os.Chmod(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	return outside
}

func wantSymlinkError(t *testing.T, err error, path string) {
	t.Helper()
	if err == nil {
		t.Fatal("symlink followed: no error")
	}
	if !errors.Is(err, ErrSymlink) {
		t.Fatalf("error %v does not wrap ErrSymlink", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name %s", err, path)
	}
}

func TestMakeDirRefusesSymlinks(t *testing.T) {
	requireRoot(t)
	for _, tc := range symlinkCases() {
		for _, owner := range []*Perm{{Owner: Owner{UID: 1000, GID: 1000}, Mode: 0o777}, nil} {
			t.Run(fmt.Sprintf("%s owner=%v", tc.name, owner != nil), func(t *testing.T) {
				tr, root := open(t)
				outside := plantOutside(t)
				tc.plant(t, root, outside)
				beforeRoot, beforeOut := testutil.Snapshot(t, root), testutil.Snapshot(t, outside)

				_, err := tr.MakeDir(tc.rel, owner)
				wantSymlinkError(t, err, filepath.Join(root, tc.link))

				testutil.Same(t, "root", beforeRoot, testutil.Snapshot(t, root))
				testutil.Same(t, "outside", beforeOut, testutil.Snapshot(t, outside))
			})
		}
	}
}

func TestMakeDirRefusesNonDirectory(t *testing.T) {
	requireRoot(t)
	for _, rel := range []string{"app_data/a/file", "app_data/a/file/data", "app_data/a/file/x/y"} {
		t.Run(rel, func(t *testing.T) {
			tr, root := open(t)
			testutil.Write(t, filepath.Join(root, "app_data/a/file"), "x")
			before := testutil.Snapshot(t, root)
			_, err := tr.MakeDir(rel, &Perm{Owner: Owner{UID: 1, GID: 1}, Mode: 0o700})
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, ErrSymlink) || !strings.Contains(err.Error(), filepath.Join(root, "app_data/a/file")) ||
				!strings.Contains(err.Error(), "not a directory") {
				t.Fatalf("error %q", err)
			}
			testutil.Same(t, "root", before, testutil.Snapshot(t, root))
		})
	}
}

func TestRemoveDir(t *testing.T) {
	requireRoot(t)
	tr, root := open(t)
	outside := plantOutside(t)
	vol := filepath.Join(root, "app_data/a/files/images")
	// A deep tree with files, unreadable directories, and symlinks to
	// outside files and directories and to the volume's own parents.
	for i := range 300 {
		testutil.Write(t, filepath.Join(vol, fmt.Sprintf("d%d/e/f/file%d", i%7, i)), "data")
	}
	testutil.Mkdir(t, filepath.Join(vol, "locked/inner"))
	testutil.Write(t, filepath.Join(vol, "locked/inner/f"), "x")
	if err := os.Chmod(filepath.Join(vol, "locked"), 0); err != nil {
		t.Fatal(err)
	}
	symlink(t, outside, filepath.Join(vol, "to-outside-dir"))
	symlink(t, filepath.Join(outside, "secret"), filepath.Join(vol, "d1/to-outside-file"))
	symlink(t, "../../..", filepath.Join(vol, "d2/to-parent"))
	symlink(t, filepath.Join(root, "app_data"), filepath.Join(vol, "d3/e/to-root"))
	// Siblings and parents that must stay.
	testutil.Write(t, filepath.Join(root, "app_data/a/files/imports/keep"), "keep")
	testutil.Write(t, filepath.Join(root, "app_data/a/files/images-old/keep"), "keep")
	beforeOut := testutil.Snapshot(t, outside)
	beforeRoot := testutil.Snapshot(t, root)

	if err := tr.RemoveDir("app_data/a/files/images"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(vol); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("volume directory still there: %v", err)
	}
	testutil.Same(t, "outside", beforeOut, testutil.Snapshot(t, outside))
	afterRoot := testutil.Snapshot(t, root)
	for k, v := range beforeRoot {
		if k == "app_data/a/files/images" || strings.HasPrefix(k, "app_data/a/files/images/") {
			if _, ok := afterRoot[k]; ok {
				t.Fatalf("%s not deleted", k)
			}
			continue
		}
		if k == "app_data/a/files" || k == "." {
			continue // its mtime changes
		}
		if afterRoot[k] != v {
			t.Fatalf("%s changed: %q -> %q", k, v, afterRoot[k])
		}
	}
	if len(afterRoot) != len(beforeRoot)-countPrefix(beforeRoot, "app_data/a/files/images") {
		t.Fatalf("entries appeared: %v", afterRoot)
	}

	// Missing is fine, at the last component or above it.
	for _, rel := range []string{"app_data/a/files/images", "app_data/b/data", "nothing/at/all"} {
		if err := tr.RemoveDir(rel); err != nil {
			t.Fatalf("RemoveDir(%s): %v", rel, err)
		}
	}
}

func countPrefix(m map[string]string, dir string) int {
	n := 0
	for k := range m {
		if k == dir || strings.HasPrefix(k, dir+"/") {
			n++
		}
	}
	return n
}

func TestRemoveDirRefusesSymlinks(t *testing.T) {
	for _, tc := range symlinkCases() {
		t.Run(tc.name, func(t *testing.T) {
			tr, root := open(t)
			outside := plantOutside(t)
			testutil.Mkdir(t, filepath.Join(outside, "usr/src/data"))
			testutil.Write(t, filepath.Join(outside, "usr/src/data/keep"), "keep")
			testutil.Write(t, filepath.Join(outside, "data/keep"), "keep")
			tc.plant(t, root, outside)
			if tc.linkIn {
				testutil.Write(t, filepath.Join(root, "app_data/b/other/keep"), "keep")
				testutil.Write(t, filepath.Join(root, "app_data/b/files/images/keep"), "keep")
			}
			beforeRoot, beforeOut := testutil.Snapshot(t, root), testutil.Snapshot(t, outside)

			err := tr.RemoveDir(tc.rel)
			wantSymlinkError(t, err, filepath.Join(root, tc.link))

			testutil.Same(t, "root", beforeRoot, testutil.Snapshot(t, root))
			testutil.Same(t, "outside", beforeOut, testutil.Snapshot(t, outside))
		})
	}
}

func TestRemoveDirRefusesFile(t *testing.T) {
	tr, root := open(t)
	testutil.Write(t, filepath.Join(root, "app_data/a/data"), "x")
	before := testutil.Snapshot(t, root)
	if err := tr.RemoveDir("app_data/a/data"); err == nil {
		t.Fatal("a file was removed as a directory")
	}
	testutil.Same(t, "root", before, testutil.Snapshot(t, root))
}
