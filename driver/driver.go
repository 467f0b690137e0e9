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
	"strings"
	"sync"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"

	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/driver/state"
	"github.com/portal/portal-volume/driver/tree"
	"github.com/portal/portal-volume/driver/view"
)

// StateDirName is the default state directory, below the root.
const StateDirName = ".portal-volume"

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
	SharedOwner *view.Owner
}

// Driver implements volume.Driver. One lock guards all of it: calls are
// short, and Docker's own volume store serialises most of them per name
// anyway, so finer locking would buy little and cost clarity.
type Driver struct {
	mu      sync.RWMutex
	tree    *tree.Tree
	records *state.Records
	mounts  *state.Mounts
	parser  spec.Parser
	proc    string
	log     logrus.FieldLogger
	views   *view.Manager // nil when no views are made
	shared  *view.Owner   // the owner of shared directories it makes, nil: root
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
	}
	d := &Driver{
		tree: t, records: records, mounts: mounts,
		parser: spec.Parser{SharedNames: c.SharedNames, Anonymous: c.Anonymous},
		proc:   c.Proc,
		log:    c.Log,
		views:  views,
		shared: c.SharedOwner,
		index:  newIndex(len(vols)),
	}
	entries := make([]entry, len(vols))
	for i, v := range vols {
		entries[i] = makeEntry(t, v)
		d.add(&entries[i])
	}
	c.Log.WithFields(logrus.Fields{"root": t.Root(), "state": c.StateDir, "volumes": len(vols)}).Info("state loaded")
	return d, nil
}

// Close waits for calls in flight and releases the state.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var verr error
	if d.views != nil {
		verr = d.views.Close()
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
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.byName[r.Name]; old != nil {
		if old.sameAs(s) {
			log.Debug("create: volume exists with the same options")
			return nil
		}
		err := changedOptionsError(old)
		log.WithError(err).Warn("create refused")
		return err
	}
	if err := d.conflict(r.Name, s); err != nil {
		log.WithError(err).Warn("create refused")
		return err
	}
	made, err := d.makeDir(s.Dir(), s)
	if err == nil {
		err = d.checkView(s.Dir(), s)
	}
	if err != nil {
		d.unmake(made)
		log.WithError(err).Warn("create refused")
		return err
	}
	v := makeEntry(d.tree, state.Volume{Name: r.Name, Spec: s, CreatedAt: time.Now().UTC().Truncate(time.Second)})
	if err := d.records.Put(v.Volume); err != nil {
		d.unmake(made)
		log.WithError(err).Error("create failed")
		return err
	}
	d.add(&v)
	if made == "" {
		log.Info("volume adopted an existing directory")
	} else {
		log.Info("volume created")
	}
	return nil
}

// Remove forgets the volume; with on_remove=delete it first deletes the
// volume's own directory tree.
func (d *Driver) Remove(r *volume.RemoveRequest) error {
	d.settleStale(r.Name)
	d.mu.Lock()
	defer d.mu.Unlock()
	v, err := d.lookup(r.Name)
	if err != nil {
		return err
	}
	log := withSpec(d.log.WithField("volume", r.Name), v.Spec)
	if n := d.mounts.Count(r.Name) + d.mounts.Stale(r.Name); n > 0 {
		err := fmt.Errorf("volume %q is in use (%d mounts); stop the containers that use it first", r.Name, n)
		log.WithError(err).Warn("remove refused")
		return err
	}
	if n := d.liveViews(r.Name); n > 0 {
		err := fmt.Errorf("volume %q is in use (%d views mounted); stop the containers that use it first", r.Name, n)
		log.WithError(err).Warn("remove refused")
		return err
	}
	// Parse refuses delete for shared and tree volumes; the kind is checked
	// again here because deleting is the one thing that cannot be undone.
	kind := v.Spec.Kind()
	deleted := v.Spec.OnRemove == spec.Delete && (kind == spec.KindApp || kind == spec.KindAnonymous)
	if deleted {
		// The data goes before the record: a crash in between leaves the
		// volume known, and a second Remove finishes the delete.
		if err := d.tree.RemoveDir(v.dir); err != nil {
			log.WithError(err).Error("remove failed while deleting data")
			return err
		}
	}
	if err := d.records.Delete(r.Name); err != nil {
		log.WithError(err).Error("remove failed")
		return err
	}
	d.drop(v)
	if deleted {
		log.Info("volume removed and its directory deleted")
	} else {
		log.Info("volume removed; its directory and data are kept")
	}
	return nil
}

// Mount makes the directory again if it vanished, applies an enforced owner
// and mode again (Docker may have copied an image's directory and its owner
// into the empty volume), and counts the mount.
func (d *Driver) Mount(r *volume.MountRequest) (*volume.MountResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, err := d.lookup(r.Name)
	if err != nil {
		return nil, err
	}
	if _, err := d.makeDir(v.dir, v.Spec); err != nil {
		d.callLog(r.Name, r.ID).WithError(err).Warn("mount refused")
		return nil, err
	}
	mp, err := d.mountView(v, r.ID)
	if err != nil {
		d.callLog(r.Name, r.ID).WithError(err).Error("mount failed: no view")
		return nil, err
	}
	if err := d.mounts.Mount(r.Name, r.ID); err != nil {
		_ = d.unmountView(r.Name, r.ID)
		d.callLog(r.Name, r.ID).WithError(err).Error("mount failed")
		return nil, err
	}
	if mp == "" {
		mp = v.mountpoint
	}
	if d.debug() {
		d.callLog(r.Name, r.ID).WithFields(logrus.Fields{"mounts": d.mounts.Count(r.Name), "mountpoint": mp}).Debug("mounted")
	}
	return &volume.MountResponse{Mountpoint: mp}, nil
}

