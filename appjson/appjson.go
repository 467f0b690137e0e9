// Package appjson turns the data_dirs of a Portal app.json into the
// portal-volume volumes that replace Portal's host bind mounts: for every
// entry, a volume of the one model (package spec), its name and the
// driver options that create it.
//
// # The file
//
// The app is the file's "name" (a caller may give another). "v" is the
// format version: missing (the oldest files) or "1.0" to "4.0" ("3.1" and
// "3.2" exist too). Format 5.0 has no data_dirs: its apps ship a compose
// template, for portal-volume migrate. Every other key is ignored.
//
// # Entries
//
// Every format writes data_dirs entries the same ways, and Portal's core
// bound them like this (<app> is the name, the path keeps its inner
// slashes and oddities, its outer slashes are dropped):
//
//	"/data"  "/data/"  "~/convos/data"            app_data/<app>/<path>, owner left to Docker
//	{"path": "/data"}                             the same
//	{"path": "/data", "uid": 1000, "gid": 1000}   app_data/<app>/data, owner 1000:1000 enforced
//	{"path": "/m", "shared_dir": "media"}         shared/media (documents, media, music, ...)
//	{"path": "/x", "shared_dir": "app_data"}      the whole app_data tree
//	{"path": "/y", "shared_dir": "service_data"}  the whole service_data tree
//
// uid and gid are JSON numbers (a string of decimal digits is accepted too);
// when only one is given the other is 0. null counts as missing. Fields this
// package does not know, in the file and in entries, are ignored.
//
// # Options
//
// Options are always explicit, so that the plugin never has to read a
// meaning out of a name: app and path (folded, as spec.FoldPath gives it)
// for an app directory, plus uid and gid (decimal) only when the entry gives
// one: Portal chowned only those, so only those are enforced; app and
// shared for a shared directory; tree alone for a whole tree. mode and
// on_remove are left to the plugin's defaults.
//
// # Names
//
// Names are spec.Name's, with the app as the prefix of shared and tree
// volumes, and stable: an installed app's volumes keep their names across
// releases, and testdata/names.golden holds the names of every fixture.
// All entries of one app that name the same shared directory get the same
// volume. Distinct hash-form paths could in theory share a name;
// FromAppJSON refuses an app.json in which that happens, so the names it
// returns are always distinct for distinct paths.
package appjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/internal/install"
)

// Trees are the shared_dir values that mean a whole tree of the root.
var Trees = []string{spec.TreeAppData, spec.TreeServiceData}

var (
	decimalPattern = regexp.MustCompile(`^[0-9]+$`)
	versionPattern = regexp.MustCompile(`^[1-4]\.[0-9]+$`)
)

// Form is how a data_dirs entry was written.
type Form int

// The entry forms.
const (
	FormString Form = iota // "/data"
	FormObject             // {"path": "/data", "uid": 1000, "gid": 1000}
	FormShared             // {"path": "/media", "shared_dir": "media"}, also a tree
)

func (f Form) String() string {
	switch f {
	case FormString:
		return "string"
	case FormObject:
		return "object"
	case FormShared:
		return "shared"
	}
	return "Form(" + strconv.Itoa(int(f)) + ")"
}

// Volume is one data_dirs entry as a portal-volume volume: its name,
// options and meaning (install.Volume), and what the entry said.
type Volume struct {
	install.Volume

	Index  int    // position in data_dirs
	Form   Form   // how it was written
	Path   string // the path as written: where the app mounts it
	Owner  bool   // uid or gid given: the owner is enforced
	Target string // the folded path, where the service mounts the volume
}

// Problem is one reason an app.json is refused.
type Problem struct {
	Index  int    // the data_dirs entry, or -1 for the file as a whole
	Reason string // what is wrong and what is allowed
}

func (p Problem) String() string {
	if p.Index < 0 {
		return p.Reason
	}
	return fmt.Sprintf("data_dirs[%d]: %s", p.Index, p.Reason)
}

// Problems is every reason an app.json is refused, in entry order (the
// file's own problems first).
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// FromAppJSON reads an app.json and returns one volume per data_dirs entry,
// in order, for the app named app. sharedNames are the shared directories
// the plugin allows; nil means spec.DefaultSharedNames. When anything is wrong
// it returns no volumes and a Problems error listing every problem found.
func FromAppJSON(data []byte, app string, sharedNames []string) ([]Volume, error) {
	if sharedNames == nil {
		sharedNames = spec.DefaultSharedNames
	}
	var probs Problems
	if err := spec.CheckApp(app); err != nil {
		probs = append(probs, Problem{-1, err.Error()})
		app = "app" // still judge the entries, once each
	}
	entries, err := dataDirs(data)
	if err != nil {
		return nil, append(probs, Problem{-1, err.Error()})
	}
	vols := make([]Volume, 0, len(entries))
	var bad []Problem
	for i, raw := range entries {
		v, err := entry(i, raw, app, sharedNames)
		if err != nil {
			bad = append(bad, Problem{i, err.Error()})
			continue
		}
		vols = append(vols, v)
	}
	bad = append(bad, conflicts(vols)...)
	slices.SortStableFunc(bad, func(a, b Problem) int { return a.Index - b.Index })
	probs = append(probs, bad...)
	if len(probs) > 0 {
		return nil, probs
	}
	return vols, nil
}

