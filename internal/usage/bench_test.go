package usage

import (
	"context"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkRefreshWalk walks the tree named by PORTAL_USAGE_BENCH_TREE (see
// scripts/bench-usage.sh) as the daemon's background refresh does, and
// reports the process's CPU time per walk.
func BenchmarkRefreshWalk(b *testing.B) {
	tree := os.Getenv("PORTAL_USAGE_BENCH_TREE")
	if tree == "" {
		b.Skip("PORTAL_USAGE_BENCH_TREE is not set")
	}
	cpu := func() float64 {
		var ru unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &ru)
		return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
	}
	var files int64
	start := cpu()
	for b.Loop() {
		r, err := Walk(context.Background(), tree, "", Options{Workers: 1, Background: true})
		if err != nil {
			b.Fatal(err)
		}
		files = r.Total.Files
	}
	b.ReportMetric((cpu()-start)/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(files), "files")
}
