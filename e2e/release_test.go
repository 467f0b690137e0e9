package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portal/portal-volume/internal/testutil"
)

// previousRelease is the last release whose managed plugin took its tree
// as the mount setting data.source, which docker plugin upgrade resets.
const previousRelease = "dfb505d"

// releaseName is what the release's plugin is installed as in this case,
// as users install it: the suite's own engine has no other of that name.
const releaseName = "portal-volume"

// TestRelease: the release as users get it, in managed mode.
func TestRelease(t *testing.T) { eachMode(t, []testCase{releaseCase}) }

// releaseCase: the release as users get it. The release command makes two
// releases of this tree with different version stamps and pushes their
// managed plugin to a registry of the suite's own; the previous release,
// pushed there too, is installed from it with volumes of every kind and
// containers writing to them, then upgraded to the first and that to the
// second while they write. Then the refusals, the Debian package, and bad
// input.
var releaseCase = testCase{"Release", func(t *testing.T, e *env) {
	if e.mode != "managed" || daemon == nil {
		t.Skip("the release's managed plugin, on the suite's own engine (PORTAL_E2E_MODES=managed, PORTAL_E2E_DOCKERD=private)")
	}
	reg := startRegistry(t)
	r := &releaseRun{e: e, reg: reg, root: t.TempDir()}

	t.Run("BadInput", r.badRelease)
	prev := buildRevision(t, previousRelease, true)
	r.push(t, prev.pluginDir, "portal-volume:0.9.0")
	first := r.release(t, "1.0.0-e2e.1")
	r.release(t, "1.0.0-e2e.2")
	t.Run("Package", func(t *testing.T) { testPackage(t, first, "1.0.0-e2e.1") })

	t.Cleanup(func() {
		_, _ = docker("plugin", "disable", "-f", releaseName)
		_, _ = docker("plugin", "rm", "-f", releaseName)
	})
	// The install, as the docs give it.
	mustDocker(t, "plugin", "install", "--grant-all-permissions", "--alias", releaseName, reg+"/portal-volume:0.9.0", "data.source="+r.root, "LOG_LEVEL=debug")
	r.start(t)
	r.checkpoint(t)

	// From the previous release: the plain commands leave the plugin
	// without its tree, which it refuses; the one extra command fixes it.
	r.upgrade(t, reg+"/portal-volume:1.0.0-e2e.1", func() {
		out, err := docker("plugin", "enable", releaseName)
		if err == nil {
			t.Fatalf("enable without DATA_SOURCE after the upgrade from %s succeeded: %s", previousRelease, out)
		}
		r.wantLog(t, "DATA_SOURCE is empty", "docker plugin set portal-volume DATA_SOURCE=")
		t.Logf("enable without DATA_SOURCE: %v", err)
		mustDocker(t, "plugin", "set", releaseName, "DATA_SOURCE="+r.root)
	})
	r.check(t, "1.0.0-e2e.1")

	// From this release on: the plain commands.
	r.upgrade(t, reg+"/portal-volume:1.0.0-e2e.2", nil)
	r.check(t, "1.0.0-e2e.2")

	t.Run("RefusesAnotherTree", r.refuseAnotherTree)
	t.Run("UpgradeToAnotherName", r.upgradeToAnotherName)
	t.Run("InstallMissingTree", r.installMissingTree)
	r.finish(t)
}}

// releaseRun is the state of one run of releaseCase.
type releaseRun struct {
	e        *env
	reg      string // host:port
	root     string // the Portal tree, a host path
	writers  map[string]string
	restarts string // the container with a restart policy
	anon     []string
	before   map[string]inspected
	ls       string
	counts   map[string]int // lines each writer had written at the last check
	logMark  int
}

