package driver

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
)

// createAll runs one Create per request at once, each in its own goroutine
// released together, and returns the error of each (nil for a winner).
func createAll(d volume.Driver, reqs []*volume.CreateRequest) []error {
	errs := make([]error, len(reqs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() {
			<-start
			errs[i] = d.Create(r)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// TestCreatesRace: Creates in flight at once keep the one-name and
// no-nesting rules exact: of Creates that exclude each other exactly one
// wins, and every other is refused with an error that names the winner.
// What the driver answers afterwards, and what a restart loads, is exactly
// the winners.
func TestCreatesRace(t *testing.T) {
	const n = 16
	for round := range 20 {
		_, d, root := setup(t)
		var reqs []*volume.CreateRequest
		// One name, the same options: all succeed.
		for range n {
			reqs = append(reqs, &volume.CreateRequest{Name: "same_data"})
		}
		// One name, other options each: one wins.
		for i := range n {
			reqs = append(reqs, &volume.CreateRequest{Name: "opts_data", Options: map[string]string{"uid": fmt.Sprint(i)}})
		}
		// One directory, a name each: one wins.
		for i := range n {
			reqs = append(reqs, &volume.CreateRequest{Name: fmt.Sprintf("dir-%d", i), Options: map[string]string{"app": "dir", "path": "/x"}})
		}
		// A chain of nesting paths, every pair nesting: one wins.
		for i := range n {
			reqs = append(reqs, &volume.CreateRequest{Name: fmt.Sprintf("nest-%d", i),
				Options: map[string]string{"app": "nest", "path": strings.Repeat("/a", i+1)}})
		}
		// Siblings below one new parent: all win; none may undo another's
		// parent.
		for i := range n {
			reqs = append(reqs, &volume.CreateRequest{Name: fmt.Sprintf("sib-%d", i),
				Options: map[string]string{"app": "sib", "path": fmt.Sprintf("/files/s%d", i)}})
		}
		slices.Reverse(reqs[round%2*len(reqs)/2:]) // vary who starts first
		errs := createAll(d, reqs)

		winners := map[string]bool{}
		for i, err := range errs {
			if err == nil {
				winners[reqs[i].Name] = true
			}
		}
		count := func(prefix string) (names []string) {
			for w := range winners {
				if strings.HasPrefix(w, prefix) {
					names = append(names, w)
				}
			}
			return names
		}
		for prefix, want := range map[string]int{"same_data": 1, "opts_data": 1, "dir-": 1, "nest-": 1, "sib-": n} {
			if got := count(prefix); len(got) != want {
				t.Fatalf("round %d: winners %v of %s, want %d", round, got, prefix, want)
			}
		}
		for i, err := range errs {
			r := reqs[i]
			if err == nil || r.Name == "opts_data" {
				if r.Name == "opts_data" && err != nil && !strings.Contains(err.Error(), `"opts_data"`) {
					t.Errorf("opts_data loser: %v", err)
				}
				continue
			}
			prefix := r.Name[:strings.IndexByte(r.Name, '-')+1]
			if winner := count(prefix)[0]; !strings.Contains(err.Error(), fmt.Sprintf("%q", winner)) {
				t.Errorf("round %d: %s lost with %q, which does not name the winner %s", round, r.Name, err, winner)
			}
		}
		listed := slices.Sorted(maps.Keys(listing(t, d)))
		if want := slices.Sorted(maps.Keys(winners)); !slices.Equal(listed, want) {
			t.Fatalf("round %d: List %v, want the winners %v", round, listed, want)
		}
		for i := range n {
			if !exists(filepath.Join(root, "app_data/sib/files", fmt.Sprintf("s%d", i))) {
				t.Fatalf("round %d: sibling s%d has no directory", round, i)
			}
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		again := newDriver(t, root, "boot-1")
		if got := slices.Sorted(maps.Keys(listing(t, again))); !slices.Equal(got, listed) {
			t.Fatalf("round %d: after a restart %v, want %v", round, got, listed)
		}
	}
}

// TestRemoveRacesCreate: a Create of a name, or of a directory, whose
// Remove is in flight waits for it or is refused, never both kept.
func TestRemoveRacesCreate(t *testing.T) {
	d, _, _ := setup(t)
	for i := range 50 {
		name := fmt.Sprintf("rr%d_data", i)
		create(t, d, name, map[string]string{"on_remove": "delete"})
		var rmErr, crErr, nestErr error
		var wg sync.WaitGroup
		wg.Go(func() { rmErr = d.Remove(&volume.RemoveRequest{Name: name}) })
		wg.Go(func() { crErr = d.Create(&volume.CreateRequest{Name: name, Options: map[string]string{"uid": "7"}}) })
		wg.Go(func() {
			nestErr = d.Create(&volume.CreateRequest{Name: fmt.Sprintf("rr%d-in", i),
				Options: map[string]string{"app": fmt.Sprintf("rr%d", i), "path": "/data/in"}})
		})
		wg.Wait()
		if rmErr != nil {
			// The Create with other options came first and was refused, or
			// the nested one... which can only be refused while name lives.
			t.Fatalf("%s: remove: %v", name, rmErr)
		}
		v, err := d.Get(&volume.GetRequest{Name: name})
		switch {
		case crErr == nil && (err != nil || v.Volume.Status["uid"] != uint32(7)):
			t.Fatalf("%s: the create after the remove won, but Get says %v %v", name, v, err)
		case crErr != nil && err == nil:
			t.Fatalf("%s: create refused (%v), remove succeeded, but the volume is there", name, crErr)
		}
		if crErr == nil {
			if nestErr == nil {
				t.Fatalf("%s: both %s and a volume inside it exist", name, name)
			}
			if err := d.Remove(&volume.RemoveRequest{Name: name}); err != nil {
				t.Fatal(err)
			}
		}
		if nestErr == nil {
			if err := d.Remove(&volume.RemoveRequest{Name: fmt.Sprintf("rr%d-in", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := len(listing(t, d)); n != 0 {
		t.Fatalf("%d volumes left", n)
	}
}

// TestRemoveRacesMount: Removes of a volume, tried over and over from the
// moment a Mount of it holds the volume until the Mount answers, are all
// refused, and the Mount is counted until its Unmount. (A Remove that
// comes first is TestConcurrentClients's case in the plugin package.)
func TestRemoveRacesMount(t *testing.T) {
	d, dd, _ := setup(t)
	const name = "rm_data"
	create(t, d, name, nil)
	v := dd.byName[name]
	for round := range 10000 {
		var mountErr error
		var answered atomic.Bool
		removed := 0
		var wg sync.WaitGroup
		wg.Go(func() {
			_, mountErr = d.Mount(&volume.MountRequest{Name: name, ID: "x"})
			answered.Store(true)
		})
		wg.Go(func() {
			for atomic.LoadInt32(&v.pins) == 0 && !answered.Load() {
			}
			// Many tries, so that one lands while the Mount counts and
			// lets go of the volume.
			for !answered.Load() {
				if d.Remove(&volume.RemoveRequest{Name: name}) == nil {
					removed++
					return
				}
			}
		})
		wg.Wait()
		if mountErr != nil || removed > 0 {
			t.Fatalf("round %d: the Mount answered %v and %d Removes succeeded", round, mountErr, removed)
		}
		if n := dd.mounts.Count(name); n != 1 {
			t.Fatalf("round %d: %d mounts counted after one Mount", round, n)
		}
		if err := d.Unmount(&volume.UnmountRequest{Name: name, ID: "x"}); err != nil {
			t.Fatal(err)
		}
	}
}
