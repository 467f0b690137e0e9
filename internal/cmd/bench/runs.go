package main

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/portal/portal-volume/internal/volumeclient"
)

// runs times whole runs against a volume plugin that is already serving
// on socket (portal-volume, an earlier release of it, or another plugin
// such as local-persist): for each -n and -c, n Creates by c clients at
// once, then n Removes, and prints the calls per second of each. opts is
// the Create options, "k=v,..." with %d for the volume's number (so each
// volume gets a directory of its own). The volumes are named
// run<n>-<i>.
func runs(c config, socket, opts string) int {
	cl := volumeclient.New(socket, time.Minute, 8)
	defer cl.Close()
	s := &server{name: socket, socket: socket, client: cl}
	fmt.Printf("| volumes | clients | Create calls/s | Remove calls/s |\n|---:|---:|---:|---:|\n")
	for _, n := range c.ns {
		for _, clients := range c.cs {
			name := func(i int) string { return fmt.Sprintf("run%d-%d", n, i) }
			create, err := timeRun(n, clients, func(i int) error {
				_, err := s.call("/VolumeDriver.Create", mustJSON(volume.CreateRequest{Name: name(i), Options: runOptions(opts, i)}))
				return err
			})
			if err != nil {
				fatalf("%s: Create: %v", socket, err)
			}
			remove, err := timeRun(n, clients, func(i int) error {
				_, err := s.call("/VolumeDriver.Remove", mustJSON(volume.RemoveRequest{Name: name(i)}))
				return err
			})
			if err != nil {
				fatalf("%s: Remove: %v", socket, err)
			}
			fmt.Printf("| %d | %d | %.0f | %.0f |\n", n, clients, create, remove)
		}
	}
	return 0
}

// runOptions is opts with %d replaced by i.
func runOptions(opts string, i int) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(opts, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = strings.ReplaceAll(v, "%d", fmt.Sprint(i))
		}
	}
	return out
}

// timeRun calls call(0..n-1) from clients goroutines and returns calls per
// second over the whole run.
func timeRun(n, clients int, call func(i int) error) (float64, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := call(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), first
}