// release runs the release command for version and returns its folder.
func (r *releaseRun) release(t *testing.T, version string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "dist")
	cmd := exec.Command("bash", "scripts/release.sh", "--registry", r.reg, version, out)
	cmd.Dir = repoRoot
	start := time.Now()
	text, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("release.sh %s: %v\n%s", version, err, text)
	}
	t.Logf("release.sh --registry %s %s (%s):\n%s", r.reg, version, time.Since(start).Round(time.Second), text)
	local := r.reg + "/portal-volume:" + version
	t.Cleanup(func() { _, _ = docker("plugin", "rm", "-f", local) })
	want := []string{"SHA256SUMS", "portal-volume-linux-amd64", "portal-volume-linux-arm64",
		"portal-volume_" + strings.ReplaceAll(version, "-", "~") + "_amd64.deb", "portal-volume_" + strings.ReplaceAll(version, "-", "~") + "_arm64.deb",
		"portal-volume-plugin-" + version + "-linux-amd64.tar.gz"}
	for _, f := range want {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("release %s: %v", version, err)
		}
	}
	sums := exec.Command("sha256sum", "-c", "SHA256SUMS")
	sums.Dir = out
	if text, err := sums.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, text)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		text, _ := exec.Command("file", filepath.Join(out, "portal-volume-linux-"+arch)).CombinedOutput()
		if !strings.Contains(string(text), "statically linked") {
			t.Errorf("%s binary: %s", arch, text)
		}
	}
	if got, _ := exec.Command(filepath.Join(out, "portal-volume-linux-amd64"), "--version").CombinedOutput(); !strings.HasPrefix(string(got), "portal-volume "+version+" (commit ") {
		t.Errorf("--version of release %s: %q", version, got)
	}
	return out
}

// push makes the plugin in dir and pushes it as REGISTRY/ref.
func (r *releaseRun) push(t *testing.T, dir, ref string) {
	t.Helper()
	name := r.reg + "/" + ref
	mustDocker(t, "plugin", "create", name, dir)
	defer docker("plugin", "rm", "-f", name)
	mustDocker(t, "plugin", "push", name)
}

// start makes volumes of every kind and starts containers that keep
// writing to them, and one that reads the read-only view.
func (r *releaseRun) start(t *testing.T) {
	t.Helper()
	vols := map[string][]string{
		"rel_data":  nil,
		"rel-owned": {"app=rel", "path=/owned", "uid=1000", "gid=1000"},
		"rel-media": {"shared=media"},
		"rel-tree":  {"tree=service_data"},
		"rel-ro":    {"app=relro", "path=/data", "access=ro"},
		"rel_again": nil,
	}
	for name, opts := range vols {
		args := []string{"volume", "create", "-d", releaseName}
		for _, o := range opts {
			args = append(args, "-o", o)
		}
		mustDocker(t, append(args, name)...)
		t.Cleanup(func() { _, _ = docker("volume", "rm", "-f", name) })
	}
	// Each writer appends 1, 2, 3, … to its file; a failed write says so
	// in the container's output.
	write := func(file string) string {
		return fmt.Sprintf(`i=0; while :; do i=$((i+1)); echo $i >> %s || echo "write $i failed"; usleep 50000; done`, file)
	}
	r.writers = map[string]string{}
	for vol, args := range map[string][]string{
		"rel_data":  {"-v", "rel_data:/v"},
		"rel-owned": {"--user", "1000:1000", "-v", "rel-owned:/v"},
		"rel-media": {"-v", "rel-media:/v"},
		"rel-tree":  {"-v", "rel-tree:/v"},
	} {
		id := runDetached(t, append(args, image, "sh", "-c", write("/v/"+vol+".log"))...)
		r.writers["/v/"+vol+".log"] = id
	}
	// Anonymous volumes, from the image's VOLUMEs.
	id := runDetached(t, "--volume-driver", releaseName, volumesImage, "sh", "-c", write("/var/lib/db/anon.log"))
	r.writers["/var/lib/db/anon.log"] = id
	for _, m := range containerMounts(t, id) {
		r.anon = append(r.anon, m.Name)
		t.Cleanup(func() { _, _ = docker("volume", "rm", "-f", m.Name) })
	}
	// The read-only view: read, and never written.
	id = runDetached(t, "-v", "rel-ro:/v", image, "sh", "-c",
		`while :; do ls /v >/dev/null || echo "read failed"; touch /v/x 2>/dev/null && echo "wrote to ro"; usleep 50000; done`)
	r.writers[""] = id
	// Restarted by the engine as a crashing app is: it fails every 12 s,
	// long enough for the engine to restart it at once each time.
	r.restarts = runDetached(t, "--restart", "always", "-v", "rel_again:/v", image, "sh", "-c", `date +%s.%N >> /v/starts; usleep 12000000; exit 1`)
	waitFor(t, "every writer's first lines", 30*time.Second, func() error {
		for file, id := range r.writers {
			if file != "" && r.written(t, id, file) < 3 {
				return fmt.Errorf("%s: few lines", file)
			}
		}
		return nil
	})
}

