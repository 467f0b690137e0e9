package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/driver/spec"
)

// volumeName is the i-th volume made before the benchmark: app v<i>, path
// /data, as `docker run -v v00001_data:/x` names it.
func volumeName(i int) string { return fmt.Sprintf("v%05d_data", i) }

// viewName is the i-th volume of the access=ro set, whose views are
// read-only; the file floor tells them by name (isViewVolume). Every
// volume's first Mount makes a view, on either side.
func viewName(i int) string { return fmt.Sprintf("r%05d_data", i) }

func isViewVolume(name string) bool { return strings.HasPrefix(name, "r") }

// createName is the i-th volume the Create rounds make.
func createName(i int) string { return fmt.Sprintf("c%05d_data", i) }

// mountpoint is where portal-volume puts a volume named <app>_<dir>.
func mountpoint(root, name string) string {
	s, err := spec.Parser{}.Parse(name, nil)
	if err != nil {
		panic(err)
	}
	return root + "/" + s.Dir()
}

// volumeOpts are the options of every benchmark volume: an app that runs
// as uid 1000, as many do.
var volumeOpts = map[string]string{"uid": "1000", "gid": "1000", "mode": "750"}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// callFn makes call k (its index in the batch) and returns how long the
// part that counts took.
type callFn func(s *server, k int, buf *bytes.Buffer) (time.Duration, error)

// samples are one side's timings of one call over all rounds.
type samples struct {
	d        []time.Duration
	errors   int
	firstErr error
	wall     time.Duration
	cpu      time.Duration // the server process's CPU time over the slices; 0: not known
}

func (s *samples) add(b samples) {
	s.d = append(s.d, b.d...)
	s.errors += b.errors
	if s.firstErr == nil {
		s.firstErr = b.firstErr
	}
	s.wall += b.wall
	s.cpu += b.cpu
}

// cpuPerCall is the server process's CPU time per call: less swayed by
// other load on the machine than the latencies, which wait for a CPU.
func (s *samples) cpuPerCall() time.Duration {
	if len(s.d) == 0 {
		return 0
	}
	return s.cpu / time.Duration(len(s.d))
}

func (s *samples) rate() float64 {
	if s.wall == 0 {
		return 0
	}
	return float64(len(s.d)) / s.wall.Seconds()
}

func (s *samples) pct(p float64) time.Duration {
	if len(s.d) == 0 {
		return 0
	}
	d := slices.Clone(s.d)
	slices.Sort(d)
	i := int(p * float64(len(d)-1))
	return d[i]
}

