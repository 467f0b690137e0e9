package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/portal/portal-volume/driver"
	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/driver/state"
	"github.com/portal/portal-volume/internal/usage"
)

const usageHelp = `usage: portal-volume usage [--root ROOT] [--json]

Walks the Portal tree and prints, largest first, what each part of it uses
on disk: each app (app_data/<app>) with its volumes' directories, each
shared directory, service_data, the anonymous volumes together, the
plugin's own state, anything else, and the total. For each: bytes on disk
(allocated blocks, as du counts them), apparent bytes, and files. The total
equals du -s --block-size=1 ROOT on a quiet tree with no mount inside.

The walk follows no symlink, crosses into no other mount, counts a file with
several hard links once (in the directory of its first path, in path order),
and says how many entries it could not read. It needs no running plugin: it
reads the plugin's volume records without taking its lock. --json gives the
same figures, exact.

flags:
`

// usageDefaultRoot is the daemon's default --root.
const usageDefaultRoot = "/home/portal/user_data"

// usageReport is what usage prints; with --json, as it is.
type usageReport struct {
	Root       string       `json:"root"`
	MeasuredAt time.Time    `json:"measured_at"`
	Entries    []usageEntry `json:"entries"` // largest first
	Total      usage.Usage  `json:"total"`
	// Unreadable: entries the walk could not read, left out of the
	// figures.
	Unreadable *pathCount `json:"unreadable,omitempty"`
	// Mounts: mount points below the root, not crossed.
	Mounts *pathCount `json:"mounts_not_crossed,omitempty"`
}

// usageEntry is one part of the tree.
type usageEntry struct {
	// Kind: app, shared, service_data, anonymous, state, or other (the
	// root's own directories and anything else).
	Kind string `json:"kind"`
	Name string `json:"name,omitempty"` // the app's or shared directory's
	Dir  string `json:"dir,omitempty"`  // relative to the root
	usage.Usage
	Volumes []volumeUsage `json:"volumes,omitempty"` // an app's, largest first
	// Count: the anonymous volumes' directories.
	Count int `json:"count,omitempty"`
}

type volumeUsage struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
	usage.Usage
}

type pathCount struct {
	Count int64  `json:"count"`
	First string `json:"first"`
}

// The parts of the tree other than apps and shared directories.
var usageParts = []struct{ kind, dir string }{
	{"service_data", "service_data"},
	{"anonymous", "anonymous"},
	{"state", driver.StateDirName},
}

// runUsage is the usage subcommand. It returns the exit code: 0 the
// figures are printed, 1 the tree could not be walked, 2 bad usage.
func runUsage(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := newSubcommand("usage", usageHelp, stderr)
	defRoot := usageDefaultRoot
	if v := getenv("PORTAL_ROOT"); v != "" {
		defRoot = v
	}
	root := fs.String("root", defRoot, "the Portal tree, as the plugin's --root (env PORTAL_ROOT)")
	asJSON := fs.Bool("json", false, "print the figures as JSON")
	rest, code, done := parseArgs(fs, args)
	if done {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "portal-volume usage: "+format+"\n", a...)
		return 1
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "portal-volume usage: unexpected argument %q: usage takes only flags\n", rest[0])
		return 2
	}
	r, err := parseRoot(*root)
	if err != nil {
		fmt.Fprintf(stderr, "portal-volume usage: %v\n", err)
		return 2
	}
	log := logrus.New()
	log.SetOutput(stderr)
	log.SetLevel(logrus.WarnLevel)
	vols, err := state.ReadVolumes(filepath.Join(r, driver.StateDirName), log)
	if err != nil {
		return fail("%v", err)
	}
	progress := showProgress(stderr)
	rep, err := measureTree(r, vols, progress.progress)
	progress.done()
	if err != nil {
		return fail("%v", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail("%v", err)
		}
	} else {
		printUsage(stdout, rep)
	}
	if rep.Unreadable != nil {
		fmt.Fprintf(stderr, "portal-volume usage: %d entries could not be read and are left out (first: %s)\n", rep.Unreadable.Count, rep.Unreadable.First)
	}
	return 0
}