// written checks the writer's file holds 1..n without a gap and returns n.
func (r *releaseRun) written(t *testing.T, id, file string) int {
	t.Helper()
	out, err := docker("exec", id, "cat", file)
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	lines := strings.Fields(out)
	for i, l := range lines {
		if l != strconv.Itoa(i+1) {
			t.Fatalf("%s: line %d is %q: a write was lost or doubled", file, i+1, l)
		}
	}
	return len(lines)
}

// checkpoint records what the volumes are, to compare after an upgrade.
func (r *releaseRun) checkpoint(t *testing.T) {
	t.Helper()
	r.before = map[string]inspected{}
	for _, n := range r.volumes() {
		r.before[n] = r.e.inspect(t, n)
	}
	r.ls = mustDocker(t, "volume", "ls", "--format", "{{.Driver}} {{.Name}}")
	r.counts = map[string]int{}
	for file, id := range r.writers {
		if file != "" {
			r.counts[file] = r.written(t, id, file)
		}
	}
	r.logMark = len(daemon.Logs())
}

func (r *releaseRun) volumes() []string {
	return append([]string{"rel_data", "rel-owned", "rel-media", "rel-tree", "rel-ro", "rel_again"}, r.anon...)
}

// upgrade runs disable -f, upgrade and enable while the containers run; an
// extra step, if any, runs between upgrade and enable.
func (r *releaseRun) upgrade(t *testing.T, ref string, extra func()) {
	t.Helper()
	start := time.Now()
	mustDocker(t, "plugin", "disable", "-f", releaseName)
	// The CLI asks whenever the reference changes, the tag included, and
	// a no leaves the plugin as it was (with exit status 0): the answer
	// is y, as a user types it.
	upgrade := exec.Command("docker", "plugin", "upgrade", "--grant-all-permissions", releaseName, ref)
	upgrade.Stdin = strings.NewReader("y\n")
	if out, err := upgrade.CombinedOutput(); err != nil {
		t.Fatalf("docker plugin upgrade: %v\n%s", err, out)
	}
	if got := mustDocker(t, "plugin", "inspect", "-f", "{{.PluginReference}}", releaseName); got != ref {
		t.Fatalf("after docker plugin upgrade to %s the plugin is %s", ref, got)
	}
	if extra != nil {
		extra()
	}
	mustDocker(t, "plugin", "enable", releaseName)
	t.Logf("upgrade to %s: the plugin was away %s (disable -f to enable's return)", ref, time.Since(start).Round(time.Millisecond))
}

