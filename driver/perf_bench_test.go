package driver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"

	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/driver/state"
)

// protoVolumes is how many volumes the call benchmarks start with: the
// count of scripts/bench's protocol figures.
const protoVolumes = 100

// protoDriver gives a driver with protoVolumes volumes, logging at warn as
// scripts/bench runs the daemon.
func protoDriver(b *testing.B) *Driver {
	b.Helper()
	requireRoot(b)
	log := logrus.New()
	log.Out = io.Discard
	log.SetLevel(logrus.WarnLevel)
	d, err := New(Config{Root: b.TempDir(), SharedNames: sharedNames, BootID: "boot", Log: log})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close() })
	for i := range protoVolumes {
		err := d.Create(&volume.CreateRequest{Name: benchName(i), Options: map[string]string{"uid": "1000", "gid": "1000", "mode": "750"}})
		if err != nil {
			b.Fatal(err)
		}
	}
	return d
}

// BenchmarkCalls times the memory-bound calls in-process: what the driver
// adds to a request, without HTTP.
func BenchmarkCalls(b *testing.B) {
	d := protoDriver(b)
	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := d.Get(&volume.GetRequest{Name: benchName(i % protoVolumes)}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Path", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := d.Path(&volume.PathRequest{Name: benchName(i % protoVolumes)}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("MountUnmount", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			name, id := benchName(i%protoVolumes), fmt.Sprintf("%064x", i)
			if _, err := d.Mount(&volume.MountRequest{Name: name, ID: id}); err != nil {
				b.Fatal(err)
			}
			if err := d.Unmount(&volume.UnmountRequest{Name: name, ID: id}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("List", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.List(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkProtocol serves the driver over a unix socket with
// go-plugins-helpers, as the daemon does, and calls it with a keep-alive
// client, as Docker does; "floor" is the same stack around a driver that
// does nothing. Run with -cpuprofile to see what the driver's share is.
func BenchmarkProtocol(b *testing.B) {
	d := protoDriver(b)
	mp := d.tree.Path("app_data/app0/data")
	floor := floorDriver{mountpoint: mp, list: &volume.ListResponse{}}
	for i := range protoVolumes {
		floor.list.Volumes = append(floor.list.Volumes, &volume.Volume{Name: benchName(i), Mountpoint: mp})
	}
	for _, s := range []struct {
		name string
		drv  volume.Driver
	}{{"driver", d}, {"floor", floor}} {
		sock := filepath.Join(b.TempDir(), "s.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { l.Close() })
		go func() { _ = volume.NewHandler(s.drv).Serve(l) }()
		c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
		b.Cleanup(c.CloseIdleConnections)
		call := func(b *testing.B, method string, req any) {
			body, _ := json.Marshal(req)
			resp, err := c.Post("http://plugin/VolumeDriver."+method, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("%s: %s", method, resp.Status)
			}
		}
		b.Run(s.name+"/Get", func(b *testing.B) {
			i := 0
			for b.Loop() {
				call(b, "Get", volume.GetRequest{Name: benchName(i % protoVolumes)})
				i++
			}
		})
		b.Run(s.name+"/MountUnmount", func(b *testing.B) {
			i := 0
			for b.Loop() {
				name, id := benchName(i%protoVolumes), fmt.Sprintf("%064x", i)
				call(b, "Mount", volume.MountRequest{Name: name, ID: id})
				call(b, "Unmount", volume.UnmountRequest{Name: name, ID: id})
				i++
			}
		})
		b.Run(s.name+"/List", func(b *testing.B) {
			for b.Loop() {
				call(b, "List", nil)
			}
		})
	}
}

// floorDriver answers every call at once.
type floorDriver struct {
	mountpoint string
	list       *volume.ListResponse
}

func (floorDriver) Create(*volume.CreateRequest) error   { return nil }
func (floorDriver) Remove(*volume.RemoveRequest) error   { return nil }
func (floorDriver) Unmount(*volume.UnmountRequest) error { return nil }
func (f floorDriver) List() (*volume.ListResponse, error) {
	return f.list, nil
}

func (f floorDriver) Get(r *volume.GetRequest) (*volume.GetResponse, error) {
	return &volume.GetResponse{Volume: &volume.Volume{Name: r.Name, Mountpoint: f.mountpoint, CreatedAt: "2026-01-01T00:00:00Z",
		Status: map[string]any{"app": "app0", "path": "/data", "uid": 1000, "gid": 1000, "mode": "0750", "shared": "", "on_remove": "keep", "mounts": 0}}}, nil
}

func (f floorDriver) Path(*volume.PathRequest) (*volume.PathResponse, error) {
	return &volume.PathResponse{Mountpoint: f.mountpoint}, nil
}

func (f floorDriver) Mount(*volume.MountRequest) (*volume.MountResponse, error) {
	return &volume.MountResponse{Mountpoint: f.mountpoint}, nil
}

func (floorDriver) Capabilities() *volume.CapabilitiesResponse {
	return &volume.CapabilitiesResponse{Capabilities: volume.Capability{Scope: "local"}}
}

// writeRecords writes n records of volumes named benchName(i) into the
// state directory below root, as state.Records.Put does but without fsync
// (the benchmarks are about reading them).
func writeRecords(b *testing.B, root string, n int) {
	b.Helper()
	dir := filepath.Join(root, StateDirName, "volumes")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	created := time.Now().UTC().Truncate(time.Second)
	for i := range n {
		name := benchName(i)
		v := state.Volume{Name: name, CreatedAt: created, Spec: spec.Spec{
			App: fmt.Sprintf("app%d", i), Path: "/data", UID: 1000, GID: 1000, Mode: 0o750, OnRemove: spec.Keep,
		}}
		data, err := json.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		sum := sha256.Sum256([]byte(name))
		if err := os.WriteFile(filepath.Join(dir, hex.EncodeToString(sum[:16])+".json"), append(data, '\n'), 0o600); err != nil {
			b.Fatal(err)
		}
	}
}

// scaleVolumes is the count of the start-up and memory benchmarks.
const scaleVolumes = 100000

// BenchmarkNew loads scaleVolumes records: the start-up cost.
func BenchmarkNew(b *testing.B) {
	root := b.TempDir()
	writeRecords(b, root, scaleVolumes)
	log := logrus.New()
	log.Out = io.Discard
	b.ReportAllocs()
	for b.Loop() {
		d, err := New(Config{Root: root, SharedNames: sharedNames, BootID: "boot", Log: log})
		if err != nil {
			b.Fatal(err)
		}
		if len(d.byName) != scaleVolumes {
			b.Fatalf("loaded %d volumes", len(d.byName))
		}
		d.Close()
	}
}

// BenchmarkListScale lists scaleVolumes volumes and encodes the answer as
// go-plugins-helpers does; it reports the live heap after load and the
// heap in use at the end of a List.
func BenchmarkListScale(b *testing.B) {
	root := b.TempDir()
	writeRecords(b, root, scaleVolumes)
	log := logrus.New()
	log.Out = io.Discard
	runtime.GC()
	var before, loaded runtime.MemStats
	runtime.ReadMemStats(&before)
	d, err := New(Config{Root: root, SharedNames: sharedNames, BootID: "boot", Log: log})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	runtime.GC()
	runtime.ReadMemStats(&loaded)
	b.ReportAllocs()
	for b.Loop() {
		r, err := d.List()
		if err != nil {
			b.Fatal(err)
		}
		if err := json.NewEncoder(io.Discard).Encode(r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(loaded.HeapAlloc-before.HeapAlloc)/scaleVolumes, "live-B/volume")
}
