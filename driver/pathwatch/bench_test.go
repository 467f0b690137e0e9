package pathwatch

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/driver/tree"
)

// BenchmarkWatch: what a Mount of a mounted volume pays for its path, in
// one run: the check it skips while the path is unchanged (the tree's, an
// openat2 that refuses symlinks, an fstat, a close), the Unchanged that
// replaces it, and
// a Watch whose parents an earlier Watch keeps (a Mount pays it once after
// each change).
//
//	go test -run '^$' -bench BenchmarkWatch -count 3 ./driver/pathwatch
func BenchmarkWatch(b *testing.B) {
	root := b.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "app_data/app/data"), 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(root)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w, err := Open(int(f.Fd()))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	held, err := w.Watch("app_data/app/data")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("check", func(b *testing.B) {
		t, err := tree.Open(root)
		if err != nil {
			b.Fatal(err)
		}
		defer t.Close()
		var st unix.Stat_t
		for b.Loop() {
			fd, _, err := t.MakeOpenDir("app_data/app/data", nil, &st)
			if err != nil {
				b.Fatal(err)
			}
			_ = unix.Close(fd)
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		for b.Loop() {
			if !w.Unchanged(held.Gen) {
				b.Fatal("the path changed")
			}
		}
	})
	b.Run("watch", func(b *testing.B) {
		for b.Loop() {
			s, err := w.Watch("app_data/app/data")
			if err != nil {
				b.Fatal(err)
			}
			w.Release(s)
		}
	})
	w.Release(held)
}
