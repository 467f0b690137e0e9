package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/docker/go-plugins-helpers/volume"
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
			"shared": "", "on_remove": "keep", "mounts": 0,
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

// serveFloorMain is the floor as a process of its own: __floor SOCKET ROOT N.
func serveFloorMain(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: bench __floor SOCKET ROOT N")
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
	_ = volume.NewHandler(newNoopDriver(args[1], n)).Serve(l)
	return 0
}

// startFloor starts the floor for a portal-volume on root with n volumes:
// in a child process (this program again), or in this process.
func startFloor(c config, dir, root string, stops *cleanups) *server {
	socket := dir + "/floor.sock"
	if c.floor == "process" {
		self, err := os.Executable()
		if err != nil {
			panic(err)
		}
		s := startProcess("floor", socket, dir+"/floor.log", self, floorCommand, socket, root, strconv.Itoa(c.n))
		stops.add(s.stop)
		return s
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		panic(err)
	}
	stops.add(func() { l.Close() })
	go func() { _ = volume.NewHandler(newNoopDriver(root, c.n)).Serve(l) }()
	s := &server{name: "floor", socket: socket, client: newClient(socket, 8)}
	stops.add(s.stop)
	return s
}
