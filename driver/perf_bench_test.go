package driver

import (
	"encoding/json"
	"fmt"
	"io"
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
// count of the bench's protocol figures.
const protoVolumes = 100

// BenchmarkCalls times the memory-bound calls in-process with as many
// volumes as the bench's protocol figures: what the driver adds to a
// request, without HTTP. (BenchmarkGet and BenchmarkMountUnmount time the
// same calls with 10,000 volumes.)
func BenchmarkCalls(b *testing.B) {
	d := benchDriver(b, protoVolumes)
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
	b.Run("List", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.List(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// writeRecords writes n records of volumes named benchName(i) into the
// state directory below root, without fsync (the benchmarks are about
// reading them).
func writeRecords(b *testing.B, root string, n int) {
	b.Helper()
	created := time.Now().UTC().Truncate(time.Second)
	vols := make([]state.Volume, n)
	for i := range vols {
		vols[i] = state.Volume{Name: benchName(i), CreatedAt: created, Spec: spec.Spec{
			App: fmt.Sprintf("app%d", i), Path: "/data", UID: 1000, GID: 1000, Mode: 0o750, Enforce: true, OnRemove: spec.Keep,
		}}
	}
	if err := state.Seed(filepath.Join(root, StateDirName), vols); err != nil {
		b.Fatal(err)
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
