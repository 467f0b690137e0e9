package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"

	"github.com/portal/portal-volume/driver"
)

// serveVolumes is how many volumes BenchmarkServe starts with: the count of
// the protocol bench's first section.
const serveVolumes = 1000

// BenchmarkServe times Get, Path and List over the daemon's whole serving
// stack (serveDriver on a unix socket, a keep-alive client) with 8
// concurrent clients, against a floor served by the same helpers that
// answers at once with an answer of the same shape. Both run in this
// process, so a CPU profile shows what the driver adds to a request:
//
//	go test ./plugin -run '^$' -bench 'Serve/Get' -cpuprofile cpu.out
func BenchmarkServe(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: the driver chowns volume directories")
	}
	root := b.TempDir()
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetLevel(logrus.WarnLevel)
	d, err := driver.New(driver.Config{Root: root, Log: log})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	for i := range serveVolumes {
		if err := d.Create(&volume.CreateRequest{Name: serveName(i), Options: map[string]string{"uid": "1000", "gid": "1000", "mode": "750"}}); err != nil {
			b.Fatal(err)
		}
	}
	portal := benchSocket(b, func(l net.Listener) { _ = serveDriver(l, d, log) })
	floor := benchSocket(b, func(l net.Listener) { _ = volume.NewHandler(newFloorDriver(d)).Serve(l) })
	bodies := make([][]byte, serveVolumes)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, `{"Name":%q}`, serveName(i))
	}
	for _, call := range []string{"Get", "Path", "List"} {
		for _, side := range []struct {
			name string
			sock string
		}{{"portal", portal}, {"floor", floor}} {
			b.Run(call+"/"+side.name, func(b *testing.B) {
				c := unixClient(side.sock)
				defer c.CloseIdleConnections()
				b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0))) // 8 clients
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					var buf bytes.Buffer
					i := 0
					for pb.Next() {
						resp, err := c.Post("http://plugin/VolumeDriver."+call, "application/json", bytes.NewReader(bodies[i%serveVolumes]))
						if err != nil {
							b.Error(err)
							return
						}
						buf.Reset()
						_, _ = buf.ReadFrom(resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							b.Errorf("%s: %s %s", call, resp.Status, buf.Bytes())
							return
						}
						i++
					}
				})
			})
		}
	}
}

func serveName(i int) string { return fmt.Sprintf("v%05d_data", i) }

func benchSocket(b *testing.B, serve func(net.Listener)) string {
	sock := filepath.Join(b.TempDir(), "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go serve(l)
	return sock
}

// floorDriver answers Get, Path and List at once with the answers the
// driver gave for its first volume (and its List), built before.
type floorDriver struct {
	get  *volume.GetResponse
	path *volume.PathResponse
	list *volume.ListResponse
}

func newFloorDriver(d *driver.Driver) *floorDriver {
	get, err := d.Get(&volume.GetRequest{Name: serveName(0)})
	if err != nil {
		panic(err)
	}
	path, _ := d.Path(&volume.PathRequest{Name: serveName(0)})
	list, _ := d.List()
	return &floorDriver{get: get, path: path, list: list}
}

func (f *floorDriver) Create(*volume.CreateRequest) error { return nil }
func (f *floorDriver) Remove(*volume.RemoveRequest) error { return nil }
func (f *floorDriver) Get(*volume.GetRequest) (*volume.GetResponse, error) {
	return f.get, nil
}
func (f *floorDriver) Path(*volume.PathRequest) (*volume.PathResponse, error) {
	return f.path, nil
}
func (f *floorDriver) List() (*volume.ListResponse, error) { return f.list, nil }
func (f *floorDriver) Mount(*volume.MountRequest) (*volume.MountResponse, error) {
	return &volume.MountResponse{Mountpoint: f.path.Mountpoint}, nil
}
func (f *floorDriver) Unmount(*volume.UnmountRequest) error { return nil }
func (f *floorDriver) Capabilities() *volume.CapabilitiesResponse {
	return &volume.CapabilitiesResponse{Capabilities: volume.Capability{Scope: "local"}}
}
