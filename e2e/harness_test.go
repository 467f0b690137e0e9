package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portal/portal-volume/internal/testutil"
)

// driverName is the name the suite's plugin has in both modes: never the
// real "portal-volume", so that the suite leaves an installed one alone.
const driverName = "portal-volume-e2e"

// image is a busybox image made without a registry. It has /seed/file,
// root-owned, for the tests of Docker's copy of an image directory into an
// empty volume.
const image = "portal-volume-e2e/busybox:latest"

// Images with the habits of real ones, from the same files:
//   - volumesImage declares VOLUMEs, as postgres, mariadb or nextcloud do:
//     /var/lib/db (holding db/seed) and /var/cache/app;
//   - userImage runs as USER 472 with /var/lib/app owned by 472:472, as
//     grafana does.
const (
	volumesImage = "portal-volume-e2e/volumes:latest"
	userImage    = "portal-volume-e2e/user:latest"
)

var images = map[string][]string{
	image:        nil,
	volumesImage: {"VOLUME /var/lib/db", "VOLUME /var/cache/app"},
	userImage:    {"USER 472"},
}

var (
	repoRoot  string // the checkout
	binary    string // the built plugin
	pluginDir string // the managed plugin's config.json and rootfs
)

// plugin is the plugin under test, in one mode.
type plugin interface {
	// Root is the host directory of the Portal tree.
	Root() string
	// Restart stops the plugin abruptly (SIGKILL, or a forced disable)
	// and starts it again, returning once it answers.
	Restart(t *testing.T)
	// Logs is the plugin's output so far, for failure messages.
	Logs() string
	// Socket is where the plugin serves, seen from the host.
	Socket(t *testing.T) string
	// Configure restarts the plugin with settings (NAME=value, the
	// environment twins) on top of the ones it has.
	Configure(t *testing.T, settings ...string)
	// Run replaces the plugin with another build of it (release{} is the
	// one under test), keeping the tree and its state.
	Run(t *testing.T, r release)
	stop()
}

// legacyPlugin is the binary run as a host process, found by Docker
// through its socket in /run/docker/plugins.
type legacyPlugin struct {
	root, socket string
	release      release  // the build it runs; binary when empty
	env          []string // settings given by Configure
	wrap         []string // a command that runs it (unshare ...); none when empty
	cmd          *exec.Cmd
	out          *testutil.Buffer
}

func startLegacy(t testing.TB, root string, extraArgs ...string) *legacyPlugin {
	p := &legacyPlugin{root: root, socket: "/run/docker/plugins/" + driverName + ".sock", out: &testutil.Buffer{}}
	p.start(t, extraArgs...)
	return p
}

func (p *legacyPlugin) start(t testing.TB, extraArgs ...string) {
	t.Helper()
	args := append([]string{"--root", p.root, "--socket", p.socket, "--log-level", "debug"}, extraArgs...)
	bin := p.release.binary
	if bin == "" {
		bin = binary
	}
	line := append(append(append([]string{}, p.wrap...), bin), args...)
	p.cmd = exec.Command(line[0], line[1:]...)
	// A views directory of its own, as an environment twin, which a
	// release without views ignores.
	p.cmd.Env = append(append(os.Environ(), "VIEWS_DIR="+p.root+"-views"), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start plugin: %v", err)
	}
	waitFor(t, "the plugin to answer on "+p.socket, 20*time.Second, func() error {
		if p.cmd.ProcessState != nil {
			return fmt.Errorf("exited: %s", p.Logs())
		}
		return probe(p.socket)
	})
}

func (p *legacyPlugin) Root() string               { return p.root }
func (p *legacyPlugin) Socket(t *testing.T) string { return p.socket }
func (p *legacyPlugin) Logs() string               { return p.out.String() }

func (p *legacyPlugin) Restart(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	p.start(t)
}

func (p *legacyPlugin) Configure(t *testing.T, settings ...string) {
	t.Helper()
	p.stop()
	p.env = append(p.env, settings...)
	p.start(t)
}

// Run stops the plugin and starts build r in its place, on the same tree.
func (p *legacyPlugin) Run(t *testing.T, r release) {
	t.Helper()
	p.stop()
	p.release = r
	p.start(t)
}

