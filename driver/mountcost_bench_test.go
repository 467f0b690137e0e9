package driver

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"golang.org/x/sys/unix"
)

// BenchmarkMountCost times what a container start and stop cost the
// plugin, at 1 and 8 clients (each on volumes of its own), b.N rounds per
// client, the phases of a round interleaved:
//
//   - first: Mount of a volume not mounted (it makes the view),
//   - later: Mount of the same volume under another ID (nothing to make),
//   - unmount-shared: Unmount of that ID (the view stays),
//   - unmount-last: Unmount of the first ID (the view goes),
//   - floor-mount: a bare open_tree(OPEN_TREE_CLONE) + mount_setattr +
//     move_mount of a directory beside the volume's, and
//   - floor-umount: the bare umount of that,
//
// and reports each phase's p50 and p99 in µs, and the ratios of first to
// floor-mount and unmount-last to floor-umount, measured in the same run.
// Run: go test -run '^$' -bench BenchmarkMountCost -benchtime 300x ./driver
func BenchmarkMountCost(b *testing.B) {
	for _, kind := range []struct {
		name string
		opts map[string]string
	}{{"plain", nil}, {"ro", map[string]string{"access": "ro"}}} {
		for _, clients := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/clients=%d", kind.name, clients), func(b *testing.B) {
				benchMountCost(b, clients, kind.opts)
			})
		}
	}
}

var mountCostPhases = []string{"first", "later", "unmount-shared", "unmount-last", "floor-mount", "floor-umount"}

func benchMountCost(b *testing.B, clients int, opts map[string]string) {
	d, root := viewDriver(b, nil)
	floorDir := b.TempDir()
	rounds := b.N
	samples := make([][][]time.Duration, clients) // client -> phase -> times
	for c := range clients {
		if err := d.Create(&volume.CreateRequest{Name: fmt.Sprintf("cost%d_data", c), Options: opts}); err != nil {
			b.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, fmt.Sprintf("app_data/floor%d/data", c)), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(floorDir, fmt.Sprint(c)), 0o700); err != nil {
			b.Fatal(err)
		}
		samples[c] = make([][]time.Duration, len(mountCostPhases))
	}
	var setattr unix.MountAttr
	if opts["access"] == "ro" {
		setattr.Attr_set = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	}
	setattr.Propagation = unix.MS_PRIVATE
	b.ResetTimer()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			name := fmt.Sprintf("cost%d_data", c)
			src := filepath.Join(root, fmt.Sprintf("app_data/floor%d/data", c))
			dst := filepath.Join(floorDir, fmt.Sprint(c))
			s := samples[c]
			timed := func(phase int, f func() error) {
				start := time.Now()
				err := f()
				s[phase] = append(s[phase], time.Since(start))
				if err != nil {
					b.Error(err)
				}
			}
			for i := range rounds {
				a, o := fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)
				timed(0, func() error { _, err := d.Mount(&volume.MountRequest{Name: name, ID: a}); return err })
				timed(1, func() error { _, err := d.Mount(&volume.MountRequest{Name: name, ID: o}); return err })
				timed(2, func() error { return d.Unmount(&volume.UnmountRequest{Name: name, ID: o}) })
				timed(3, func() error { return d.Unmount(&volume.UnmountRequest{Name: name, ID: a}) })
				timed(4, func() error {
					fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
					if err != nil {
						return err
					}
					defer unix.Close(fd)
					if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &setattr); err != nil {
						return err
					}
					return unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH)
				})
				timed(5, func() error { return unix.Unmount(dst, unix.MNT_DETACH) })
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	p50 := map[string]float64{}
	for p, phase := range mountCostPhases {
		var all []time.Duration
		for c := range clients {
			all = append(all, samples[c][p]...)
		}
		slices.Sort(all)
		p50[phase] = float64(all[len(all)/2].Nanoseconds()) / 1e3
		b.ReportMetric(p50[phase], phase+"-p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Nanoseconds())/1e3, phase+"-p99-µs")
	}
	b.ReportMetric(p50["first"]/p50["floor-mount"], "first/floor")
	b.ReportMetric(p50["unmount-last"]/p50["floor-umount"], "unmount-last/floor")
}
