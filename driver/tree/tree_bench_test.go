package tree

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkMountCheck times what every Mount asks of the tree for a
// directory that exists and has its owner already (MakeOpenDir: one
// openat2 that refuses symlinks, one fstat, and the caller's close), by
// as many goroutines as CPUs, and in the same run as many of the
// cheapest system call there is (getppid). A Mount of a volume that is
// mounted already does these three calls and in-memory bookkeeping, so
// the ratio says what the check costs on the machine at hand.
//
//	go test -run '^$' -bench BenchmarkMountCheck -count 3 ./driver/tree
func BenchmarkMountCheck(b *testing.B) {
	root := b.TempDir()
	const rel = "app_data/app/data"
	if err := os.MkdirAll(filepath.Join(root, rel), 0o755); err != nil {
		b.Fatal(err)
	}
	tr, err := Open(root)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(root, rel), &st); err != nil {
		b.Fatal(err)
	}
	perm := &Perm{Owner: Owner{UID: st.Uid, GID: st.Gid}, Mode: st.Mode & 0o7777}

	timed := func(call func()) time.Duration {
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				call()
			}
		})
		return time.Since(start)
	}
	b.ResetTimer()
	check := timed(func() {
		var st unix.Stat_t
		fd, _, err := tr.MakeOpenDir(rel, perm, &st)
		if err != nil {
			b.Error(err)
			return
		}
		_ = unix.Close(fd)
	})
	floor := timed(func() { _ = unix.Getppid() })
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(check.Nanoseconds())/n, "check-ns")
	b.ReportMetric(float64(floor.Nanoseconds())/n, "getppid-ns")
	b.ReportMetric(float64(check)/float64(floor), "check/getppid")
}
