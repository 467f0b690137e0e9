// Command bench measures what a Docker engine pays for each VolumeDriver
// call into portal-volume, against a floor measured in the same run.
//
//	go run ./internal/cmd/bench [flags]     (as root)
//
// It starts the portal-volume binary on a temp root with a socket of its
// own, and a floor: a server on the same go-plugins-helpers stack whose
// driver answers every call at once with a canned answer of the same shape.
// Over the unix sockets, with an http.Client that keeps connections alive
// as Docker's plugin client does, it times each call alone, as dockerd
// sends it, with N volumes and C concurrent clients: Mount with a fixed
// 64-hex container ID and later the Unmount with the same ID, as separate
// rows for a Mount that makes a new mount and one of a volume already
// mounted under another ID. The calls run slice by slice: in every round
// each call runs on every side (portal-volume, the floor; the order
// rotating) before the next call, so that background work and drift on a
// shared machine fall on every call and side alike. Besides p50 and p99 it
// reports the server process's CPU time per call. Create and Remove are
// also compared with the disk work they cannot avoid (mkdir, chown, chmod,
// a durable record write), done directly in the same file system, and
// Mount and Unmount with a floor that also does the file work the contract
// asks of them (opening the directory without following symlinks,
// checking its owner, appending to a mount log).
//
// Flags: --binary, -n, -c, --scale, --rounds, --batch, --mounts, --creates,
// --calls, --floor, --plugin-env, --keep (see -h). Output is Markdown.
//
// Then, for each --scale count, it writes a state directory of that many
// records, starts the binary on it, and measures start-up to the first
// correct Get, List latency and RSS.
//
// Everything it starts it stops, and its temp directory is removed, also
// on SIGINT/SIGTERM.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/portal/portal-volume/internal/volumeclient"
)

type config struct {
	binary  string
	n       int   // volumes of the protocol section being measured
	ns      []int // every -n
	cs      []int
	scale   []int
	rounds  int
	batch   time.Duration
	creates int // per round and side
	mounts  int // Mounts (and Unmounts) per round, side and kind
	floor   string
	keep    bool
	env     []string // added to portal-volume's environment
	calls   []string // the protocol calls to measure; all when empty
}

func (c config) wants(call string) bool {
	return len(c.calls) == 0 || slices.Contains(c.calls, call)
}

func main() {
	var c config
	var cs, scale string
	flag.StringVar(&c.binary, "binary", "", "portal-volume binary (default: go build ./plugin into a temp dir)")
	var ns string
	flag.StringVar(&ns, "n", "1000,10000", "volumes made before the protocol benchmark, a comma list: one table section each")
	flag.StringVar(&cs, "c", "1,8", "concurrent clients, a comma list: one table section each")
	flag.StringVar(&scale, "scale", "10000,100000", "volume counts for the scale figures, a comma list (\"\" skips)")
	flag.IntVar(&c.rounds, "rounds", 16, "rounds per call and side (portal-volume and floor alternate)")
	flag.DurationVar(&c.batch, "batch", 120*time.Millisecond, "length of one round of a memory-bound call")
	flag.IntVar(&c.creates, "creates", 20, "Create (and Remove) calls per round and side")
	flag.IntVar(&c.mounts, "mounts", 100, "Mount (and Unmount) calls per round, side and kind (at most half the volumes)")
	flag.StringVar(&c.floor, "floor", "process", "where the floor server runs: process (a child process, as portal-volume is) or inproc (inside the benchmark)")
	flag.BoolVar(&c.keep, "keep", false, "keep the temp directory (for inspection)")
	calls := flag.String("calls", "", "comma list of the protocol calls to measure (Get,Path,Mount,Unmount,List,Create,Remove; default all)")
	env := flag.String("plugin-env", "", "comma list of KEY=VALUE added to portal-volume's environment (e.g. GOMEMLIMIT=64MiB)")
	runsSocket := flag.String("runs", "", "socket of a plugin already serving: time whole runs of -n Creates and Removes by -c clients against it, and nothing else")
	runsOpts := flag.String("runs-opts", "app=run,path=v%d", "Create options for --runs, k=v,... with %d for the volume's number")
	if len(os.Args) > 1 && os.Args[1] == floorCommand {
		os.Exit(serveFloorMain(os.Args[2:]))
	}
	flag.Parse()
	var err error
	if c.ns, err = intList(ns); err != nil || len(c.ns) == 0 {
		fatalf("-n %q: want a comma list of volume counts", ns)
	}
	if c.cs, err = intList(cs); err != nil || len(c.cs) == 0 {
		fatalf("-c %q: want a comma list of client counts", cs)
	}
	if c.scale, err = intList(scale); err != nil {
		fatalf("--scale %q: want a comma list of volume counts", scale)
	}
	for _, call := range strings.Split(*calls, ",") {
		if call = strings.TrimSpace(call); call != "" {
			if !slices.Contains([]string{"Get", "Path", "Mount", "Unmount", "List", "Create", "Remove"}, call) {
				fatalf("--calls: unknown call %q", call)
			}
			c.calls = append(c.calls, call)
		}
	}
	if slices.Contains(c.calls, "Remove") && !slices.Contains(c.calls, "Create") {
		c.calls = append(c.calls, "Create") // Remove removes what Create made
	}
	if slices.Contains(c.calls, "Unmount") && !slices.Contains(c.calls, "Mount") {
		c.calls = append(c.calls, "Mount") // Unmount lets go of what Mount counted
	}
	for _, kv := range strings.Split(*env, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			if !strings.Contains(kv, "=") {
				fatalf("--plugin-env %q: want KEY=VALUE", kv)
			}
			c.env = append(c.env, kv)
		}
	}
	if c.floor != "process" && c.floor != "inproc" {
		fatalf("--floor %q: want process or inproc", c.floor)
	}
	if *runsSocket != "" {
		os.Exit(runs(c, *runsSocket, *runsOpts))
	}
	if os.Geteuid() != 0 {
		fatalf("run as root: portal-volume chowns below its root")
	}
	os.Exit(run(c))
}

