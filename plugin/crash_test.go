package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portal/portal-volume/internal/testutil"
)

// TestCrashSafety runs the daemon as a real process under a load of
// parallel Create, Mount, Unmount and Remove calls and kills it with
// SIGKILL at random moments, many times; every fourth round a new engine
// activates it (the kills are the plugin's own restarts, not the engine's). After every restart the state
// must load, every volume a client was told exists must exist with its
// options and mount count, a call cut off by the kill must have happened
// whole or not at all, no temp file may be left, and no data may have gone
// that should have stayed.
func TestCrashSafety(t *testing.T) {
	kills := 60
	if testing.Short() {
		kills = 10
	}
	h := &crashHarness{root: t.TempDir(), sock: filepath.Join(t.TempDir(), "pv.sock")}
	const workers, namesEach = 4, 5
	for w := range workers {
		for i := range namesEach {
			h.vols = append(h.vols, &crashVol{name: fmt.Sprintf("w%dv%d_data", w, i), worker: w})
		}
	}
	for round := range kills + 1 {
		cmd := h.start(t)
		h.check(t, round)
		if round%4 == 3 {
			h.newEngine(t)
		}
		if t.Failed() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return
		}
		if round == kills {
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("daemon exit after SIGTERM: %v", err)
			}
			break
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() { h.work(t, w, stop) })
		}
		time.Sleep(time.Duration(5+rand.IntN(100)) * time.Millisecond) // the random moment of the kill
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		close(stop)
		wg.Wait()
	}
	t.Logf("%d kills survived; %d calls acknowledged, %d cut off by a kill", kills, h.acked.Load(), h.cut.Load())
}

type crashVol struct {
	name     string
	worker   int
	state    crashState
	pending  *crashState // the state if the call cut off by the kill happened
	pendKind string
	marker   bool // a file was written into the directory after its Create succeeded
}

type crashState struct {
	exists   bool
	uid      int
	onRemove string
	ids      []string // mount IDs, one per active mount
	// mount IDs of an earlier engine: nothing has their directory mounted,
	// so Get and Remove drop them and never show them; an Unmount of one
	// is a container of that engine stopping late
	stale []string
}

type crashHarness struct {
	root, sock string
	vols       []*crashVol
	kept       []string // directories of volumes removed with keep: their data must stay
	mu         sync.Mutex
	acked, cut atomicCounter
	nextID     atomicCounter
}