// check compares the volumes with the checkpoint and takes a new one.
func (r *releaseRun) check(t *testing.T, version string) {
	t.Helper()
	r.wantLog(t, "portal-volume starting", "version="+version)
	for file, id := range r.writers {
		out, _ := docker("logs", id)
		if strings.TrimSpace(out) != "" {
			t.Errorf("%s (%s): the container saw: %s", file, id[:12], out)
		}
		if file == "" {
			continue
		}
		// Writes go on after the upgrade, none lost before.
		n := r.written(t, id, file)
		waitFor(t, file+" to grow", 10*time.Second, func() error {
			if m := r.written(t, id, file); m <= n {
				return fmt.Errorf("%d lines", m)
			}
			return nil
		})
		t.Logf("%s: %d lines at the upgrade's start, %d now, none lost", file, r.counts[file], n)
	}
	// A restart that fell into the upgrade failed (the volume's driver was
	// away), and dockerd does not retry a restart that failed to start:
	// the container stays exited until started.
	if st := mustDocker(t, "inspect", "-f", "{{.State.Status}}", r.restarts); st == "exited" {
		t.Logf("the container with a restart policy was left %s by the engine: %s; docker start brings it back",
			st, mustDocker(t, "inspect", "-f", "{{.State.Error}}", r.restarts))
		mustDocker(t, "start", r.restarts)
	}
	waitFor(t, "the container with a restart policy to run again", 60*time.Second, func() error {
		if s := mustDocker(t, "inspect", "-f", "{{.State.Status}}", r.restarts); s != "running" {
			return fmt.Errorf("%s", s)
		}
		return nil
	})
	t.Logf("restart-policy container: %s restarts so far", mustDocker(t, "inspect", "-f", "{{.RestartCount}}", r.restarts))
	if ls := mustDocker(t, "volume", "ls", "--format", "{{.Driver}} {{.Name}}"); ls != r.ls {
		t.Errorf("docker volume ls changed:\n%s\nwas:\n%s", ls, r.ls)
	}
	for n, b := range r.before {
		a := r.e.inspect(t, n)
		if a.CreatedAt != b.CreatedAt || a.Mountpoint != b.Mountpoint || a.Driver != b.Driver {
			t.Errorf("%s: %+v, was %+v", n, a, b)
		}
		for _, k := range []string{"app", "path", "uid", "gid", "mode", "shared", "tree", "access", "owner", "on_remove", "mounts"} {
			if k == "mounts" && n == "rel_again" {
				r.wantRestartsMounted(t)
				continue
			}
			if fmt.Sprint(a.Status[k]) != fmt.Sprint(b.Status[k]) {
				t.Errorf("%s: Status %s %v -> %v", n, k, b.Status[k], a.Status[k])
			}
		}
		// A new container mounts it, and sees its data.
		if out, err := docker("run", "--rm", "-v", n+":/v", image, "ls", "/v"); err != nil {
			t.Errorf("new container on %s: %v", n, err)
		} else if n == "rel_data" && !strings.Contains(out, "rel_data.log") {
			t.Errorf("new container on rel_data sees %q", out)
		}
	}
	// The engine counts the running containers' mounts: it refuses to
	// remove a volume one of them holds.
	if out, err := docker("volume", "rm", "rel-media"); err == nil || !strings.Contains(out, "in use") {
		t.Errorf("volume rm of a volume in use: %v %s", err, out)
	}
	r.checkpoint(t)
}

// wantRestartsMounted checks that the volume of the container with a
// restart policy counts its one mount. Between the container's exit and
// the engine's restart of it, the engine has unmounted the volume and the
// count is rightly 0; so a reading counts only when the container ran,
// from the same start, both before and after it.
func (r *releaseRun) wantRestartsMounted(t *testing.T) {
	t.Helper()
	state := func() string {
		return mustDocker(t, "inspect", "-f", "{{.State.Status}} {{.State.StartedAt}} {{.State.Pid}}", r.restarts)
	}
	waitFor(t, "the restart-policy container to run through one reading of its volume", 30*time.Second, func() error {
		before := state()
		mounts := fmt.Sprint(r.e.inspect(t, "rel_again").Status["mounts"])
		if after := state(); after != before || !strings.HasPrefix(after, "running ") {
			return fmt.Errorf("the container was %q, then %q", before, after)
		}
		if mounts != "1" {
			t.Errorf("rel_again: Status mounts %s while its container ran (%s)", mounts, before)
		}
		return nil
	})
}

// wantLog waits for the plugin's log since the checkpoint to have a line
// with every one of words.
func (r *releaseRun) wantLog(t *testing.T, words ...string) {
	t.Helper()
	waitFor(t, "the plugin to log "+strings.Join(words, " … "), 30*time.Second, func() error {
		log := daemon.Logs()
		for _, l := range strings.Split(log[min(r.logMark, len(log)):], "\n") {
			if !slices.ContainsFunc(words, func(w string) bool { return !strings.Contains(l, w) }) {
				return nil
			}
		}
		return fmt.Errorf("not yet")
	})
}

