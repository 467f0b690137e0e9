// Command usagetree makes the tree that scripts/bench-usage.sh measures:
// a Portal tree of many small files, some large ones, hard links and
// symlinks, spread over apps, shared directories and service_data the
// way a personal server's tree is. The same flags make the same tree.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
)

func main() {
	dirs := flag.Int("dirs", 20000, "directories")
	files := flag.Int("files", 200000, "files (hard links and symlinks included)")
	apps := flag.Int("apps", 20, "apps under app_data")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: usagetree [flags] DIR")
		os.Exit(2)
	}
	if err := makeTree(flag.Arg(0), *dirs, *files, *apps); err != nil {
		fmt.Fprintln(os.Stderr, "usagetree:", err)
		os.Exit(1)
	}
}

func makeTree(root string, ndirs, nfiles, napps int) error {
	rnd := rand.New(rand.NewPCG(1, 2))
	var dirs []string
	for i := range napps {
		dirs = append(dirs, filepath.Join(root, "app_data", fmt.Sprintf("app%02d", i), "data"))
	}
	for _, s := range []string{"shared/documents", "shared/media", "shared/music", "service_data"} {
		dirs = append(dirs, filepath.Join(root, s))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for i := len(dirs); i < ndirs; i++ {
		d := filepath.Join(dirs[rnd.IntN(len(dirs))], fmt.Sprintf("d%05d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		dirs = append(dirs, d)
	}
	type file struct {
		path, linkTo string
		size         int
		symlink      bool
	}
	plan := make([]file, nfiles)
	for i := range plan {
		f := &plan[i]
		f.path = filepath.Join(dirs[rnd.IntN(len(dirs))], fmt.Sprintf("f%06d", i))
		switch k := rnd.IntN(100); {
		case k < 2 && i > 0: // a hard link to an earlier regular file
			for j := rnd.IntN(i); ; j = rnd.IntN(i) {
				if plan[j].linkTo == "" && !plan[j].symlink {
					f.linkTo = plan[j].path
					break
				}
			}
		case k < 4:
			f.symlink = true
		case k < 5:
			f.size = 64<<10 + rnd.IntN(128<<10)
		case k < 15:
			f.size = 4<<10 + rnd.IntN(60<<10)
		default:
			f.size = rnd.IntN(4 << 10)
		}
	}
	// Regular files first, in parallel; then the links to them.
	zeros := make([]byte, 192<<10)
	errs := make(chan error, 1)
	work := func(todo []file, do func(file) error) {
		var wg sync.WaitGroup
		const workers = 4
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(todo); i += workers {
					if err := do(todo[i]); err != nil {
						select {
						case errs <- err:
						default:
						}
						return
					}
				}
			})
		}
		wg.Wait()
	}
	work(plan, func(f file) error {
		if f.linkTo != "" || f.symlink {
			return nil
		}
		return os.WriteFile(f.path, zeros[:f.size], 0o644)
	})
	work(plan, func(f file) error {
		switch {
		case f.linkTo != "":
			return os.Link(f.linkTo, f.path)
		case f.symlink:
			return os.Symlink("../../../../../../../../etc/passwd", f.path)
		}
		return nil
	})
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}
