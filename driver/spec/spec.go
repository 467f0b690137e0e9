// Package spec turns a volume name and its driver options into the
// validated, normalised description of one Portal directory.
//
// It is pure: no disk, no state. Two requests mean the same volume exactly
// when they parse to equal Specs.
package spec

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Remove policies. Refuse is a policy for anonymous volumes only: the
// daemon's setting, never an option.
const (
	Keep   = "keep"
	Delete = "delete"
	Refuse = "refuse"
)

// Trees: whole parts of the Portal tree, for the file manager and sync apps.
const (
	TreeAppData     = "app_data"
	TreeServiceData = "service_data"
	TreeShared      = "shared"
)

var trees = []string{TreeAppData, TreeServiceData, TreeShared}

// Defaults of SPEC.md.
const (
	DefaultMode = 0o755
	MaxID       = 4294967294 // (uid_t)-1 means "unchanged" to chown
	maxMode     = 0o7777
	maxPathLen  = 2048
	maxCompLen  = 255
)

// Option keys, lower case; keys match case-insensitively.
const (
	KeyApp      = "app"
	KeyPath     = "path"
	KeyUID      = "uid"
	KeyGID      = "gid"
	KeyMode     = "mode"
	KeyShared   = "shared"
	KeyTree     = "tree"
	KeyOnRemove = "on_remove"
	KeyAccess   = "access"
)

// Access values: what a container may do through the volume.
const (
	AccessRW = "rw"
	AccessRO = "ro" // through a read-only view
)

var knownKeys = []string{KeyApp, KeyPath, KeyUID, KeyGID, KeyMode, KeyShared, KeyTree, KeyOnRemove, KeyAccess}

// anonymousPattern is how Docker names the volumes it makes for an image's
// VOLUME and for -v /path or --mount without a source.
var anonymousPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

var appPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

const appAllowed = "1 to 64 of A-Z a-z 0-9 _ -, starting with a letter or digit"

// Spec is one volume's meaning: which directory, and how it is owned and
// removed.
type Spec struct {
	Kind     Kind   // which part of the tree; kinds says what each is
	App      string // "" for an anonymous volume, and for a shared or tree volume created without app
	Path     string // folded, one leading "/"; "/<name>" for an anonymous volume; "" for shared and tree
	UID      uint32
	GID      uint32
	Mode     uint32 // permission bits, at most 07777
	Shared   string // shared directory name, "" when none
	Tree     string // TreeAppData, TreeServiceData, TreeShared, or "" when none
	Enforce  bool   // UID, GID and Mode are set at Create and at every Mount
	OnRemove string // Keep or Delete
	// IDMap: uid/gid on a shared or tree volume. The container gets an
	// id-mapped view that shows the directory's on-disk owner as UID:GID;
	// the directory is never chowned.
	IDMap bool
	// ReadOnly: access=ro, the container gets a read-only view. False,
	// access=rw, is also what records of earlier versions mean.
	ReadOnly bool
}

// Access is the access option's value.
func (s Spec) Access() string {
	if s.ReadOnly {
		return AccessRO
	}
	return AccessRW
}

// Dir is the volume's directory relative to the plugin's root.
func (s Spec) Dir() string { return kinds[s.Kind].dir(s) }

// ModeString is the mode as four octal digits, as Status shows it.
func (s Spec) ModeString() string { return fmt.Sprintf("%04o", s.Mode) }

// OptionError refuses one option: it names the key, the value, and what is
// allowed.
type OptionError struct {
	Key, Value, Allowed string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("invalid option %s=%q: %s", e.Key, e.Value, e.Allowed)
}

// NameError refuses a volume name that says neither app nor path.
type NameError struct {
	Name, Reason string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("cannot parse volume name %q (%s): name the volume <app>_<dir> "+
		"(gitea_data is app gitea, path /data), or give options: -o app=<app> [-o path=<dir>]",
		e.Name, e.Reason)
}

