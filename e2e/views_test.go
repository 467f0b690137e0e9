package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestViews: access=ro and id-mapped views, and what is left of them
// after containers, plugin kills and engine restarts.
func TestViews(t *testing.T) { eachMode(t, viewCases) }

// viewMarkers are what the mount points of the plugin's views contain, in
// every namespace: the legacy plugin's views directory; the managed
// plugin's, inside it and on the host (Docker's propagated mount).
func viewMarkers(e *env) []string {
	if e.mode == "legacy" {
		return []string{e.Root() + "-views/"}
	}
	return []string{"/mnt/pv/views/", "/propagated-mount/views/"}
}

// isView tells whether the mount point mp is a view: below a views
// directory, and not the tmpfs that holds the views of a living plugin.
func isView(e *env, mp string) bool {
	for _, m := range viewMarkers(e) {
		if strings.Contains(mp, m) && !strings.HasSuffix(mp, m+"live") {
			return true
		}
	}
	return false
}

// leftViews lists the view mounts of every process's mount namespace.
func leftViews(e *env) []string {
	var left []string
	files, _ := filepath.Glob("/proc/[0-9]*/mountinfo")
	seen := map[string]bool{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue // the process is gone
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 5 {
				continue
			}
			if isView(e, fields[4]) && !seen[fields[4]] {
				seen[fields[4]] = true
				left = append(left, f+": "+fields[4])
			}
		}
		fh.Close()
	}
	return left
}

func wantNoViews(t *testing.T, e *env, when string) {
	t.Helper()
	waitFor(t, "no view left "+when, 20*time.Second, func() error {
		if left := leftViews(e); len(left) > 0 {
			return &viewsLeft{left}
		}
		return nil
	})
}

type viewsLeft struct{ left []string }

func (v *viewsLeft) Error() string { return "mounted: " + strings.Join(v.left, ", ") }

// sharedDir makes <root>/shared/<name> owned by uid:gid on the host, as an
// operator gives a shared directory an unprivileged owner, and empties it
// when the test ends.
func sharedDir(t *testing.T, e *env, name string, uid, gid int) string {
	t.Helper()
	dir := e.host("shared/" + name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ents, _ := os.ReadDir(dir)
		for _, ent := range ents {
			os.RemoveAll(filepath.Join(dir, ent.Name()))
		}
		os.Chown(dir, 0, 0)
	})
	return dir
}

