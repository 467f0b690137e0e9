// Package driver is portal-volume's volume.Driver: it maps Docker volume
// names and options to directories of the Portal tree,
//
//	<root>/app_data/<app>/<path>   and   <root>/shared/<name>,
//
// keeps one name per directory, refuses nesting, owns the volume roots as
// asked, counts mounts, and keeps its records on the host (package state).
// Naming and validation live in package spec, confined file operations in
// package tree.
package driver

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/driver/pathwatch"
	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/driver/state"
	"github.com/portal/portal-volume/driver/tree"
	"github.com/portal/portal-volume/driver/view"
)

// StateDirName is the default state directory, below the root.
const StateDirName = ".portal-volume"

// DefaultRoot is the Portal tree a daemon serves when not told otherwise.
const DefaultRoot = "/home/portal/user_data"

// Config is what a Driver is made from.
type Config struct {
	Root        string   // the Portal tree; must exist
	StateDir    string   // default <Root>/.portal-volume
	SharedNames []string // the allowed shared directory names
	Anonymous   string   // anonymous volumes: spec.Delete (when ""), spec.Keep or spec.Refuse
	BootID      string   // default: the kernel's
	Proc        string   // where processes' mounts are read (default /proc)
	Log         logrus.FieldLogger
	// ViewsDir is where views are made, outside Root; "" makes none, and
	// volumes that need one are refused.
	ViewsDir string
	// SharedOwner, when set, is given to a shared directory the plugin
	// makes (so that id-mapped views of it can be made).
	SharedOwner *tree.Owner
	// UsageInterval: each volume's disk usage, in Get's Status, is
	// measured in the background at most once per interval; 0 measures
	// none.
	UsageInterval time.Duration
}

// Driver implements volume.Driver. One lock guards the index and the
// entries' states, and is never held across disk work: a Create or Remove
// reserves its name and directory under the lock, makes or deletes on disk
// and writes its record without it (concurrent record writes share their
// flushes), then settles under the lock again. So concurrent creates and
// removes wait for no one's fsync, and Get, List, Path, Mount and Unmount
// wait for no Create or Remove.
//
// Mount holds the lock, shared, only to find the volume and pin it (a
// Remove refuses a pinned volume); the directory check, the view and the
// count are made without it, the view under the volume's own lock in the
// view manager and the count under the mount log's. So Mounts and
// Unmounts of different volumes do not wait for each other's syscalls.
type Driver struct {
	mu sync.RWMutex
	// mounting is held shared by every Mount and Unmount for its whole
	// call, and alone by a new engine generation: no Mount of the engine
	// before is still making a view or a count when its views are dropped.
	mounting sync.RWMutex
	inflight sync.WaitGroup // Creates and Removes past their reservation
	tree     *tree.Tree
	records  *state.Records
	mounts   *state.Mounts
	parser   spec.Parser
	proc     string
	log      logrus.FieldLogger
	listed   atomic.Pointer[listAnswer] // List's last answer
	views    *view.Manager              // nil when no views are made
	shared   *tree.Owner                // the owner of shared directories it makes, nil: root
	usage    *usageRefresher            // nil when usage is not measured
	noViews  sync.Once                  // the warning that volumes are mounted by path
	watcher  *pathwatch.Watcher         // nil when paths are not watched: every Mount checks
	noWatch  sync.Once                  // the note that a path cannot be watched

	// closing is set by Close, under mu: from then on no call starts a
	// change, since the tree's descriptor, the records and the mount log
	// are about to be closed (and the descriptor's number reused).
	closing atomic.Bool
	index
}

var _ volume.Driver = (*Driver)(nil)