// AnonymousRefusedError refuses an anonymous volume when the daemon is set
// to refuse them.
type AnonymousRefusedError struct {
	Name string
}

func (e *AnonymousRefusedError) Error() string {
	return fmt.Sprintf("volume %q is anonymous (Docker names the volumes it makes for an image's VOLUME, "+
		"and for -v /path or --mount without a source, with 64 hex digits), and this plugin refuses anonymous "+
		"volumes (setting --anonymous / ANONYMOUS_VOLUMES is refuse): name the volume (-v <app>_<dir>:/path), "+
		"or set the plugin to delete or keep them", e.Name)
}

// Parser parses Create requests against the daemon's settings.
type Parser struct {
	SharedNames []string
	Anonymous   string // what Remove does to anonymous volumes: Delete (when ""), Keep, or Refuse them at Create
}

// Parse validates name and opts and returns the volume they describe.
func (p Parser) Parse(name string, opts map[string]string) (Spec, error) {
	if !utf8.ValidString(name) {
		// Records and the mount log are JSON, which turns invalid UTF-8
		// into U+FFFD: the volume would come back under another name.
		return Spec{}, &NameError{name, "want valid UTF-8"}
	}
	o, err := lowerKeys(opts)
	if err != nil {
		return Spec{}, err
	}
	s := Spec{Kind: KindApp, Mode: DefaultMode, OnRemove: Keep}
	if v, ok := o[KeyApp]; ok {
		if !appPattern.MatchString(v) {
			return Spec{}, &OptionError{KeyApp, v, "want " + appAllowed}
		}
		s.App = v
	}
	if v, ok := o[KeyOnRemove]; ok {
		if v != Keep && v != Delete {
			return Spec{}, &OptionError{KeyOnRemove, v, `want "keep" or "delete"`}
		}
		s.OnRemove = v
	}
	if v, ok := o[KeyAccess]; ok {
		if v != AccessRW && v != AccessRO {
			return Spec{}, &OptionError{KeyAccess, v, `want "rw" (the default) or "ro"`}
		}
		s.ReadOnly = v == AccessRO
	}
	_, hasShared := o[KeyShared]
	_, hasTree := o[KeyTree]
	switch {
	case hasTree && hasShared:
		return Spec{}, &OptionError{KeyShared, o[KeyShared], "not allowed with tree: a tree volume is the whole tree"}
	case hasTree:
		s.Kind = KindTree
	case hasShared:
		s.Kind = KindShared
	case s.App == "" && anonymousPattern.MatchString(name):
		s.Kind = KindAnonymous
	}
	k := s.Kind.Info()
	if k.place != nil {
		if s, err = k.place(p, s, name, o[k.key]); err != nil {
			return Spec{}, err
		}
	}
	for _, key := range knownKeys {
		if v, ok := o[key]; ok && !k.Takes(key) {
			return Spec{}, &OptionError{key, v, k.refused}
		}
	}
	if s, err = parseOwner(s, o); err != nil {
		return Spec{}, err
	}
	if k.IDMapped {
		s.IDMap, s.Enforce = s.Enforce, false
	}
	if s.OnRemove == Delete && !k.Deletable {
		return Spec{}, &OptionError{KeyOnRemove, Delete, k.neverDeleted}
	}
	if s.Kind != KindApp {
		return s, nil
	}
	path, hasPath := o[KeyPath]
	switch {
	case hasPath && s.App == "":
		return Spec{}, &OptionError{KeyPath, path, "path needs app: give -o app=<app> too, or name the volume <app>_<dir> without options"}
	case hasPath:
		if s.Path, err = FoldPath(path); err != nil {
			return Spec{}, &OptionError{KeyPath, path, err.Error()}
		}
	case s.App != "":
		if s.Path, err = FoldPath(name); err != nil {
			return Spec{}, &NameError{name, "with app and no path the name is the path, and " + err.Error()}
		}
	default:
		if s.App, s.Path, err = splitName(name); err != nil {
			return Spec{}, err
		}
	}
	return s, nil
}