// floorCommand is the hidden first argument that makes this program the
// floor server (--floor process).
const floorCommand = "__floor"

func run(c config) (code int) {
	tmp, err := os.MkdirTemp("", "portal-volume-bench-")
	if err != nil {
		fatalf("%v", err)
	}
	var stops cleanups
	stops.add(func() {
		if c.keep {
			fmt.Fprintln(os.Stderr, "bench: kept", tmp)
			return
		}
		os.RemoveAll(tmp)
	})
	defer stops.run()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintln(os.Stderr, "bench: stopped by", s)
		stops.run()
		os.Exit(130)
	}()
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintln(os.Stderr, "bench:", r)
			code = 1
		}
	}()

	if c.binary == "" {
		c.binary = filepath.Join(tmp, "portal-volume")
		fmt.Fprintln(os.Stderr, "bench: go build ./plugin")
		cmd := exec.Command("go", "build", "-o", c.binary, "github.com/portal/portal-volume/plugin")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			panic(fmt.Sprintf("go build (run from the repository, or pass --binary): %v", err))
		}
	}
	printHeader(c)
	for _, n := range c.ns {
		c.n = n
		protocol(c, filepath.Join(tmp, fmt.Sprint("n", n)), &stops)
	}
	if len(c.scale) > 0 {
		scaleFigures(c, tmp, &stops)
	}
	return 0
}

func printHeader(c config) {
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			if kb, err := strconv.Atoi(f[1]); err == nil {
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	fmt.Printf("# portal-volume benchmark, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Printf("machine: %d CPUs (%s), %s memory, %s %s/%s; load average at start %s\n",
		runtime.NumCPU(), model, mem, runtime.Version(), runtime.GOOS, runtime.GOARCH, load)
	fmt.Printf("run: -n %s, -c %s, --rounds %d, --batch %s, --mounts %d, --creates %d, --floor %s",
		joinInts(c.ns), joinInts(c.cs), c.rounds, c.batch, c.mounts, c.creates, c.floor)
	if len(c.env) > 0 {
		fmt.Printf(", portal-volume environment %s", strings.Join(c.env, " "))
	}
	fmt.Print("\n\n")
}

// server is a plugin process (or the in-process floor) and a client for it.
type server struct {
	name   string
	socket string
	cmd    *exec.Cmd
	log    string
	client *volumeclient.Client
}

// startProcess starts a plugin process and waits until it answers.
func startProcess(name, socket, logPath string, env []string, path string, args ...string) *server {
	logf, err := os.Create(logPath)
	if err != nil {
		panic(err)
	}
	defer logf.Close()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		panic(fmt.Sprintf("start %s: %v", name, err))
	}
	s := &server{name: name, socket: socket, cmd: cmd, log: logPath, client: volumeclient.New(socket, time.Minute, 8)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Not Plugin.Activate: the plugin takes that for a new engine.
		if _, err := s.call("/VolumeDriver.Capabilities", nil); err == nil {
			return s
		}
		if time.Now().After(deadline) {
			s.stop()
			panic(fmt.Sprintf("%s did not answer on %s within 30 s; its log:\n%s", name, socket, s.logs()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *server) logs() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// stop ends the process this program started: SIGTERM, then SIGKILL.
func (s *server) stop() {
	s.client.Close()
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// call posts body to method and returns the answer; a status other than
// 200 is an error carrying the plugin's message.
func (s *server) call(method string, body []byte) ([]byte, error) {
	var buf bytes.Buffer
	err := s.client.Post(method, body, &buf)
	return buf.Bytes(), err
}

type cleanups struct {
	mu  sync.Mutex
	fns []func()
}

func (c *cleanups) add(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, f)
}

// run runs the cleanups, last added first, once.
func (c *cleanups) run() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.fns) - 1; i >= 0; i-- {
		c.fns[i]()
	}
	c.fns = nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, errors.New("bad count")
		}
		out = append(out, n)
	}
	return out, nil
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(2)
}
