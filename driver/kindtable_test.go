package driver

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/internal/testutil"
)

// TestKindsTable holds every row of spec's kinds table against what the
// driver does with a volume of that kind: where its directory is, whether a
// second name for it is refused, whether a volume inside it may be made,
// whether Remove deletes it, whether it is mounted through a view when its
// options ask for none, and which options it refuses.
func TestKindsTable(t *testing.T) {
	anon := strings.Repeat("0123abcd", 8)
	cases := map[spec.Kind]struct {
		name   string
		opts   map[string]string
		dir    string            // its directory, below the root
		again  map[string]string // options of a second name on the same directory; nil: none can be given
		inside map[string]string // options of an exclusive volume inside its directory; nil: none can be
		remove map[string]string // options asking Remove to delete, when the kind takes any
		other  string            // a name for another volume of the kind; "": name + "-other"
	}{
		spec.KindApp: {name: "gitea_data", dir: "app_data/gitea/data",
			again: map[string]string{"app": "gitea", "path": "/data"}, inside: map[string]string{"app": "gitea", "path": "/data/x"},
			remove: map[string]string{"on_remove": "delete"}},
		spec.KindShared: {name: "media", opts: map[string]string{"shared": "media"}, dir: "shared/media",
			again: map[string]string{"shared": "media", "app": "other"}},
		spec.KindTree: {name: "fm", opts: map[string]string{"tree": "app_data"}, dir: "app_data",
			again: map[string]string{"tree": "app_data", "app": "filebrowser"}, inside: map[string]string{"app": "gitea", "path": "/data"}},
		spec.KindAnonymous: {name: anon, dir: "anonymous/" + anon, remove: map[string]string{}, other: strings.Repeat("4567cdef", 8)},
	}
	for _, kind := range spec.Kinds() {
		k := kind.Info()
		t.Run(k.Name, func(t *testing.T) {
			c, ok := cases[kind]
			if !ok {
				t.Fatalf("kind %s has no case here", k.Name)
			}
			if c.other == "" {
				c.other = c.name + "-other"
			}
			d, root := viewDriver(t, nil)
			opts := c.opts
			if c.remove != nil {
				opts = merge(opts, c.remove)
			}
			create(t, d, c.name, opts)
			if v := get(t, d, c.name); v.Mountpoint != filepath.Join(root, c.dir) {
				t.Errorf("directory %s, want %s (%s)", v.Mountpoint, c.dir, k.Place)
			}
			if !strings.HasPrefix(k.Place, strings.SplitN(c.dir, "/", 2)[0]) {
				t.Errorf("Place %q does not say %s", k.Place, c.dir)
			}

			// Exclusive: a second name for the directory is refused.
			switch {
			case c.again != nil:
				err := d.Create(&volume.CreateRequest{Name: c.name + "-again", Options: c.again})
				if (err != nil) != k.Exclusive {
					t.Errorf("Exclusive %v, a second name on %s: %v", k.Exclusive, c.dir, err)
				}
			case !k.Exclusive:
				t.Errorf("not Exclusive, but no second name can be given")
			}

			// Contains: an exclusive volume inside it is made, or refused.
			if c.inside != nil {
				err := d.Create(&volume.CreateRequest{Name: c.name + "-inside", Options: c.inside})
				if (err == nil) != k.Contains {
					t.Errorf("Contains %v, a volume inside %s: %v", k.Contains, c.dir, err)
				}
				if err == nil {
					remove(t, d, c.name+"-inside")
				}
			} else if k.Contains {
				t.Errorf("Contains, but no volume inside is given")
			}

			// Every kind is mounted through a view; NoSuid: a nosuid, nodev
			// one with options that ask for nothing else.
			mp := mountOf(t, d, c.name, "c1")
			if strings.HasPrefix(mp, root+"/") {
				t.Errorf("mounted at %s, not through a view", mp)
			}
			mo := mountOptions(t, mp)
			if got := strings.Contains(mo, "nosuid") && strings.Contains(mo, "nodev"); got != k.NoSuid {
				t.Errorf("NoSuid %v, view options %q", k.NoSuid, mo)
			}
			unmount(t, d, c.name, "c1")

			// IDMapped: mode is refused, never set on the directory.
			err := d.Create(&volume.CreateRequest{Name: c.other, Options: merge(c.opts, map[string]string{"mode": "0700"})})
			if k.IDMapped != (err != nil) {
				t.Errorf("IDMapped %v, mode=0700: %v", k.IDMapped, err)
			}

			// Options: every key it does not take is refused, naming it.
			for _, key := range []string{spec.KeyApp, spec.KeyPath, spec.KeyUID, spec.KeyGID, spec.KeyMode, spec.KeyOnRemove, spec.KeyAccess} {
				if k.Takes(key) {
					continue
				}
				value := map[string]string{spec.KeyApp: "a", spec.KeyPath: "/p", spec.KeyMode: "0700", spec.KeyOnRemove: "keep"}[key]
				if value == "" {
					value = "1"
				}
				createErr(t, d, c.name, merge(c.opts, map[string]string{key: value}), key)
			}

			// Deletable: Remove deletes the directory, or keeps it and
			// on_remove=delete is refused.
			if !k.Deletable {
				createErr(t, d, c.other, merge(c.opts, map[string]string{"on_remove": "delete"}), "on_remove", "never deleted")
			}
			dir := filepath.Join(root, c.dir)
			testutil.Write(t, filepath.Join(dir, "f"), "x")
			remove(t, d, c.name)
			if exists(dir) == k.Deletable {
				t.Errorf("Deletable %v, after Remove the directory exists = %v", k.Deletable, exists(dir))
			}
		})
	}
}

func merge(a, b map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

func remove(t *testing.T, d volume.Driver, name string) {
	t.Helper()
	if err := d.Remove(&volume.RemoveRequest{Name: name}); err != nil {
		t.Fatalf("Remove(%s): %v", name, err)
	}
}