// parseOwner reads uid, gid and mode. Given any of them, the owner is
// enforced; given none, it is left to Docker's copy-up and the app.
func parseOwner(s Spec, o map[string]string) (Spec, error) {
	var err error
	if v, ok := o[KeyUID]; ok {
		if s.UID, err = parseID(KeyUID, v); err != nil {
			return Spec{}, err
		}
		s.Enforce = true
	}
	if v, ok := o[KeyGID]; ok {
		if s.GID, err = parseID(KeyGID, v); err != nil {
			return Spec{}, err
		}
		s.Enforce = true
	}
	if v, ok := o[KeyMode]; ok {
		if s.Mode, err = parseMode(v); err != nil {
			return Spec{}, err
		}
		s.Enforce = true
	}
	return s, nil
}

// splitName reads a name of the form <app>_<dir>: the app is what comes
// before the first "_", the path what comes after it.
func splitName(name string) (app, path string, err error) {
	app, dir, ok := strings.Cut(name, "_")
	if !ok {
		return "", "", &NameError{name, `it has no "_"`}
	}
	if !appPattern.MatchString(app) {
		return "", "", &NameError{name, fmt.Sprintf("app %q is not %s", app, appAllowed)}
	}
	if path, err = FoldPath(dir); err != nil {
		return "", "", &NameError{name, "dir " + err.Error()}
	}
	return app, path, nil
}

// FoldPath normalises a data_dir path: leading, trailing and repeated "/"
// are folded, and the result has one leading "/". It refuses what could
// leave the app's directory or confuse a host: "." and ".." components,
// control characters, invalid UTF-8, over-long components, and nothing.
func FoldPath(p string) (string, error) {
	if !utf8.ValidString(p) {
		return "", fmt.Errorf("want valid UTF-8")
	}
	var b strings.Builder
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "":
			continue
		case c == "." || c == "..":
			return "", fmt.Errorf(`want a path without "." or ".." components`)
		case len(c) > maxCompLen:
			return "", fmt.Errorf("want path components of at most %d bytes", maxCompLen)
		case strings.IndexFunc(c, unicode.IsControl) >= 0:
			return "", fmt.Errorf("want a path without NUL or control characters")
		}
		b.WriteByte('/')
		b.WriteString(c)
		// The limit applies to the folded path: checked on the input,
		// "a/b" of maxPathLen bytes would fold to maxPathLen+1 bytes that
		// are refused when folded again.
		if b.Len() > maxPathLen {
			return "", fmt.Errorf("want a path of at most %d bytes", maxPathLen)
		}
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("want a path below the app's directory, not %q", p)
	}
	return b.String(), nil
}

// lowerKeys folds option keys to lower case, refusing unknown keys and a key
// given twice in different case.
func lowerKeys(opts map[string]string) (map[string]string, error) {
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the same request always gets the same error
	o := make(map[string]string, len(opts))
	given := make(map[string]string, len(opts))
	for _, k := range keys {
		lk := strings.ToLower(k)
		if !slices.Contains(knownKeys, lk) {
			return nil, &OptionError{k, opts[k], "unknown key; known keys are " + strings.Join(knownKeys, ", ")}
		}
		if prev, ok := given[lk]; ok {
			return nil, &OptionError{k, opts[k], fmt.Sprintf("key given twice, as %q and %q", prev, k)}
		}
		given[lk] = k
		o[lk] = opts[k]
	}
	return o, nil
}

func parseID(key, v string) (uint32, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > MaxID {
		return 0, &OptionError{key, v, fmt.Sprintf("want a decimal number from 0 to %d", MaxID)}
	}
	return uint32(n), nil
}

func parseMode(v string) (uint32, error) {
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil || n > maxMode {
		return 0, &OptionError{KeyMode, v, "want octal permission bits of at most 07777, such as 750 or 0750"}
	}
	return uint32(n), nil
}