// New opens the tree and loads the state; the driver answers correctly from
// its first call.
func New(c Config) (*Driver, error) {
	if c.StateDir == "" {
		c.StateDir = filepath.Join(c.Root, StateDirName)
	}
	if c.BootID == "" {
		c.BootID = state.ReadBootID()
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
	if c.Proc == "" {
		c.Proc = "/proc"
	}
	t, err := tree.Open(c.Root)
	if err != nil {
		return nil, err
	}
	records, vols, err := state.OpenRecords(c.StateDir, c.Log)
	if err != nil {
		t.Close()
		return nil, err
	}
	parser := spec.Parser{SharedNames: c.SharedNames, Anonymous: c.Anonymous}
	vols = checked(parser, vols, records, c.Log)
	mounts, err := state.OpenMounts(c.StateDir, c.BootID, c.Log)
	if err != nil {
		t.Close()
		records.Close()
		return nil, err
	}
	var views *view.Manager
	if c.ViewsDir != "" {
		if views, err = view.Open(c.ViewsDir, t.Root(), c.Log); err != nil {
			t.Close()
			records.Close()
			mounts.Close()
			return nil, err
		}
		// The views of an earlier life of the plugin went as the manager
		// opened; its counts stay, and the views must know them.
		mounts.EachCurrent(views.Counted)
	}
	d := &Driver{
		tree: t, records: records, mounts: mounts,
		parser:  parser,
		proc:    c.Proc,
		log:     c.Log,
		views:   views,
		watcher: openWatcher(t.FD(), views, c.Log),
		shared:  c.SharedOwner,
		index:   newIndex(len(vols)),
	}
	entries := make([]entry, len(vols))
	for i, v := range vols {
		entries[i] = makeEntry(t, v)
		d.add(&entries[i])
	}
	c.Log.WithFields(logrus.Fields{"root": t.Root(), "state": c.StateDir, "volumes": len(vols)}).Info("state loaded")
	d.usage = startUsage(t.Root(), c.UsageInterval, c.Log, d.volumeDirs, backgroundWalk)
	return d, nil
}

// checked is vols without the volumes whose records say what no Create
// makes (a path with "..", a tree that is no tree): the state directory is
// trusted no further than a client. Those are set aside and logged.
func checked(p spec.Parser, vols []state.Volume, records *state.Records, log logrus.FieldLogger) []state.Volume {
	// A few µs a record: on every core, at 100,000 records.
	errs := make([]error, len(vols))
	workers := min(runtime.GOMAXPROCS(0), len(vols)/1024+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(vols); i += workers {
				errs[i] = p.Check(vols[i].Name, vols[i].Spec)
			}
		})
	}
	wg.Wait()
	kept := vols[:0]
	for i, v := range vols {
		if errs[i] != nil {
			_ = records.SetAside(v, errs[i], log)
			continue
		}
		kept = append(kept, v)
	}
	return kept
}

// Close waits for calls in flight and releases the state.
func (d *Driver) Close() error {
	d.usage.stop() // before the lock, which its next look at the volumes takes
	// A closed listener stops no request on a connection the engine keeps
	// open: those are refused from here.
	d.mu.Lock()
	d.closing.Store(true)
	d.mu.Unlock()
	d.inflight.Wait()
	d.mounting.Lock() // and for Mounts and Unmounts
	defer d.mounting.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	var verr error
	if d.views != nil {
		verr = d.views.Close()
	}
	if d.watcher != nil {
		verr = errors.Join(verr, d.watcher.Close())
	}
	return errors.Join(d.mounts.Close(), d.records.Close(), d.tree.Close(), verr)
}

// Create makes or adopts the volume's directory and records the volume.
func (d *Driver) Create(r *volume.CreateRequest) error {
	log := d.log.WithField("volume", r.Name)
	s, err := d.parser.Parse(r.Name, r.Options)
	if err != nil {
		log.WithError(err).Warn("create refused")
		return err
	}
	log = withSpec(log, s)
	v, err := d.reserve(r.Name, s)
	if v == nil {
		if err != nil {
			log.WithError(err).Warn("create refused")
		} else {
			log.Debug("create: volume exists with the same options")
		}
		return err
	}
	defer d.inflight.Done()
	made, err := d.makeDir(v.dir, s)
	if err == nil {
		err = d.checkView(v.dir, s)
	}
	if err != nil {
		d.unmake(v.dir, made)
		d.settle(v, false)
		log.WithError(err).Warn("create refused")
		return err
	}
	if err := d.records.Put(v.Volume); err != nil {
		d.unmake(v.dir, made)
		d.settle(v, false)
		log.WithError(err).Error("create failed")
		return err
	}
	d.settle(v, true)
	if made == "" {
		log.Info("volume adopted an existing directory")
	} else {
		log.Info("volume created")
	}
	return nil
}

// reserve takes name and the directory of s for a Create: the entry it
// returns is in the index, so that the one-name and no-nesting rules hold
// against Creates still in flight, but not ready: Get and Mount do not see
// it yet. It returns nil and the refusal, or nil and no error when the
// volume exists with these options. It waits for a Create or Remove of the
// same name in flight to settle first.
func (d *Driver) reserve(name string, s spec.Spec) (*entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		if d.closing.Load() {
			return nil, errClosing
		}
		old := d.byName[name]
		if old == nil {
			break
		}
		if old.settled != nil {
			d.waitSettled(old)
			continue
		}
		if old.sameAs(s) {
			return nil, nil
		}
		return nil, changedOptionsError(old)
	}
	if err := d.conflict(name, s); err != nil {
		return nil, err
	}
	v := makeEntry(d.tree, state.Volume{Name: name, Spec: s, CreatedAt: time.Now().UTC().Truncate(time.Second)})
	v.state, v.settled = creating, make(chan struct{})
	d.add(&v)
	d.inflight.Add(1)
	return &v, nil
}

