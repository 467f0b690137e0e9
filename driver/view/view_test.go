package view

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/driver/tree"
	"github.com/portal/portal-volume/internal/testutil"
)

func testLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(&testutil.Buffer{})
	return l
}

// needRoot skips where views cannot be made at all: they need
// CAP_SYS_ADMIN.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("views need root")
	}
}

// world makes dir and every parent up to the temp dir traversable by any
// uid, as a Portal tree is.
func world(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// fixture is a directory owned on disk by 2000:2000 and a manager.
func fixture(t *testing.T) (m *Manager, dir string, fd int) {
	t.Helper()
	needRoot(t)
	dir = filepath.Join(t.TempDir(), "shared")
	testutil.Mkdir(t, dir)
	world(t, dir)
	if err := os.Chown(dir, 2000, 2000); err != nil {
		t.Fatal(err)
	}
	views := filepath.Join(t.TempDir(), "views")
	m, err := Open(views, dir, testLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Available(); err != nil {
		t.Skipf("this kernel cannot make views here: %v", err)
	}
	world(t, m.Dir())
	fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Close(fd)
		_ = m.DropAll()
		m.Close()
		if left := mountsBelow(t, views); len(left) > 0 {
			t.Errorf("mounts left below the views directory: %v", left)
		}
	})
	return m, dir, fd
}

// dirOf is the directory open at fd, as Mount takes it.
func dirOf(t testing.TB, fd int) Dir {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return Dir{FD: fd, Dev: st.Dev, Ino: st.Ino}
}

// as runs a shell command as uid:gid and returns its output.
func as(t *testing.T, uid, gid uint32, script string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mountsBelow(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			out = append(out, sc.Text())
		}
	}
	return out
}

func owner(t *testing.T, path string) (uid, gid uint32, mode os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid, fi.Mode()
}

// TestIDMaps: the disk id is the namespace's inside id, the app's id its
// outside one, one id each and nothing else.
func TestIDMaps(t *testing.T) {
	uids, gids := Map{Disk: tree.Owner{UID: 2000, GID: 2001}, App: tree.Owner{UID: 1000, GID: 1001}}.idMaps()
	if len(uids) != 1 || uids[0] != (syscall.SysProcIDMap{ContainerID: 2000, HostID: 1000, Size: 1}) {
		t.Errorf("uid map %+v, want [2000 1000 1]", uids)
	}
	if len(gids) != 1 || gids[0] != (syscall.SysProcIDMap{ContainerID: 2001, HostID: 1001, Size: 1}) {
		t.Errorf("gid map %+v, want [2001 1001 1]", gids)
	}
}

// TestIDMappedView: through the view the app's uid sees the directory as
// its own and writes files that belong on disk to the directory's owner;
// another uid is not mapped and cannot write.
func TestIDMappedView(t *testing.T) {
	m, dir, fd := fixture(t)
	path, _, err := m.Mount("vol", "id1", dirOf(t, fd), Attrs{IDMap: true, UID: 1000, GID: 1000, NoSuid: true})
	if err != nil {
		t.Fatal(err)
	}
	if uid, gid, _ := owner(t, path); uid != 1000 || gid != 1000 {
		t.Errorf("view shows the directory as %d:%d, want 1000:1000", uid, gid)
	}
	if out, err := as(t, 1000, 1000, "echo a > "+path+"/f && echo b >> "+path+"/f && mkdir "+path+"/d"); err != nil {
		t.Fatalf("uid 1000 cannot write through its view: %v %s", err, out)
	}
	for _, p := range []string{"f", "d"} {
		if uid, gid, _ := owner(t, filepath.Join(dir, p)); uid != 2000 || gid != 2000 {
			t.Errorf("%s is %d:%d on disk, want 2000:2000", p, uid, gid)
		}
		if uid, gid, _ := owner(t, filepath.Join(path, p)); uid != 1000 || gid != 1000 {
			t.Errorf("%s is %d:%d in the view, want 1000:1000", p, uid, gid)
		}
	}
	if out, err := as(t, 1001, 1001, "echo c > "+path+"/g"); err == nil {
		t.Errorf("uid 1001 wrote through a view for 1000: %s", out)
	}
	if st := mountsBelow(t, m.Dir()); len(st) != 1 || !strings.Contains(st[0], "idmapped") || !strings.Contains(st[0], "nosuid") || !strings.Contains(st[0], "nodev") {
		t.Errorf("mountinfo of the view: %q, want one idmapped, nosuid, nodev mount", st)
	}
}

