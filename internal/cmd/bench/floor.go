package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/internal/volumeclient"
)

// noopDriver is the floor: every call answers at once with a canned answer
// of the shape portal-volume gives (Get's full Status, List's N entries),
// so that the floor pays the same HTTP and JSON work and nothing else.
type noopDriver struct {
	mountpoint string
	createdAt  string
	status     map[string]any
	list       *volume.ListResponse
}

func newNoopDriver(root string, n int) noopDriver {
	d := noopDriver{
		mountpoint: mountpoint(root, volumeName(0)),
		createdAt:  "2026-01-01T00:00:00Z",
		status: map[string]any{
			"app": "v00000", "path": "/data", "uid": 1000, "gid": 1000, "mode": "0750",
			"shared": "", "tree": "", "on_remove": "keep", "owner": "enforced", "access": "rw", "mounts": 0,
			"usage": map[string]any{"bytes": 4096, "apparent_bytes": 4096, "files": 1, "measured_at": "2026-01-01T00:00:00Z"},
		},
		list: &volume.ListResponse{Volumes: make([]*volume.Volume, n)},
	}
	for i := range n {
		d.list.Volumes[i] = &volume.Volume{Name: volumeName(i), Mountpoint: mountpoint(root, volumeName(i))}
	}
	return d
}

func (noopDriver) Create(*volume.CreateRequest) error { return nil }
func (noopDriver) Remove(*volume.RemoveRequest) error { return nil }
func (d noopDriver) List() (*volume.ListResponse, error) {
	return d.list, nil
}

func (d noopDriver) Get(r *volume.GetRequest) (*volume.GetResponse, error) {
	return &volume.GetResponse{Volume: &volume.Volume{
		Name: r.Name, Mountpoint: d.mountpoint, CreatedAt: d.createdAt, Status: d.status,
	}}, nil
}

func (d noopDriver) Path(*volume.PathRequest) (*volume.PathResponse, error) {
	return &volume.PathResponse{Mountpoint: d.mountpoint}, nil
}

func (d noopDriver) Mount(*volume.MountRequest) (*volume.MountResponse, error) {
	return &volume.MountResponse{Mountpoint: d.mountpoint}, nil
}

func (noopDriver) Unmount(*volume.UnmountRequest) error { return nil }

func (noopDriver) Capabilities() *volume.CapabilitiesResponse {
	return &volume.CapabilitiesResponse{Capabilities: volume.Capability{Scope: "local"}}
}

// fileFloor is the floor plus the file work that Mount and Unmount cannot
// avoid (Mount re-walks the path without following a symlink and
// applies the owner again; the mount counts survive a crash of the plugin):
// Mount opens the volume's directory in one openat2 that refuses symlinks,
// checks its owner with fstat and appends a line to a log; Unmount appends
// a line. A volume of the view set (viewVolume) gets what the kernel does
// for a read-only view besides: Mount clones the open directory
// (open_tree), makes the clone read-only, nosuid and nodev
// (mount_setattr), makes a directory for it and attaches it there
// (move_mount); Unmount detaches it and removes the directory. Only the
// log append is serialized. It is what a driver that does nothing else
// would cost.
type fileFloor struct {
	noopDriver
	mu    sync.Mutex // the log's
	root  *os.File
	log   *os.File
	views string   // where views are attached
	held  sync.Map // volume name -> *heldView
}

// heldView is a volume's view in the file floor: made by the volume's
// first Mount, shared by its mount IDs, detached by its last Unmount, as
// portal-volume's are.
type heldView struct {
	mu     sync.Mutex
	mounts int
}

func (d *fileFloor) heldView(name string) *heldView {
	h, _ := d.held.LoadOrStore(name, &heldView{})
	return h.(*heldView)
}

func (d *fileFloor) Mount(r *volume.MountRequest) (*volume.MountResponse, error) {
	app, dir, _ := strings.Cut(r.Name, "_")
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH,
	}
	fd, err := unix.Openat2(int(d.root.Fd()), "app_data/"+app+"/"+dir, &how)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	h := d.heldView(r.Name)
	h.mu.Lock()
	if h.mounts == 0 {
		if err := attachView(fd, d.viewPath(r.Name), isViewVolume(r.Name)); err != nil {
			h.mu.Unlock()
			return nil, err
		}
	}
	h.mounts++
	h.mu.Unlock()
	if err := d.append(`{"v":"` + r.Name + `","id":"` + r.ID + `","d":1}` + "\n"); err != nil {
		return nil, err
	}
	return &volume.MountResponse{Mountpoint: d.mountpoint}, nil
}

