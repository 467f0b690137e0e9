package usage

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// direntry is one entry of a getdents64 buffer: linux_dirent64, whose
// name ends with a NUL inside the record.
type direntry struct {
	reclen int
	name   []byte // with its terminating NUL
}

// parseDirent reads the entry at the start of b; false when b holds no
// whole entry.
func parseDirent(b []byte) (direntry, bool) {
	const nameOff = 19 // d_ino u64, d_off s64, d_reclen u16, d_type u8
	if len(b) < nameOff+1 {
		return direntry{}, false
	}
	reclen := int(binary.NativeEndian.Uint16(b[16:18]))
	if reclen <= nameOff || reclen > len(b) {
		return direntry{}, false
	}
	rec := b[nameOff:reclen]
	for i, c := range rec {
		if c == 0 {
			return direntry{reclen: reclen, name: rec[:i+1]}, i > 0
		}
	}
	return direntry{}, false
}

func (e direntry) isDot() bool {
	n := e.name
	return (len(n) == 2 && n[0] == '.') || (len(n) == 3 && n[0] == '.' && n[1] == '.')
}

// String is the entry's name.
func (e direntry) String() string { return string(e.name[:len(e.name)-1]) }

// statxAt stats the entry name (NUL-terminated) of the directory dirfd,
// following no symlink and triggering no automount. It is unix.Statx
// without the copy of the name that turning a string into a C string
// costs: the walk makes one call per file.
func statxAt(dirfd int, name []byte, st *unix.Statx_t) error {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_STATX, uintptr(dirfd), uintptr(unsafe.Pointer(&name[0])),
			unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, statxMask, uintptr(unsafe.Pointer(st)), 0)
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return errno
	}
}

// The I/O priority class "idle" (linux/ioprio.h): the thread's reads are
// served only when no other I/O wants the disk.
const (
	ioprioWhoProcess = 1 // with id 0: the calling thread
	ioprioClassIdle  = 3
	ioprioClassShift = 13
)

// setBackground puts the calling thread in the idle I/O class and at nice
// 19. A kernel or I/O scheduler that has no classes leaves it as it is:
// the walk is then only slower to yield, never wrong.
func setBackground() {
	_, _, _ = unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, ioprioClassIdle<<ioprioClassShift)
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19)
}
