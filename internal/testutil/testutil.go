// Package testutil holds what the tests of several packages share: a
// description of a directory tree, to prove that a refused call changed
// nothing, and a buffer that a process and a test may share.
package testutil

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Snapshot describes everything below dir, without following symlinks:
// for each path its mode, owner, mtime and size, a symlink's target and a
// file's content hash.
func Snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d mtime=%d size=%d", fi.Mode(), st.Uid, st.Gid, fi.ModTime().UnixNano(), fi.Size())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" sha=%x", sha256.Sum256(data))
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Same stops the test when two snapshots differ, naming every difference.
func Same(t testing.TB, what string, before, after map[string]string) {
	t.Helper()
	if maps.Equal(before, after) {
		return
	}
	keys := slices.Sorted(maps.Keys(before))
	for k := range after {
		if _, ok := before[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if before[k] != after[k] {
			t.Errorf("%s: %s changed: %q -> %q", what, k, before[k], after[k])
		}
	}
	t.FailNow()
}

// WithoutDirMtimes drops directories' mtimes from a snapshot, and those of
// the files named: they change when a failed call undoes what it made.
func WithoutDirMtimes(m map[string]string, files ...string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if strings.HasPrefix(v, "d") || slices.Contains(files, k) {
			v = mtimeRE.ReplaceAllString(v, "")
		}
		out[k] = v
	}
	return out
}

var mtimeRE = regexp.MustCompile(`mtime=\d+ `)

// Buffer is a strings.Builder safe for a process's output and a reader.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *Buffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *Buffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Mkdir makes p and its parents, 0755.
func Mkdir(t testing.TB, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

// Write writes data to p, 0640, making its parents.
func Write(t testing.TB, p, data string) {
	t.Helper()
	Mkdir(t, filepath.Dir(p))
	if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
		t.Fatal(err)
	}
}

// HoldBindMount bind-mounts src on target in a child of a mount namespace
// of its own, as Docker does for a container, and holds it until release
// is called or the test ends. It skips the test without unshare
// (util-linux).
func HoldBindMount(t testing.TB, src, target string) (release func()) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	child := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" "$2" && echo ready && read _`, "sh", src, target)
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { stdin.Close(); _ = child.Wait() }) }
	t.Cleanup(release)
	buf := make([]byte, 6)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "ready\n" {
		release()
		t.Fatalf("the child did not bind-mount %s: %q %v", src, buf, err)
	}
	return release
}
