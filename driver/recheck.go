package driver

import (
	"github.com/sirupsen/logrus"

	"github.com/portal/portal-volume/driver/pathwatch"
	"github.com/portal/portal-volume/driver/view"
)

// mountUnchanged counts a Mount of a volume whose view is made, and whose
// path holds, by its watches, the directory a check found there and the
// view shows, without checking the path again: the check would find the
// same, since nothing on the path has changed since it was made (see
// package pathwatch). ok is false when any of that is not known to hold;
// the caller then checks.
func (d *Driver) mountUnchanged(v *entry, id string) (path string, ok bool) {
	c := v.checked.Load()
	if c == nil || !d.watcher.Unchanged(c.Gen) {
		return "", false
	}
	return d.views.MountShown(v.Name, id, c.Dev, c.Ino)
}

// watchPath places the watches of a volume's path ahead of a check whose
// result they are to guard; nil when the path is not worth watching or
// cannot be. A volume without a view yet (most are mounted by one
// container) is checked each time, as every volume was before.
func (d *Driver) watchPath(v *entry) *pathwatch.Set {
	if d.watcher == nil || d.views.Live(v.Name) == 0 {
		return nil
	}
	s, err := d.watcher.Watch(v.dir)
	if err != nil {
		// Once at info, for the operator; then at debug, since a path that
		// is being changed fails here as often as it is mounted.
		level := logrus.DebugLevel
		d.noWatch.Do(func() { level = logrus.InfoLevel })
		d.log.WithError(err).WithField("volume", v.Name).Log(level, "the path of a mounted volume cannot be watched: this Mount checks it")
		return nil
	}
	return s
}

// rememberCheck keeps the watches s placed before the check of v's
// directory that found dir, when they watch that directory, so that the
// next Mount of v can skip the check while nothing changes. Watches it
// does not keep are released.
func (d *Driver) rememberCheck(v *entry, s *pathwatch.Set, dir view.Dir) {
	if s == nil {
		return
	}
	if dir.Dev != s.Dev || dir.Ino != s.Ino {
		d.watcher.Release(s)
		return
	}
	if old := v.checked.Swap(s); old != nil {
		d.watcher.Release(old)
	}
}

// forgetCheck releases the watches of a removed volume's path (none where
// paths are not watched: Release takes a nil Set, also of a nil watcher).
func (d *Driver) forgetCheck(v *entry) {
	d.watcher.Release(v.checked.Swap(nil))
}

// openWatcher starts the watcher of the tree's paths, or nil where they
// cannot be watched (no views, no inotify, not a local file system):
// Mounts then check every time.
func openWatcher(root int, views *view.Manager, log logrus.FieldLogger) *pathwatch.Watcher {
	if views == nil {
		return nil
	}
	if !pathwatch.Local(root) {
		log.Info("the tree is not on a local file system: every Mount checks the volume's path")
		return nil
	}
	w, err := pathwatch.Open(root)
	if err != nil {
		log.WithError(err).Info("paths cannot be watched: every Mount checks the volume's path")
		return nil
	}
	return w
}
