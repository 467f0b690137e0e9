package driver

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/portal/portal-volume/internal/usage"
)

// BenchmarkCallsDuringWalk times Get and Mount+Unmount while background
// refreshes walk the tree named by PORTAL_USAGE_BENCH_TREE (the tree of
// scripts/bench-usage.sh, through a tree volume of its app_data), and the
// same calls with no walk, alternating in one run: each iteration is one
// round of each. It reports the medians of the rounds' medians and the
// ratios walking/idle.
func BenchmarkCallsDuringWalk(b *testing.B) {
	tree := os.Getenv("PORTAL_USAGE_BENCH_TREE")
	if tree == "" {
		b.Skip("PORTAL_USAGE_BENCH_TREE is not set")
	}
	requireRoot(b)
	d, err := New(Config{Root: tree, StateDir: b.TempDir(), SharedNames: sharedNames, BootID: "boot", Log: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	for name, opts := range map[string]map[string]string{"bench-files": {"tree": "app_data"}, "app00_data": nil} {
		if err := d.Create(&volume.CreateRequest{Name: name, Options: opts}); err != nil {
			b.Fatal(err)
		}
	}
	const calls = 20000
	median := func(f func()) time.Duration {
		d := make([]time.Duration, calls)
		for i := range d {
			start := time.Now()
			f()
			d[i] = time.Since(start)
		}
		slices.Sort(d)
		return d[calls/2]
	}
	get := func() {
		if _, err := d.Get(&volume.GetRequest{Name: "app00_data"}); err != nil {
			b.Fatal(err)
		}
	}
	mountUnmount := func() {
		if _, err := d.Mount(&volume.MountRequest{Name: "app00_data", ID: "bench"}); err != nil {
			b.Fatal(err)
		}
		if err := d.Unmount(&volume.UnmountRequest{Name: "app00_data", ID: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
	walks := make(chan struct{}, 1)
	var idleGet, walkGet, idleMount, walkMount []time.Duration
	for b.Loop() {
		idleGet = append(idleGet, median(get))
		idleMount = append(idleMount, median(mountUnmount))
		// An interval this short walks without a pause.
		d.usage = startUsage(tree, time.Millisecond, quiet(), d.volumeDirs,
			func(ctx context.Context, root, dir string) (usage.Result, error) {
				select {
				case walks <- struct{}{}:
				default:
				}
				return backgroundWalk(ctx, root, dir)
			})
		<-walks
		walkGet = append(walkGet, median(get))
		walkMount = append(walkMount, median(mountUnmount))
		d.usage.stop()
		d.usage = nil
	}
	med := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Nanoseconds())
	}
	b.ReportMetric(med(idleGet), "get-idle-ns")
	b.ReportMetric(med(walkGet), "get-walking-ns")
	b.ReportMetric(med(walkGet)/med(idleGet), "get-ratio")
	b.ReportMetric(med(idleMount), "mount-idle-ns")
	b.ReportMetric(med(walkMount), "mount-walking-ns")
	b.ReportMetric(med(walkMount)/med(idleMount), "mount-ratio")
}