func (d *fileFloor) Unmount(r *volume.UnmountRequest) error {
	h := d.heldView(r.Name)
	h.mu.Lock()
	if h.mounts == 1 {
		path := d.viewPath(r.Name)
		if err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
			h.mu.Unlock()
			return fmt.Errorf("umount %s: %w", path, err)
		}
	}
	if h.mounts > 0 {
		h.mounts--
	}
	h.mu.Unlock()
	return d.append(`{"v":"` + r.Name + `","id":"` + r.ID + `","d":-1}` + "\n")
}

func (d *fileFloor) append(line string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err := d.log.WriteString(line)
	return err
}

func (d *fileFloor) viewPath(name string) string { return d.views + "/" + name }

// attachView makes a private view of the directory open at fd, read-only,
// nosuid and nodev when readOnly, and attaches it at path (made once and
// kept between mounts), as portal-volume's views are made.
func attachView(fd int, path string, readOnly bool) error {
	clone, err := unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(clone)
	attr := unix.MountAttr{Propagation: unix.MS_PRIVATE}
	if readOnly {
		attr.Attr_set = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	}
	if err := unix.MountSetattr(clone, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return fmt.Errorf("mount_setattr: %w", err)
	}
	if err := unix.Mkdir(path, 0o700); err != nil && err != unix.EEXIST {
		return err
	}
	if err := unix.MoveMount(clone, "", unix.AT_FDCWD, path, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// detachViews detaches and removes whatever views are left in dir: at the
// file floor's exit, and portal-volume's.
func detachViews(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		path := dir + "/" + e.Name()
		_ = unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		_ = unix.Rmdir(path)
	}
}

// serveFloorMain is the floor as a process of its own:
// __floor SOCKET ROOT N [LOG VIEWS], with LOG and VIEWS for the file floor.
func serveFloorMain(args []string) int {
	if len(args) != 3 && len(args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: bench __floor SOCKET ROOT N [MOUNT-LOG VIEWS-DIR]")
		return 2
	}
	n, err := strconv.Atoi(args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	l, err := net.Listen("unix", args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; l.Close() }()
	var d volume.Driver = newNoopDriver(args[1], n)
	if len(args) == 5 {
		if err := os.MkdirAll(args[4], 0o700); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer detachViews(args[4])
		root, err := os.Open(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		log, err := os.OpenFile(args[3], os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		d = &fileFloor{noopDriver: newNoopDriver(args[1], n), root: root, log: log, views: args[4]}
	}
	_ = volume.NewHandler(d).Serve(l)
	return 0
}

// startFloor starts the floor for a portal-volume on root with n volumes:
// in a child process (this program again), or in this process.
func startFloor(c config, dir, root string, n int, stops *cleanups) *server {
	socket := dir + "/floor.sock"
	if c.floor == "process" {
		self, err := os.Executable()
		if err != nil {
			panic(err)
		}
		s := startProcess("floor", socket, dir+"/floor.log", nil, self, floorCommand, socket, root, strconv.Itoa(n))
		stops.add(s.stop)
		return s
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		panic(err)
	}
	stops.add(func() { l.Close() })
	go func() { _ = volume.NewHandler(newNoopDriver(root, n)).Serve(l) }()
	s := &server{name: "floor", socket: socket, client: volumeclient.New(socket, time.Minute, 8)}
	stops.add(s.stop)
	return s
}

// startFileFloor starts the file floor, always as a process of its own,
// on the same root as portal-volume (whose volume directories it opens).
func startFileFloor(dir, root string, n int, stops *cleanups) *server {
	self, err := os.Executable()
	if err != nil {
		panic(err)
	}
	socket := dir + "/file-floor.sock"
	s := startProcess("file floor", socket, dir+"/file-floor.log", nil, self, floorCommand, socket, root, strconv.Itoa(n), dir+"/file-floor-mounts.log", dir+"/file-floor-views")
	stops.add(s.stop)
	return s
}