func (p *legacyPlugin) stop() {
	if p.cmd == nil || p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// managedPlugin is the plugin installed with docker plugin create from the
// rootfs that scripts/plugin-rootfs.sh assembles.
type managedPlugin struct {
	root    string
	release release // the build it runs; pluginDir when empty
}

func startManaged(t *testing.T, root string) *managedPlugin {
	p := &managedPlugin{root: root}
	p.install(t)
	return p
}

func (p *managedPlugin) install(t *testing.T) {
	t.Helper()
	dir := p.release.pluginDir
	if dir == "" {
		dir = pluginDir
	}
	mustDocker(t, "plugin", "create", driverName, dir)
	// Releases before DATA_SOURCE took the tree as the mount data.source.
	tree := "DATA_SOURCE=" + p.root
	if conf, err := os.ReadFile(filepath.Join(dir, "config.json")); err == nil && !strings.Contains(string(conf), `"DATA_SOURCE"`) {
		tree = "data.source=" + p.root
	}
	mustDocker(t, "plugin", "set", driverName, tree, "LOG_LEVEL=debug")
	mustDocker(t, "plugin", "enable", driverName)
}

func (p *managedPlugin) Root() string { return p.root }

// Socket is where Docker runs every managed plugin's socket on Linux,
// whatever its exec root: a directory named by the plugin's id.
func (p *managedPlugin) Socket(t *testing.T) string {
	id := mustDocker(t, "plugin", "inspect", "-f", "{{.Id}}", driverName)
	return filepath.Join("/run/docker/plugins", id, "portal-volume.sock")
}

func (p *managedPlugin) Logs() string {
	out, _ := docker("plugin", "inspect", driverName)
	return "managed plugin logs go to dockerd's log; plugin inspect:\n" + out
}

func (p *managedPlugin) Restart(t *testing.T) {
	t.Helper()
	// -f: Docker refuses to disable a plugin that has volumes otherwise.
	mustDocker(t, "plugin", "disable", "-f", driverName)
	mustDocker(t, "plugin", "enable", driverName)
}

// Reinstall removes the plugin and installs it again from scratch.
func (p *managedPlugin) Reinstall(t *testing.T) {
	t.Helper()
	mustDocker(t, "plugin", "disable", "-f", driverName)
	mustDocker(t, "plugin", "rm", "-f", driverName)
	p.install(t)
}

func (p *managedPlugin) Configure(t *testing.T, settings ...string) {
	t.Helper()
	mustDocker(t, "plugin", "disable", "-f", driverName)
	mustDocker(t, append([]string{"plugin", "set", driverName}, settings...)...)
	mustDocker(t, "plugin", "enable", driverName)
}

// Run replaces the plugin with build r, as an upgrade does: disable,
// remove, create, enable; the tree and its state stay.
func (p *managedPlugin) Run(t *testing.T, r release) {
	t.Helper()
	p.release = r
	p.Reinstall(t)
}

func (p *managedPlugin) stop() {
	_, _ = docker("plugin", "disable", "-f", driverName)
	_, _ = docker("plugin", "rm", "-f", driverName)
}

// probe answers whether a plugin serves on socket. It asks for the
// capabilities, not Plugin.Activate: the plugin takes an activation for the
// start of a new engine.
func probe(socket string) error {
	c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	resp, err := c.Post("http://plugin/VolumeDriver.Capabilities", "application/json", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("VolumeDriver.Capabilities: %s", resp.Status)
	}
	return nil
}

// pluginCall posts body to endpoint (such as "VolumeDriver.Create") on
// socket, as dockerd does, and returns the reply's Err ("" on success).
func pluginCall(socket, endpoint, body string) (string, error) {
	c := http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	resp, err := c.Post("http://plugin/"+endpoint, "application/vnd.docker.plugins.v1.2+json", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var reply struct{ Err string }
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		return "", fmt.Errorf("%s: %s: %w", endpoint, resp.Status, err)
	}
	return reply.Err, nil
}

// docker runs the docker CLI and returns its combined output.
func docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// runDetached starts a container (docker run -d with args) and removes it,
// with its anonymous volumes, when the test ends, one that was made but
// failed to start included: a container left behind keeps its volume in
// use, and every later start of the engine waits for its plugin.
func runDetached(t *testing.T, args ...string) string {
	t.Helper()
	name := fmt.Sprintf("e2e-%d-%d", os.Getpid(), containerSeq.Add(1))
	t.Cleanup(func() { _, _ = docker("rm", "-f", "-v", name) })
	return mustDocker(t, append([]string{"run", "-d", "--name", name}, args...)...)
}

var containerSeq atomic.Int64

func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// waitFor polls cond until it returns nil or timeout passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// buildImages makes the test images from Debian's static busybox.
func buildImages() error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox (Debian's busybox-static) is needed for the test image: %w", err)
	}
	dir, err := os.MkdirTemp("", "portal-volume-e2e-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The image's / is this directory: MkdirTemp made it 0700.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	for _, d := range []string{"bin", "seed", "tmp", "var/lib/db", "var/cache/app", "var/lib/app"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), data, 0o755); err != nil {
		return err
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return err
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
				return err
			}
		}
	}
	for name, text := range map[string]string{"seed/file": "from the image\n", "var/lib/db/seed": "db seed\n", "var/lib/app/grafana.ini": "ini\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	for _, p := range []string{"var/lib/app", "var/lib/app/grafana.ini"} {
		if err := os.Chown(filepath.Join(dir, p), 472, 472); err != nil {
			return err
		}
	}
	tarball := filepath.Join(filepath.Dir(dir), filepath.Base(dir)+".tar")
	defer os.Remove(tarball)
	if out, err := exec.Command("tar", "-C", dir, "-cf", tarball, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("tar: %w: %s", err, out)
	}
	for name, changes := range images {
		args := []string{"import", "--change", "ENV PATH=/bin"}
		for _, c := range changes {
			args = append(args, "--change", c)
		}
		if out, err := exec.Command("docker", append(args, tarball, name)...).CombinedOutput(); err != nil {
			return fmt.Errorf("docker import %s: %w: %s", name, err, out)
		}
	}
	return nil
}