// waitSettled waits, without the lock, for v's Create or Remove to settle;
// the caller holds the lock before and after.
func (d *Driver) waitSettled(v *entry) {
	ch := v.settled
	d.mu.Unlock()
	<-ch
	d.mu.Lock()
}

// settle ends the Create or Remove in flight on v: kept, v is ready;
// otherwise it leaves the index.
func (d *Driver) settle(v *entry, keep bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if keep {
		if v.state == creating {
			d.changes++ // List shows it from now on
		}
		v.state = ready
	} else {
		d.drop(v)
	}
	close(v.settled)
	v.settled = nil
}

// Remove forgets the volume; with on_remove=delete it first deletes the
// volume's own directory tree.
func (d *Driver) Remove(r *volume.RemoveRequest) error {
	d.settleStale(r.Name)
	v, err := d.reserveRemove(r.Name)
	if v == nil {
		return err
	}
	log := withSpec(d.log.WithField("volume", r.Name), v.Spec)
	if err != nil {
		log.WithError(err).Warn("remove refused")
		return err
	}
	defer d.inflight.Done()
	// Parse refuses delete for kinds that are never deleted; the kind is
	// asked again here because deleting is the one thing that cannot be
	// undone.
	deleted := v.Spec.OnRemove == spec.Delete && v.Spec.Kind.Info().Deletable
	if deleted {
		// The data goes before the record: a crash in between leaves the
		// volume known, and a second Remove finishes the delete.
		if err := d.tree.RemoveDir(v.dir); err != nil {
			d.settle(v, true)
			log.WithError(err).Error("remove failed while deleting data")
			return err
		}
	}
	if err := d.records.Delete(r.Name); err != nil {
		d.settle(v, true)
		log.WithError(err).Error("remove failed")
		return err
	}
	d.settle(v, false)
	d.forgetView(r.Name)
	d.forgetCheck(v)
	if deleted {
		log.Info("volume removed and its directory deleted")
	} else {
		log.Info("volume removed; its directory and data are kept")
	}
	return nil
}

// reserveRemove marks the volume name as being removed: Mount refuses it
// from then on, and a Create of its name or directory waits or is refused.
// It waits for a Create or Remove of the name in flight to settle first. A
// volume in use is returned, not reserved, with the refusal.
func (d *Driver) reserveRemove(name string) (*entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		if d.closing.Load() {
			return nil, errClosing
		}
		v := d.byName[name]
		if v != nil && v.settled != nil {
			d.waitSettled(v)
			continue
		}
		if v == nil {
			return nil, noSuchVolume(name)
		}
		// The pins are read before the counts and views. No Mount can pin
		// while the lock is held, and a Mount counts (and makes its view)
		// before it lets go of its pin; so a Mount that has let go by now
		// is in the counts read next. Read the other way round, a Mount
		// could count just after the counts were read and let go just
		// before the pins were, and both calls would succeed.
		pinned := atomic.LoadInt32(&v.pins) > 0
		// Counts of an earlier engine that the kernel still shows mounted
		// (settleStale dropped the others) are a live container's. One
		// look: a Mount's takeover moves a count from stale to current.
		if current, stale := d.mounts.Counts(name); current+stale > 0 {
			return v, fmt.Errorf("volume %q is in use (%d mounts); stop the containers that use it first", name, current+stale)
		}
		// Before the views: a pinned volume's Mount may hold its view's
		// lock across the kernel's mount calls, which Get, List and every
		// other Mount would wait out behind this lock.
		if pinned {
			return v, fmt.Errorf("volume %q is in use (being mounted); stop the containers that use it first", name)
		}
		if n := d.liveViews(name); n > 0 {
			return v, fmt.Errorf("volume %q is in use (%d views mounted); stop the containers that use it first", name, n)
		}
		v.state, v.settled = removing, make(chan struct{})
		d.inflight.Add(1)
		return v, nil
	}
}

