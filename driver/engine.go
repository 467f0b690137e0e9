package driver

import (
	"fmt"
	"path/filepath"

	"github.com/portal/portal-volume/driver/mountinfo"
)

// EngineStarted tells the driver that a new engine process started using
// the plugin (it sent Plugin.Activate, or, for a managed plugin, started
// it): every mount counted so far becomes stale. A stale count is taken over by the new engine's Mount of the same
// volume and ID, is still decremented by an Unmount, and otherwise counts
// only while the kernel shows the volume's directory mounted somewhere
// (see settleStale).
//
// This is the one place a new engine generation begins; whatever else
// belongs to the engine's earlier life (views made for its mounts) is to
// be let go of from here.
func (d *Driver) EngineStarted() error {
	d.mounting.Lock()
	defer d.mounting.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing.Load() {
		return errClosing
	}
	if err := d.mounts.NewGeneration(); err != nil {
		d.log.WithError(err).Error("could not start a new engine generation; the mount counts stay as they were")
		return err
	}
	d.log.WithField("generation", d.mounts.Generation()).Info("a new engine generation started; earlier mount counts are now stale")
	// Under both locks, so that no Mount of the new engine makes a view
	// before the old ones go, and none of the engine before is halfway. The earlier engine's running containers keep
	// their own copies of the views' mounts.
	return d.dropViews()
}

// settleStale drops the stale mount counts of the volume name when the
// kernel shows its directory mounted nowhere: the containers of the earlier
// engine that used it are gone. The scan of /proc runs outside the lock;
// it runs only for a volume that has stale counts.
func (d *Driver) settleStale(name string) {
	d.mu.RLock()
	v := d.byName[name]
	stale := v != nil && d.mounts.Stale(name) > 0
	gen := d.mounts.Generation()
	d.mu.RUnlock()
	if !stale {
		return
	}
	log := d.log.WithField("volume", name)
	mounted, err := d.mountedSomewhere(v.dir)
	if err != nil {
		log.WithError(err).Warn("cannot tell whether a volume with mounts of an earlier engine is still mounted; counting them as in use")
		return
	}
	if mounted {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing.Load() || d.byName[name] != v || d.mounts.Generation() != gen {
		return // it changed meanwhile; the next call looks again
	}
	ids, err := d.mounts.DropStale(name)
	for _, id := range ids {
		log.WithField("id", id).Info("dropped a mount count of an earlier engine: the directory is mounted nowhere")
	}
	if err != nil {
		log.WithError(err).Warn("could not drop the stale mount counts")
	}
}

// mountedSomewhere asks the kernel whether the directory dir of the tree,
// or one below it, is mounted in any mount namespace.
func (d *Driver) mountedSomewhere(dir string) (bool, error) {
	root, err := filepath.EvalSymlinks(d.tree.Root())
	if err != nil {
		return false, err
	}
	at, err := mountinfo.Locate(filepath.Join(root, dir))
	if err != nil {
		return false, err
	}
	mounted, scan, err := mountinfo.Mounted(d.proc, at)
	switch {
	case err != nil:
		return false, err
	case mounted:
		return true, nil
	case scan.Unreadable > 0:
		// The kernel lets anyone read any process's mountinfo; where
		// something (a security module) forbids it, an unread process may
		// hold the only mount: no answer is better than a wrong one.
		return false, fmt.Errorf("the mounts of %d processes could not be read", scan.Unreadable)
	case scan.Namespaces == 0:
		return false, fmt.Errorf("no mount namespace could be read in %s", d.proc)
	}
	return false, nil
}
