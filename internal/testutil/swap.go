package testutil

import (
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Swap exchanges the paths a and b (renameat2 RENAME_EXCHANGE) in a loop,
// as a container racing the plugin would, until stop is called or the test
// ends. stop waits for the loop, leaves a and b as they were before the
// first exchange and returns how many exchanges were made.
func Swap(t testing.TB, a, b string) (stop func() int64) {
	done := make(chan struct{})
	var swaps int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE) == nil {
				swaps++
			}
		}
	})
	stop = sync.OnceValue(func() int64 {
		close(done)
		wg.Wait()
		if swaps%2 == 1 {
			if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("exchange %s and %s back: %v", a, b, err)
			}
		}
		return swaps
	})
	t.Cleanup(func() { stop() })
	return stop
}
