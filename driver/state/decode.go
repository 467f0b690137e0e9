package state

import (
	"bytes"
	"encoding/json"

	"github.com/portal/portal-volume/driver/spec"
)

// decodeRecord decodes a record file. Records are read at every start, and
// with 100,000 volumes encoding/json's reflection was a third of the
// start-up, so the exact form json.Marshal gives a record (every record this
// package writes) is read directly; anything else (another key order, an
// escape, a non-ASCII byte, a field more or less) goes to json.Unmarshal.
// The result is always what json.Unmarshal gives: TestDecodeRecord and
// FuzzDecodeRecord hold the two side by side.
func decodeRecord(data []byte, v *Volume) error {
	if fastRecord(data, v) {
		return nil
	}
	*v = Volume{}
	return json.Unmarshal(data, v)
}

// fastRecord decodes data when it has exactly the form json.Marshal gives
// a record, now or in format 0, and reports whether it did.
func fastRecord(data []byte, v *Volume) bool {
	var r record
	if !fastRecordInto(data, &r) {
		return false
	}
	*v = r.volume()
	return true
}

func fastRecordInto(data []byte, v *record) bool {
	d := recordDecoder{b: data}
	s := &v.Spec
	if !(d.lit(`{"name":`) && d.str(&v.Name) &&
		d.lit(`,"spec":{"App":`) && d.str(&s.App) &&
		d.lit(`,"Path":`) && d.str(&s.Path) &&
		d.lit(`,"UID":`) && d.uint32(&s.UID) &&
		d.lit(`,"GID":`) && d.uint32(&s.GID) &&
		d.lit(`,"Mode":`) && d.uint32(&s.Mode) &&
		d.lit(`,"Shared":`) && d.str(&s.Shared)) {
		return false
	}
	if d.lit(`,"OnRemove":`) { // format 0: no more fields, no format
		return d.str(&s.OnRemove) &&
			d.lit(`},"created_at":`) && d.time(v) &&
			d.lit(`}`) && d.end()
	}
	return d.lit(`,"Tree":`) && d.str(&s.Tree) &&
		d.lit(`,"Anonymous":`) && d.bool(&s.Anonymous) &&
		d.lit(`,"Enforce":`) && d.bool(&s.Enforce) &&
		d.lit(`,"OnRemove":`) && d.str(&s.OnRemove) &&
		d.lit(`,"IDMap":`) && d.bool(&s.IDMap) &&
		d.lit(`,"ReadOnly":`) && d.bool(&s.ReadOnly) &&
		d.lit(`},"created_at":`) && d.time(v) &&
		d.lit(`,"format":`) && d.uint32(&v.Format) &&
		d.lit(`}`) && d.end()
}

type recordDecoder struct {
	b []byte
}

func (d *recordDecoder) lit(s string) bool {
	if len(d.b) < len(s) || string(d.b[:len(s)]) != s {
		return false
	}
	d.b = d.b[len(s):]
	return true
}

// quoted returns the body of a JSON string that needs no unescaping and is
// plain ASCII (so that json.Unmarshal could not replace invalid UTF-8).
func (d *recordDecoder) quoted() ([]byte, bool) {
	if len(d.b) == 0 || d.b[0] != '"' {
		return nil, false
	}
	for i := 1; i < len(d.b); i++ {
		switch c := d.b[i]; {
		case c == '"':
			s := d.b[1:i]
			d.b = d.b[i+1:]
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

func (d *recordDecoder) str(dst *string) bool {
	s, ok := d.quoted()
	if !ok {
		return false
	}
	switch string(s) { // the common values, without an allocation each
	case "":
		*dst = ""
	case spec.Keep:
		*dst = spec.Keep
	case spec.Delete:
		*dst = spec.Delete
	default:
		*dst = string(s)
	}
	return true
}

func (d *recordDecoder) bool(dst *bool) bool {
	switch {
	case d.lit("true"):
		*dst = true
	case d.lit("false"):
		*dst = false
	default:
		return false
	}
	return true
}

// uint32 reads a decimal number as json.Unmarshal accepts it into a
// uint32: digits, no leading zero, no sign, fraction or exponent.
func (d *recordDecoder) uint32(dst *uint32) bool {
	var n uint64
	i := 0
	for ; i < len(d.b) && d.b[i] >= '0' && d.b[i] <= '9'; i++ {
		n = n*10 + uint64(d.b[i]-'0')
		if n > 1<<32-1 {
			return false
		}
	}
	if i == 0 || i > 1 && d.b[0] == '0' {
		return false
	}
	*dst = uint32(n)
	d.b = d.b[i:]
	return true
}

// time reads CreatedAt with the method json.Unmarshal calls for it.
func (d *recordDecoder) time(v *record) bool {
	start := d.b
	s, ok := d.quoted()
	if !ok {
		return false
	}
	return v.CreatedAt.UnmarshalJSON(start[:len(s)+2]) == nil
}

// end accepts what json.Unmarshal accepts after a value: white space.
func (d *recordDecoder) end() bool {
	return len(bytes.TrimLeft(d.b, " \t\r\n")) == 0
}
