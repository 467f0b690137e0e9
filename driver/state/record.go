package state

import (
	"encoding/json"
	"time"

	"github.com/portal/portal-volume/driver/spec"
)

// Volume is one durable volume: its name, what it is, when it was made,
// and the record format it was read from. It is written and read as a
// record (MarshalJSON, UnmarshalJSON).
type Volume struct {
	Name      string
	Spec      spec.Spec
	CreatedAt time.Time
	// Format is the record format: RecordFormat in every record Put
	// writes, 0 in those of the first release (no key), which load
	// upgrades to the meaning they had.
	Format uint32
}

// RecordFormat is the format of the records this release writes. Format
// 0 had app and shared volumes only, and enforced every app volume's owner.
const RecordFormat = 1

// record is a volume as the state directory holds it, in record files and
// journal lines. Its keys and their order are the format that every
// release reads: they change only with a new RecordFormat, and never with
// the names of the model's fields. decode.go reads this exact form.
type record struct {
	Name      string     `json:"name"`
	Spec      recordSpec `json:"spec"`
	CreatedAt time.Time  `json:"created_at"`
	Format    uint32     `json:"format"`
}

// recordSpec is a spec.Spec on disk. The kind is not written: it is the
// one of Shared, Tree and Anonymous that is set, or an app volume.
type recordSpec struct {
	App       string `json:"App"`
	Path      string `json:"Path"`
	UID       uint32 `json:"UID"`
	GID       uint32 `json:"GID"`
	Mode      uint32 `json:"Mode"`
	Shared    string `json:"Shared"`
	Tree      string `json:"Tree"`      // since format 1
	Anonymous bool   `json:"Anonymous"` // since format 1
	Enforce   bool   `json:"Enforce"`   // since format 1; format 0 enforced every app volume's owner
	OnRemove  string `json:"OnRemove"`
	IDMap     bool   `json:"IDMap"`    // since format 1, later in its life: false in records made before
	ReadOnly  bool   `json:"ReadOnly"` // the same
}

func toRecord(v *Volume) record {
	s := &v.Spec
	return record{
		Name: v.Name,
		Spec: recordSpec{
			App: s.App, Path: s.Path, UID: s.UID, GID: s.GID, Mode: s.Mode,
			Shared: s.Shared, Tree: s.Tree, Anonymous: s.Kind == spec.KindAnonymous,
			Enforce: s.Enforce, OnRemove: s.OnRemove, IDMap: s.IDMap, ReadOnly: s.ReadOnly,
		},
		CreatedAt: v.CreatedAt,
		Format:    v.Format,
	}
}

// volume is the volume r records.
func (r *record) volume() Volume {
	rs := &r.Spec
	kind := spec.KindApp
	switch {
	case rs.Shared != "":
		kind = spec.KindShared
	case rs.Tree != "":
		kind = spec.KindTree
	case rs.Anonymous:
		kind = spec.KindAnonymous
	}
	return Volume{
		Name: r.Name,
		Spec: spec.Spec{
			Kind: kind, App: rs.App, Path: rs.Path, UID: rs.UID, GID: rs.GID, Mode: rs.Mode,
			Shared: rs.Shared, Tree: rs.Tree, Enforce: rs.Enforce, OnRemove: rs.OnRemove,
			IDMap: rs.IDMap, ReadOnly: rs.ReadOnly,
		},
		CreatedAt: r.CreatedAt,
		Format:    r.Format,
	}
}

// MarshalJSON writes v as its record.
func (v Volume) MarshalJSON() ([]byte, error) { return json.Marshal(toRecord(&v)) }

// UnmarshalJSON reads a record.
func (v *Volume) UnmarshalJSON(data []byte) error {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return err
	}
	*v = r.volume()
	return nil
}

// upgrade gives a record of an earlier format the behaviour it had.
func (v *Volume) upgrade() {
	if v.Format == 0 && v.Spec.Kind == spec.KindApp {
		v.Spec.Enforce = true
	}
}