// release is one build of the plugin: its binary and, for managed mode,
// its plugin directory.
type release struct {
	binary, pluginDir string
}

// buildPlugin builds the plugin under test into work.
func buildPlugin(work string, managed bool) error {
	r, err := buildRelease(repoRoot, work, managed)
	binary, pluginDir = r.binary, r.pluginDir
	return err
}

// buildRelease builds the source tree src into out, as its own scripts
// build it.
func buildRelease(src, out string, managed bool) (release, error) {
	r := release{binary: filepath.Join(out, "portal-volume")}
	cmd := exec.Command("go", "build", "-o", r.binary, "./plugin")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return r, fmt.Errorf("go build: %w\n%s", err, out)
	}
	if !managed {
		return r, nil
	}
	r.pluginDir = filepath.Join(out, "plugin")
	cmd = exec.Command("bash", "scripts/plugin-rootfs.sh", r.pluginDir)
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return r, fmt.Errorf("plugin-rootfs.sh: %w\n%s", err, out)
	}
	return r, nil
}

// buildRevision builds the plugin as it was at a revision of this
// repository's history (a clone has it), into a test directory.
func buildRevision(t *testing.T, rev string, managed bool) release {
	t.Helper()
	src := t.TempDir()
	archive := exec.Command("git", "-C", repoRoot, "archive", rev)
	untar := exec.Command("tar", "-x", "-C", src)
	var err error
	if untar.Stdin, err = archive.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	var aerr testutil.Buffer
	archive.Stderr = &aerr
	if err := archive.Start(); err != nil {
		t.Fatal(err)
	}
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	if err := archive.Wait(); err != nil {
		t.Fatalf("git archive %s (the e2e suite needs this repository's history): %v: %s", rev, err, aerr.String())
	}
	r, err := buildRelease(src, t.TempDir(), managed)
	if err != nil {
		t.Fatalf("build of %s: %v", rev, err)
	}
	return r
}

func sourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

var errNoDocker = errors.New("no Docker engine answers (docker info failed)")

// runCmd runs a command with a time limit and returns its combined output.
func runCmd(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}