var viewCases = []testCase{
	{"DirectoryDeletedWhileMounted", func(t *testing.T, e *env) {
		// An operator deletes the directory of a volume that a running
		// container uses; the next container must write into the
		// directory Mount makes again, not into the deleted one.
		e.mustCreate(t, "e2erep_data")
		t.Cleanup(func() { os.RemoveAll(e.host("app_data/e2erep")) })
		running := e.sleeper(t, "-v", "e2erep_data:/v")
		mustDocker(t, "exec", running, "sh", "-c", "echo before > /v/before")
		if err := os.RemoveAll(e.host("app_data/e2erep/data")); err != nil {
			t.Fatal(err)
		}
		e.run(t, "-v", "e2erep_data:/v", image, "sh", "-c", "echo after > /v/after")
		if got := readFile(t, e.host("app_data/e2erep/data/after")); got != "after\n" {
			t.Errorf("the next container's write, on disk: %q", got)
		}
		// The running container keeps the directory it had, deleted, as
		// with a bind mount.
		if got := mustDocker(t, "exec", running, "ls", "/v"); got != "" {
			t.Errorf("the running container sees %q in its deleted directory", got)
		}
		mustDocker(t, "rm", "-f", running)
		wantNoViews(t, e, "after both containers")
		e.wantMounts(t, "e2erep_data", 0)
	}},
	{"PathWatchedWhileMounted", func(t *testing.T, e *env) {
		// Containers that start beside a running one mount its volume
		// again: from the third Mount on, the plugin skips the check of
		// the path while nothing on it changed. A symlink an operator (or
		// a container holding the app's directory) puts on the path is
		// still refused at the next Mount.
		e.mustCreate(t, "e2ewatch_data")
		app := e.host("app_data/e2ewatch")
		t.Cleanup(func() { os.RemoveAll(app); os.RemoveAll(app + ".real") })
		running := e.sleeper(t, "-v", "e2ewatch_data:/v")
		mark := e.logMark()
		for range 2 {
			e.run(t, "-v", "e2ewatch_data:/v", image, "true")
		}
		if log := e.pluginLog()[mark:]; !strings.Contains(log, "path_checked=false") {
			e.logCalls(t, "two containers beside a running one", mark)
			t.Errorf("no Mount of the mounted volume skipped the check of its unchanged path")
		}
		if err := os.Rename(app, app+".real"); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("e2ewatch.real", app); err != nil {
			t.Fatal(err)
		}
		out, err := docker("run", "--rm", "-v", "e2ewatch_data:/v", image, "true")
		if err == nil || !strings.Contains(out, "is a symlink") {
			t.Errorf("a container started with the app's directory a symlink: %v %s", err, out)
		}
		if err := os.Remove(app); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(app+".real", app); err != nil {
			t.Fatal(err)
		}
		e.run(t, "-v", "e2ewatch_data:/v", image, "sh", "-c", "echo after > /v/after")
		if got := readFile(t, e.host("app_data/e2ewatch/data/after")); got != "after\n" {
			t.Errorf("the write after the path was put back, on disk: %q", got)
		}
		mustDocker(t, "rm", "-f", running)
		wantNoViews(t, e, "after the containers")
		e.wantMounts(t, "e2ewatch_data", 0)
	}},
	{"AccessReadOnly", func(t *testing.T, e *env) {
		e.mustCreate(t, "docs-rw", "shared=documents")
		e.mustCreate(t, "docs-ro", "shared=documents", "access=ro")
		t.Cleanup(func() { os.Remove(e.host("shared/documents/e2e-ro")) })
		e.run(t, "-v", "docs-rw:/v", image, "sh", "-c", "echo written > /v/e2e-ro")
		if got := e.run(t, "-v", "docs-ro:/v", image, "cat", "/v/e2e-ro"); got != "written" {
			t.Errorf("read through access=ro: %q", got)
		}
		// The container's own mounts say rw, twice over.
		for _, m := range [][]string{{"-v", "docs-ro:/v:rw"}, {"--mount", "type=volume,source=docs-ro,target=/v"}} {
			out, err := docker(append(append([]string{"run", "--rm"}, m...), image, "sh", "-c", "echo x >> /v/e2e-ro || exit 3; echo y > /v/new")...)
			if err == nil || !strings.Contains(out, "Read-only file system") {
				t.Errorf("write through access=ro with %v: %v %s", m, err, out)
			}
		}
		if got := readFile(t, e.host("shared/documents/e2e-ro")); got != "written\n" {
			t.Errorf("on disk: %q", got)
		}
		wantGone(t, e.host("shared/documents/new"))
		if v := e.inspect(t, "docs-ro"); v.Status["access"] != "ro" {
			t.Errorf("Status access = %v", v.Status["access"])
		}
		wantNoViews(t, e, "after docker run --rm")
	}},
	{"IDMappedSharedTwoUIDs", func(t *testing.T, e *env) {
		dir := sharedDir(t, e, "music", 2000, 2000)
		e.mustCreate(t, "music-a", "shared=music", "uid=1000", "gid=1000")
		e.mustCreate(t, "music-b", "shared=music", "uid=1001", "gid=1001", "app=bapp")
		// Both run at once, as two apps do, and write and append to one
		// file and each to a file of its own.
		a := e.sleeper(t, "--user", "1000:1000", "-v", "music-a:/v")
		b := e.sleeper(t, "--user", "1001:1001", "-v", "music-b:/v")
		mustDocker(t, "exec", a, "sh", "-c", "echo a >> /v/log && echo a > /v/a && mkdir /v/adir")
		mustDocker(t, "exec", b, "sh", "-c", "echo b >> /v/log && echo b > /v/b && echo b2 >> /v/a")
		mustDocker(t, "exec", a, "sh", "-c", "echo a2 >> /v/b")
		t.Logf("the views, as mounted in each namespace: %s", strings.Join(leftViews(e), "; "))
		for c, uid := range map[string]string{a: "1000", b: "1001"} {
			out := mustDocker(t, "exec", c, "stat", "-c", "%n %u:%g", "/v", "/v/log", "/v/a", "/v/b", "/v/adir")
			for _, l := range strings.Split(out, "\n") {
				if !strings.HasSuffix(l, " "+uid+":"+uid) {
					t.Errorf("uid %s sees %q, want its own uid and gid", uid, l)
				}
			}
		}
		if got := readFile(t, filepath.Join(dir, "log")); got != "a\nb\n" {
			t.Errorf("log = %q", got)
		}
		if got := readFile(t, filepath.Join(dir, "a")) + readFile(t, filepath.Join(dir, "b")); got != "a\nb2\nb\na2\n" {
			t.Errorf("a+b = %q", got)
		}
		for _, f := range []string{"", "log", "a", "b", "adir"} {
			var st syscall.Stat_t
			if err := syscall.Lstat(filepath.Join(dir, f), &st); err != nil || st.Uid != 2000 || st.Gid != 2000 {
				t.Errorf("%s on disk: %d:%d %v, want 2000:2000", filepath.Join(dir, f), st.Uid, st.Gid, err)
			}
		}
		// Views live outside the tree: the tree has no mount of them.
		for _, l := range leftViews(e) {
			if strings.Contains(l, e.Root()+"/") {
				t.Errorf("a view inside the tree: %s", l)
			}
		}
		if err := func() error { _, err := docker("volume", "rm", "music-a"); return err }(); err == nil {
			t.Error("volume rm of a volume with a live view succeeded")
		}
		mustDocker(t, "rm", "-f", a, b)
		wantNoViews(t, e, "after docker rm")
		mustDocker(t, "volume", "rm", "music-a", "music-b")
	}},
	{"IDMappedViewOfRootOwnedRefused", func(t *testing.T, e *env) {
		sharedDir(t, e, "music", 0, 2000)
		out, err := e.create(t, "music-root", "shared=music", "uid=1000", "gid=1000")
		if err == nil || !strings.Contains(out, "owned by 0:2000") || !strings.Contains(out, "chown 2000:2000") || !strings.Contains(out, "--shared-owner") {
			t.Errorf("id-mapped view of a root-owned directory: %v %s", err, out)
		}
		if _, err := docker("volume", "inspect", "music-root"); err == nil {
			t.Error("the refused volume exists")
		}
	}},
	{"SetuidThroughView", func(t *testing.T, e *env) {
		dir := sharedDir(t, e, "music", 2000, 2000)
		probe := filepath.Join(dir, "euid-src")
		build := exec.Command("go", "build", "-o", probe, "./e2e/testdata/euid")
		build.Dir, build.Env = repoRoot, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build the probe: %v\n%s", err, out)
		}
		e.mustCreate(t, "suid-a", "shared=music", "uid=1000", "gid=1000")
		e.mustCreate(t, "suid-b", "shared=music", "uid=1001", "gid=1001")
		e.mustCreate(t, "suid-plain", "shared=music")
		// The app makes its own copy and sets the set-uid and set-gid bits
		// through its view: the kernel lets the (mapped) owner do that.
		e.run(t, "--user", "1000:1000", "-v", "suid-a:/v", image, "sh", "-c", "cp /v/euid-src /v/euid && chmod 6755 /v/euid")
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(dir, "euid"), &st); err != nil {
			t.Fatal(err)
		}
		t.Logf("on disk after chmod 6755 through the view: %d:%d %o", st.Uid, st.Gid, st.Mode&0o7777)
		// Run from every kind of volume of the directory, as a uid that is
		// not the owner: it never runs as the directory's owner.
		for _, c := range [][]string{
			{"--user", "3000:3000", "-v", "suid-plain:/v"},
			{"--user", "1001:1001", "-v", "suid-b:/v"},
			{"--user", "1000:1000", "-v", "suid-a:/v"},
		} {
			got := e.run(t, append(c, image, "/v/euid")...)
			want := "euid=" + strings.Split(c[1], ":")[0] + " egid=" + strings.Split(c[1], ":")[1]
			if got != want {
				t.Errorf("%v: the set-uid file ran as %q, want %q", c, got, want)
			}
			mi := e.run(t, append(c, image, "grep", " /v ", "/proc/self/mountinfo")...)
			if !strings.Contains(mi, "nosuid") || !strings.Contains(mi, "nodev") {
				t.Errorf("%v: /v is mounted %q, want nosuid and nodev", c, mi)
			}
		}
		wantNoViews(t, e, "after the containers")
	}},
	{"EngineSeesViews", func(t *testing.T, e *env) {
		if e.mode != "legacy" {
			t.Skip("the managed plugin's views are seen through the engine's own propagated mount")
		}
		// The daemon checks, at the engine's first connection, that
		// dockerd sees its views directory; this engine does.
		e.mustCreate(t, "sees_data")
		mustDocker(t, "run", "--rm", "-v", "sees_data:/v", image, "true")
		seen := regexp.MustCompile(`msg="the engine sees the views directory" pid=([0-9]+) `)
		var m []string
		waitFor(t, "the line of the engine's check in the daemon's log", 10*time.Second, func() error {
			if m = seen.FindStringSubmatch(e.Logs()); m == nil {
				return errors.New("not there")
			}
			return nil
		})
		if logs := e.Logs(); strings.Contains(logs, "does not see the views directory") {
			t.Fatalf("the daemon says the engine does not see its views, and a container just used one:\n%s", logs)
		}
		if comm, err := os.ReadFile("/proc/" + m[1] + "/comm"); err != nil || strings.TrimSpace(string(comm)) != "dockerd" {
			t.Errorf("the process checked, pid %s, is %q (%v), want dockerd", m[1], comm, err)
		}

		// The same daemon in a mount namespace of its own, a slave of
		// this one, as systemd gives a service with ProtectSystem= and
		// the like: its views never reach the engine, a container that
		// uses a volume fails to start, and the daemon says why.
		p := e.plugin.(*legacyPlugin)
		p.stop()
		p.wrap = []string{"unshare", "--mount", "--propagation", "slave"}
		p.start(t)
		defer func() {
			p.stop()
			p.wrap = nil
			p.start(t)
		}()
		if runOut, err := docker("run", "--rm", "-v", "sees_data:/v", image, "true"); err == nil {
			t.Fatalf("a container started with a volume whose view the engine cannot see: %s", runOut)
		} else {
			t.Logf("as expected, the container did not start: %v: %s", err, runOut)
		}
		blind := regexp.MustCompile(`level=error msg="the engine \(dockerd\) does not see the views directory[^"]*"(.*) pid=` + m[1] + ` `)
		waitFor(t, "the daemon apart to say the engine does not see its views", 10*time.Second, func() error {
			if !blind.MatchString(e.Logs()) {
				return errors.New("not said")
			}
			return nil
		})
	}},
	{"ViewsGoneAfterPluginKillAndEngineRestart", func(t *testing.T, e *env) {
		sharedDir(t, e, "music", 2000, 2000)
		e.mustCreate(t, "gone-id", "shared=music", "uid=1000", "gid=1000")
		e.mustCreate(t, "gone-ro", "shared=documents", "access=ro")
		c := e.sleeper(t, "--user", "1000:1000", "-v", "gone-id:/v", "-v", "gone-ro:/r")
		if len(leftViews(e)) == 0 {
			t.Fatal("no view mounted while a container uses them")
		}
		e.Restart(t) // kill -9 (legacy), a forced disable (managed)
		if e.mode == "legacy" {
			// The container keeps its own mount of the view it got.
			mustDocker(t, "exec", c, "sh", "-c", "echo still >> /v/after-kill")
		}
		mustDocker(t, "rm", "-f", c)
		wantNoViews(t, e, "after a plugin kill -9, restart and docker rm")
		if strings.Contains(e.Logs(), "stale view removed") {
			t.Log("the restarted plugin removed the views its earlier life left")
		}
		if daemon == nil {
			return
		}
		c = e.sleeper(t, "--user", "1000:1000", "-v", "gone-id:/v")
		if err := daemon.restart(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the plugin after the engine restart", 60*time.Second, func() error {
			_, err := docker("volume", "inspect", "gone-id")
			return err
		})
		wantNoViews(t, e, "after an engine restart")
		mustDocker(t, "rm", "-f", c)
		mustDocker(t, "volume", "rm", "gone-id", "gone-ro")
	}},
	{"ViewsAfterManagedPluginCrash", func(t *testing.T, e *env) {
		if e.mode != "managed" {
			t.Skip("the legacy plugin's kill -9 is ViewsGoneAfterPluginKillAndEngineRestart's")
		}
		needDaemon(t)
		// The plugin's process dies (a crash, the OOM killer) and the
		// engine starts it again by itself. Its earlier life's tmpfs and
		// views are still mounted in the engine's namespace; the new life
		// detaches them and mounts its own, and every container reaches
		// the volume.
		e.mustCreate(t, "crash_data")
		c := e.sleeper(t, "-v", "crash_data:/v")
		var pid int
		waitFor(t, "the plugin's process", 10*time.Second, func() (err error) {
			pid, err = managedPluginPid(t)
			return err
		})
		if err := unix.Kill(pid, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the engine to start the plugin again", 60*time.Second, func() error {
			if p, err := managedPluginPid(t); err != nil || p == pid {
				return fmt.Errorf("the plugin's process: %d %v", p, err)
			}
			_, err := docker("volume", "inspect", "crash_data")
			return err
		})
		mustDocker(t, "run", "--rm", "-v", "crash_data:/v", image, "sh", "-c", "echo new > /v/new")
		mustDocker(t, "exec", c, "sh", "-c", "echo old > /v/old")
		for _, f := range []string{"old", "new"} {
			if got := readFile(t, e.host("app_data/crash/data/"+f)); got != f+"\n" {
				t.Errorf("after the plugin's crash, the %s container's write reads %q in the volume's directory", f, got)
			}
		}
		mustDocker(t, "rm", "-f", c)
		wantNoViews(t, e, "after the plugin's crash and docker rm")
		mustDocker(t, "volume", "rm", "crash_data")
	}},
	{"NoIDMapFileSystem", func(t *testing.T, e *env) {
		// ramfs has no idmapped mounts: a shared directory on it stands
		// for a kernel or file system without them.
		dir := e.host("shared/music")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("ramfs", dir, "ramfs", 0, "mode=0755"); err != nil {
			t.Skipf("ramfs: %v", err)
		}
		t.Cleanup(func() {
			_ = unix.Unmount(dir, unix.MNT_DETACH)
			if e.mode == "managed" {
				e.Restart(t) // its rbind of the tree still holds the ramfs
			}
		})
		if err := os.Chown(dir, 2000, 2000); err != nil {
			t.Fatal(err)
		}
		if e.mode == "managed" {
			e.Restart(t) // a new rbind of the tree, with the ramfs in it
		}
		out, err := e.create(t, "music-noidmap", "shared=music", "uid=1000", "gid=1000")
		if err == nil || !strings.Contains(out, "uid=1000 gid=1000 on a shared or tree volume") || !strings.Contains(out, "needs idmapped mounts") {
			t.Errorf("create on a file system without idmapped mounts: %v %s", err, out)
		}
		// The ramfs concerns the volumes on it only: the others keep their
		// views (access=ro needs one).
		e.mustCreate(t, "media-ro-beside", "shared=media", "access=ro")
		if out, err := docker("run", "--rm", "--network", "none", "-v", "media-ro-beside:/v", image, "true"); err != nil {
			t.Errorf("a read-only volume beside the ramfs: %v %s", err, out)
		}
	}},
	// A disk the host mounts below the tree while the plugin runs (a USB
	// disk at shared/documents) reaches new containers through the
	// plugin: the container sees the disk, not the directory under it.
	// The host's / is a shared mount on most hosts; here the directory is
	// a shared mount of its own before the plugin starts, as it is there.
	{"HostDiskMountedLater", func(t *testing.T, e *env) {
		dir := e.host("shared/documents")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "marker"), []byte("directory"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = unix.Unmount(dir, unix.MNT_DETACH)
			if e.mode == "managed" {
				e.Restart(t) // its tree still holds the mounts
			}
		})
		if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
			t.Fatal(err)
		}
		if e.mode == "managed" {
			e.Restart(t) // the plugin starts with the shared mount in its tree
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
		if err := os.WriteFile(filepath.Join(dir, "marker"), []byte("disk"), 0o644); err != nil {
			t.Fatal(err)
		}
		e.mustCreate(t, "documents-disk", "shared=documents")
		if out := strings.TrimSpace(e.run(t, "--network", "none", "-v", "documents-disk:/v", image, "cat", "/v/marker")); out != "disk" {
			t.Errorf("the container sees %q below the tree, not the disk mounted there", out)
		}
	}},
}

// managedPluginPid is the pid of the managed plugin's process: the one
// child of the containerd shim that runs the plugin's container (named by
// the plugin's ID, which no other engine has).
func managedPluginPid(t *testing.T) (int, error) {
	t.Helper()
	id := strings.TrimSpace(mustDocker(t, "plugin", "inspect", "-f", "{{.Id}}", driverName))
	procs, _ := filepath.Glob("/proc/[0-9]*")
	shims := map[string]bool{}
	for _, p := range procs {
		if cmd, err := os.ReadFile(p + "/cmdline"); err == nil && strings.Contains(string(cmd), "\x00-id\x00"+id+"\x00") {
			shims[filepath.Base(p)] = true
		}
	}
	var pids []int
	for _, p := range procs {
		stat, err := os.ReadFile(p + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and ")", the
		// last ")" ends it.
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 1 && shims[f[1]] {
			if pid, err := strconv.Atoi(filepath.Base(p)); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	if len(pids) != 1 {
		return 0, fmt.Errorf("children of the shims %v of plugin %s: %v, want one", shims, id, pids)
	}
	return pids[0], nil
}
