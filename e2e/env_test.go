package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// env is what a case gets: the plugin in one mode, and helpers that clean
// up after the case whatever its outcome.
type env struct {
	plugin
	mode string
}

// create runs docker volume create with driver options; the volume is
// removed when the test ends.
func (e *env) create(t *testing.T, name string, opts ...string) (string, error) {
	t.Helper()
	args := []string{"volume", "create", "-d", driverName}
	for _, o := range opts {
		args = append(args, "-o", o)
	}
	t.Cleanup(func() { _, _ = docker("volume", "rm", "-f", name) })
	return docker(append(args, name)...)
}

func (e *env) mustCreate(t *testing.T, name string, opts ...string) {
	t.Helper()
	if _, err := e.create(t, name, opts...); err != nil {
		t.Fatal(err)
	}
}

// run runs a container of the test image to completion and returns its
// output.
func (e *env) run(t *testing.T, args ...string) string {
	t.Helper()
	return mustDocker(t, append([]string{"run", "--rm"}, args...)...)
}

// sleeper starts a container that holds its volumes until the test ends.
func (e *env) sleeper(t *testing.T, args ...string) string {
	t.Helper()
	return runDetached(t, append(args, image, "sleep", "600")...)
}

func (e *env) host(rel string) string { return filepath.Join(e.Root(), rel) }

type inspected struct {
	Name       string
	Driver     string
	Mountpoint string
	CreatedAt  string
	Status     map[string]any
}

func (e *env) inspect(t *testing.T, name string) inspected {
	t.Helper()
	var vs []inspected
	if err := json.Unmarshal([]byte(mustDocker(t, "volume", "inspect", name)), &vs); err != nil || len(vs) != 1 {
		t.Fatalf("docker volume inspect %s: %v %v", name, vs, err)
	}
	return vs[0]
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantOwner checks a host path's owner and permission bits.
func wantOwner(t *testing.T, path string, uid, gid uint32, perm os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != uid || st.Gid != gid || fi.Mode().Perm() != perm {
		t.Errorf("%s: owner %d:%d mode %v, want %d:%d %v", path, st.Uid, st.Gid, fi.Mode().Perm(), uid, gid, perm)
	}
}

// lines reports whether the file at path has exactly n lines.
func lines(path string, n int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if got := strings.Count(string(b), "\n"); got != n {
		return fmt.Errorf("%s has %d lines, want %d", path, got, n)
	}
	return nil
}

func wantGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s still exists (err %v)", path, err)
	}
}
