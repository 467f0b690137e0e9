package state

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Seed writes vols as record files into the state directory dir (made if
// missing), as a checkpoint writes them but without fsync and without
// taking the directory's lock. It is for tools that make a large state to
// measure reading it (the benchmarks); the plugin writes through Records.
func Seed(dir string, vols []Volume) error {
	volumes := filepath.Join(dir, recordsDir)
	if err := os.MkdirAll(volumes, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	const workers = 4
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(vols); i += workers {
				v := vols[i]
				v.Format = RecordFormat
				data, err := json.Marshal(v)
				if err == nil {
					err = os.WriteFile(filepath.Join(volumes, fileName(v.Name)), append(data, '\n'), 0o600)
				}
				if err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("state: %w", err)
		}
	}
	return nil
}
