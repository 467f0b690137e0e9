package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

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
	// An empty config file: the host's /etc/docker/daemon.json would
	// clash with the flags.
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o600); err != nil {
		return nil, err
	}
	d := &privateDockerd{dir: dir}
	os.Setenv("DOCKER_HOST", "unix://"+filepath.Join(dir, "docker.sock"))
	return d, d.start()
}

func (d *privateDockerd) start() error {
	log, err := os.OpenFile(d.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	d.cmd = exec.Command("dockerd",
		"--config-file", filepath.Join(d.dir, "daemon.json"),
		"--data-root", filepath.Join(d.dir, "data"),
		"--exec-root", filepath.Join(d.dir, "exec"),
		"--pidfile", filepath.Join(d.dir, "dockerd.pid"),
		"--host", os.Getenv("DOCKER_HOST"),
		"--storage-driver", "vfs",
		"--bridge", "none", "--iptables=false", "--ip-masq=false", "--ip-forward=false",
	)
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
			return fmt.Errorf("dockerd exited at start; its log:\n%s", d.Logs())
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
// containers' shims outlive it; the containerd it started dies with it
// (dockerd starts it with a parent-death signal), and kill waits for that.
// Where the dead containerd stays a zombie for a while (its new parent,
// a subreaper above the suite, does not reap it at once), a new dockerd
// would take it for alive, wait for its socket and fail: so its pid file
// goes, as it would on a host whose init reaps at once.
func (d *privateDockerd) kill() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Kill()
	<-d.exited
	d.cmd = nil
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
	conf := "{}\n"
	if on {
		conf = "{\"live-restore\": true}\n"
	}
	return os.WriteFile(filepath.Join(d.dir, "daemon.json"), []byte(conf), 0o600)
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
