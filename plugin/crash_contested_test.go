package main

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// contested are the volumes of the crash test that several workers race
// on at once: one name with the same or other options, several names for
// one directory, and a chain of nesting paths. Their model cannot be
// exact, so the check is what must hold whatever the interleaving: the
// one-name and no-nesting rules among the volumes that exist, and the
// outcome of every call that overlapped no other call on its name.
type contested struct {
	mu      sync.Mutex
	seq     int64
	ops     map[string][]*contestedOp // by volume name, since the last check
	vols    []contestedVol
	decided int // outcomes checked, in all rounds
}

type contestedVol struct {
	name string
	opts req
	dir  string // below app_data
}

type contestedOp struct {
	create     bool
	start, end int64 // end 0: in flight, or cut off by the kill
	ok         bool
}

func newContested() *contested {
	c := &contested{ops: map[string][]*contestedOp{}}
	add := func(name, app, path string, extra ...string) {
		o := req{"app": app, "path": path}
		for i := 0; i+1 < len(extra); i += 2 {
			o[extra[i]] = extra[i+1]
		}
		c.vols = append(c.vols, contestedVol{name, o, app + path})
	}
	add("cx-same", "cx", "/same")
	add("cx-dir-a", "cx", "/dir")
	add("cx-dir-b", "cx", "/dir", "on_remove", "delete")
	add("cx-nest-1", "cx", "/n")
	add("cx-nest-2", "cx", "/n/m", "on_remove", "delete")
	add("cx-nest-3", "cx", "/n/m/o")
	return c
}

// work makes random Creates and Removes of the contested volumes until
// stop, or until a call is cut off by the kill.
func (c *contested) work(s *server, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		v := c.vols[rand.IntN(len(c.vols))]
		op := &contestedOp{create: rand.IntN(3) > 0}
		path, body := "/VolumeDriver.Remove", req{"Name": v.name}
		if op.create {
			opts := v.opts
			if v.name == "cx-same" && rand.IntN(2) == 0 {
				opts = req{"app": "cx", "path": "/same", "uid": "1000"} // other options
			}
			path, body = "/VolumeDriver.Create", req{"Name": v.name, "Opts": opts}
		}
		c.mu.Lock()
		c.seq++
		op.start = c.seq
		c.ops[v.name] = append(c.ops[v.name], op)
		c.mu.Unlock()
		status, _, err := s.post(path, mustJSON(body))
		if err != nil {
			return
		}
		c.mu.Lock()
		c.seq++
		op.end, op.ok = c.seq, status == 200
		c.mu.Unlock()
	}
}

// check runs after a restart, with no worker running.
func (c *contested) check(t *testing.T, s *server, round int) {
	exists := map[string]string{} // name -> dir
	for _, v := range c.vols {
		e, _ := s.call(t, "/VolumeDriver.Get", req{"Name": v.name})
		switch {
		case e == "":
			exists[v.name] = v.dir
		case !strings.Contains(e, "no such volume"):
			t.Errorf("round %d: Get %s: %s", round, v.name, e)
		}
	}
	for a, da := range exists {
		for b, db := range exists {
			if a < b && (da == db || strings.HasPrefix(da, db+"/") || strings.HasPrefix(db, da+"/")) {
				t.Errorf("round %d: %s (%s) and %s (%s) both exist", round, a, da, b, db)
			}
		}
	}
	for name, ops := range c.ops {
		if want, known := settled(ops); known {
			c.decided++
			if _, got := exists[name]; got != want {
				t.Errorf("round %d: %s exists = %v, but its last call, which overlapped no other, says %v", round, name, got, want)
			}
		}
	}
	c.ops = map[string][]*contestedOp{}
}

// settled tells whether the last call on a name decided whether it exists:
// a call that succeeded, was acknowledged, and overlapped no other call on
// the name (nor did any start after it).
func settled(ops []*contestedOp) (exists, known bool) {
	last := ops[len(ops)-1]
	if last.end == 0 || !last.ok {
		return false, false
	}
	for _, o := range ops[:len(ops)-1] {
		if o.end == 0 || o.end > last.start {
			return false, false
		}
	}
	return last.create, true
}
