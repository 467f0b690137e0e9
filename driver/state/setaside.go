package state

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"
)

// SetAside takes v out of the records because of cause, and keeps what
// its record said in the corrupt directory for an operator: for a record
// that reads well but says what the plugin must never act on. It is logged
// either way; an error means v's record may load again at the next start
// (and be set aside again).
func (r *Records) SetAside(v Volume, cause error, log logrus.FieldLogger) error {
	dst := filepath.Join(r.dir, corruptDir)
	data, err := json.Marshal(v)
	if err == nil {
		err = os.MkdirAll(dst, 0o700)
	}
	if err == nil {
		kept := filepath.Join(dst, fileName(v.Name)+"."+time.Now().UTC().Format("20060102T150405.000000000Z"))
		err = os.WriteFile(kept, data, 0o600)
	}
	if err == nil {
		err = r.Delete(v.Name)
	}
	log.WithFields(logrus.Fields{"volume": v.Name, "cause": cause, "moved_to": dst, "move_error": err}).
		Error("volume record set aside: it says what no Create makes, and the plugin does not act on it")
	return err
}
