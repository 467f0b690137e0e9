package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// modes are the ways the plugin runs; PORTAL_E2E_MODES picks some
// (comma separated), by default all.
var modes = []string{"legacy", "managed"}

// daemon is the suite's own engine, the default; nil under
// PORTAL_E2E_DOCKERD=ambient, when the suite uses the engine DOCKER_HOST
// names and never restarts it.
var daemon *privateDockerd

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	repoRoot = sourceDir()
	if v := os.Getenv("PORTAL_E2E_MODES"); v != "" {
		modes = strings.Split(v, ",")
	}
	if err := exec.Command("docker", "info").Run(); err != nil || os.Geteuid() != 0 {
		reason := errNoDocker.Error()
		if err == nil {
			reason = "the end-to-end suite runs as root"
		}
		// In CI the suite must run: a skip there would hide a broken setup.
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "e2e:", reason)
			return 1
		}
		fmt.Fprintln(os.Stderr, "e2e: skipped:", reason)
		return 0
	}
	// The suite's own engine unless told otherwise: it restarts and kills
	// its engine, which must never be the host's.
	private := os.Getenv("PORTAL_E2E_DOCKERD") != "ambient"
	if private && os.Getenv(inNamespaceEnv) == "" {
		return reexecInNamespace()
	}
	if private {
		d, err := startPrivateDockerd()
		if d != nil {
			defer d.remove()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		daemon = d
	}
	if err := readServerVersion(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	store, err := imageStore()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: Docker Engine %s (API %s), %s\n", serverVersion, serverAPI, store)
	work, err := os.MkdirTemp("", "portal-volume-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(work)
	if err := buildPlugin(work, slices.Contains(modes, "managed")); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() {
		for name := range images {
			_, _ = docker("rmi", "-f", name)
		}
	}()
	if err := buildImages(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// serverVersion and serverAPI are the engine's, as it tells them.
var serverVersion, serverAPI string

func readServerVersion() error {
	out, err := docker("version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}")
	if err != nil {
		return err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return fmt.Errorf("docker version: %q, want the engine's version and API version", out)
	}
	serverVersion, serverAPI = f[0], f[1]
	return nil
}

// imageStore says which image store the engine runs, and fails when it
// is not the one PORTAL_E2E_IMAGE_STORE asked for.
func imageStore() (string, error) {
	out, err := docker("info", "--format", "{{.Driver}} {{json .DriverStatus}}")
	if err != nil {
		return "", err
	}
	containerd := strings.Contains(out, "io.containerd.snapshotter")
	driver, _, _ := strings.Cut(strings.TrimSpace(out), " ")
	if daemon != nil && (daemon.engine.imageStore == "containerd") != containerd {
		return "", fmt.Errorf("PORTAL_E2E_IMAGE_STORE=%q, but the engine's storage is %s", daemon.engine.imageStore, out)
	}
	if containerd {
		return "the containerd image store (snapshotter " + driver + ")", nil
	}
	return "the graph driver " + driver, nil
}

// apiAtLeast says whether the engine speaks API 1.minor.
func apiAtLeast(minor int) bool {
	_, m, _ := strings.Cut(serverAPI, ".")
	n, err := strconv.Atoi(m)
	return err == nil && n >= minor
}

// needAPI skips t on an engine older than API 1.minor (the API version
// says what an engine can do), saying what needs it.
func needAPI(t *testing.T, minor int, what string) {
	t.Helper()
	if !apiAtLeast(minor) {
		t.Skipf("%s needs API 1.%d; this engine is %s, API %s (PORTAL_E2E_ENGINE)", what, minor, serverVersion, serverAPI)
	}
}

// testCase is one end-to-end case: the name of its subtest and what it
// does with the plugin of one mode.
type testCase struct {
	name string
	run  func(t *testing.T, e *env)
}

// eachMode runs an area's cases, in order, once per mode of
// PORTAL_E2E_MODES (the subtests legacy and managed): each mode against a
// fresh engine, when the suite runs its own, and a plugin of its own on a
// fresh Portal tree, shared by the area's cases.
func eachMode(t *testing.T, cases []testCase) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			if daemon != nil {
				// A fresh engine: it forgets the plugins it met before
				// (dockerd waits on a legacy plugin it knew once it is
				// gone, and one name cannot serve both modes).
				if err := daemon.restart(); err != nil {
					t.Fatal(err)
				}
			}
			root := t.TempDir()
			var p plugin
			switch mode {
			case "legacy":
				p = startLegacy(t, root)
			case "managed":
				p = startManaged(t, root)
			default:
				t.Fatalf("unknown mode %q in PORTAL_E2E_MODES: want legacy or managed", mode)
			}
			t.Cleanup(p.stop)
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					c.run(t, &env{plugin: p, mode: mode})
					if t.Failed() {
						t.Logf("plugin output:\n%s", p.Logs())
					}
				})
			}
		})
	}
}