// AppName returns the app.json's "name", "" when it has none.
func AppName(data []byte) (string, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return "", fmt.Errorf("app.json is not a JSON object: %v", err)
	}
	raw, ok := top["name"]
	if !ok || isNull(raw) {
		return "", nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return "", fmt.Errorf(`"name" is %s: want a string`, jsonKind(raw))
	}
	return name, nil
}

func dataDirs(data []byte) ([]json.RawMessage, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("app.json is not a JSON object: %v", err)
	}
	if raw, ok := top["v"]; ok && !isNull(raw) {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf(`"v" is %s: want a format version string, "1.0" to "4.0"`, jsonKind(raw))
		}
		if !versionPattern.MatchString(v) {
			return nil, fmt.Errorf(`format "v": %q: want "1.0" to "4.0" (format 5.0 apps have no data_dirs: `+
				`render their docker-compose.yml.template and use portal-volume migrate)`, v)
		}
	}
	raw, ok := top["data_dirs"]
	if !ok || isNull(raw) {
		return nil, nil
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("data_dirs is not a list: want a JSON array of entries")
	}
	return entries, nil
}

// entryFields are the fields of an object entry, raw.
type entryFields struct {
	Path, UID, GID, Shared json.RawMessage
}

const entryForms = `want a path string, {"path", "uid", "gid"} or {"path", "shared_dir"}`

func entry(i int, raw json.RawMessage, app string, sharedNames []string) (Volume, error) {
	v := Volume{Index: i}
	var f entryFields
	switch raw = bytes.TrimSpace(raw); {
	case len(raw) > 0 && raw[0] == '"':
		v.Form = FormString
		f.Path = raw
	case len(raw) > 0 && raw[0] == '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return v, fmt.Errorf("bad entry: %v", err)
		}
		f = entryFields{obj["path"], obj["uid"], obj["gid"], obj["shared_dir"]}
		v.Form = FormObject
		if !isNull(f.Shared) {
			v.Form = FormShared
		}
	default:
		return v, fmt.Errorf("entry is %s: %s", jsonKind(raw), entryForms)
	}

	if isNull(f.Path) {
		return v, fmt.Errorf(`entry has no "path": %s`, entryForms)
	}
	if err := json.Unmarshal(f.Path, &v.Path); err != nil {
		return v, fmt.Errorf(`"path" is %s: want a string`, jsonKind(f.Path))
	}
	target, err := spec.FoldPath(v.Path)
	if err != nil {
		return v, fmt.Errorf("path %q: %v", v.Path, err)
	}
	v.Target = target

	// The options as the entry gives them; the parser of the plugin judges
	// them, and its result gives the canonical values.
	opts := map[string]string{spec.KeyApp: app}
	if v.Form == FormShared {
		var shared string
		if err := json.Unmarshal(f.Shared, &shared); err != nil {
			return v, fmt.Errorf(`"shared_dir" is %s: want a string`, jsonKind(f.Shared))
		}
		if slices.Contains(Trees, shared) {
			return tree(v, shared, f, app)
		}
		opts[spec.KeyShared] = shared
	} else {
		opts[spec.KeyPath] = target
	}
	for _, id := range []struct {
		key string
		raw json.RawMessage
	}{{spec.KeyUID, f.UID}, {spec.KeyGID, f.GID}} {
		if isNull(id.raw) {
			continue
		}
		s, err := idText(id.key, id.raw)
		if err != nil {
			return v, err
		}
		if v.Form == FormShared {
			// Portal mounted shared directories as they are, whatever the
			// entry said; the plugin's uid/gid there (an id-mapped view)
			// would be another behaviour, and is the installer's choice.
			return v, fmt.Errorf("%s %s: a shared_dir entry takes no uid or gid (a shared directory is used as it is)", id.key, s)
		}
		opts[id.key] = s
		v.Owner = true
	}
	s, err := (spec.Parser{SharedNames: sharedNames}).Parse("", opts)
	if err != nil {
		return v, explain(err, sharedNames)
	}
	if s.Kind == spec.KindShared && !spec.SharedNamePattern.MatchString(s.Shared) {
		// Only a caller's odd shared names get here: the plugin's own
		// setting allows no other.
		return v, fmt.Errorf("shared_dir %q: want a name of A-Z a-z 0-9 _ . -", s.Shared)
	}
	v.Spec = s
	v.Name = spec.Name(s, app)
	if s.Kind == spec.KindShared {
		v.Options = map[string]string{spec.KeyApp: app, spec.KeyShared: s.Shared}
	} else {
		v.Options = map[string]string{spec.KeyApp: app, spec.KeyPath: s.Path}
		if v.Owner {
			v.Options[spec.KeyUID] = strconv.FormatUint(uint64(s.UID), 10)
			v.Options[spec.KeyGID] = strconv.FormatUint(uint64(s.GID), 10)
		}
	}
	if !spec.DockerNamePattern.MatchString(v.Name) || len(v.Name) > spec.MaxNameLen {
		return v, fmt.Errorf("volume name %q is not a valid Docker volume name", v.Name) // not reached
	}
	return v, nil
}

