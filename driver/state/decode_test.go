package state

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/portal/portal-volume/driver/spec"
)

// recordSamples are volumes of every kind, as Put writes them.
func recordSamples() []Volume {
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	return []Volume{
		{Name: "gitea_data", Spec: spec.Spec{App: "gitea", Path: "/data", UID: 1000, GID: 1000, Mode: 0o755, OnRemove: spec.Keep}, CreatedAt: at},
		{Name: "x", Spec: spec.Spec{App: "a-b_c", Path: "/usr/src/paperless/data", Mode: 0o7777, OnRemove: spec.Delete}, CreatedAt: at},
		{Name: "m", Spec: spec.Spec{Kind: spec.KindShared, Shared: "media", OnRemove: spec.Keep, Mode: 0o755}, CreatedAt: at},
		{Name: "n", Spec: spec.Spec{App: "app", UID: 4294967294, GID: 4294967294, Path: "/d", Enforce: true, OnRemove: spec.Keep}, CreatedAt: at.Add(time.Nanosecond), Format: RecordFormat},
		{Name: "fm", Spec: spec.Spec{Kind: spec.KindTree, Tree: spec.TreeServiceData, Mode: 0o755, OnRemove: spec.Keep}, CreatedAt: at, Format: RecordFormat},
		{Name: "a", Spec: spec.Spec{Path: "/a", Kind: spec.KindAnonymous, Mode: 0o755, OnRemove: spec.Delete}, CreatedAt: at, Format: RecordFormat},
		{Name: "v", Spec: spec.Spec{Kind: spec.KindShared, Shared: "media", UID: 1000, GID: 1001, IDMap: true, ReadOnly: true, Mode: 0o755, OnRemove: spec.Keep}, CreatedAt: at, Format: RecordFormat},
		// Escapes and non-ASCII take encoding/json's way.
		{Name: `q"uote\`, Spec: spec.Spec{App: "app", Path: "/Calibre Library/<é>", OnRemove: spec.Keep}, CreatedAt: at},
	}
}

// TestDecodeRecord: every record Put writes decodes to the volume, and the
// fast way takes every one without escapes or non-ASCII bytes (a change to
// Volume or spec.Spec that it does not follow fails here, not silently).
func TestDecodeRecord(t *testing.T) {
	for i, want := range recordSamples() {
		data, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, '\n')
		var got Volume
		if err := decodeRecord(data, &got); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", data, got, want)
		}
		var fast Volume
		if ok := fastRecord(data, &fast); ok != (i < 7) {
			t.Errorf("%s: fast way taken = %v", data, ok)
		}
	}
}

// FuzzDecodeRecord: decodeRecord gives what json.Unmarshal gives, value
// and failure alike.
func FuzzDecodeRecord(f *testing.F) {
	for _, v := range recordSamples() {
		data, _ := json.Marshal(v)
		f.Add(data)
	}
	f.Add([]byte(`{"name":"a","spec":{"App":"a","Path":"/d","UID":01,"GID":0,"Mode":493,"Shared":"","OnRemove":"keep"},"created_at":"2024-05-06T07:08:09Z"}`))
	f.Add([]byte(`{"name":"a","spec":{"App":"a","Path":"/d","UID":4294967296,"GID":0,"Mode":493,"Shared":"","OnRemove":"keep"},"created_at":"2024-05-06T07:08:09Z"} x`))
	f.Add([]byte(`{"name":"a","spec":{"App":"a","Path":"/d","UID":1,"GID":0,"Mode":493,"Shared":"","OnRemove":"keep"},"created_at":"2024-05-06 07:08:09"}`))
	f.Add([]byte(`{"name":"a","spec":{"App":"a","Path":"/d","UID":1,"GID":0,"Mode":493,"Shared":"","Tree":"","Anonymous":tru,"Enforce":false,"OnRemove":"keep"},"created_at":"2024-05-06T07:08:09Z","format":1}`))
	f.Add([]byte(`{"name":"a","spec":{"App":"a","Path":"/d","UID":1,"GID":0,"Mode":493,"Shared":"","Tree":"","Anonymous":false,"Enforce":true,"OnRemove":"keep"},"created_at":"2024-05-06T07:08:09Z","format":01}`))
	f.Add([]byte(`{"name":"a","spec":{"App":"","Path":"","UID":1,"GID":0,"Mode":493,"Shared":"media","Tree":"","Anonymous":false,"Enforce":false,"OnRemove":"keep","IDMap":tru,"ReadOnly":false},"created_at":"2024-05-06T07:08:09Z","format":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var want, got Volume
		werr := json.Unmarshal(data, &want)
		gerr := decodeRecord(data, &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%q: json.Unmarshal: %v, decodeRecord: %v", data, werr, gerr)
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %+v\nwant %+v", data, got, want)
		}
	})
}

func TestIsFileName(t *testing.T) {
	for _, name := range []string{"", "gitea_data", "a name longer than thirty-two bytes, with spaces and é"} {
		if !isFileName(name, fileName(name)) {
			t.Errorf("isFileName(%q, fileName) = false", name)
		}
		if isFileName(name, fileName(name+"x")) || isFileName(name, fileName(name)+"x") {
			t.Errorf("isFileName(%q) takes another name's file", name)
		}
	}
}
