package view

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
)

// newUserns makes a user namespace with the maps of mp and returns a
// descriptor of it. A namespace needs a process to be made in; this one is
// this binary, started under PTRACE_TRACEME so that it stops at its exec
// before running a single instruction, and killed as soon as its namespace
// is open. The descriptor keeps the namespace alive without it.
func newUserns(mp Map) (*os.File, error) {
	// The tracer of a ptraced child is the thread that started it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	uids, gids := mp.idMaps()
	p, err := os.StartProcess("/proc/self/exe", []string{"portal-volume-userns"}, &os.ProcAttr{
		Sys: &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER,
			UidMappings: uids,
			GidMappings: gids,
			Ptrace:      true,
		},
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = p.Kill()
		_, _ = p.Wait()
	}()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", p.Pid))
	if err != nil {
		return nil, err
	}
	return f, nil
}
