package driver

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/portal/portal-volume/driver/pathwatch"
	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/driver/state"
	"github.com/portal/portal-volume/driver/tree"
)

// entry is a volume as the driver holds it: its record, and its host path,
// made once so that Get, Path, Mount and List answer without building it.
type entry struct {
	state.Volume
	mountpoint string // the host path of dir
	dir        string // Spec.Dir()
	state      entryState
	settled    chan struct{}                 // while creating or removing: closed when that ends
	pins       int32                         // Mounts in progress (atomic): a Remove refuses the volume
	checked    atomic.Pointer[pathwatch.Set] // the watches of dir that guard the last check, nil: none
}

// entryState is where a volume is in its life; the driver's lock guards it.
type entryState int

const (
	ready    entryState = iota
	creating            // reserved by a Create that has not returned: not visible yet
	removing            // reserved by a Remove that has not returned: no new mounts
)

// sameAs tells whether a Create of s asks for this volume: the same spec,
// or, for a record of an earlier format, the same spec but for what that
// format could not say (whether the owner is enforced), so that a client
// that created the volume before an upgrade still can after it.
func (v *entry) sameAs(s spec.Spec) bool {
	if v.Format == 0 {
		s.Enforce = v.Spec.Enforce
	}
	return v.Spec == s
}

func makeEntry(t *tree.Tree, v state.Volume) entry {
	mp := t.Path(v.Spec.Dir())
	// dir shares mountpoint's bytes: one string per volume, not two.
	return entry{Volume: v, mountpoint: mp, dir: mp[len(t.Root())+1:]}
}

// index finds volumes by name and app directories by path, so that the
// one-name and no-nesting rules cost O(path depth), not O(volumes).
type index struct {
	byName  map[string]*entry
	byDir   map[string]*entry // volumes of exclusive kinds only: the others may share and contain
	above   map[string]int    // every proper parent of an exclusive volume's directory -> how many
	changes uint64            // counts changes to what List shows
}

func newIndex(n int) index {
	return index{
		byName: make(map[string]*entry, n),
		byDir:  make(map[string]*entry, n),
		above:  make(map[string]int),
	}
}

func (x *index) add(v *entry) {
	x.changes++
	x.byName[v.Name] = v
	if !v.Spec.Kind.Info().Exclusive {
		return
	}
	x.byDir[v.dir] = v
	for _, p := range parents(v.dir) {
		x.above[p]++
	}
}

func (x *index) drop(v *entry) {
	x.changes++
	delete(x.byName, v.Name)
	if !v.Spec.Kind.Info().Exclusive {
		return
	}
	delete(x.byDir, v.dir)
	for _, p := range parents(v.dir) {
		if x.above[p]--; x.above[p] == 0 {
			delete(x.above, p)
		}
	}
}

// conflict refuses a volume of an exclusive kind whose directory belongs
// to another such volume, lies inside one, or contains one (see
// spec.KindInfo.Exclusive). Volumes of other kinds share their directories
// and may contain the others.
func (x *index) conflict(name string, s spec.Spec) error {
	if !s.Kind.Info().Exclusive {
		return nil
	}
	dir := s.Dir()
	if other := x.byDir[dir]; other != nil {
		return fmt.Errorf("directory %s already belongs to volume %q; use that name, or remove it first", dir, other.Name)
	}
	for _, p := range parents(dir) {
		if other := x.byDir[p]; other != nil {
			return fmt.Errorf("path %s of app %s lies inside volume %q (path %s); volumes may not nest",
				s.Path, s.App, other.Name, other.Spec.Path)
		}
	}
	if x.above[dir] > 0 {
		inner := "another volume"
		for d, v := range x.byDir { // error path only
			if strings.HasPrefix(d, dir+"/") {
				inner = fmt.Sprintf("volume %q (path %s)", v.Name, v.Spec.Path)
				break
			}
		}
		return fmt.Errorf("path %s of app %s contains %s; volumes may not nest", s.Path, s.App, inner)
	}
	return nil
}

// parents lists the proper parents of an exclusive volume's directory
// below its first two components: for app_data/a/x/y, app_data/a/x.
func parents(dir string) []string {
	var ps []string
	// Skip the first two components (app_data/<app>; anonymous/<name>):
	// they are never an exclusive volume's directory below another's.
	start := strings.IndexByte(dir, '/') + 1
	start += strings.IndexByte(dir[start:], '/') + 1
	for i := start; i < len(dir); i++ {
		if dir[i] == '/' {
			ps = append(ps, dir[:i])
		}
	}
	return ps
}
