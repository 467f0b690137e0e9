package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkDocker is the end-to-end figure: what a docker command costs
// with a portal-volume volume against the same command with Docker's
// built-in local driver, the two interleaved in every iteration (the order
// alternating) so that drift on a shared machine falls on both alike. It
// reports the medians and their ratio (portal-volume / local; the target
// is at most 1.1).
//
//	PORTAL_E2E_DOCKERD=private PORTAL_E2E_MODES=legacy \
//	  go test ./e2e -run '^$' -bench BenchmarkDocker -benchtime 20x
//
// It runs only against the suite's own engine, with the plugin in legacy
// mode at its default log level (info).
func BenchmarkDocker(b *testing.B) {
	if daemon == nil {
		b.Skip("BenchmarkDocker runs only against the suite's own engine: PORTAL_E2E_DOCKERD=private")
	}
	if !slices.Contains(modes, "legacy") {
		b.Skip("BenchmarkDocker runs the plugin in legacy mode: PORTAL_E2E_MODES=legacy")
	}
	// A fresh engine, which knows no plugin but this one.
	if err := daemon.restart(); err != nil {
		b.Fatal(err)
	}
	p := startLegacy(b, b.TempDir(), "--log-level", "info")
	b.Cleanup(p.stop)

	b.Run("volume_create", func(b *testing.B) {
		var names []string
		b.Cleanup(func() {
			for _, n := range names {
				_, _ = docker("volume", "rm", "-f", n)
			}
		})
		interleaved(b, func(portal bool, i int) []string {
			if portal {
				name := fmt.Sprintf("bench%d_data", i)
				names = append(names, name)
				return []string{"volume", "create", "-d", driverName, name}
			}
			name := fmt.Sprintf("bench-local-%d", i)
			names = append(names, name)
			return []string{"volume", "create", "-d", "local", name}
		})
	})

	b.Run("run", func(b *testing.B) {
		const pv, local = "benchrun_data", "bench-local-run"
		b.Cleanup(func() { _, _ = docker("volume", "rm", "-f", pv, local) })
		mustDockerB(b, "volume", "create", "-d", driverName, "-o", "uid=1000", "-o", "gid=1000", pv)
		mustDockerB(b, "volume", "create", "-d", "local", local)
		interleaved(b, func(portal bool, _ int) []string {
			vol := local
			if portal {
				vol = pv
			}
			return []string{"run", "--rm", "-v", vol + ":/v", image, "true"}
		})
	})
}

// interleaved runs, in every iteration i, the docker command args(true, i)
// gives (portal-volume) and the one args(false, i) gives (local), in
// alternating order, timing each, and reports the medians and their ratio.
func interleaved(b *testing.B, args func(portal bool, i int) []string) {
	var times [2][]time.Duration // portal-volume, local
	i := 0
	for b.Loop() {
		for j := range 2 {
			side := (i + j) % 2
			a := args(side == 0, i)
			start := time.Now()
			if _, err := docker(a...); err != nil {
				b.Fatal(err)
			}
			times[side] = append(times[side], time.Since(start))
		}
		i++
	}
	pv, local := median(times[0]), median(times[1])
	b.ReportMetric(float64(pv)/float64(time.Millisecond), "portal-ms")
	b.ReportMetric(float64(local)/float64(time.Millisecond), "local-ms")
	b.ReportMetric(float64(pv)/float64(local), "ratio")
}

func median(d []time.Duration) time.Duration {
	d = slices.Clone(d)
	slices.Sort(d)
	return d[len(d)/2]
}

// mustDockerB is mustDocker for a benchmark.
func mustDockerB(b *testing.B, args ...string) {
	b.Helper()
	if _, err := docker(args...); err != nil {
		b.Fatal(err)
	}
}