// refuseAnotherTree: DATA_SOURCE set to another, empty directory. The
// plugin does not serve it, says why, and changes nothing there.
func (r *releaseRun) refuseAnotherTree(t *testing.T) {
	other := t.TempDir()
	r.logMark = len(daemon.Logs())
	mustDocker(t, "plugin", "disable", "-f", releaseName)
	mustDocker(t, "plugin", "set", releaseName, "DATA_SOURCE="+other)
	out, err := docker("plugin", "enable", releaseName)
	if err == nil {
		t.Fatalf("enable on another, empty tree succeeded: %s", out)
	}
	t.Logf("docker plugin enable: %v", err)
	// The log quotes the plugin's line once more: no quotes here.
	r.wantLog(t, "not serving", other, "is not the tree this plugin served until now ("+r.root+")", "docker plugin set portal-volume DATA_SOURCE="+r.root)
	if entries, _ := os.ReadDir(other); len(entries) != 0 {
		t.Errorf("the refused tree got %v", entries)
	}
	mustDocker(t, "plugin", "set", releaseName, "DATA_SOURCE="+r.root)
	mustDocker(t, "plugin", "enable", releaseName)
	if _, err := docker("run", "--rm", "-v", "rel_data:/v", image, "test", "-s", "/v/rel_data.log"); err != nil {
		t.Errorf("after the fix: %v", err)
	}
}

// upgradeToAnotherName: the CLI asks before it upgrades to a plugin of
// another name, and without a yes changes nothing.
func (r *releaseRun) upgradeToAnotherName(t *testing.T) {
	before := mustDocker(t, "plugin", "inspect", "-f", "{{.PluginReference}} {{.Config.Description}}", releaseName)
	first := filepath.Join(t.TempDir(), "plugin")
	if err := os.MkdirAll(filepath.Join(first, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := `{"description":"another plugin","entrypoint":["/x"],"interface":{"socket":"x.sock","types":["docker.volumedriver/1.0"]},"network":{"type":"none"}}`
	if err := os.WriteFile(filepath.Join(first, "config.json"), []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	r.push(t, first, "another-plugin:1.0.0")
	mustDocker(t, "plugin", "disable", "-f", releaseName)
	cmd := exec.Command("docker", "plugin", "upgrade", "--grant-all-permissions", releaseName, r.reg+"/another-plugin:1.0.0")
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	t.Logf("docker plugin upgrade to another name, no answer: %v\n%s", err, out)
	if !strings.Contains(string(out), "Plugin images do not match, are you sure?") {
		t.Errorf("upgrade to a plugin of another name did not ask: %s", out)
	}
	// The install script checks the name itself, before anything.
	script := exec.Command("bash", "scripts/install-managed.sh", r.reg+"/another-plugin:1.0.0")
	script.Dir = repoRoot
	out, err = script.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is another plugin than portal-volume ("+r.reg+"/portal-volume:1.0.0-e2e.2)") {
		t.Errorf("install-managed.sh to another name: %v %s", err, out)
	}
	t.Logf("install-managed.sh %s/another-plugin:1.0.0: %v\n%s", r.reg, err, out)
	if after := mustDocker(t, "plugin", "inspect", "-f", "{{.PluginReference}} {{.Config.Description}}", releaseName); after != before {
		t.Errorf("the plugin changed: %s, was %s", after, before)
	}
	mustDocker(t, "plugin", "enable", releaseName)
}

// installMissingTree: an install whose DATA_SOURCE does not exist is not
// enabled, says why, and makes nothing there.
func (r *releaseRun) installMissingTree(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	r.logMark = len(daemon.Logs())
	name := "portal-volume-missing"
	t.Cleanup(func() { _, _ = docker("plugin", "rm", "-f", name) })
	out, err := docker("plugin", "install", "--grant-all-permissions", "--alias", name, r.reg+"/portal-volume:1.0.0-e2e.2", "DATA_SOURCE="+missing)
	if err == nil {
		t.Fatalf("install with a missing tree succeeded: %s", out)
	}
	t.Logf("docker plugin install with DATA_SOURCE=%s: %v", missing, err)
	r.wantLog(t, "not serving", missing, "want an existing directory on the host")
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("the missing tree was made: %v", err)
	}
	if enabled, _ := docker("plugin", "inspect", "-f", "{{.Enabled}}", name); strings.TrimSpace(enabled) == "true" {
		t.Error("the plugin with a missing tree is enabled")
	}
	// The engine keeps the plugin it could not enable: the fix is to
	// remove it and install again with the right tree.
	mustDocker(t, "plugin", "rm", "-f", name)
	tree := t.TempDir()
	mustDocker(t, "plugin", "install", "--grant-all-permissions", "--alias", name, r.reg+"/portal-volume:latest", "DATA_SOURCE="+tree)
	mustDocker(t, "volume", "create", "-d", name, "fresh_data")
	mustDocker(t, "volume", "rm", "fresh_data")
	if _, err := os.Stat(filepath.Join(tree, "app_data/fresh/data")); err != nil {
		t.Errorf("the fresh install's volume: %v", err)
	}
	mustDocker(t, "plugin", "disable", name)
}

// finish: once the containers are gone, the engine removes the volumes;
// their data stays where on_remove says.
func (r *releaseRun) finish(t *testing.T) {
	t.Helper()
	for _, id := range r.writers {
		mustDocker(t, "rm", "-f", id)
	}
	mustDocker(t, "rm", "-f", r.restarts)
	for _, n := range r.volumes() {
		mustDocker(t, "volume", "rm", n)
	}
	if got := readFile(t, filepath.Join(r.root, "app_data/rel/data/rel_data.log")); !strings.HasPrefix(got, "1\n2\n") {
		t.Errorf("kept data: %.20q", got)
	}
}

// startRegistry builds Distribution's registry (once per machine: the
// build takes minutes) and runs it on 127.0.0.1 until the test ends. Its
// storage is the test's.
func startRegistry(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(os.TempDir(), "portal-volume-e2e-registry-"+registryVersion(t))
	if _, err := os.Stat(bin); err != nil {
		cmd := exec.Command("bash", "scripts/registry.sh", bin)
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("registry.sh: %v\n%s", err, out)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	out := &testutil.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFor(t, "the registry on "+addr, 30*time.Second, func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("%w: %s", err, out.String())
		}
		return c.Close()
	})
	return addr
}