// runBatch runs fn from conc workers: count calls in all, or (count 0) as
// many as fit in dur.
func runBatch(srv *server, conc, count int, dur time.Duration, fn callFn) samples {
	var next atomic.Int64
	var mu sync.Mutex
	var out samples
	var wg sync.WaitGroup
	cpu0 := srv.cpu()
	start := time.Now()
	deadline := start.Add(dur)
	for range conc {
		wg.Go(func() {
			var mine []time.Duration
			var errs int
			var first error
			var buf bytes.Buffer
			for {
				k := int(next.Add(1) - 1)
				if count > 0 && k >= count || count == 0 && time.Now().After(deadline) {
					break
				}
				d, err := fn(srv, k, &buf)
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				mine = append(mine, d)
			}
			mu.Lock()
			out.d = append(out.d, mine...)
			out.errors += errs
			if out.firstErr == nil {
				out.firstErr = first
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	out.wall = time.Since(start)
	if cpu0 >= 0 {
		out.cpu = srv.cpu() - cpu0
	}
	return out
}

// cpu is the CPU time the server's process has used so far, summed over its
// threads (/proc/PID/task/*/schedstat, in ns); -1 when it is not a process
// of its own.
func (s *server) cpu() time.Duration {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return -1
	}
	dir := fmt.Sprintf("/proc/%d/task", s.cmd.Process.Pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread ended
		}
		f, _, _ := strings.Cut(string(b), " ")
		ns, _ := strconv.ParseInt(f, 10, 64)
		sum += time.Duration(ns)
	}
	return sum
}

// waitIdle waits until the server has used less than 1% of a CPU over
// 300 ms (at most 60 s): work it does in the background after a burst of
// calls (a checkpoint of the journal after many Creates) must not fall on
// the first call measured next.
func waitIdle(s *server) {
	start := time.Now()
	for time.Since(start) < time.Minute {
		before := s.cpu()
		time.Sleep(300 * time.Millisecond)
		if s.cpu()-before < 3*time.Millisecond {
			if waited := time.Since(start); waited > time.Second {
				fmt.Fprintf(os.Stderr, "bench: %s was busy for %s before the next measurement\n", s.name, waited.Round(100*time.Millisecond))
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "bench: %s still busy after a minute; measuring anyway\n", s.name)
}

// waitMeasured waits (at most 2 minutes) until a Get of volume name shows
// its disk usage measured, unless env turns the measuring off. The daemon
// measures every volume a minute after it starts and then once a day (see
// --usage-interval): without the wait, that walk would fall on whichever
// slice runs then, and Get would answer without the usage that the floor's
// answer has, for the first minute only.
func waitMeasured(s *server, env []string, name string) {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "USAGE_INTERVAL="); ok {
			if d, err := time.ParseDuration(v); err == nil && d == 0 {
				return
			}
		}
	}
	body := mustJSON(volume.GetRequest{Name: name})
	for start := time.Now(); time.Since(start) < 2*time.Minute; time.Sleep(time.Second) {
		if out, err := s.call("/VolumeDriver.Get", body); err == nil && bytes.Contains(out, []byte(`"measured_at"`)) {
			return
		}
	}
	fmt.Fprintf(os.Stderr, "bench: %s measured no disk usage in 2 minutes; measuring anyway\n", s.name)
}

// timed times one call and checks that the answer has want in it.
func timed(s *server, method string, body []byte, buf *bytes.Buffer, want []byte) (time.Duration, error) {
	start := time.Now()
	err := s.client.Post(method, body, buf)
	d := time.Since(start)
	if err == nil && want != nil && !bytes.Contains(buf.Bytes(), want) {
		err = fmt.Errorf("%s: answer without %s: %s", method, want, buf.Bytes())
	}
	return d, err
}

var wantMountpoint = []byte(`"Mountpoint":"/`)

type row struct {
	call  string
	sides []samples // portal-volume, floor[, floor doing the call's file work | the disk work alone]
	disk  bool      // sides[2] is the disk work alone, without the protocol
}

// phase is one kind of call as the benchmark sends it; a slice of it runs
// on every side in every round.
type phase struct {
	row   string // its name in the table
	call  string // its name for --calls
	count int    // calls per slice; 0: as many as fit in --batch
	file  bool   // also on the floor that does the call's file work
	fn    func(round int) callFn
}

// containerID is the 64-hex ID dockerd would send for the mount of volume
// i by container set: the same for a Mount and its Unmount, and in every
// round, as a container that restarts keeps its ID.
func containerID(set string, i int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s %d", set, i))
	return hex.EncodeToString(sum[:])
}

func protocol(c config, tmp string, stops *cleanups) {
	dir := filepath.Join(tmp, "proto")
	root := filepath.Join(dir, "root")
	diskDir := filepath.Join(dir, "disk")
	for _, d := range []string{root, diskDir + "/app_data", diskDir + "/records"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			panic(err)
		}
	}
	// Views outlive the daemon by design (the engine unmounts them), and
	// not every choice of --calls unmounts what it mounted: whatever is
	// left goes once the daemon has stopped, so that no run leaves mounts
	// on the host.
	stops.add(func() { detachViews(dir + "/views") })
	portal := startProcess("portal-volume", dir+"/pv.sock", dir+"/portal-volume.log", c.env, c.binary,
		"--root", root, "--views", dir+"/views", "--socket", dir+"/pv.sock", "--log-level", "warn")
	stops.add(portal.stop)
	defer func() {
		if r := recover(); r != nil {
			panic(fmt.Sprintf("%v\nportal-volume log:\n%s", r, portal.logs()))
		}
	}()

	// Made by 8 clients at once: 10,000 durable creates one by one would
	// take most of the run.
	var made sync.WaitGroup
	var next atomic.Int64
	errs := make(chan error, 8)
	for range 8 {
		made.Go(func() {
			for i := int(next.Add(1)) - 1; i < c.n; i = int(next.Add(1)) - 1 {
				body := mustJSON(volume.CreateRequest{Name: volumeName(i), Options: volumeOpts})
				if _, err := portal.call("/VolumeDriver.Create", body); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	made.Wait()
	close(errs)
	if err := <-errs; err != nil {
		panic(err)
	}
	// The view set: access=ro volumes, every Mount of which makes a view.
	views := 0
	for ; views < min(c.mounts, c.n/2); views++ {
		opts := maps.Clone(volumeOpts)
		opts["access"] = "ro"
		if _, err := portal.call("/VolumeDriver.Create", mustJSON(volume.CreateRequest{Name: viewName(views), Options: opts})); err != nil {
			fmt.Fprintf(os.Stderr, "bench: no view rows: %v\n", err)
			break
		}
	}
	floor := startFloor(c, dir, root, c.n+views, stops)
	fileFloor := startFileFloor(dir, root, c.n+views, stops)
	checkShapes(root, c.n+views, portal, floor)

	waitMeasured(portal, c.env, volumeName(0))
	waitIdle(portal)

	// Every call is timed alone, as dockerd sends it: a Mount with the
	// container's 64-hex ID, and later, on whatever connection is free, the
	// Unmount with the same ID. The first half of the volumes is mounted
	// by no one between rounds: its Mount makes a new mount. The second
	// half is held mounted under one ID throughout, as a volume that a
	// running container uses: a Mount of it under another ID makes no new
	// mount, and its Unmount leaves the volume mounted.
	getBodies := make([][]byte, c.n)
	for i := range getBodies {
		getBodies[i] = mustJSON(volume.GetRequest{Name: volumeName(i)})
	}
	free, held := c.n/2, c.n-c.n/2
	perSlice := min(c.mounts, free, held) // a volume at most once per slice
	mountBodies := func(ids func(i int) string) (mount, unmount [][]byte) {
		for i := range c.n {
			mount = append(mount, mustJSON(volume.MountRequest{Name: volumeName(i), ID: ids(i)}))
			unmount = append(unmount, mustJSON(volume.UnmountRequest{Name: volumeName(i), ID: ids(i)}))
		}
		return mount, unmount
	}
	mountA, unmountA := mountBodies(func(i int) string { return containerID("a", i) })
	mountB, unmountB := mountBodies(func(i int) string { return containerID("b", i) })
	holdMount, holdUnmount := mountBodies(func(i int) string { return containerID("hold", i) })
	var viewMount, viewUnmount [][]byte
	for i := range views {
		viewMount = append(viewMount, mustJSON(volume.MountRequest{Name: viewName(i), ID: containerID("view", i)}))
		viewUnmount = append(viewUnmount, mustJSON(volume.UnmountRequest{Name: viewName(i), ID: containerID("view", i)}))
	}
	for _, s := range []*server{portal, floor, fileFloor} {
		for i := free; i < c.n; i++ {
			if _, err := s.call("/VolumeDriver.Mount", holdMount[i]); err != nil {
				panic(err)
			}
		}
	}
	freeVol := func(r, k int) int { return (r*perSlice + k) % free }
	heldVol := func(r, k int) int { return free + (r*perSlice+k)%held }
	memory := []phase{
		{row: "Get", call: "Get", fn: func(int) callFn {
			return func(s *server, k int, buf *bytes.Buffer) (time.Duration, error) {
				return timed(s, "/VolumeDriver.Get", getBodies[k%c.n], buf, wantMountpoint)
			}
		}},
		{row: "Path", call: "Path", fn: func(int) callFn {
			return func(s *server, k int, buf *bytes.Buffer) (time.Duration, error) {
				return timed(s, "/VolumeDriver.Path", getBodies[k%c.n], buf, wantMountpoint)
			}
		}},
		{row: "Mount, a new mount", call: "Mount", count: perSlice, file: true, fn: func(r int) callFn {
			return func(s *server, k int, buf *bytes.Buffer) (time.Duration, error) {
				return timed(s, "/VolumeDriver.Mount", mountA[freeVol(r, k)], buf, wantMountpoint)
			}
		}},
		{row: "Unmount, the last mount", call: "Unmount", count: perSlice, file: true, fn: func(r int) callFn {
			return func(s *server, k int, buf *bytes.Buffer) (time.Duration, error) {
				return timed(s, "/VolumeDriver.Unmount", unmountA[freeVol(r, k)], buf, nil)
			}
		}},
		{row: "Mount, volume already mounted (another ID)", call: "Mount", count: perSlice, file: true, fn: func(r int) callFn {
			return func(s *server, k int, buf *bytes.Buffer) (time.Duration, error) {
				return timed(s, "/VolumeDriver.Mount", mountB[heldVol(r, k)], buf, wantMountpoint)
			}
		}},
		{row: "Unmount, volume stays mounted (another ID)", call: "Unmount", count: perSlice, file: true, fn: func(r int) callFn {
			return func(s *server, k int, buf *bytes.Buffer) (time.Duration, error) {
				return timed(s, "/VolumeDriver.Unmount", unmountB[heldVol(r, k)], buf, nil)
			}
		}},
		{row: "Mount, a new view (access=ro)", call: "Mount", count: views, file: true, fn: func(int) callFn {
			return func(s *server, k int, buf *bytes.Buffer) (time.Duration, error) {
				return timed(s, "/VolumeDriver.Mount", viewMount[k], buf, wantMountpoint)
			}
		}},
		{row: "Unmount, the view's last mount", call: "Unmount", count: views, file: true, fn: func(int) callFn {
			return func(s *server, k int, buf *bytes.Buffer) (time.Duration, error) {
				return timed(s, "/VolumeDriver.Unmount", viewUnmount[k], buf, nil)
			}
		}},
		{row: "List", call: "List", fn: func(int) callFn {
			return func(s *server, k int, buf *bytes.Buffer) (time.Duration, error) {
				return timed(s, "/VolumeDriver.List", nil, buf, nil)
			}
		}},
	}
	memory = slices.DeleteFunc(memory, func(p phase) bool { return !c.wants(p.call) || p.file && p.count == 0 })
	defer func() {
		for _, s := range []*server{portal, floor, fileFloor} {
			for i := free; i < c.n; i++ {
				if _, err := s.call("/VolumeDriver.Unmount", holdUnmount[i]); err != nil {
					panic(err)
				}
			}
		}
	}()
	created := 0
	for _, conc := range c.cs {
		waitIdle(portal)
		// The phases run slice by slice: in every round each call runs on
		// every side (the order of the sides rotating) before the next
		// call, so that whatever runs in the background, and drift on a
		// shared machine, falls on every call and side alike. Round -1
		// warms up and is not counted.
		res := make([][]samples, len(memory))
		for r := -1; r < c.rounds; r++ {
			for pi, p := range memory {
				sides := []*server{portal, floor}
				if p.file {
					sides = append(sides, fileFloor)
				}
				if res[pi] == nil {
					res[pi] = make([]samples, len(sides))
				}
				for j := range sides {
					i := (j + r + 1) % len(sides)
					b := runBatch(sides[i], conc, p.count, c.batch, p.fn(r+1))
					if r >= 0 {
						res[pi][i].add(b)
					}
				}
			}
		}
		var rows []row
		for pi, p := range memory {
			rows = append(rows, row{call: p.row, sides: res[pi]})
		}
		// Create and Remove: the same new names on each side; the disk
		// floor does what Create and Remove cannot avoid, in the same
		// file system.
		first := created
		created += c.rounds * c.creates
		rec, err := os.Open(diskDir + "/records")
		if err != nil {
			panic(err)
		}
		disk := diskFloor{dir: diskDir, records: rec}
		createFn := func(base int) callFn {
			return func(s *server, k int, buf *bytes.Buffer) (time.Duration, error) {
				name := createName(base + k)
				if s == nil {
					return disk.create(name)
				}
				body := mustJSON(volume.CreateRequest{Name: name, Options: volumeOpts})
				return timed(s, "/VolumeDriver.Create", body, buf, nil)
			}
		}
		removeFn := func(base int) callFn {
			return func(s *server, k int, buf *bytes.Buffer) (time.Duration, error) {
				name := createName(base + k)
				if s == nil {
					return disk.remove(name)
				}
				return timed(s, "/VolumeDriver.Remove", mustJSON(volume.RemoveRequest{Name: name}), buf, nil)
			}
		}
		three := []*server{portal, floor, nil}
		for _, mk := range []struct {
			name string
			fn   func(base int) callFn
		}{{"Create", createFn}, {"Remove", removeFn}} {
			if !c.wants(mk.name) {
				continue
			}
			res := make([]samples, 3)
			for r := range c.rounds {
				base := first + r*c.creates
				for j := range 3 {
					i := (j + r) % 3
					res[i].add(runBatch(three[i], conc, c.creates, 0, mk.fn(base)))
				}
			}
			rows = append(rows, row{call: mk.name, sides: res, disk: true})
		}
		rec.Close()
		printProtocol(c, conc, rows)
	}
}

// checkShapes makes sure portal-volume and the floor answer Get and List
// alike, so that the floor pays for the same JSON.
func checkShapes(root string, n int, servers ...*server) {
	var keys []string // of the first server's Status
	for _, s := range servers {
		b, err := s.call("/VolumeDriver.Get", mustJSON(volume.GetRequest{Name: volumeName(0)}))
		if err != nil {
			panic(err)
		}
		var g volume.GetResponse
		if err := json.Unmarshal(b, &g); err != nil || g.Volume == nil ||
			g.Volume.Mountpoint != mountpoint(root, volumeName(0)) || g.Volume.CreatedAt == "" {
			panic(fmt.Sprintf("%s: Get answered %s", s.name, b))
		}
		got := slices.Sorted(maps.Keys(g.Volume.Status))
		if keys == nil {
			keys = got
		} else if !slices.Equal(got, keys) {
			panic(fmt.Sprintf("%s: Get's Status has keys %v, %s's %v: give the floor the same", s.name, got, servers[0].name, keys))
		}
		b, err = s.call("/VolumeDriver.List", nil)
		if err != nil {
			panic(err)
		}
		var l volume.ListResponse
		if err := json.Unmarshal(b, &l); err != nil || len(l.Volumes) != n {
			panic(fmt.Sprintf("%s: List answered %d volumes, want %d (%v)", s.name, len(l.Volumes), n, err))
		}
	}
}

// diskFloor is the disk work Create and Remove must do, done directly:
// Create makes app_data/<app> (root 0755) and app_data/<app>/<dir> (the
// volume's owner and mode), and writes a 200-byte record durably (temp
// file, fsync, rename, fsync of the directory); Remove (on_remove=keep)
// unlinks the record and fsyncs the directory.
type diskFloor struct {
	dir     string
	records *os.File
}

var record = bytes.Repeat([]byte("r"), 200)

func (f diskFloor) create(name string) (time.Duration, error) {
	app, sub, _ := strings.Cut(name, "_")
	appDir := f.dir + "/app_data/" + app
	volDir := appDir + "/" + sub
	tmp := f.dir + "/records/.tmp-" + name
	start := time.Now()
	err := mkdirOwned(appDir, 0, 0, 0o755)
	if err == nil {
		err = mkdirOwned(volDir, 1000, 1000, 0o750)
	}
	if err == nil {
		err = writeDurable(tmp, f.dir+"/records/"+name+".json", f.records)
	}
	return time.Since(start), err
}

func (f diskFloor) remove(name string) (time.Duration, error) {
	start := time.Now()
	err := unix.Unlink(f.dir + "/records/" + name + ".json")
	if err == nil {
		err = f.records.Sync()
	}
	return time.Since(start), err
}

func mkdirOwned(path string, uid, gid int, mode uint32) error {
	if err := unix.Mkdir(path, 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", path, err)
	}
	if err := unix.Chown(path, uid, gid); err != nil {
		return err
	}
	return unix.Chmod(path, mode)
}

func writeDurable(tmp, dst string, dir *os.File) error {
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(record)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err == nil {
		err = dir.Sync()
	}
	return err
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func ratio(a, b time.Duration) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", float64(a)/float64(b))
}

func printProtocol(c config, conc int, rows []row) {
	fmt.Printf("## Protocol: %d volumes, C=%d concurrent client(s), %d rounds per side\n\n", c.n, conc, c.rounds)
	fmt.Println("| call | portal-volume calls/s | p50 | p99 | errors | floor calls/s | p50 | p99 | p50 ratio | p99 ratio | server CPU per call, ratio |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		p, f := r.sides[0], r.sides[1]
		errs := fmt.Sprint(p.errors)
		if f.errors > 0 {
			errs += fmt.Sprintf(" (floor %d)", f.errors)
		}
		cpu := "-"
		if p.cpu > 0 && f.cpu > 0 {
			cpu = fmt.Sprintf("%.0f / %.0f µs = %s", us(p.cpuPerCall()), us(f.cpuPerCall()), ratio(p.cpuPerCall(), f.cpuPerCall()))
		}
		fmt.Printf("| %s | %.0f | %s | %s | %s | %.0f | %s | %s | **%s** | %s | %s |\n", r.call,
			p.rate(), ms(p.pct(0.50)), ms(p.pct(0.99)), errs,
			f.rate(), ms(f.pct(0.50)), ms(f.pct(0.99)),
			ratio(p.pct(0.50), f.pct(0.50)), ratio(p.pct(0.99), f.pct(0.99)), cpu)
		for i, s := range r.sides {
			if s.firstErr != nil {
				fmt.Fprintf(os.Stderr, "bench: %s, side %d: %d errors, first: %v\n", r.call, i, s.errors, s.firstErr)
			}
		}
	}
	fmt.Println()
	if !slices.ContainsFunc(rows, func(r row) bool { return len(r.sides) > 2 }) {
		return
	}
	fmt.Println("Against the file work each call cannot avoid: for Mount and Unmount a floor server that also does it (Mount: openat2 of the volume directory as a path descriptor, refusing symlinks, fstat, close; one log append per call), and at a volume's first mount and last unmount also the kernel's view calls (open_tree, mount_setattr, move_mount at the first mount of a volume; umount at its last), measured in the same rounds; for Create and Remove that work done directly in the same file system (mkdir, chown, chmod of app and volume directory, temp file write, fsync, rename, fsync of the directory; unlink, fsync of the directory), added to the protocol floor:")
	fmt.Println()
	fmt.Println("| call | portal-volume p50 | protocol floor p50 | file work p50 | floor + file work p50 | portal-volume / (floor + file work) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		if len(r.sides) < 3 {
			continue
		}
		p, f, w := r.sides[0].pct(0.5), r.sides[1].pct(0.5), r.sides[2].pct(0.5)
		work, both := w, w+f
		if !r.disk {
			work, both = w-f, w
		}
		fmt.Printf("| %s | %s | %s | %s | %s | **%s** |\n", r.call, ms(p), ms(f), ms(work), ms(both), ratio(p, both))
	}
	fmt.Println()
}