// Unmount uncounts one mount. An unknown volume or ID is logged, not
// refused: Docker must always be able to let go of a volume.
func (d *Driver) Unmount(r *volume.UnmountRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
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

// Get answers from memory.
func (d *Driver) Get(r *volume.GetRequest) (*volume.GetResponse, error) {
	d.settleStale(r.Name)
	d.mu.RLock()
	defer d.mu.RUnlock()
	v, err := d.lookup(r.Name)
	if err != nil {
		return nil, err
	}
	s := v.Spec
	return &volume.GetResponse{Volume: &volume.Volume{
		Name:       v.Name,
		Mountpoint: v.mountpoint,
		CreatedAt:  v.CreatedAt.Format(time.RFC3339),
		Status: map[string]any{
			spec.KeyApp:      s.App,
			spec.KeyPath:     s.Path,
			spec.KeyUID:      s.UID,
			spec.KeyGID:      s.GID,
			spec.KeyMode:     s.ModeString(),
			spec.KeyShared:   s.Shared,
			spec.KeyTree:     s.Tree,
			spec.KeyOnRemove: s.OnRemove,
			spec.KeyAccess:   s.Access(),
			"owner":          ownerStatus(s),
			"mounts":         d.mounts.Count(v.Name) + d.mounts.Stale(v.Name),
		},
	}}, nil
}

// List answers from memory with names and mountpoints; Get has the rest.
func (d *Driver) List() (*volume.ListResponse, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	vols := make([]*volume.Volume, 0, len(d.byName))
	all := make([]volume.Volume, len(d.byName))
	i := 0
	for _, v := range d.byName {
		all[i] = volume.Volume{Name: v.Name, Mountpoint: v.mountpoint}
		vols = append(vols, &all[i])
		i++
	}
	return &volume.ListResponse{Volumes: vols}, nil
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

func (d *Driver) lookup(name string) (*entry, error) {
	if v := d.byName[name]; v != nil {
		return v, nil
	}
	return nil, fmt.Errorf("no such volume: %q", name)
}

// makeDir makes or adopts the volume's directory and returns the topmost
// directory it made ("" when the volume's directory existed). An enforced
// owner and mode are set; every other directory is made root-owned 0755
// when missing and otherwise used as it is.
func (d *Driver) makeDir(dir string, s spec.Spec) (made string, err error) {
	if !s.Enforce {
		made, err := d.tree.MakeDir(dir, nil)
		if err == nil && s.Shared != "" {
			err = d.sharedOwner(dir, made)
		}
		return made, err
	}
	return d.tree.MakeDir(dir, &tree.Owner{UID: s.UID, GID: s.GID, Mode: s.Mode})
}

// ownerStatus tells in Status who owns the volume root: the plugin
// ("enforced", set at Create and every Mount) or Docker and the app.
func ownerStatus(s spec.Spec) string {
	if s.Enforce {
		return "enforced"
	}
	return "docker"
}

// unmake deletes what a failed Create made, parents included: nothing may
// stay on disk when Create fails. The directories are new and empty, and no
// container has seen them.
func (d *Driver) unmake(made string) {
	if made == "" {
		return
	}
	if err := d.tree.RemoveDir(made); err != nil {
		d.log.WithError(err).WithField("dir", made).Warn("could not delete what a failed create made")
	}
}

func changedOptionsError(old *entry) error {
	how := "docker volume rm keeps its data (on_remove=keep), then create it again"
	if old.Spec.OnRemove == spec.Delete {
		how = "it has on_remove=delete, so docker volume rm deletes its data; move the data away first"
	}
	return fmt.Errorf("volume %q already exists with other options (%s); to change them remove it (%s)",
		old.Name, describe(old.Spec), how)
}

// describe lists a spec as the options that give it.
func describe(s spec.Spec) string {
	var parts []string
	switch s.Kind() {
	case spec.KindShared:
		parts = append(parts, "shared="+s.Shared)
	case spec.KindTree:
		parts = append(parts, "tree="+s.Tree)
	case spec.KindAnonymous:
		parts = append(parts, "anonymous")
	}
	if s.App != "" {
		parts = append(parts, "app="+s.App)
	}
	if s.ReadOnly {
		parts = append(parts, "access=ro")
	}
	if s.IDMap {
		parts = append(parts, fmt.Sprintf("uid=%d gid=%d (id-mapped view)", s.UID, s.GID))
	}
	if k := s.Kind(); k == spec.KindShared || k == spec.KindTree {
		return strings.Join(parts, " ")
	}
	if s.Kind() == spec.KindApp {
		parts = append(parts, "path="+s.Path)
	}
	if s.Enforce {
		parts = append(parts, fmt.Sprintf("uid=%d gid=%d mode=%s", s.UID, s.GID, s.ModeString()))
	} else {
		parts = append(parts, "owner left to Docker and the app")
	}
	return strings.Join(append(parts, "on_remove="+s.OnRemove), " ")
}

func withSpec(log logrus.FieldLogger, s spec.Spec) *logrus.Entry {
	switch s.Kind() {
	case spec.KindShared:
		return log.WithFields(logrus.Fields{"app": s.App, "shared": s.Shared})
	case spec.KindTree:
		return log.WithFields(logrus.Fields{"app": s.App, "tree": s.Tree})
	case spec.KindAnonymous:
		return log.WithField("anonymous", true)
	}
	return log.WithFields(logrus.Fields{"app": s.App, "path": s.Path})
}
