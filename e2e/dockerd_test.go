package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// privateDockerd is a Docker engine of the suite's own, in the suite's own
// mount namespace:
//
//   - /run/docker/plugins is a private tmpfs, so that the host's engine
//     never sees the suite's legacy plugin (dockerd remembers every legacy
//     plugin it met and waits 30 s on it once it is gone);
//   - the suite may restart it, to test what a daemon restart does;
//   - its log, which holds a managed plugin's output, is the suite's to read.
type privateDockerd struct {
	dir    string
	engine engine
	config daemonConfig // what daemon.json holds from the next start
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// engine is the Docker Engine the suite runs as its own, chosen by
// PORTAL_E2E_ENGINE and PORTAL_E2E_IMAGE_STORE.
type engine struct {
	version string // 20.10 (Debian's docker.io, the default), 27, 28 or 29
	major   int
	// bin holds dockerd and what it starts (containerd, its shim, runc,
	// docker-proxy); scripts/engine.sh builds and caches all but 20.10.
	bin string
	// imageStore is "containerd" for the containerd image store (29
	// only), else "" for the graph driver vfs.
	imageStore string
}

// daemonConfig is the engine's daemon.json.
type daemonConfig struct {
	LiveRestore bool            `json:"live-restore,omitempty"`
	Features    map[string]bool `json:"features,omitempty"`
}

// chooseEngine reads the engine settings and has scripts/engine.sh find
// or build that engine.
func chooseEngine() (engine, error) {
	e := engine{version: os.Getenv("PORTAL_E2E_ENGINE"), imageStore: os.Getenv("PORTAL_E2E_IMAGE_STORE")}
	if e.version == "" {
		e.version = "20.10"
	}
	switch e.version {
	case "20.10":
		e.major = 20
	case "27", "28", "29":
		e.major, _ = strconv.Atoi(e.version)
	default:
		return e, fmt.Errorf("PORTAL_E2E_ENGINE=%q: want 20.10, 27, 28 or 29", e.version)
	}
	switch {
	case e.imageStore == "":
	case e.imageStore == "containerd" && e.major >= 29:
	default:
		return e, fmt.Errorf("PORTAL_E2E_IMAGE_STORE=%q with PORTAL_E2E_ENGINE=%s: want empty (the graph driver vfs), or containerd on engine 29", e.imageStore, e.version)
	}
	cmd := exec.Command("bash", filepath.Join(repoRoot, "scripts", "engine.sh"), e.version)
	cmd.Stderr = os.Stderr // a first build takes minutes: show its progress
	out, err := cmd.Output()
	if err != nil {
		return e, fmt.Errorf("scripts/engine.sh %s: %w", e.version, err)
	}
	e.bin = strings.TrimSpace(string(out))
	return e, nil
}

// args are the engine's flags: no networking of its own, and never a
// change to the host's firewall (27 and later touch ip6tables too, and
// 20.10 has no flag for it).
func (e engine) args() []string {
	args := []string{"--bridge", "none", "--iptables=false", "--ip-masq=false", "--ip-forward=false"}
	if e.major >= 27 {
		args = append(args, "--ip6tables=false")
	}
	// The containerd image store needs a snapshotter that works on any
	// file system, as vfs does for the graph driver.
	if e.imageStore == "containerd" {
		return append(args, "--storage-driver", "native")
	}
	return append(args, "--storage-driver", "vfs")
}

// path is the engine's PATH: its own directory first, so that dockerd
// starts the containerd, shim and runc built with it.
func (e engine) path() string { return "PATH=" + e.bin + ":" + os.Getenv("PATH") }

// inNamespaceEnv marks the suite's re-execution of itself in a mount
// namespace of its own (see reexecInNamespace).
const inNamespaceEnv = "PORTAL_E2E_IN_MOUNT_NAMESPACE"

// reexecInNamespace runs this test binary again, with the same arguments,
// under unshare --mount, and returns its exit code.
func reexecInNamespace() int {
	args := append([]string{"--mount", "--propagation", "private", "--"}, os.Args...)
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), inNamespaceEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if exit, ok := err.(*exec.ExitError); ok {
			return exit.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "e2e: unshare (util-linux) is needed for PORTAL_E2E_DOCKERD=private:", err)
		return 1
	}
	return 0
}

// startPrivateDockerd starts the suite's engine; it runs only in the
// namespace that reexecInNamespace made.
func startPrivateDockerd() (*privateDockerd, error) {
	if err := os.MkdirAll("/run/docker/plugins", 0o700); err != nil {
		return nil, err
	}
	if err := unix.Mount("tmpfs", "/run/docker/plugins", "tmpfs", 0, "mode=0700"); err != nil {
		return nil, fmt.Errorf("private /run/docker/plugins: %w", err)
	}
	dir, err := os.MkdirTemp("", "portal-volume-e2e-dockerd-")
	if err != nil {
		return nil, err
	}
	eng, err := chooseEngine()
	if err != nil {
		return nil, err
	}
	d := &privateDockerd{dir: dir, engine: eng}
	if eng.imageStore == "containerd" {
		d.config.Features = map[string]bool{"containerd-snapshotter": true}
	}
	// A config file of its own: the host's /etc/docker/daemon.json would
	// clash with the flags.
	if err := d.writeConfig(); err != nil {
		return nil, err
	}
	os.Setenv("DOCKER_HOST", "unix://"+filepath.Join(dir, "docker.sock"))
	return d, d.start()
}

