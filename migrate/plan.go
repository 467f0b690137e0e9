package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/internal/install"
)

// Config is what a plan depends on besides the file.
type Config struct {
	Root        string   // the plugin's root, absolute
	SharedNames []string // the plugin's --shared; nil means spec.DefaultSharedNames
	Project     string   // prefix of shared and tree volume names
	Dir         string   // the compose file's directory, for relative sources
	Home        string   // what "~" means; "" refuses such sources
}

// Volume is one portal-volume volume of the plan: its name, options and
// meaning (install.Volume), and its directory as it is on disk.
type Volume struct {
	install.Volume
	Exists bool   // the directory is there and is adopted as it is
	UID    uint32 // its owner and mode, when it exists
	GID    uint32
	Mode   uint32
}

// Replaced is a bind mount and the volume that takes its place.
type Replaced struct {
	Mount  Mount
	Volume *Volume
}

// Plan is what the override does.
type Plan struct {
	Volumes  []*Volume  // one per directory, in the order first mounted
	Replaced []Replaced // in the file's order
	Kept     []Kept     // bind mounts left as they are, with the reason
}

// MakePlan decides, for every bind mount of f, the volume that replaces it
// or why it stays. It reads the disk (owners, modes, symlinks) and changes
// nothing.
func MakePlan(f *File, cfg Config) (*Plan, error) {
	if !filepath.IsAbs(cfg.Root) {
		return nil, fmt.Errorf("root %q: want an absolute path", cfg.Root)
	}
	if err := spec.CheckApp(cfg.Project); err != nil {
		return nil, fmt.Errorf("project %q (the prefix of shared and tree volume names): %v", cfg.Project, err)
	}
	if cfg.SharedNames == nil {
		cfg.SharedNames = spec.DefaultSharedNames
	}
	root := filepath.Clean(cfg.Root)
	p := &Plan{Kept: slices.Clone(f.Kept)} // entries not read may be bind mounts
	byDir := map[string]*Volume{}
	var candidates []Replaced
	for _, m := range f.Mounts {
		if !m.Bind {
			continue
		}
		v, err := cfg.volume(root, m.Source)
		if err != nil {
			p.Kept = append(p.Kept, Kept{m, err.Error()})
			continue
		}
		if have, ok := byDir[v.Spec.Dir()]; ok {
			v = have
		} else {
			byDir[v.Spec.Dir()] = v
		}
		candidates = append(candidates, Replaced{m, v})
	}
	// Volumes nest in neither direction, but some kinds (trees) hold the
	// others by design: of two directories one inside the other, neither
	// of such a kind, the inner one stays a bind mount.
	for _, r := range candidates {
		if outer := nestedIn(r.Volume, byDir); outer != "" {
			p.Kept = append(p.Kept, Kept{r.Mount, fmt.Sprintf("%s lies inside %s, which is mounted too: volumes may not nest", r.Volume.Spec.Dir(), outer)})
			continue
		}
		p.Replaced = append(p.Replaced, r)
		if !slices.Contains(p.Volumes, r.Volume) {
			p.Volumes = append(p.Volumes, r.Volume)
		}
	}
	slices.SortStableFunc(p.Kept, func(a, b Kept) int {
		if c := strings.Compare(a.Mount.Service, b.Mount.Service); c != 0 {
			return c
		}
		return a.Mount.Index - b.Mount.Index
	})
	return p, nil
}

// nestedIn is the directory of another volume of the plan that v lies
// inside, "" when none; a volume of a kind that contains others neither
// lies inside one nor holds one.
func nestedIn(v *Volume, byDir map[string]*Volume) string {
	if v.Spec.Kind.Info().Contains {
		return ""
	}
	for d := v.Spec.Dir(); ; {
		i := strings.LastIndexByte(d, '/')
		if i < 0 {
			return ""
		}
		d = d[:i]
		if o, ok := byDir[d]; ok && !o.Spec.Kind.Info().Contains {
			return d
		}
	}
}