func (h *crashHarness) start(t *testing.T) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "--root", h.root, "--views", h.root+"-views", "--socket", h.sock, "--log-level", "error")
	cmd.Env = append(os.Environ(), runAsDaemonEnv+"=1")
	var out testutil.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	client := unixClient(h.sock)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Post("http://plugin/VolumeDriver.Capabilities", "application/json", nil)
		if err == nil {
			resp.Body.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("daemon did not answer after a restart: %v\n%s", err, out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// work drives the volumes of one worker until stop; each volume has one
// worker, so its model is exact.
func (h *crashHarness) work(t *testing.T, w int, stop <-chan struct{}) {
	s := &server{root: h.root, sock: h.sock, client: unixClient(h.sock)}
	var mine []*crashVol
	for _, v := range h.vols {
		if v.worker == w {
			mine = append(mine, v)
		}
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		v := mine[rand.IntN(len(mine))]
		if !h.step(t, s, v) {
			return // cut off by the kill
		}
	}
}

// step makes one call on v; it returns false when the call was cut off.
func (h *crashHarness) step(t *testing.T, s *server, v *crashVol) bool {
	st := v.state
	var path string
	var body req
	next := st
	switch r := rand.IntN(100); {
	case !st.exists:
		next = crashState{exists: true, uid: []int{0, 1000}[rand.IntN(2)], onRemove: []string{"keep", "delete"}[rand.IntN(2)]}
		path, body = "/VolumeDriver.Create", req{"Name": v.name, "Opts": req{"uid": strconv.Itoa(next.uid), "on_remove": next.onRemove}}
	case r < 35:
		id := fmt.Sprint("m", h.nextID.add())
		next.ids = append(append([]string(nil), st.ids...), id)
		path, body = "/VolumeDriver.Mount", req{"Name": v.name, "ID": id}
	case r < 65 && len(st.ids) > 0:
		next.ids = st.ids[:len(st.ids)-1]
		path, body = "/VolumeDriver.Unmount", req{"Name": v.name, "ID": st.ids[len(st.ids)-1]}
	case r < 70 && len(st.stale) > 0:
		next.stale = st.stale[:len(st.stale)-1]
		path, body = "/VolumeDriver.Unmount", req{"Name": v.name, "ID": st.stale[len(st.stale)-1]}
	case r < 75:
		path, body = "/VolumeDriver.Create", req{"Name": v.name, "Opts": req{"uid": strconv.Itoa(st.uid), "on_remove": st.onRemove}}
	default:
		next = crashState{}
		if len(st.ids) > 0 {
			next = st // refused: in use
			next.stale = nil
		}
		path, body = "/VolumeDriver.Remove", req{"Name": v.name}
	}
	status, b, err := s.post(path, mustJSON(body))
	if err != nil {
		v.pending, v.pendKind = &next, path
		h.cut.add()
		return false
	}
	h.acked.add()
	errText := ""
	if status != 200 {
		errText = string(b)
	}
	switch {
	case path == "/VolumeDriver.Remove" && len(st.ids) > 0:
		if !strings.Contains(errText, "in use") {
			t.Errorf("remove of mounted %s: %q", v.name, errText)
		}
	case errText != "":
		t.Errorf("%s %s: %s", path, v.name, errText)
	case path == "/VolumeDriver.Create" && !st.exists:
		h.adopted(v)
		// What a container would write: must survive a keep-remove.
		if err := os.WriteFile(filepath.Join(h.dir(v), "marker"), []byte(v.name), 0o644); err != nil {
			t.Errorf("write marker: %v", err)
		}
		v.marker = true
	case path == "/VolumeDriver.Remove":
		h.removed(t, v, st.onRemove)
	}
	v.state = next
	return true
}

func (h *crashHarness) removed(t *testing.T, v *crashVol, onRemove string) {
	dir := h.dir(v)
	if onRemove == "delete" {
		if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s removed with delete, but %s is still there", v.name, dir)
		}
	} else if v.marker {
		h.mu.Lock()
		h.kept = append(h.kept, dir)
		h.mu.Unlock()
	}
	v.marker = false
}

// adopted notes that v's directory, kept by an earlier remove, belongs to
// a volume again, which may delete it.
func (h *crashHarness) adopted(v *crashVol) {
	h.mu.Lock()
	defer h.mu.Unlock()
	dir := h.dir(v)
	h.kept = slices.DeleteFunc(h.kept, func(d string) bool { return d == dir })
}

func (h *crashHarness) dir(v *crashVol) string {
	return filepath.Join(h.root, "app_data", strings.TrimSuffix(v.name, "_data"), "data")
}

// newEngine is a new engine activating the plugin, between two rounds:
// every mount so far is the earlier engine's.
func (h *crashHarness) newEngine(t *testing.T) {
	s := &server{root: h.root, sock: h.sock, client: unixClient(h.sock)}
	status, b, err := s.post("/Plugin.Activate", nil)
	if err != nil || status != 200 {
		t.Fatalf("Plugin.Activate: %d %q %v", status, b, err)
	}
	for _, v := range h.vols {
		v.state.stale = append(v.state.stale, v.state.ids...)
		v.state.ids = nil
	}
}

// check compares the restarted daemon with the model, settling each call
// the kill cut off, and checks the disk.
func (h *crashHarness) check(t *testing.T, round int) {
	s := &server{root: h.root, sock: h.sock, client: unixClient(h.sock)}
	for _, v := range h.vols {
		got := h.get(t, s, v)
		switch {
		case v.pending != nil && sameState(got, *v.pending):
			switch {
			case v.pendKind == "/VolumeDriver.Remove" && !got.exists:
				h.removed(t, v, v.state.onRemove)
			case v.pendKind == "/VolumeDriver.Create" && !v.state.exists:
				h.adopted(v)
				v.marker = false // created, but no container wrote to it
			}
			v.state = *v.pending
		case sameState(got, v.state):
		default:
			t.Errorf("round %d: %s is %+v, want %+v (or, for the %s the kill cut off, %+v)",
				round, v.name, got, v.state, v.pendKind, v.pending)
		}
		if v.pending != nil && v.pendKind == "/VolumeDriver.Remove" && v.state.exists && v.state.onRemove == "delete" {
			v.marker = false // a delete cut off half way may have taken it
		}
		v.pending = nil
		v.state.stale = nil // the Get dropped them: their directory is mounted nowhere
		if v.state.exists && v.marker {
			if b, err := os.ReadFile(filepath.Join(h.dir(v), "marker")); err != nil || string(b) != v.name {
				t.Errorf("round %d: %s lost its data: %v", round, v.name, err)
			}
		}
	}
	for _, dir := range h.kept {
		if _, err := os.Stat(filepath.Join(dir, "marker")); err != nil {
			t.Errorf("round %d: data of a volume removed with keep is gone: %v", round, err)
		}
	}
	state := filepath.Join(h.root, ".portal-volume")
	_ = filepath.Walk(state, func(p string, fi os.FileInfo, err error) error {
		if err == nil && (strings.Contains(fi.Name(), ".tmp-") || fi.Name() == "corrupt") {
			t.Errorf("round %d: left behind in the state: %s", round, p)
		}
		return nil
	})
}

func (h *crashHarness) get(t *testing.T, s *server, v *crashVol) crashState {
	e, res := s.call(t, "/VolumeDriver.Get", req{"Name": v.name})
	if strings.Contains(e, "no such volume") {
		return crashState{}
	}
	if e != "" {
		t.Fatalf("Get %s: %s", v.name, e)
	}
	st := res["Volume"].(map[string]any)["Status"].(map[string]any)
	got := crashState{exists: true, uid: int(st["uid"].(float64)), onRemove: st["on_remove"].(string)}
	got.ids = make([]string, int(st["mounts"].(float64)))
	return got
}

// sameState compares what Get shows: existence, options, mount count.
func sameState(a, b crashState) bool {
	if a.exists != b.exists {
		return false
	}
	return !a.exists || (a.uid == b.uid && a.onRemove == b.onRemove && len(a.ids) == len(b.ids))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) add() int64  { return c.n.Add(1) }
func (c *atomicCounter) Load() int64 { return c.n.Load() }
