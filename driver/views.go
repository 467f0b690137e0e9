package driver

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/driver/tree"
	"github.com/portal/portal-volume/driver/view"
)

// viewKind is how a volume is mounted: through a view, or (zero Kind) as
// its directory. Kinds that are always viewed (spec.KindInfo.AlwaysView)
// get a nosuid view whenever views can be made, even a plain rw one.
func (d *Driver) viewKind(s spec.Spec) view.Attrs {
	k := askedView(s)
	if s.Kind.Info().AlwaysView && d.views != nil && d.views.Available() == nil {
		k.NoSuid = true
	}
	return k
}

// askedView is the view the volume's options ask for (zero Kind: none).
func askedView(s spec.Spec) view.Attrs {
	return view.Attrs{ReadOnly: s.ReadOnly, IDMap: s.IDMap, UID: s.UID, GID: s.GID}
}

// checkView refuses a volume that needs a view when none can be made of its
// directory dir: views unavailable, a file system without idmapped
// mounts, or a root-owned directory for an id-mapped one.
func (d *Driver) checkView(dir string, s spec.Spec) error {
	k := askedView(s)
	if !(k.ReadOnly || k.IDMap || k.NoSuid) {
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
	defer closeFd(fd)
	owner, err := view.OwnerOf(fd)
	if err != nil {
		return err
	}
	if err := d.views.Check(fd, k, owner); err != nil {
		if re, ok := err.(*view.RootOwnedError); ok {
			re.Dir = d.tree.Path(dir)
		}
		return fmt.Errorf("volume options %s: %w", s.ViewOptions(), err)
	}
	return nil
}

// mountView mounts the volume by id through its view, when it has one, and
// returns the view's path ("" when it has none).
func (d *Driver) mountView(v *entry, id string) (string, error) {
	k := d.viewKind(v.Spec)
	if !(k.ReadOnly || k.IDMap || k.NoSuid) {
		return "", nil
	}
	if d.views == nil {
		return "", fmt.Errorf("volume %q needs a view (%s), and this daemon makes none", v.Name, v.Spec.ViewOptions())
	}
	fd, err := d.tree.OpenDir(v.dir)
	if err != nil {
		return "", err
	}
	defer closeFd(fd)
	path, err := d.views.Mount(v.Name, id, fd, k)
	if re, ok := err.(*view.RootOwnedError); ok {
		re.Dir = v.mountpoint
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

func closeFd(fd int) { _ = unix.Close(fd) }

// sharedOwner gives a shared directory the plugin has just made the
// configured owner, so that id-mapped views of it can be made.
func (d *Driver) sharedOwner(dir, made string) error {
	if d.shared == nil || made == "" {
		return nil
	}
	_, err := d.tree.MakeDir(dir, &tree.Perm{Owner: tree.Owner{UID: d.shared.UID, GID: d.shared.GID}, Mode: 0o755})
	return err
}
