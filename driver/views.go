package driver

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/driver/tree"
	"github.com/portal/portal-volume/driver/view"
)

// viewAttrs is what the volume's view does. Kinds that are always viewed
// (spec.KindInfo.NoSuid) get a nosuid, nodev view, and so does every
// read-only or id-mapped view. Any other view behaves as a bind mount of
// the directory, as Docker's local driver gives: set-id programs and
// devices in an app's own volume work as they would there.
func viewAttrs(s spec.Spec) view.Attrs {
	return view.Attrs{
		ReadOnly: s.ReadOnly, IDMap: s.IDMap, UID: s.UID, GID: s.GID,
		NoSuid: s.Kind.Info().NoSuid || s.ReadOnly || s.IDMap,
	}
}

// needsView tells whether the volume's options cannot be had without a
// view.
func needsView(s spec.Spec) bool { return s.ReadOnly || s.IDMap }

// checkView refuses a volume that needs a view when none can be made of its
// directory dir: views unavailable, a file system without idmapped
// mounts, or a root-owned directory for an id-mapped one.
func (d *Driver) checkView(dir string, s spec.Spec) error {
	if !needsView(s) {
		return nil
	}
	if d.views == nil {
		return fmt.Errorf("volume options %s need a view, and this daemon makes none (no views directory)", s.ViewOptions())
	}
	if err := d.views.Available(); err != nil {
		return fmt.Errorf("volume options %s need a view, and views are unavailable here: %w", s.ViewOptions(), err)
	}
	fd, err := d.tree.OpenDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	owner, err := view.OwnerOf(fd)
	if err != nil {
		return err
	}
	if err := d.views.Check(fd, viewAttrs(s), owner); err != nil {
		if re, ok := err.(*view.RootOwnedError); ok {
			re.Dir = d.tree.Path(dir)
		}
		return fmt.Errorf("volume options %s: %w", s.ViewOptions(), err)
	}
	return nil
}

// mountView mounts the volume by id through its view and returns the
// view's path: a mount of the directory the plugin resolved through
// descriptors (open at dirfd), in the views directory where no container writes, so that
// nothing a container does in the tree (a path component swapped for a
// symlink) can redirect what the engine then binds into a container or
// copies an image's content into. The volume's first mount makes the view;
// the others share it. Where no views can be made, volumes whose options
// need none are mounted by their path, and a warning says so once.
func (d *Driver) mountView(v *entry, id string, dir view.Dir) (string, error) {
	var why error
	switch {
	case d.views == nil:
		why = errors.New("no views directory")
	default:
		why = d.views.Available()
	}
	if why != nil {
		if needsView(v.Spec) {
			return "", fmt.Errorf("volume %q needs a view (%s), and this daemon makes none: %w", v.Name, v.Spec.ViewOptions(), why)
		}
		d.noViews.Do(func() {
			d.log.WithError(why).Warn("volumes are mounted by their path, not through a view: " +
				"a container that can write a parent directory of another volume may redirect that volume's next mount")
		})
		return v.mountpoint, nil
	}
	path, replaced, err := d.views.Mount(v.Name, id, dir, viewAttrs(v.Spec))
	if re, ok := err.(*view.RootOwnedError); ok {
		re.Dir = v.mountpoint
	}
	if replaced {
		d.callLog(v.Name, id).WithField("mountpoint", v.mountpoint).
			Warn("the volume's directory was replaced while it was mounted: new mounts get the directory now at its path, running containers keep the one they have")
	}
	return path, err
}

// unmountView uncounts a view's mount; volumes without one have nothing to
// do.
func (d *Driver) unmountView(name, id string) error {
	if d.views == nil {
		return nil
	}
	_, err := d.views.Unmount(name, id)
	return err
}

// forgetView removes the directory a removed volume's views were mounted
// on; what cannot be removed is logged, and goes at the next start.
func (d *Driver) forgetView(name string) {
	if d.views == nil {
		return
	}
	if err := d.views.Forget(name); err != nil {
		d.log.WithError(err).WithField("volume", name).Warn("could not remove the directory of a removed volume's view")
	}
}

// ViewsDir is the directory every view is mounted in, where Mountpoints
// are; "" when the daemon makes no views, or they are unavailable (then a
// Mountpoint is the volume's path). It waits for the probe of whether
// views can be made, which the start began.
func (d *Driver) ViewsDir() string {
	if d.views == nil || d.views.Available() != nil {
		return ""
	}
	return d.views.Dir()
}

// liveViews is how many views of the volume are mounted.
func (d *Driver) liveViews(name string) int {
	if d.views == nil {
		return 0
	}
	return d.views.Live(name)
}

// dropViews detaches and removes every view: a new engine process started,
// and the views of the engine before are no longer Docker's (its running
// containers keep their own mounts). The view manager has a lock of its
// own: callers may hold d.mu or not.
func (d *Driver) dropViews() error {
	if d.views == nil {
		return nil
	}
	if err := d.views.DropAll(); err != nil {
		d.log.WithError(err).WithField("views", d.views.Dir()).Error("could not drop every view of the engine before")
		return err
	}
	d.log.WithField("views", d.views.Dir()).Info("views of the engine before dropped")
	return nil
}

// sharedOwner gives a shared directory the plugin has just made the
// configured owner, so that id-mapped views of it can be made.
func (d *Driver) sharedOwner(dir, made string) error {
	if d.shared == nil || made == "" {
		return nil
	}
	_, err := d.tree.MakeDir(dir, &tree.Perm{Owner: tree.Owner{UID: d.shared.UID, GID: d.shared.GID}, Mode: 0o755})
	return err
}