// measureTree walks root once and sorts what it finds into the report.
func measureTree(root string, vols []state.Volume, p *usage.Progress) (usageReport, error) {
	apps := subdirs(filepath.Join(root, "app_data"))
	shared := subdirs(filepath.Join(root, "shared"))
	var track []string
	for _, a := range apps {
		track = append(track, "app_data/"+a)
	}
	for _, s := range shared {
		track = append(track, "shared/"+s)
	}
	appVolumes := map[string][]state.Volume{}
	for _, v := range vols {
		if v.Spec.Kind == spec.KindApp {
			appVolumes[v.Spec.App] = append(appVolumes[v.Spec.App], v)
			track = append(track, v.Spec.Dir())
		}
	}
	for _, part := range usageParts {
		track = append(track, part.dir)
	}
	start := time.Now()
	res, err := usage.Walk(context.Background(), root, "", usage.Options{Track: track, Progress: p})
	if err != nil {
		return usageReport{}, err
	}
	rep := usageReport{Root: root, MeasuredAt: start.UTC().Truncate(time.Second), Total: res.Total}
	for _, a := range apps {
		dir := "app_data/" + a
		u, ok := res.Tracked[dir]
		if !ok {
			continue
		}
		e := usageEntry{Kind: "app", Name: a, Dir: dir, Usage: u}
		for _, v := range appVolumes[a] {
			if vu, ok := res.Tracked[v.Spec.Dir()]; ok {
				e.Volumes = append(e.Volumes, volumeUsage{Name: v.Name, Dir: v.Spec.Dir(), Usage: vu})
			}
		}
		slices.SortFunc(e.Volumes, func(a, b volumeUsage) int {
			return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), strings.Compare(a.Dir, b.Dir))
		})
		rep.Entries = append(rep.Entries, e)
	}
	for _, s := range shared {
		dir := "shared/" + s
		if u, ok := res.Tracked[dir]; ok {
			rep.Entries = append(rep.Entries, usageEntry{Kind: "shared", Name: s, Dir: dir, Usage: u})
		}
	}
	for _, part := range usageParts {
		if u, ok := res.Tracked[part.dir]; ok {
			e := usageEntry{Kind: part.kind, Dir: part.dir, Usage: u}
			if part.kind == "anonymous" {
				e.Count = len(subdirs(filepath.Join(root, part.dir)))
			}
			rep.Entries = append(rep.Entries, e)
		}
	}
	other := res.Total
	for _, e := range rep.Entries {
		other.Bytes -= e.Bytes
		other.ApparentBytes -= e.ApparentBytes
		other.Files -= e.Files
		other.Dirs -= e.Dirs
	}
	rep.Entries = append(rep.Entries, usageEntry{Kind: "other", Usage: other})
	slices.SortStableFunc(rep.Entries, func(a, b usageEntry) int { return cmp.Compare(b.Bytes, a.Bytes) })
	if res.Unreadable > 0 {
		rep.Unreadable = &pathCount{Count: res.Unreadable, First: res.FirstUnreadable}
	}
	if res.Mounts > 0 {
		rep.Mounts = &pathCount{Count: res.Mounts, First: res.FirstMount}
	}
	return rep, nil
}

// subdirs lists the directories in dir (not symlinks to one), sorted; none
// when dir cannot be read (the walk then says so).
func subdirs(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

func printUsage(w io.Writer, rep usageReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ON DISK\tAPPARENT\tFILES\t\t")
	line := func(u usage.Usage, what string) {
		fmt.Fprintf(tw, "%s\t%s\t%d\t\t%s\n", humanBytes(u.Bytes), humanBytes(u.ApparentBytes), u.Files, what)
	}
	for _, e := range rep.Entries {
		switch e.Kind {
		case "app", "shared":
			line(e.Usage, e.Kind+" "+e.Name)
		case "anonymous":
			line(e.Usage, fmt.Sprintf("anonymous volumes (%d)", e.Count))
		case "state":
			line(e.Usage, "portal-volume's state ("+e.Dir+")")
		case "other":
			line(e.Usage, "other (the root's own directories, anything else)")
		default:
			line(e.Usage, e.Dir)
		}
		for _, v := range e.Volumes {
			line(v.Usage, "  volume "+v.Name+" ("+v.Dir+")")
		}
	}
	line(rep.Total, fmt.Sprintf("total %s (%d bytes on disk)", rep.Root, rep.Total.Bytes))
	tw.Flush()
	if rep.Mounts != nil {
		fmt.Fprintf(w, "mount points not crossed: %d (first: %s)\n", rep.Mounts.Count, rep.Mounts.First)
	}
}

// humanBytes is n in binary units, three significant digits.
func humanBytes(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	i := -1
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if f < 10 {
		return fmt.Sprintf("%.2f %ciB", f, units[i])
	}
	if f < 100 {
		return fmt.Sprintf("%.1f %ciB", f, units[i])
	}
	return fmt.Sprintf("%.0f %ciB", f, units[i])
}

// progressLine shows a walk's progress on stderr when it is a terminal.
type progressLine struct {
	progress *usage.Progress // nil when not shown
	stop     chan struct{}
	stopped  chan struct{}
}

func showProgress(stderr io.Writer) progressLine {
	f, ok := stderr.(*os.File)
	if !ok {
		return progressLine{}
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return progressLine{}
	}
	pl := progressLine{progress: &usage.Progress{}, stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(pl.stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				fmt.Fprintf(f, "\rwalking: %d directories, %d files, %s\033[K",
					pl.progress.Dirs.Load(), pl.progress.Files.Load(), humanBytes(pl.progress.Bytes.Load()))
			case <-pl.stop:
				fmt.Fprint(f, "\r\033[K")
				return
			}
		}
	}()
	return pl
}

func (pl progressLine) done() {
	if pl.stop != nil {
		close(pl.stop)
		<-pl.stopped
	}
}
