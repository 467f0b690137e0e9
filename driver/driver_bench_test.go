package driver

import (
	"fmt"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
)

// benchVolumes is how many volumes each benchmark starts with.
const benchVolumes = 10000

// benchDriver gives a driver holding n volumes, each with its own
// directory, as a Portal host with many apps would.
func benchDriver(b *testing.B, n int) *Driver {
	b.Helper()
	requireRoot(b)
	d := newDriver(b, b.TempDir(), "boot")
	for i := range n {
		err := d.Create(&volume.CreateRequest{Name: benchName(i), Options: map[string]string{"uid": "1000", "gid": "1000", "mode": "750"}})
		if err != nil {
			b.Fatal(err)
		}
	}
	return d
}

func benchName(i int) string { return fmt.Sprintf("app%d_data", i) }

func BenchmarkCreate(b *testing.B) {
	d := benchDriver(b, benchVolumes)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		err := d.Create(&volume.CreateRequest{Name: fmt.Sprintf("new%d_data", i), Options: map[string]string{"uid": "1000"}})
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkGet(b *testing.B) {
	d := benchDriver(b, benchVolumes)
	names := make([]string, benchVolumes)
	for i := range names {
		names[i] = benchName(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r, err := d.Get(&volume.GetRequest{Name: names[i%benchVolumes]})
		if err != nil || r.Volume == nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkMountUnmount(b *testing.B) {
	d := benchDriver(b, benchVolumes)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		name, id := benchName(i%benchVolumes), fmt.Sprintf("%064x", i)
		if _, err := d.Mount(&volume.MountRequest{Name: name, ID: id}); err != nil {
			b.Fatal(err)
		}
		if err := d.Unmount(&volume.UnmountRequest{Name: name, ID: id}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
