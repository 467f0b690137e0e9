package driver

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portal/portal-volume/internal/usage"
)

// usageRefresher measures, in the background, what each volume's directory
// uses on disk, for Get's Status. One thread walks one directory at a time,
// in the idle I/O class and at the lowest CPU priority; each directory is
// walked at most once per interval, and a directory that several volumes
// name (a shared directory, a tree) once for all. No lock of the driver is
// held during a walk, and no call waits for one: Get reads the last
// figures. A volume removed during its walk is simply no longer asked
// about.
type usageRefresher struct {
	root     string
	interval time.Duration
	log      logrus.FieldLogger
	dirs     func() []string // the volumes' directories, now
	walk     func(ctx context.Context, root, dir string) (usage.Result, error)

	mu       sync.RWMutex           // Get reads measured on every call
	measured map[string]measurement // by directory

	cancel context.CancelFunc
	done   chan struct{}
}

// measurement is the last walk of a directory.
type measurement struct {
	usage.Usage
	at         time.Time // when the last walk that succeeded started; zero: none did
	tried      time.Time // when the last walk started
	unreadable int64
}

// usagePoll is how often the refresher looks for directories that are due:
// a new volume is measured within this long (or the interval, when
// shorter) rather than a whole interval later.
const usagePoll = time.Minute

func backgroundWalk(ctx context.Context, root, dir string) (usage.Result, error) {
	return usage.Walk(ctx, root, dir, usage.Options{Workers: 1, Background: true})
}

// startUsage starts the refresher, which measures with walk
// (backgroundWalk but in tests); interval 0 starts none (nil, whose status
// says never measured).
func startUsage(root string, interval time.Duration, log logrus.FieldLogger, dirs func() []string,
	walk func(ctx context.Context, root, dir string) (usage.Result, error)) *usageRefresher {
	if interval <= 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	u := &usageRefresher{root: root, interval: interval, log: log, dirs: dirs, walk: walk,
		measured: map[string]measurement{}, cancel: cancel, done: make(chan struct{})}
	go u.run(ctx)
	return u
}

// stop ends a walk in progress and waits for the refresher to end.
func (u *usageRefresher) stop() {
	if u == nil {
		return
	}
	u.cancel()
	<-u.done
}

// status is the usage part of the Status of a volume whose directory is
// dir.
func (u *usageRefresher) status(dir string) any {
	if u == nil {
		return notMeasured{}
	}
	u.mu.RLock()
	m, ok := u.measured[dir]
	u.mu.RUnlock()
	if !ok || m.at.IsZero() {
		return notMeasured{}
	}
	return &measuredStatus{
		ApparentBytes: m.ApparentBytes,
		Bytes:         m.Bytes,
		Files:         m.Files,
		MeasuredAt:    m.at.UTC().Format(time.RFC3339),
		Unreadable:    m.unreadable,
	}
}

// measuredStatus and notMeasured are what Status shows as usage, as a map
// of these keys would show it (in the order of its sorted keys): structs,
// because Get builds one at every call, and a map costs it several
// allocations more.
type measuredStatus struct {
	ApparentBytes int64  `json:"apparent_bytes"`
	Bytes         int64  `json:"bytes"`
	Files         int64  `json:"files"`
	MeasuredAt    string `json:"measured_at"`
	Unreadable    int64  `json:"unreadable,omitempty"`
}

type notMeasured struct {
	Measured bool `json:"measured"` // always false
}

func (u *usageRefresher) run(ctx context.Context) {
	defer close(u.done)
	// The first walks wait a little: a daemon that just started serves
	// the engine's start-up first.
	wait := min(u.interval, usagePoll)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		next := u.refresh(ctx)
		wait = max(min(time.Until(next), usagePoll), 0)
	}
}

// refresh walks the directories that are due and returns when the next
// one will be.
func (u *usageRefresher) refresh(ctx context.Context) (next time.Time) {
	now := time.Now()
	next = now.Add(u.interval)
	var due []string
	dirs := u.dirs() // before u.mu: Get takes the driver's lock, then u.mu
	u.mu.Lock()
	live := make(map[string]bool, len(dirs))
	for _, dir := range dirs {
		live[dir] = true
		m := u.measured[dir]
		if at := m.tried.Add(u.interval); m.tried.IsZero() || !at.After(now) {
			due = append(due, dir)
		} else if at.Before(next) {
			next = at
		}
	}
	for dir := range u.measured {
		if !live[dir] {
			delete(u.measured, dir)
		}
	}
	u.mu.Unlock()
	if len(due) == 0 {
		return next
	}
	var walked int
	for _, dir := range due {
		start := time.Now()
		r, err := u.walk(ctx, u.root, dir)
		if ctx.Err() != nil {
			return next
		}
		log := u.log.WithField("dir", dir)
		u.mu.Lock()
		m := u.measured[dir]
		m.tried = start
		if err == nil {
			m.Usage, m.at, m.unreadable = r.Total, start, r.Unreadable
		}
		u.measured[dir] = m
		u.mu.Unlock()
		switch {
		case errors.Is(err, fs.ErrNotExist):
			log.Debug("volume directory gone before its usage was measured")
		case err != nil:
			log.WithError(err).Warn("could not measure the disk usage of a volume directory")
		default:
			walked++
			if r.Unreadable > 0 {
				log.WithFields(logrus.Fields{"unreadable": r.Unreadable, "first": r.FirstUnreadable}).
					Warn("disk usage leaves out entries that could not be read")
			}
		}
	}
	u.log.WithFields(logrus.Fields{"directories": walked, "seconds": time.Since(now).Seconds()}).
		Info("disk usage of the volumes measured")
	return next
}

// volumeDirs lists the directories of the volumes that exist, each once.
func (d *Driver) volumeDirs() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	seen := make(map[string]bool, len(d.byName))
	dirs := make([]string, 0, len(d.byName))
	for _, v := range d.byName {
		if v.state != creating && !seen[v.dir] {
			seen[v.dir] = true
			dirs = append(dirs, v.dir)
		}
	}
	return dirs
}
