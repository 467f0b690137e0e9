package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"
)

// ReadVolumes reads the volumes recorded in the state directory dir as
// OpenRecords would load them, but for a tool that only looks: it takes no
// lock and changes nothing, so it may run beside the plugin. What it gives
// is a snapshot; a change the plugin makes meanwhile may be missed. A
// record that cannot be read is logged and passed over (the plugin sets it
// aside when it starts); a missing directory holds no volumes.
func ReadVolumes(dir string, log logrus.FieldLogger) ([]Volume, error) {
	volumes, err := os.Open(filepath.Join(dir, recordsDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	defer volumes.Close()
	names, err := volumes.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("state: read %s: %w", volumes.Name(), err)
	}
	r := &Records{dir: dir, volumes: volumes}
	vols := make([]Volume, 0, len(names))
	buf := make([]byte, 4096)
	for _, name := range names {
		if strings.HasPrefix(name, tmpPrefix) {
			continue
		}
		var v Volume
		if v, buf, err = r.readRecord(int(volumes.Fd()), name, buf); err != nil {
			log.WithFields(logrus.Fields{"file": name, "cause": err}).Warn("skipped unreadable volume record")
			continue
		}
		vols = append(vols, v)
	}
	old, err := readJournal(filepath.Join(dir, oldJournalName), log)
	if err != nil {
		return nil, err
	}
	current, err := readJournal(filepath.Join(dir, journalName), log)
	if err != nil {
		return nil, err
	}
	return apply(vols, append(old, current...)), nil
}
