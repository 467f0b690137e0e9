package usage

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// du runs GNU du -s with args on dir and returns its figure.
func du(t testing.TB, dir string, args ...string) int64 {
	t.Helper()
	out, err := exec.Command("du", append(append([]string{"-s"}, args...), dir)...).Output()
	if err != nil {
		t.Fatalf("du %v %s: %v", args, dir, err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatalf("du output %q: %v", out, err)
	}
	return n
}

func walk(t testing.TB, root, dir string, o Options) Result {
	t.Helper()
	r, err := Walk(context.Background(), root, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writeFile(t testing.TB, path string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
}

// makeTree makes a tree of dirs directories and files files of random
// sizes under root, with hard links (some to files outside the tree's
// first half), symlinks, a sparse file and empty directories.
func makeTree(t testing.TB, root string, seed uint64, dirs, files int) {
	t.Helper()
	rnd := rand.New(rand.NewPCG(seed, 1))
	all := []string{root}
	for i := range dirs {
		d := filepath.Join(all[rnd.IntN(len(all))], fmt.Sprintf("d%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		all = append(all, d)
	}
	var made []string
	for i := range files {
		p := filepath.Join(all[rnd.IntN(len(all))], fmt.Sprintf("f%d", i))
		switch k := rnd.IntN(20); {
		case k == 0 && len(made) > 0:
			if err := os.Link(made[rnd.IntN(len(made))], p); err != nil {
				t.Fatal(err)
			}
		case k == 1:
			if err := os.Symlink(strings.Repeat("x", 1+rnd.IntN(200)), p); err != nil {
				t.Fatal(err)
			}
		case k == 2:
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(int64(rnd.IntN(1 << 22))); err != nil {
				t.Fatal(err)
			}
			f.Close()
		default:
			writeFile(t, p, rnd.IntN(70000))
			made = append(made, p)
		}
	}
}

func TestTotalEqualsDu(t *testing.T) {
	root := t.TempDir()
	makeTree(t, root, 1, 300, 3000)
	for _, workers := range []int{1, 3, 16} {
		r := walk(t, root, "", Options{Workers: workers})
		if want := du(t, root, "--block-size=1"); r.Total.Bytes != want {
			t.Errorf("workers %d: bytes %d, du -s --block-size=1 says %d", workers, r.Total.Bytes, want)
		}
		if want := du(t, root, "--apparent-size", "--block-size=1"); r.Total.ApparentBytes != want {
			t.Errorf("workers %d: apparent bytes %d, du --apparent-size says %d", workers, r.Total.ApparentBytes, want)
		}
		if want := du(t, root, "--inodes"); r.Total.Files+r.Total.Dirs != want {
			t.Errorf("workers %d: files %d + dirs %d, du --inodes says %d", workers, r.Total.Files, r.Total.Dirs, want)
		}
		if r.Unreadable != 0 || r.Mounts != 0 {
			t.Errorf("workers %d: unreadable %d (%s), mounts %d", workers, r.Unreadable, r.FirstUnreadable, r.Mounts)
		}
	}
}

func TestHardLinksCountedOnce(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a/big"), 1<<20)
	for _, p := range []string{"a/link", "b/link", "c/d/link"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.Link(filepath.Join(root, "a/big"), filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	r := walk(t, root, "", Options{Track: []string{"a", "b", "c"}})
	if r.Total.Files != 1 {
		t.Errorf("four links of one file: %d files, want 1", r.Total.Files)
	}
	if want := du(t, root, "--apparent-size", "--block-size=1"); r.Total.ApparentBytes != want {
		t.Errorf("apparent bytes %d, du says %d", r.Total.ApparentBytes, want)
	}
	if r.Total.Bytes < 1<<20 || r.Total.Bytes >= 2<<20 {
		t.Errorf("bytes on disk %d, want the file once", r.Total.Bytes)
	}
	if want := du(t, root, "--block-size=1"); r.Total.Bytes != want {
		t.Errorf("bytes %d, du says %d", r.Total.Bytes, want)
	}
	// The file is counted where it is met first, and once only.
	var files int64
	for _, d := range []string{"a", "b", "c"} {
		files += r.Tracked[d].Files
	}
	if files != 1 {
		t.Errorf("the tracked directories count %d files in all, want 1: %+v", files, r.Tracked)
	}
}

func TestSymlinksNotFollowed(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "big"), 8<<20)
	writeFile(t, filepath.Join(outside, "dir/big"), 8<<20)
	root := t.TempDir()
	for name, target := range map[string]string{"to-file": "big", "to-dir": "dir"} {
		if err := os.Symlink(filepath.Join(outside, target), filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	r := walk(t, root, "", Options{})
	if r.Total.Bytes >= 1<<20 || r.Total.Files != 2 || r.Total.Dirs != 1 {
		t.Errorf("two symlinks to 8 MiB outside: %+v; want the links only (2 files, 1 dir, a few KiB)", r.Total)
	}
	var top unix.Stat_t
	if err := unix.Lstat(root, &top); err != nil {
		t.Fatal(err)
	}
	if want := top.Size + int64(len(filepath.Join(outside, "big"))+len(filepath.Join(outside, "dir"))); r.Total.ApparentBytes != want {
		t.Errorf("apparent bytes %d, want the directory's and the two link targets' lengths %d", r.Total.ApparentBytes, want)
	}
	if want := du(t, root, "--block-size=1"); r.Total.Bytes != want {
		t.Errorf("bytes %d, du says %d", r.Total.Bytes, want)
	}
	// The start below the root is reached through no symlink either.
	if _, err := Walk(context.Background(), root, "to-dir", Options{}); err == nil {
		t.Error("Walk of a symlink to a directory outside: no error")
	}
}

// TestMountsNotCrossed mounts, inside the tree, a bind mount of a directory
// on the same file system (same device: only the mount id tells), a tmpfs
// (another device) and a bind mount of a file onto a file.
func TestMountsNotCrossed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "dir/big"), 8<<20)
	writeFile(t, filepath.Join(outside, "bigfile"), 8<<20)
	root := t.TempDir()
	makeTree(t, root, 2, 20, 100)
	for _, d := range []string{"bind", "tmpfs"} {
		os.Mkdir(filepath.Join(root, "d0", d), 0o755)
	}
	writeFile(t, filepath.Join(root, "d0/file"), 0)
	before := walk(t, root, "", Options{})
	// What the three mount points are without their mounts.
	var hidden Usage
	for _, p := range []string{"d0/bind", "d0/tmpfs"} {
		var st unix.Stat_t
		unix.Lstat(filepath.Join(root, p), &st)
		hidden.add(Usage{Bytes: st.Blocks * 512, ApparentBytes: st.Size, Dirs: 1})
	}
	hidden.add(Usage{Files: 1})

	mount := func(src, dst, fstype string, flags uintptr) {
		t.Helper()
		if err := unix.Mount(src, dst, fstype, flags, ""); err != nil {
			t.Fatalf("mount %s on %s: %v", src, dst, err)
		}
		t.Cleanup(func() { unix.Unmount(dst, unix.MNT_DETACH) })
	}
	mount(filepath.Join(outside, "dir"), filepath.Join(root, "d0/bind"), "", unix.MS_BIND)
	mount("tmpfs", filepath.Join(root, "d0/tmpfs"), "tmpfs", 0)
	writeFile(t, filepath.Join(root, "d0/tmpfs/big"), 8<<20)
	mount(filepath.Join(outside, "bigfile"), filepath.Join(root, "d0/file"), "", unix.MS_BIND)

	r := walk(t, root, "", Options{})
	want := before.Total
	want.Bytes -= hidden.Bytes
	want.Dirs -= hidden.Dirs
	want.ApparentBytes -= hidden.ApparentBytes
	want.Files -= hidden.Files
	if r.Total != want {
		t.Errorf("with three mounts inside: %+v, want %+v (the tree without its mount points)", r.Total, want)
	}
	if r.Mounts != 3 || r.FirstMount != filepath.Join(root, "d0/bind") {
		t.Errorf("mounts %d, first %q; want 3, %s", r.Mounts, r.FirstMount, filepath.Join(root, "d0/bind"))
	}
	// A start reached across a mount is refused.
	if _, err := Walk(context.Background(), root, "d0/bind", Options{}); err == nil {
		t.Error("Walk of a start below a mount point: no error")
	}
}

// TestUnreadable: root reads everything, so as root the walk runs in a
// child process (this test binary again) with the uid and gid of nobody,
// for whom the permissions below hold.
func TestUnreadable(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "tree")
	writeFile(t, filepath.Join(root, "ok/file"), 5000)
	writeFile(t, filepath.Join(root, "closed/inner/file"), 5000) // mode 0700: cannot be opened
	writeFile(t, filepath.Join(root, "listonly/a"), 5000)        // mode 0644: listed, entries cannot be stat'd
	writeFile(t, filepath.Join(root, "listonly/b"), 5000)
	os.Chmod(filepath.Join(root, "closed"), 0o700)
	os.Chmod(filepath.Join(root, "listonly"), 0o644)
	t.Cleanup(func() {
		os.Chmod(filepath.Join(root, "closed"), 0o755)
		os.Chmod(filepath.Join(root, "listonly"), 0o755)
	})
	var r Result
	if os.Geteuid() != 0 {
		r = walk(t, root, "", Options{})
	} else {
		r = walkAsNobody(t, base, root)
	}
	if r.Unreadable != 3 || r.FirstUnreadable != filepath.Join(root, "closed") {
		t.Errorf("unreadable %d, first %q; want 3 (closed, listonly/a, listonly/b), first %s", r.Unreadable, r.FirstUnreadable, filepath.Join(root, "closed"))
	}
	// What could be read is counted: the four directories and ok/file.
	if r.Total.Files != 1 || r.Total.Dirs != 4 {
		t.Errorf("readable part: %+v; want 1 file and 4 directories", r.Total)
	}
}

const childEnv = "USAGE_TEST_WALK_ROOT"

func walkAsNobody(t *testing.T, base, root string) Result {
	t.Helper()
	// nobody must reach the tree and run the binary.
	for d := root; d != filepath.Dir(filepath.Dir(base)); d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // the test's own directories
	}
	for d := filepath.Dir(filepath.Dir(base)); d != "/"; d = filepath.Dir(d) {
		var st unix.Stat_t
		if unix.Stat(d, &st) != nil || st.Mode&0o001 == 0 {
			t.Skipf("nobody cannot reach %s: %s is not searchable by others", root, d)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "usage.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestWalkChild$")
	cmd.Env = append(os.Environ(), childEnv+"="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("walk as nobody: %v\n%s", err, out)
	}
	line := out
	if i := strings.IndexByte(string(out), '\n'); i >= 0 {
		line = out[:i]
	}
	var r Result
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatalf("child's answer %q: %v", out, err)
	}
	return r
}

// TestWalkChild is the walk of walkAsNobody's child; it does nothing in
// an ordinary run.
func TestWalkChild(t *testing.T) {
	root := os.Getenv(childEnv)
	if root == "" {
		t.Skip("only as walkAsNobody's child")
	}
	r, err := Walk(context.Background(), root, "", Options{})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	data, _ := json.Marshal(r)
	fmt.Printf("%s\n", data)
}

func TestTracked(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "app_data/a/data/f"), 10000)
	writeFile(t, filepath.Join(root, "app_data/a/config/f"), 3000)
	writeFile(t, filepath.Join(root, "app_data/b/f"), 7000)
	writeFile(t, filepath.Join(root, "shared/media/f"), 1000)
	r := walk(t, root, "", Options{Track: []string{"app_data/a", "app_data/a/data", "app_data/b", "shared/media", "app_data/missing", "app_data"}})
	for dir, files := range map[string]int64{"app_data/a": 2, "app_data/a/data": 1, "app_data/b": 1, "shared/media": 1, "app_data": 3} {
		got, ok := r.Tracked[dir]
		if !ok || got.Files != files {
			t.Errorf("%s: %+v (found %v), want %d files", dir, got, ok, files)
		}
		if want := du(t, filepath.Join(root, dir), "--block-size=1"); got.Bytes != want {
			t.Errorf("%s: %d bytes, du says %d", dir, got.Bytes, want)
		}
		if want := du(t, filepath.Join(root, dir), "--apparent-size", "--block-size=1"); got.ApparentBytes != want {
			t.Errorf("%s: %d apparent bytes, du says %d", dir, got.ApparentBytes, want)
		}
	}
	if _, ok := r.Tracked["app_data/missing"]; ok {
		t.Error("a tracked directory that does not exist has a figure")
	}
	// A walk of a directory below the root gives its subtree's figure.
	sub := walk(t, root, "app_data/a", Options{})
	if sub.Total != r.Tracked["app_data/a"] {
		t.Errorf("walk of app_data/a: %+v; tracked in the whole walk: %+v", sub.Total, r.Tracked["app_data/a"])
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestNoDescriptorLeft(t *testing.T) {
	root := t.TempDir()
	makeTree(t, root, 3, 100, 500)
	walk(t, root, "", Options{}) // the runtime's own descriptors are made
	before := openFDs(t)
	walk(t, root, "", Options{Workers: 7})
	Walk(context.Background(), root, "no/such", Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Walk(ctx, root, "", Options{}); err == nil {
		t.Error("a cancelled walk gave no error")
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open before the walks, %d after", before, after)
	}
}

func TestProgress(t *testing.T) {
	root := t.TempDir()
	makeTree(t, root, 4, 50, 200)
	var p Progress
	r := walk(t, root, "", Options{Progress: &p})
	// The start's own blocks are in the total, not in the progress.
	if p.Files.Load() != r.Total.Files || p.Dirs.Load() != r.Total.Dirs || p.Bytes.Load() > r.Total.Bytes {
		t.Errorf("progress at the end: %d files %d dirs %d bytes; result %+v", p.Files.Load(), p.Dirs.Load(), p.Bytes.Load(), r.Total)
	}
}

func TestBackground(t *testing.T) {
	root := t.TempDir()
	makeTree(t, root, 5, 20, 100)
	if r := walk(t, root, "", Options{Background: true}); r.Total != walk(t, root, "", Options{}).Total {
		t.Error("a background walk's figures differ")
	}
	type prio struct{ io, nice int }
	done := make(chan prio)
	go func() {
		runtime.LockOSThread() // the thread ends with this goroutine
		setBackground()
		n, _ := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
		done <- prio{ioPriority(), 20 - n} // the raw getpriority is 20 - nice
	}()
	if got := <-done; got.io != ioprioClassIdle<<ioprioClassShift || got.nice != 19 {
		t.Errorf("after setBackground: I/O priority %#x, nice %d; want class idle %#x, nice 19", got.io, got.nice, ioprioClassIdle<<ioprioClassShift)
	}
	// The test's own thread is untouched.
	if n, _ := unix.Getpriority(unix.PRIO_PROCESS, 0); 20-n == 19 {
		t.Error("the process's own priority was lowered")
	}
}

// ioPriority is the calling thread's I/O priority.
func ioPriority() int {
	r, _, _ := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, 0, 0)
	return int(r)
}

// model is what a walk should find, computed the plain way: a sequential
// walk with lstat, which follows no symlink.
func model(t testing.TB, root string) Usage {
	var u Usage
	seen := map[fileKey]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if d.IsDir() {
			u.add(Usage{Bytes: st.Blocks * 512, ApparentBytes: st.Size, Dirs: 1})
			return nil
		}
		if st.Nlink > 1 {
			k := fileKey{st.Dev, st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		u.add(Usage{Bytes: st.Blocks * 512, ApparentBytes: st.Size, Files: 1})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// FuzzWalk builds a tree from the input (each byte pair: what to make, and
// where) and checks the walk against the model.
func FuzzWalk(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 2, 1, 3, 2, 4, 0, 5, 3})
	f.Add([]byte{0, 0, 0, 1, 0, 2, 4, 3, 4, 3, 4, 3, 1, 2})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 400 {
			return
		}
		root := t.TempDir()
		dirs := []string{root}
		var files []string
		for i := 0; i+1 < len(ops); i += 2 {
			at := dirs[int(ops[i+1])%len(dirs)]
			p := filepath.Join(at, fmt.Sprintf("e%d", i))
			switch ops[i] % 6 {
			case 0:
				os.Mkdir(p, 0o755)
				dirs = append(dirs, p)
			case 1:
				writeFile(t, p, int(ops[i+1])*97)
				files = append(files, p)
			case 2:
				os.Symlink(p+"/../../..", p)
			case 3, 4:
				if len(files) > 0 {
					os.Link(files[int(ops[i+1])%len(files)], p)
				}
			case 5:
				f, _ := os.Create(p)
				f.Truncate(int64(ops[i+1]) << 16)
				f.Close()
			}
		}
		r := walk(t, root, "", Options{Workers: 1 + int(len(ops)%5)})
		if want := model(t, root); r.Total != want {
			t.Errorf("walk %+v, model %+v", r.Total, want)
		}
	})
}

func FuzzParseDirent(f *testing.F) {
	f.Add([]byte{})
	f.Add(append(make([]byte, 16), 24, 0, 4, 'a', 'b', 0, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, ok := parseDirent(b)
		if !ok {
			return
		}
		if e.reclen > len(b) || len(e.name) < 2 || e.name[len(e.name)-1] != 0 || strings.IndexByte(e.String(), 0) >= 0 {
			t.Errorf("entry %+v from %v", e, b)
		}
	})
}

// TestHardLinkBelongsToFirstPath: a file with links in several tracked
// directories is counted in the one of its first path, in every run.
func TestHardLinkBelongsToFirstPath(t *testing.T) {
	root := t.TempDir()
	for i := range 50 {
		writeFile(t, filepath.Join(root, fmt.Sprintf("z/d%d/big", i)), 100<<10)
	}
	writeFile(t, filepath.Join(root, "m/only"), 1000)
	for _, d := range []string{"a/deep/er", "m"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
		for i := range 50 {
			if err := os.Link(filepath.Join(root, fmt.Sprintf("z/d%d/big", i)), filepath.Join(root, d, fmt.Sprintf("l%d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := walk(t, root, "", Options{Workers: 1, Track: []string{"a", "m", "z"}})
	if want.Tracked["a"].Files != 50 || want.Tracked["m"].Files != 1 || want.Tracked["z"].Files != 0 {
		t.Fatalf("files by directory: a %d, m %d, z %d; want 50, 1, 0", want.Tracked["a"].Files, want.Tracked["m"].Files, want.Tracked["z"].Files)
	}
	for range 20 {
		r := walk(t, root, "", Options{Workers: 8, Track: []string{"a", "m", "z"}})
		for _, d := range []string{"a", "m", "z"} {
			if r.Tracked[d] != want.Tracked[d] {
				t.Fatalf("%s: %+v in one run, %+v in another", d, r.Tracked[d], want.Tracked[d])
			}
		}
	}
}

// TestDeeperThanPathLimit: a directory whose path below the start is
// longer than the kernel resolves at once (PATH_MAX, 4096 bytes) is
// reported as unreadable, not left out silently; what lies above it is
// counted.
func TestDeeperThanPathLimit(t *testing.T) {
	root := t.TempDir()
	name := strings.Repeat("d", 250)
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	const levels = 20 // 20 * 251 bytes: past 4096 at the 17th
	for range levels {
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = next
	}
	unix.Close(fd)
	r := walk(t, root, "", Options{})
	deepest := 4096 / (len(name) + 1) // levels whose path fits
	if r.Unreadable != 1 || !strings.HasPrefix(r.FirstUnreadable, root+"/"+name) || r.Total.Dirs != int64(1+deepest+1) {
		t.Errorf("unreadable %d (first %q), dirs %d; want 1, the directory at level %d, and %d directories", r.Unreadable, r.FirstUnreadable, r.Total.Dirs, deepest+1, deepest+2)
	}
}
