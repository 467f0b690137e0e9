// Package mountinfo asks the kernel whether a directory is mounted
// somewhere: in any mount namespace whose processes are visible in /proc.
//
// A bind mount of a directory shows up in /proc/<pid>/mountinfo of every
// process of the namespace that holds it, with the file system's device
// (major:minor) and the mount's root: the directory's path relative to the
// root of its file system, whatever path it was reached by. So a
// directory is identified by its device and file-system-relative path
// (Locate), and a mount of it, or of something below it, is found by
// comparing those two (Mounted).
package mountinfo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Mount is what this package reads of one mountinfo line.
type Mount struct {
	Dev        string // "major:minor"
	Root       string // the mounted directory, relative to its file system's root
	MountPoint string
}

// Dir is a directory as the kernel names it in mountinfo.
type Dir struct {
	Dev  string // "major:minor"
	Root string // the path relative to the root of its file system
}

// Contains reports whether m mounts d or a directory below it.
func (d Dir) Contains(m Mount) bool {
	if m.Dev != d.Dev {
		return false
	}
	return d.Root == "/" || m.Root == d.Root || strings.HasPrefix(m.Root, d.Root+"/")
}

// Parse reads mountinfo text (proc(5)): fields 3 (major:minor), 4 (root)
// and 5 (mount point), with the kernel's octal escapes undone.
func Parse(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 5 {
			return nil, fmt.Errorf("mountinfo: short line %q", sc.Text())
		}
		out = append(out, Mount{Dev: string(f[2]), Root: unescape(f[3]), MountPoint: unescape(f[4])})
	}
	return out, sc.Err()
}

// unescape undoes the kernel's escapes of space, tab, newline and
// backslash as \ooo.
func unescape(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	var s strings.Builder
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+3 < len(b) {
			if n, err := strconv.ParseUint(string(b[i+1:i+4]), 8, 8); err == nil {
				s.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		s.WriteByte(b[i])
	}
	return s.String()
}

// Locate names the absolute, symlink-free path dir as mountinfo does, from
// the mounts of the calling process's namespace: the topmost mount whose
// mount point holds dir, its root and the rest of the path.
func Locate(dir string) (Dir, error) { return LocateIn("/proc/self/mountinfo", dir) }

// LocateIn is Locate from the mountinfo file at path: /proc/<pid>/mountinfo
// names dir as process pid reaches it, from its root. Unlike its
// /proc/<pid>/root, it may be read without the right to trace pid.
func LocateIn(path, dir string) (Dir, error) {
	f, err := os.Open(path)
	if err != nil {
		return Dir{}, err
	}
	defer f.Close()
	mounts, err := Parse(f)
	if err != nil {
		return Dir{}, err
	}
	return locate(mounts, dir)
}

func locate(mounts []Mount, dir string) (Dir, error) {
	dir = filepath.Clean(dir)
	best := -1
	for i, m := range mounts {
		if m.MountPoint != dir && m.MountPoint != "/" && !strings.HasPrefix(dir, m.MountPoint+"/") {
			continue
		}
		// Later lines are mounted on top of earlier ones.
		if best < 0 || len(m.MountPoint) >= len(mounts[best].MountPoint) {
			best = i
		}
	}
	if best < 0 {
		return Dir{}, fmt.Errorf("mountinfo: no mount holds %s", dir)
	}
	m := mounts[best]
	rest := strings.TrimPrefix(dir, m.MountPoint)
	if m.MountPoint == "/" {
		rest = dir
	}
	return Dir{Dev: m.Dev, Root: filepath.Join(m.Root, rest)}, nil
}

// Scan is the outcome of Mounted.
type Scan struct {
	Namespaces int // mount namespaces read
	Unreadable int // processes whose mounts could not be read
}

// Mounted reports whether d, or a directory below it, is mounted in any
// mount namespace of the processes listed in proc (normally "/proc"). Each
// namespace is read once (where the caller may read the process's ns/mnt
// link; otherwise the process is read on its own). A process that exits
// while it is read is skipped; one whose mountinfo may not be opened (the
// kernel allows anyone, a security module may not) is counted in
// Scan.Unreadable.
func Mounted(proc string, d Dir) (bool, Scan, error) {
	var s Scan
	if self, err := os.Readlink(filepath.Join(proc, "self")); err == nil && self == "1" {
		// The first process of a PID namespace of its own (a managed
		// plugin without pidhost) sees no container's processes.
		return false, s, errors.New("mountinfo: this process is pid 1 of its own PID namespace, so other processes' mounts are not visible")
	}
	entries, err := os.ReadDir(proc)
	if err != nil {
		return false, s, err
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		pid := filepath.Join(proc, e.Name())
		ns, err := os.Readlink(filepath.Join(pid, "ns", "mnt"))
		if err == nil {
			if seen[ns] {
				continue
			}
			seen[ns] = true
		}
		f, err := os.Open(filepath.Join(pid, "mountinfo"))
		if err != nil {
			if errors.Is(err, os.ErrPermission) {
				s.Unreadable++
			}
			continue // or the process is gone
		}
		mounts, err := Parse(f)
		f.Close()
		if err != nil {
			continue // the process went while it was read
		}
		s.Namespaces++
		for _, m := range mounts {
			if d.Contains(m) {
				return true, s, nil
			}
		}
	}
	return false, s, nil
}
