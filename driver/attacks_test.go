package driver

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/portal/portal-volume/driver/tree"
	"github.com/portal/portal-volume/internal/testutil"
)

// TestAttacks plays symlink attacks against the driver, one per subtest,
// each saying what it attempts. "host" plants are what a careless or hostile
// process on the host could leave; "container" plants are what a container
// can do inside the one volume it has mounted. In every case the driver may
// refuse or succeed, but it must never create, chown, mount or delete
// anything outside the volume it names: the outside directory, another
// app's tree and the other volume must stay exactly as they were.
func TestAttacks(t *testing.T) {
	attacks := []struct {
		name, attempt string
		// plant prepares the tree: root is the plugin's root, outside a
		// directory beside it, victim another app's volume directory.
		plant func(t *testing.T, d volume.Driver, root, outside, victim string)
		// act is the call under attack; refused says it must fail with an
		// error that names a symlink.
		act     func(d volume.Driver) error
		refused bool
	}{
		{
			name:    "host: volume root is a symlink out, before Create",
			attempt: "make Create chown and chmod a directory outside the root",
			plant: func(t *testing.T, _ volume.Driver, root, outside, _ string) {
				symlink(t, outside, filepath.Join(root, "app_data/evil/data"))
			},
			act:     createCall("evil_data", map[string]string{"uid": "1000", "mode": "0777"}),
			refused: true,
		},
		{
			name:    "host: app directory is a symlink out, before Create",
			attempt: "make Create mkdir below a directory outside the root",
			plant: func(t *testing.T, _ volume.Driver, root, outside, _ string) {
				symlink(t, outside, filepath.Join(root, "app_data/evil"))
			},
			act:     createCall("evil_data", nil),
			refused: true,
		},
		{
			name:    "host: app directory is a symlink into another app's tree",
			attempt: "adopt and chown the victim app's data as another app's volume",
			plant: func(t *testing.T, _ volume.Driver, root, _, _ string) {
				symlink(t, "victim", filepath.Join(root, "app_data/evil"))
			},
			act:     createCall("evil_data", map[string]string{"uid": "666"}),
			refused: true,
		},
		{
			name:    "host: app_data itself is a symlink out",
			attempt: "redirect every app's directory outside the root",
			plant: func(t *testing.T, _ volume.Driver, root, outside, _ string) {
				// The victim lives in app_data: move the tree aside first.
				if err := os.Rename(filepath.Join(root, "app_data"), filepath.Join(root, "app_data.real")); err != nil {
					t.Fatal(err)
				}
				symlink(t, outside, filepath.Join(root, "app_data"))
			},
			act:     createCall("evil_data", nil),
			refused: true,
		},
		{
			name:    "host: shared is a symlink out",
			attempt: "make a shared volume outside the root",
			plant: func(t *testing.T, _ volume.Driver, root, outside, _ string) {
				symlink(t, outside, filepath.Join(root, "shared"))
			},
			act:     createCall("evil-media", map[string]string{"shared": "media"}),
			refused: true,
		},
		{
			name:    "host: volume root swapped for a symlink out, between Create and Mount",
			attempt: "make Mount re-apply owner and mode outside, and hand Docker an outside path",
			plant: func(t *testing.T, d volume.Driver, root, outside, _ string) {
				create(t, d, "evil_data", map[string]string{"uid": "1000", "mode": "0777"})
				swap(t, outside, filepath.Join(root, "app_data/evil/data"))
			},
			act:     mountCall("evil_data"),
			refused: true,
		},
		{
			name:    "host: a parent swapped for a symlink into another app, between Create and Mount",
			attempt: "make Mount chown the victim's directory",
			plant: func(t *testing.T, d volume.Driver, root, _, _ string) {
				create(t, d, "evil-deep", map[string]string{"app": "evil", "path": "/victim/data", "uid": "666"})
				swap(t, "../victim", filepath.Join(root, "app_data/evil/victim"))
			},
			act:     mountCall("evil-deep"),
			refused: true,
		},
		{
			name:    "host: volume root swapped for a symlink out, before Remove with delete",
			attempt: "make Remove delete the outside directory's content",
			plant: func(t *testing.T, d volume.Driver, root, outside, _ string) {
				create(t, d, "evil_data", map[string]string{"on_remove": "delete"})
				swap(t, outside, filepath.Join(root, "app_data/evil/data"))
			},
			act:     removeCall("evil_data"),
			refused: true,
		},
		{
			name:    "container: symlinks inside its own volume, before Remove with delete",
			attempt: "make Remove follow links to outside, to another app and to the root",
			plant: func(t *testing.T, d volume.Driver, root, outside, victim string) {
				create(t, d, "evil_data", map[string]string{"on_remove": "delete"})
				dir := filepath.Join(root, "app_data/evil/data")
				symlink(t, outside, filepath.Join(dir, "out"))
				symlink(t, victim, filepath.Join(dir, "victim"))
				symlink(t, "../../../", filepath.Join(dir, "up"))
				symlink(t, "/", filepath.Join(dir, "slash"))
				testutil.Mkdir(t, filepath.Join(dir, "deep/er"))
				symlink(t, outside, filepath.Join(dir, "deep/er/out"))
				if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			act: removeCall("evil_data"),
		},
		{
			name:    "container: its volume root replaced by a symlink from inside is impossible, but a child dir is not",
			attempt: "make Mount re-apply owner and mode through a link the container made in its volume",
			plant: func(t *testing.T, d volume.Driver, root, outside, _ string) {
				create(t, d, "evil_data", map[string]string{"uid": "1000", "mode": "0777"})
				symlink(t, outside, filepath.Join(root, "app_data/evil/data/inner"))
			},
			act: mountCall("evil_data"), // only the volume root is chowned: the link is never touched
		},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			d, _, root := setup(t)
			outside := t.TempDir()
			testutil.Write(t, filepath.Join(outside, "secret"), "outside")
			create(t, d, "victim_data", map[string]string{"uid": "1234", "mode": "0700"})
			victim := filepath.Join(root, "app_data/victim/data")
			testutil.Write(t, filepath.Join(victim, "secret"), "victim")
			beforeOutside, beforeVictim := testutil.Snapshot(t, outside), testutil.Snapshot(t, victim)

			a.plant(t, d, root, outside, victim)
			err := a.act(d)
			switch {
			case a.refused && err == nil:
				t.Errorf("attack %q was not refused", a.attempt)
			case a.refused && (!errors.Is(err, tree.ErrSymlink) || !strings.Contains(err.Error(), root)):
				t.Errorf("refusal does not name the symlink: %v", err)
			case !a.refused && err != nil:
				t.Errorf("call failed: %v", err)
			}
			testutil.Same(t, "outside the root", beforeOutside, testutil.Snapshot(t, outside))
			if _, err := os.Stat(victim); err == nil {
				testutil.Same(t, "the victim app's volume", beforeVictim, testutil.Snapshot(t, victim))
			} else if !strings.Contains(a.name, "app_data itself") {
				t.Errorf("the victim's volume is gone: %v", err)
			}
		})
	}
}

func createCall(name string, opts map[string]string) func(volume.Driver) error {
	return func(d volume.Driver) error { return d.Create(&volume.CreateRequest{Name: name, Options: opts}) }
}

func mountCall(name string) func(volume.Driver) error {
	return func(d volume.Driver) error {
		_, err := d.Mount(&volume.MountRequest{Name: name, ID: "attack"})
		return err
	}
}

func removeCall(name string) func(volume.Driver) error {
	return func(d volume.Driver) error { return d.Remove(&volume.RemoveRequest{Name: name}) }
}

// symlink plants link -> target, making link's parents.
func symlink(t *testing.T, target, link string) {
	t.Helper()
	testutil.Mkdir(t, filepath.Dir(link))
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// swap replaces the directory at link with a symlink to target.
func swap(t *testing.T, target, link string) {
	t.Helper()
	if err := os.RemoveAll(link); err != nil {
		t.Fatal(err)
	}
	symlink(t, target, link)
}