// Mount makes the directory again if it vanished, applies an enforced owner
// and mode again (Docker may have copied an image's directory and its owner
// into the empty volume), counts the mount, and returns the volume's view
// (see mountView).
func (d *Driver) Mount(r *volume.MountRequest) (*volume.MountResponse, error) {
	d.mounting.RLock()
	defer d.mounting.RUnlock()
	v, err := d.pin(r.Name)
	if err != nil {
		return nil, err
	}
	defer atomic.AddInt32(&v.pins, -1)
	mp, checked, err := d.checkAndMount(v, r.ID)
	if err != nil {
		return nil, err
	}
	if err := d.mounts.Mount(r.Name, r.ID); err != nil {
		_ = d.unmountView(r.Name, r.ID)
		d.callLog(r.Name, r.ID).WithError(err).Error("mount failed")
		return nil, err
	}
	if d.debug() {
		d.callLog(r.Name, r.ID).WithFields(logrus.Fields{"mounts": d.mounts.Count(r.Name), "mountpoint": mp, "path_checked": checked}).Debug("mounted")
	}
	return &volume.MountResponse{Mountpoint: mp}, nil
}

// checkAndMount checks the volume's directory (making it when it is
// missing) and mounts its view for id, or counts id on a view whose path
// is known not to have changed since it was last checked (checked is
// false then).
func (d *Driver) checkAndMount(v *entry, id string) (mp string, checked bool, err error) {
	if d.watcher != nil {
		if mp, ok := d.mountUnchanged(v, id); ok {
			return mp, false, nil
		}
	}
	watches := d.watchPath(v)
	var st unix.Stat_t
	fd, _, err := d.makeOpenDir(v.dir, v.Spec, &st)
	if err != nil {
		d.watcher.Release(watches)
		d.callLog(v.Name, id).WithError(err).Warn("mount refused")
		return "", true, err
	}
	dir := view.Dir{FD: fd, Dev: st.Dev, Ino: st.Ino}
	mp, err = d.mountView(v, id, dir)
	_ = unix.Close(fd)
	if err != nil {
		d.watcher.Release(watches)
		d.callLog(v.Name, id).WithError(err).Error("mount failed: no view")
		return "", true, err
	}
	d.rememberCheck(v, watches, dir)
	return mp, true, nil
}

// pin finds the volume name for a Mount and pins it: until the Mount
// unpins it (counted by then, or failed), a Remove refuses it.
func (d *Driver) pin(name string) (*entry, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closing.Load() {
		return nil, errClosing
	}
	v, err := d.lookup(name)
	if err != nil {
		return nil, err
	}
	if v.state == removing {
		return nil, fmt.Errorf("volume %q is being removed", name)
	}
	atomic.AddInt32(&v.pins, 1)
	return v, nil
}

// Unmount uncounts one mount. An unknown volume or ID is logged, not
// refused: Docker must always be able to let go of a volume.
func (d *Driver) Unmount(r *volume.UnmountRequest) error {
	d.mounting.RLock()
	defer d.mounting.RUnlock()
	if d.closing.Load() { // Close waits for the mounting lock after setting it
		return errClosing
	}
	if err := d.unmountView(r.Name, r.ID); err != nil {
		d.callLog(r.Name, r.ID).WithError(err).Error("unmount failed: view stays")
		return err
	}
	known, err := d.mounts.Unmount(r.Name, r.ID)
	switch {
	case err != nil:
		d.callLog(r.Name, r.ID).WithError(err).Error("unmount failed")
		return err
	case !known:
		d.callLog(r.Name, r.ID).Info("unmount of a mount that is not counted; nothing to do")
	case d.debug():
		d.callLog(r.Name, r.ID).WithField("mounts", d.mounts.Count(r.Name)).Debug("unmounted")
	}
	return nil
}

// callLog is the log of one Mount or Unmount: made only when a line is
// written, since these are Docker's hottest calls.
func (d *Driver) callLog(name, id string) *logrus.Entry {
	return d.log.WithFields(logrus.Fields{"volume": name, "id": id})
}

// debug tells whether debug lines are written (true when the logger cannot
// say).
func (d *Driver) debug() bool {
	if l, ok := d.log.(interface{ IsLevelEnabled(logrus.Level) bool }); ok {
		return l.IsLevelEnabled(logrus.DebugLevel)
	}
	return true
}

// Get answers from memory, under the read lock once. Only a volume with
// mount counts of an earlier engine (rare: after the engine restarted) has
// them settled first, and is answered again.
func (d *Driver) Get(r *volume.GetRequest) (*volume.GetResponse, error) {
	res, stale, err := d.get(r.Name)
	if stale {
		d.settleStale(r.Name)
		res, _, err = d.get(r.Name)
	}
	return res, err
}

// get is Get's answer, and whether the volume has stale mount counts.
func (d *Driver) get(name string) (*volume.GetResponse, bool, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	v, err := d.lookup(name)
	if err != nil {
		return nil, false, err
	}
	current, stale := d.mounts.Counts(name)
	status := v.Spec.Status()
	status["mounts"] = current + stale
	status["usage"] = d.usage.status(v.dir)
	return &volume.GetResponse{Volume: &volume.Volume{
		Name:       v.Name,
		Mountpoint: v.mountpoint,
		CreatedAt:  v.CreatedAt.Format(time.RFC3339),
		Status:     status,
	}}, stale > 0, nil
}