// TestReadOnlyView: nothing is written through it; reading works.
func TestReadOnlyView(t *testing.T) {
	m, dir, fd := fixture(t)
	testutil.Write(t, filepath.Join(dir, "f"), "data\n")
	path, _, err := m.Mount("vol", "id1", dirOf(t, fd), Attrs{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(path, "f")); err != nil || string(b) != "data\n" {
		t.Errorf("read through the view: %q, %v", b, err)
	}
	err = os.WriteFile(filepath.Join(path, "g"), nil, 0o644)
	if !errors.Is(err, unix.EROFS) {
		t.Errorf("write through a read-only view: %v, want EROFS", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "g")); !os.IsNotExist(err) {
		t.Errorf("the write reached the disk: %v", err)
	}
}

// TestSetuidThroughView: what a chmod u+s / g+s through an id-mapped view
// leaves on disk, and that nothing runs set-uid through the view.
func TestSetuidThroughView(t *testing.T) {
	m, dir, fd := fixture(t)
	path, _, err := m.Mount("vol", "id1", dirOf(t, fd), Attrs{IDMap: true, UID: 1000, GID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out, err := as(t, 1000, 1000, "cp /bin/true "+path+"/s && chmod 6755 "+path+"/s; stat -c %a "+path+"/s")
	t.Logf("chmod 6755 through the view: %v %s", err, out)
	_, _, mode := owner(t, filepath.Join(dir, "s"))
	t.Logf("on disk: %v", mode)
}

// TestReplacedDirectory: once the directory a mounted view shows is
// replaced by another at its path, the next Mount shows the new one at the
// same path (stacked over the old, whose id map stays held), later ones
// share it, and the last Unmount detaches both and releases both maps.
func TestReplacedDirectory(t *testing.T) {
	m, dir, fd := fixture(t)
	a := Attrs{IDMap: true, UID: 1000, GID: 1000}
	first, replaced, err := m.Mount("vol", "a", dirOf(t, fd), a)
	if err != nil || replaced {
		t.Fatalf("first Mount: replaced %v, %v", replaced, err)
	}
	testutil.Write(t, filepath.Join(dir, "old"), "old")
	if err := os.Rename(dir, dir+".moved"); err != nil {
		t.Fatal(err)
	}
	testutil.Mkdir(t, dir)
	if err := os.Chown(dir, 2000, 2000); err != nil {
		t.Fatal(err)
	}
	testutil.Write(t, filepath.Join(dir, "new"), "new")
	fd2, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd2)
	second, replaced, err := m.Mount("vol", "b", dirOf(t, fd2), a)
	if err != nil || !replaced || second != first {
		t.Fatalf("Mount after the directory was replaced: %s, replaced %v, %v; want %s, replaced", second, replaced, err, first)
	}
	if _, err := os.Stat(filepath.Join(second, "new")); err != nil {
		t.Errorf("the view does not show the directory now at the path: %v", err)
	}
	if _, err := os.Stat(filepath.Join(second, "old")); err == nil {
		t.Errorf("the view still shows the replaced directory")
	}
	if _, replaced, err := m.Mount("vol", "c", dirOf(t, fd2), a); err != nil || replaced {
		t.Fatalf("a later Mount: replaced %v, %v; want the view shared", replaced, err)
	}
	if n := len(mountsBelow(t, m.Dir())); n != 2 {
		t.Errorf("%d mounts at the view's path, want 2 (the new view over the old)", n)
	}
	for _, id := range []string{"a", "b", "c"} {
		if known, err := m.Unmount("vol", id); !known || err != nil {
			t.Fatalf("Unmount(%s): known %v, %v", id, known, err)
		}
	}
	if left := mountsBelow(t, m.Dir()); len(left) != 0 {
		t.Errorf("mounts left after the last Unmount: %v", left)
	}
	m.nsMu.Lock()
	maps := len(m.userns)
	m.nsMu.Unlock()
	if maps != 0 {
		t.Errorf("%d id maps held after the last Unmount, want 0", maps)
	}
}

// TestMultiplicity: one view per volume, shared by its mount IDs and
// counted with multiplicity; the last Unmount removes it, and a view of
// another volume is another.
func TestMultiplicity(t *testing.T) {
	m, _, fd := fixture(t)
	a := Attrs{ReadOnly: true}
	p1, _, err := m.Mount("vol", "a", dirOf(t, fd), a)
	if err != nil {
		t.Fatal(err)
	}
	p2, _, _ := m.Mount("vol", "a", dirOf(t, fd), a)
	p3, _, _ := m.Mount("vol", "b", dirOf(t, fd), a)
	other, _, _ := m.Mount("other", "a", dirOf(t, fd), a)
	if p1 != p2 || p1 != p3 || p1 == other {
		t.Fatalf("paths %s %s %s %s: want one per volume", p1, p2, p3, other)
	}
	if n := len(mountsBelow(t, m.Dir())); n != 2 {
		t.Errorf("%d mounts for two volumes' views, want 2", n)
	}
	if n := m.Live("vol"); n != 3 {
		t.Errorf("Live = %d, want 3", n)
	}
	if known, _ := m.Unmount("vol", "c"); known {
		t.Error("Unmount of an ID never mounted reports it known")
	}
	for i, want := range []int{2, 1, 0} {
		id := []string{"a", "b", "a"}[i]
		if known, err := m.Unmount("vol", id); !known || err != nil {
			t.Fatalf("Unmount %s: %v %v", id, known, err)
		}
		if n := m.Live("vol"); n != want {
			t.Errorf("after unmount %d: Live = %d, want %d", i, n, want)
		}
		if got := len(mountsBelow(t, m.Dir())); got != 1+min(want, 1) {
			t.Errorf("after unmount %d: %d views mounted, want %d", i, got, 1+min(want, 1))
		}
	}
	if known, _ := m.Unmount("vol", "a"); known {
		t.Error("Unmount of a gone view reports it known")
	}
	if _, err := m.Unmount("other", "a"); err != nil {
		t.Fatal(err)
	}
	// The directories stay for the next views, until the volumes go.
	for _, v := range []string{"vol", "other"} {
		if err := m.Forget(v); err != nil {
			t.Fatal(err)
		}
	}
	if left := mountsBelow(t, m.Dir()); len(left) > 0 {
		t.Errorf("left: %v", left)
	}
	if ents, _ := os.ReadDir(m.Dir()); len(ents) > 0 {
		t.Errorf("left in the views directory: %v", ents)
	}
}

// TestReconcile: what a killed plugin left (its tmpfs, with views, a view
// stacked twice and an empty directory in it; an earlier release's view
// and empty directory, directly in the views directory) is detached and
// removed at the next Open; a stray file is reported and kept.
func TestReconcile(t *testing.T) {
	needRoot(t)
	src := t.TempDir()
	views := filepath.Join(t.TempDir(), "views")
	m, err := Open(views, src, testLog())
	if err != nil {
		t.Fatal(err)
	}
	if m.Available() != nil {
		t.Skip(m.Available())
	}
	fd, _ := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	defer unix.Close(fd)
	if _, _, err := m.Mount("a", "1", dirOf(t, fd), Attrs{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	stacked, _, err := m.Mount("b", "1", dirOf(t, fd), Attrs{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(src, stacked, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	testutil.Mkdir(t, filepath.Join(m.Dir(), "empty"))
	old := filepath.Join(views, name("old"))
	testutil.Mkdir(t, old)
	if err := unix.Mount(src, old, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	testutil.Mkdir(t, filepath.Join(views, "empty"))
	testutil.Write(t, filepath.Join(views, "stray"), "not ours to delete")
	m.lock.Close() // as a kill -9 would: the tmpfs and the views stay

	// The tmpfs, a, b twice, and the earlier release's view.
	if n := len(mountsBelow(t, views)); n != 5 {
		t.Fatalf("%d mounts before reconcile, want 5", n)
	}
	buf := &testutil.Buffer{}
	l := logrus.New()
	l.SetOutput(buf)
	m, err = Open(views, src, l)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if left := mountsBelow(t, views); len(left) != 1 || strings.Fields(left[0])[4] != m.Dir() {
		t.Errorf("after reconcile, mounts below the views directory: %v, want only the new tmpfs", left)
	}
	if ents, _ := os.ReadDir(views); len(ents) != 2 || ents[0].Name() != liveDir || ents[1].Name() != "stray" {
		t.Errorf("left in the views directory: %v, want only the tmpfs and the stray file", ents)
	}
	if ents, _ := os.ReadDir(m.Dir()); len(ents) > 0 {
		t.Errorf("in the new tmpfs: %v", ents)
	}
	if n := strings.Count(buf.String(), "views of a previous life detached"); n != 1 {
		t.Errorf("the previous life's tmpfs logged %d times, want once:\n%s", n, buf)
	}
	// One mount in the views directory itself; the empty directory goes
	// unsaid.
	if n := strings.Count(buf.String(), "stale view removed"); n != 1 {
		t.Errorf("%d stale views logged, want 1:\n%s", n, buf)
	}
	if !strings.Contains(buf.String(), "could not remove a stale view") || !strings.Contains(buf.String(), "stray") {
		t.Errorf("the stray file is not reported:\n%s", buf)
	}
}

// TestViewPathsOnlyInTmpfs: a view's path, even one kept for the volume's
// next view, exists only in the manager's tmpfs: where that mount is
// missing (Close; an engine that lost a managed plugin's propagated
// mount), the path leads nowhere and the engine cannot bind it.
func TestViewPathsOnlyInTmpfs(t *testing.T) {
	m, _, fd := fixture(t)
	path, _, err := m.Mount("vol", "a", dirOf(t, fd), Attrs{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	kept, _, err := m.Mount("kept", "a", dirOf(t, fd), Attrs{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Unmount("kept", "a"); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, kept} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after Close, %s: %v, want it gone", p, err)
		}
	}
	if left := mountsBelow(t, filepath.Dir(m.Dir())); len(left) > 0 {
		t.Errorf("after Close, mounts below the views directory: %v", left)
	}
}

// TestDropAll: every view goes, and the counts with them.
func TestDropAll(t *testing.T) {
	m, _, fd := fixture(t)
	if _, _, err := m.Mount("vol", "a", dirOf(t, fd), Attrs{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	if err := m.DropAll(); err != nil {
		t.Fatal(err)
	}
	if n := m.Live("vol"); n != 0 {
		t.Errorf("Live = %d after DropAll", n)
	}
	if left := mountsBelow(t, m.Dir()); len(left) > 0 {
		t.Errorf("left: %v", left)
	}
	if known, err := m.Unmount("vol", "a"); known || err != nil {
		t.Errorf("Unmount after DropAll: %v %v", known, err)
	}
}

// TestRootOwnedRefused: no app id is ever mapped onto root on disk.
func TestRootOwnedRefused(t *testing.T) {
	m, dir, fd := fixture(t)
	for _, o := range []tree.Owner{{UID: 0, GID: 2000}, {UID: 2000, GID: 0}} {
		if err := os.Chown(dir, int(o.UID), int(o.GID)); err != nil {
			t.Fatal(err)
		}
		var re *RootOwnedError
		if err := m.Check(fd, Attrs{IDMap: true, UID: 1000, GID: 1000}, o); !errors.As(err, &re) {
			t.Errorf("Check of a %d:%d directory: %v, want a RootOwnedError", o.UID, o.GID, err)
		}
		if _, _, err := m.Mount("vol", "a", dirOf(t, fd), Attrs{IDMap: true, UID: 1000, GID: 1000}); !errors.As(err, &re) {
			t.Errorf("Mount of a %d:%d directory: %v, want a RootOwnedError", o.UID, o.GID, err)
		}
	}
	if err := m.Check(fd, Attrs{ReadOnly: true}, tree.Owner{}); err != nil {
		t.Errorf("a read-only view of a root-owned directory: %v", err)
	}
}

// TestNoIDMapFileSystem: ramfs has no idmapped mounts; the error says
// what the option needs.
func TestNoIDMapFileSystem(t *testing.T) {
	m, _, _ := fixture(t)
	dir := t.TempDir()
	if err := unix.Mount("ramfs", dir, "ramfs", 0, ""); err != nil {
		t.Skipf("ramfs: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	err = m.Check(fd, Attrs{IDMap: true, UID: 1000, GID: 1000}, tree.Owner{UID: 2000, GID: 2000})
	var ue *UnsupportedError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "uid/gid on a shared or tree volume needs idmapped mounts") {
		t.Errorf("Check on ramfs: %v", err)
	}
	if err := m.Check(fd, Attrs{ReadOnly: true}, tree.Owner{UID: 2000, GID: 2000}); err != nil {
		t.Errorf("a read-only view on ramfs: %v", err)
	}
}

// TestSecondManagerRefused: one plugin per views directory, since Open
// removes what is in it.
func TestSecondManagerRefused(t *testing.T) {
	m, _, _ := fixture(t)
	if _, err := Open(filepath.Dir(m.Dir()), os.TempDir(), testLog()); err == nil || !strings.Contains(err.Error(), "in use by another portal-volume") {
		t.Errorf("second Open: %v", err)
	}
}