// volume is the volume for the bind source src, or why there is none.
func (cfg Config) volume(root, src string) (*Volume, error) {
	if hasVariable(src) {
		return nil, errors.New("the source still holds a template or variable: render the file first (as Portal does) and migrate the result")
	}
	abs := src
	switch {
	case src == "~" || strings.HasPrefix(src, "~/"):
		if cfg.Home == "" {
			return nil, errors.New(`"~": no home directory known`)
		}
		abs = cfg.Home + "/" + src[1:]
	case !filepath.IsAbs(src):
		abs = cfg.Dir + "/" + src // cleaned below, after the ".." check
	}
	clean := filepath.Clean(abs)
	rel, inside := under(root, clean)
	if !inside {
		if leavesThroughDotDot(root, abs) {
			return nil, fmt.Errorf("%s leaves the root %s through \"..\" (to %s)", src, root, clean)
		}
		return nil, fmt.Errorf("%s is outside the root %s", clean, root)
	}
	if rel == "" {
		return nil, fmt.Errorf("%s is the root itself: no volume is the whole root", clean)
	}
	v, err := cfg.kind(rel)
	if err != nil {
		return nil, err
	}
	if err := v.inspect(root, rel); err != nil {
		return nil, err
	}
	// What the plugin makes of the options, as it will at Create.
	if v.Spec, err = (spec.Parser{SharedNames: cfg.SharedNames}).Parse(v.Name, v.Options); err != nil {
		return nil, fmt.Errorf("%s: %v", rel, err)
	}
	return v, nil
}

// leavesThroughDotDot says whether the absolute, uncleaned path p enters
// the root and then leaves it through "..".
func leavesThroughDotDot(root, p string) bool {
	var comps []string
	entered := false
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			if len(comps) > 0 {
				comps = comps[:len(comps)-1]
			}
		default:
			comps = append(comps, c)
		}
		if _, in := under(root, "/"+strings.Join(comps, "/")); in {
			entered = true
		} else if entered {
			return true
		}
	}
	return false
}

// under gives p relative to root ("" for root itself), if p lies in it.
// Its first component is checked, so that ".." below the root never counts.
func under(root, p string) (string, bool) {
	if p == root {
		return "", true
	}
	prefix := root + "/"
	if root == "/" {
		prefix = "/"
	}
	if !strings.HasPrefix(p, prefix) {
		return "", false
	}
	rel := p[len(prefix):]
	first, _, _ := strings.Cut(rel, "/")
	return rel, first != ".."
}

// kind maps a directory of the tree to its volume's name and options.
func (cfg Config) kind(rel string) (*Volume, error) {
	s, err := spec.ForDir(rel)
	if err != nil {
		return nil, err
	}
	v := &Volume{Volume: install.Volume{Name: spec.Name(s, cfg.Project), Spec: s}}
	switch s.Kind {
	case spec.KindTree:
		v.Options = map[string]string{spec.KeyTree: s.Tree}
	case spec.KindShared:
		if !slices.Contains(cfg.SharedNames, s.Shared) {
			list := strings.Join(append(slices.Clone(cfg.SharedNames), s.Shared), ",")
			return nil, fmt.Errorf("shared directory %q is not one the plugin allows (%s): run the plugin with --shared %s "+
				"(managed: docker plugin set portal-volume SHARED_DIRS=%s) and migrate with --shared %s",
				s.Shared, strings.Join(cfg.SharedNames, ","), list, list, list)
		}
		v.Options = map[string]string{spec.KeyApp: cfg.Project, spec.KeyShared: s.Shared}
	default:
		v.Options = map[string]string{spec.KeyApp: s.App, spec.KeyPath: s.Path}
	}
	return v, nil
}

// inspect walks from the root down to the volume's directory without
// following a symlink, and records the owner and mode of an existing app
// directory as explicit options.
func (v *Volume) inspect(root, rel string) error {
	p := root
	comps := strings.Split(rel, "/")
	for i, c := range comps {
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // made by the plugin at Create
		}
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symlink: the plugin follows no symlink below the root", p)
		case !fi.IsDir() && i == len(comps)-1:
			return fmt.Errorf("%s is a file, not a directory: a volume is a directory", p)
		case !fi.IsDir():
			return fmt.Errorf("%s is not a directory", p)
		}
		if i == len(comps)-1 {
			st := fi.Sys().(*syscall.Stat_t)
			v.Exists, v.UID, v.GID, v.Mode = true, st.Uid, st.Gid, uint32(fi.Mode().Perm())|specialBits(fi.Mode())
			if !v.Spec.Kind.Info().IDMapped { // a directory that is chowned
				v.Options[spec.KeyUID] = strconv.FormatUint(uint64(v.UID), 10)
				v.Options[spec.KeyGID] = strconv.FormatUint(uint64(v.GID), 10)
				v.Options[spec.KeyMode] = fmt.Sprintf("%04o", v.Mode)
			}
		}
	}
	return nil
}

func specialBits(m fs.FileMode) uint32 {
	var b uint32
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// Project is the compose project name compose gives a file in dir by
// default: the directory's name, lower case, with what a project name
// cannot hold left out.
func Project(dir string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(path.Base(filepath.ToSlash(dir))) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			b.WriteRune(r)
		}
	}
	return strings.TrimLeft(b.String(), "_-")
}