// tree is an entry whose shared_dir names a whole tree.
func tree(v Volume, name string, f entryFields, app string) (Volume, error) {
	for _, id := range []struct {
		key string
		raw json.RawMessage
	}{{spec.KeyUID, f.UID}, {spec.KeyGID, f.GID}} {
		if !isNull(id.raw) {
			return v, fmt.Errorf("%s %s: a shared_dir %s entry takes no uid or gid (a tree is never chowned)",
				id.key, bytes.TrimSpace(id.raw), name)
		}
	}
	v.Options = map[string]string{spec.KeyTree: name}
	s, err := spec.Parser{}.Parse("", v.Options)
	if err != nil {
		return v, err // not reached: Trees are trees
	}
	v.Spec = s
	v.Name = spec.Name(s, app)
	return v, nil
}

// idText is a uid or gid as the decimal text the plugin's parser reads. A
// JSON number is taken as written, so that 1e3, 1.0 and -1 are refused by
// the parser with its own words.
func idText(key string, raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil && raw[0] != '"' {
		return n.String(), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if decimalPattern.MatchString(s) {
			return s, nil
		}
		return "", fmt.Errorf("%s %q: want a number from 0 to %d", key, s, spec.MaxID)
	}
	return "", fmt.Errorf("%s is %s: want a number from 0 to %d", key, jsonKind(raw), spec.MaxID)
}

// explain words a parser refusal in the app.json's terms.
func explain(err error, sharedNames []string) error {
	var oe *spec.OptionError
	if !errors.As(err, &oe) {
		return err
	}
	key := oe.Key
	if key == spec.KeyShared {
		return fmt.Errorf("shared_dir %q: want one of %s, or a tree: %s", oe.Value,
			strings.Join(sharedNames, ", "), strings.Join(Trees, ", "))
	}
	if key == spec.KeyUID || key == spec.KeyGID {
		return fmt.Errorf("%s %s: %s", key, oe.Value, oe.Allowed)
	}
	return fmt.Errorf("%s %q: %s", key, oe.Value, oe.Allowed)
}

// conflicts finds what the plugin would refuse between entries: two
// entries mounting the same path, an app directory inside another, and
// (never seen) two paths with one name.
func conflicts(vols []Volume) []Problem {
	var probs []Problem
	byTarget := make(map[string]int, len(vols)) // folded path -> entry
	appDirs := make(map[string]int, len(vols))  // folded path of app directories -> entry
	names := make(map[string]Volume, len(vols))
	for _, v := range vols {
		if j, ok := byTarget[v.Target]; ok {
			probs = append(probs, Problem{v.Index, fmt.Sprintf("duplicate: path %s is also the path of data_dirs[%d]", v.Target, j)})
			continue
		}
		byTarget[v.Target] = v.Index
		if o, ok := names[v.Name]; ok && o.Spec.Dir() != v.Spec.Dir() {
			probs = append(probs, Problem{v.Index, fmt.Sprintf("path %s gets volume name %s, as data_dirs[%d] (path %s) does; rename one of the paths", v.Target, v.Name, o.Index, o.Target)})
			continue
		}
		names[v.Name] = v
		if v.exclusive() {
			appDirs[v.Target] = v.Index
		}
	}
	for _, v := range vols {
		if !v.exclusive() || byTarget[v.Target] != v.Index {
			continue
		}
		for i := 1; i < len(v.Target); i++ {
			if v.Target[i] != '/' {
				continue
			}
			if j, ok := appDirs[v.Target[:i]]; ok {
				probs = append(probs, Problem{v.Index, fmt.Sprintf("nested: path %s lies inside path %s of data_dirs[%d]; volumes may not nest", v.Target, v.Target[:i], j)})
			}
		}
	}
	return probs
}

// exclusive tells whether v is of a kind whose directories may not nest
// (app directories); shared directories and trees may hold them.
func (v Volume) exclusive() bool { return v.Spec.Kind.Info().Exclusive }

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "empty"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