// List answers from memory with names and mountpoints; Get has the rest.
// The answer is built once per change of the volumes and then shared by
// every List until the next change (it is only read, to be encoded).
func (d *Driver) List() (*volume.ListResponse, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if c := d.listed.Load(); c != nil && c.changes == d.changes {
		return c.list, nil
	}
	vols := make([]*volume.Volume, 0, len(d.byName))
	all := make([]volume.Volume, len(d.byName))
	i := 0
	for _, v := range d.byName {
		if v.state == creating {
			continue
		}
		all[i] = volume.Volume{Name: v.Name, Mountpoint: v.mountpoint}
		vols = append(vols, &all[i])
		i++
	}
	list := &volume.ListResponse{Volumes: vols}
	// Readers race to store an answer for the same changes: any one will do.
	d.listed.Store(&listAnswer{changes: d.changes, list: list})
	return list, nil
}

// listAnswer is an answer of List, and the changes count it was built at.
type listAnswer struct {
	changes uint64
	list    *volume.ListResponse
}

// Path answers from memory.
func (d *Driver) Path(r *volume.PathRequest) (*volume.PathResponse, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	v, err := d.lookup(r.Name)
	if err != nil {
		return nil, err
	}
	return &volume.PathResponse{Mountpoint: v.mountpoint}, nil
}

// Capabilities: the tree is on this host only.
func (d *Driver) Capabilities() *volume.CapabilitiesResponse {
	return &volume.CapabilitiesResponse{Capabilities: volume.Capability{Scope: "local"}}
}

// lookup finds a volume that exists: one whose Create has not returned
// does not yet.
func (d *Driver) lookup(name string) (*entry, error) {
	if v := d.byName[name]; v != nil && v.state != creating {
		return v, nil
	}
	return nil, noSuchVolume(name)
}

// errClosing refuses a call that would change something once Close began.
var errClosing = errors.New("portal-volume is shutting down; try again once it has started again")

func noSuchVolume(name string) error { return fmt.Errorf("no such volume: %q", name) }

// makeDir makes or adopts the volume's directory and returns the topmost
// directory it made ("" when the volume's directory existed). An enforced
// owner and mode are set; every other directory is made root-owned 0755
// when missing and otherwise used as it is.
func (d *Driver) makeDir(dir string, s spec.Spec) (made string, err error) {
	fd, made, err := d.makeOpenDir(dir, s, nil)
	if err == nil {
		_ = unix.Close(fd)
	}
	return made, err
}

// makeOpenDir is makeDir, and returns a descriptor of the directory
// (when err is nil), which the caller closes, and its stat in st (when
// not nil).
func (d *Driver) makeOpenDir(dir string, s spec.Spec, st *unix.Stat_t) (fd int, made string, err error) {
	var perm *tree.Perm
	if s.Enforce {
		perm = &tree.Perm{Owner: tree.Owner{UID: s.UID, GID: s.GID}, Mode: s.Mode}
	}
	fd, made, err = d.tree.MakeOpenDir(dir, perm, st)
	if err == nil && !s.Enforce && s.Kind == spec.KindShared {
		if err = d.sharedOwner(dir, made); err != nil {
			_ = unix.Close(fd)
		}
	}
	return fd, made, err
}

// unmake deletes what a failed Create made, dir and its parents up to made:
// nothing may stay on disk when Create fails. They are new, and no
// container has seen them; but a concurrent Create may be making a sibling
// in one of the parents, so each is removed only while it is empty.
func (d *Driver) unmake(dir, made string) {
	if made == "" {
		return
	}
	if err := d.tree.RemoveEmpty(dir, made); err != nil {
		d.log.WithError(err).WithField("dir", made).Warn("could not delete what a failed create made")
	}
}

func changedOptionsError(old *entry) error {
	how := "docker volume rm keeps its data (on_remove=keep), then create it again"
	if old.Spec.OnRemove == spec.Delete {
		how = "it has on_remove=delete, so docker volume rm deletes its data; move the data away first"
	}
	return fmt.Errorf("volume %q already exists with other options (%s); to change them remove it (%s)",
		old.Name, old.Spec.Describe(), how)
}

func withSpec(log logrus.FieldLogger, s spec.Spec) *logrus.Entry {
	return log.WithFields(logrus.Fields(s.LogFields()))
}