// propagatedMountRace is what Docker 20.10 logs when, starting with a
// managed plugin that outlived its last process (a kill, or a stop with
// live-restore), it loses the race for the plugin's propagated mount (see
// docs/state-and-recovery.md) while enabling the plugin; it then dies of
// a panic restoring the plugin's volumes.
const propagatedMountRace = "error setting up propagated mount dir"

// start starts the engine and waits until it answers. An engine that dies
// of propagatedMountRace is started once more, as systemd does with
// Docker's unit (Restart=always); any other exit is an error, which holds
// what the engine logged at this start.
func (d *privateDockerd) start() error {
	err := d.startOnce()
	if err != nil && strings.Contains(err.Error(), propagatedMountRace) {
		fmt.Fprintf(os.Stderr, "e2e: dockerd died at its start, having lost the race for a managed plugin's propagated mount; starting it again, as systemd would\n")
		err = d.startOnce()
	}
	return err
}

func (d *privateDockerd) startOnce() error {
	log, err := os.OpenFile(d.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	from, err := log.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	d.cmd = exec.Command(filepath.Join(d.engine.bin, "dockerd"), append([]string{
		"--config-file", filepath.Join(d.dir, "daemon.json"),
		"--data-root", filepath.Join(d.dir, "data"),
		"--exec-root", filepath.Join(d.dir, "exec"),
		"--pidfile", filepath.Join(d.dir, "dockerd.pid"),
		"--host", os.Getenv("DOCKER_HOST"),
	}, d.engine.args()...)...)
	d.cmd.Env = append(os.Environ(), d.engine.path())
	d.cmd.Stdout, d.cmd.Stderr = log, log
	// If the suite dies (a test timeout panics past every cleanup), its
	// engine goes with it.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("start dockerd: %w", err)
	}
	exited := make(chan struct{})
	d.exited = exited
	go func() { _ = d.cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if exec.Command("docker", "info").Run() == nil {
			return nil
		}
		select {
		case <-exited:
			d.cmd = nil
			d.forgetContainerd()
			return fmt.Errorf("dockerd exited at start; its log:\n%s", d.Logs()[from:])
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerd did not answer within 90 s; its log:\n%s", d.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop stops the engine as an init system would: SIGTERM, then SIGKILL.
func (d *privateDockerd) stop() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(60 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	d.cmd = nil
}

func (d *privateDockerd) restart() error {
	d.stop()
	return d.start()
}

// kill kills the engine as the OOM killer or a crash would: SIGKILL. The
// containers' shims outlive it.
func (d *privateDockerd) kill() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Kill()
	<-d.exited
	d.cmd = nil
	d.forgetContainerd()
}

// forgetContainerd waits, after the engine died, for the containerd it
// started to die with it (dockerd starts it with a parent-death signal).
// Where the dead containerd stays a zombie for a while (its new parent, a
// subreaper above the suite, does not reap it at once), a new dockerd
// would take it for alive, wait for its socket and fail: so its pid file
// goes, as it would on a host whose init reaps at once.
func (d *privateDockerd) forgetContainerd() {
	pidFile := filepath.Join(d.dir, "exec", "containerd", "containerd.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	stat := filepath.Join("/proc", strings.TrimSpace(string(b)), "stat")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s, err := os.ReadFile(stat)
		if err != nil {
			return
		}
		if f := strings.Fields(string(s[strings.LastIndexByte(string(s), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			_ = os.Remove(pidFile)
			return
		}
	}
}

// setLiveRestore writes the engine's daemon.json with live-restore on or
// off; it holds from the engine's next start.
func (d *privateDockerd) setLiveRestore(on bool) error {
	d.config.LiveRestore = on
	return d.writeConfig()
}

func (d *privateDockerd) writeConfig() error {
	b, err := json.Marshal(d.config)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d.dir, "daemon.json"), append(b, '\n'), 0o600)
}

// remove stops the engine and deletes its directory, unmounting first
// whatever is still mounted below it so that nothing is deleted through a
// mount.
func (d *privateDockerd) remove() {
	d.stop()
	mounts, _ := mountsBelow(d.dir)
	slices.Reverse(mounts)
	for _, m := range mounts {
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
	if left, _ := mountsBelow(d.dir); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: left %s in place: still mounted: %v\n", d.dir, left)
		return
	}
	_ = os.RemoveAll(d.dir)
}

func (d *privateDockerd) logPath() string { return filepath.Join(d.dir, "dockerd.log") }

func (d *privateDockerd) Logs() string {
	b, _ := os.ReadFile(d.logPath())
	return string(b)
}

// mountsBelow lists the mount points at or below dir, outermost first.
func mountsBelow(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	return out, sc.Err()
}