// registryVersion is the registry's version pinned in scripts/registry.
func registryVersion(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/distribution/distribution/v3")
	cmd.Dir = filepath.Join(repoRoot, "scripts/registry")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in scripts/registry: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// badRelease: the release command without a version, or with a bad one,
// says what it wants and makes nothing.
func (r *releaseRun) badRelease(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dist")
	for args, want := range map[string]string{
		"":                   "VERSION is missing: want MAJOR.MINOR.PATCH",
		"1.0 " + out:         `VERSION = "1.0": want MAJOR.MINOR.PATCH`,
		"v1.0.0 " + out:      `VERSION = "v1.0.0"`,
		"1.0.0+build " + out: `VERSION = "1.0.0+build"`,
	} {
		cmd := exec.Command("bash", append([]string{"scripts/release.sh"}, strings.Fields(args)...)...)
		cmd.Dir = repoRoot
		text, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(text), want) {
			t.Errorf("release.sh %s: %v %s; want %q", args, err, text, want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("release.sh %s made %s", args, out)
		}
	}
	if _, err := os.Stat(filepath.Join(repoRoot, "dist")); !os.IsNotExist(err) {
		t.Errorf("release.sh without a version made dist/")
	}
}

// testPackage installs the release's Debian package with dpkg into a
// copy-on-write view of this machine (an overlay on /, in a mount namespace
// of its own), so that the machine itself never changes: the binary
// reports the version, the units pass systemd-analyze verify, and a purge
// leaves the tree and its state as they were.
func testPackage(t *testing.T, dist, version string) {
	for _, tool := range []string{"dpkg", "systemd-analyze", "unshare", "chroot"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s: %v", tool, err)
		}
	}
	deb := filepath.Join(dist, "portal-volume_"+strings.ReplaceAll(version, "-", "~")+"_amd64.deb")
	work := t.TempDir()
	script := filepath.Join(repoRoot, "e2e/testdata/package.sh")
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "bash", script, deb, work)
	out, err := cmd.CombinedOutput()
	t.Logf("package.sh:\n%s", out)
	if err != nil {
		t.Fatalf("package.sh: %v", err)
	}
	for _, want := range []string{
		"portal-volume " + version + " (commit ",
		"verify: ok",
		"socket enabled: ok",
		"tree and state unchanged by purge: ok",
		"package files gone: ok",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("package.sh did not say %q", want)
		}
	}
}
