package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/driver"
	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/driver/state"
	"github.com/portal/portal-volume/internal/volumeclient"
)

// startsPerScale is how many times the binary is started on each state
// directory; the median start-up is reported.
const startsPerScale = 3

type scaleResult struct {
	n                     int
	write                 time.Duration
	startups              []time.Duration
	listP50, listMax      time.Duration
	getP50                time.Duration
	rssStart, rssList, hw int // KiB
}

func scaleFigures(c config, tmp string, stops *cleanups) {
	var results []scaleResult
	for _, n := range c.scale {
		results = append(results, scaleOne(c, tmp, n, stops))
	}
	fmt.Println("## Scale")
	fmt.Println()
	fmt.Printf("State directory written with state.Seed (one record file per volume, as a checkpoint writes them); start-up is the median of %d starts, from fork/exec to the first correct Get, with the records in the page cache.\n\n", startsPerScale)
	fmt.Println("| volumes | start-up to first correct Get | List p50 | List max | Get p50 | RSS after start | RSS after List | peak RSS |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		slices.Sort(r.startups)
		fmt.Printf("| %d | %s | %s | %s | %s | %s | %s | %s |\n", r.n,
			ms(r.startups[len(r.startups)/2]), ms(r.listP50), ms(r.listMax), ms(r.getP50),
			mib(r.rssStart), mib(r.rssList), mib(r.hw))
	}
	fmt.Println()
}

func mib(kib int) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func scaleOne(c config, tmp string, n int, stops *cleanups) scaleResult {
	dir := filepath.Join(tmp, fmt.Sprintf("scale-%d", n))
	root := filepath.Join(dir, "root")
	if !c.keep {
		defer os.RemoveAll(dir)
	}
	fmt.Fprintf(os.Stderr, "bench: scale %d: writing records\n", n)
	r := scaleResult{n: n}
	start := time.Now()
	writeRecords(filepath.Join(root, driver.StateDirName), n)
	// On a host the records were written long ago: flush them now, so
	// that their writeback does not run during the start-ups.
	if f, err := os.Open(root); err == nil {
		_ = unix.Syncfs(int(f.Fd()))
		f.Close()
	}
	r.write = time.Since(start)

	socket := dir + "/pv.sock"
	last := volumeName(n - 1)
	getBody := mustJSON(volume.GetRequest{Name: last})
	want := mountpoint(root, last)
	for i := range startsPerScale {
		s, took := startTimed(c, dir, root, socket, getBody, want)
		stops.add(s.stop)
		r.startups = append(r.startups, took)
		if i < startsPerScale-1 {
			s.stop()
			continue
		}
		r.rssStart, _ = procStatus(s.cmd.Process.Pid)
		var buf bytes.Buffer
		var gets, lists []time.Duration
		for range 200 {
			d, err := timed(s, "/VolumeDriver.Get", getBody, &buf, wantMountpoint)
			if err != nil {
				panic(err)
			}
			gets = append(gets, d)
		}
		for k := range 20 {
			d, err := timed(s, "/VolumeDriver.List", nil, &buf, nil)
			if err != nil {
				panic(err)
			}
			if k == 0 {
				var l volume.ListResponse
				if err := json.Unmarshal(buf.Bytes(), &l); err != nil || len(l.Volumes) != n {
					panic(fmt.Sprintf("scale %d: List answered %d volumes (%v); portal-volume log:\n%s", n, len(l.Volumes), err, s.logs()))
				}
			}
			lists = append(lists, d)
		}
		slices.Sort(gets)
		slices.Sort(lists)
		r.getP50, r.listP50, r.listMax = gets[len(gets)/2], lists[len(lists)/2], lists[len(lists)-1]
		r.rssList, r.hw = procStatus(s.cmd.Process.Pid)
		s.stop()
	}
	fmt.Fprintf(os.Stderr, "bench: scale %d: records written and synced in %s; start-ups %v\n", n, r.write.Round(time.Millisecond), r.startups)
	return r
}

// startTimed starts the binary and polls its socket until a Get of the
// last volume answers with the right mountpoint; it returns the time from
// just before fork/exec to that answer.
func startTimed(c config, dir, root, socket string, getBody []byte, want string) (*server, time.Duration) {
	logf, err := os.Create(dir + "/portal-volume.log")
	if err != nil {
		panic(err)
	}
	defer logf.Close()
	cmd := exec.Command(c.binary, "--root", root, "--views", dir+"/views", "--socket", socket, "--log-level", "warn")
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s := &server{name: "portal-volume", socket: socket, log: logf.Name(), client: volumeclient.New(socket, time.Minute, 2)}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	s.cmd = cmd
	wantJSON := []byte(`"Mountpoint":` + strconv.Quote(want))
	for {
		b, err := s.call("/VolumeDriver.Get", getBody)
		if err == nil && bytes.Contains(b, wantJSON) {
			return s, time.Since(start)
		}
		if err == nil {
			s.stop()
			panic(fmt.Sprintf("first Get answered %s, want mountpoint %s", b, want))
		}
		if time.Since(start) > time.Minute {
			s.stop()
			panic(fmt.Sprintf("no correct Get within a minute (%v); log:\n%s", err, s.logs()))
		}
		time.Sleep(time.Millisecond)
	}
}

// writeRecords writes n volume records into the state directory dir,
// without fsync: the figures are about reading them. A start that does not
// find every volume fails the run.
func writeRecords(dir string, n int) {
	created := time.Now().UTC().Truncate(time.Second)
	vols := make([]state.Volume, n)
	for i := range vols {
		name := volumeName(i)
		s, err := spec.Parser{}.Parse(name, volumeOpts)
		if err != nil {
			panic(err)
		}
		vols[i] = state.Volume{Name: name, CreatedAt: created, Spec: s}
	}
	if err := state.Seed(dir, vols); err != nil {
		panic(err)
	}
}

// procStatus returns VmRSS and VmHWM of pid, in KiB.
func procStatus(pid int) (rss, hwm int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return rss, hwm
}
