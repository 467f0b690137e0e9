package spec

import (
	"slices"
	"strconv"
	"strings"
)

// Kind is what part of the Portal tree a volume is. The zero Kind is
// KindApp.
type Kind int

// The kinds of volume; kinds says what each one is.
const (
	KindApp       Kind = iota // app_data/<app>/<path>
	KindShared                // shared/<name>
	KindTree                  // a whole tree: app_data, service_data or shared
	KindAnonymous             // anonymous/<name>, named by Docker
)

// KindInfo is what a kind of volume is: where its directory lies, the
// rules the driver keeps for it, and the options it takes. The parser, the
// driver's index, its views and Remove, and the installers all ask it.
type KindInfo struct {
	Name  string // as messages and logs say it
	Place string // where its directory lies, below the root
	// Exclusive: one volume name per directory, and no directory of an
	// exclusive volume lies inside another's: a container writing one
	// volume must never be able to redirect another through a symlink.
	Exclusive bool
	// Contains: its directory holds other volumes' directories by design
	// (a tree holds app and shared directories).
	Contains bool
	// Deletable: Remove deletes the directory when on_remove (for an
	// anonymous volume, the daemon's setting) says delete. Otherwise the
	// directory is never deleted, and on_remove=delete is refused.
	Deletable bool
	// NoSuid: its view is nosuid and nodev, even when its options ask for
	// nothing else: an app with an id-mapped view can leave a set-uid file
	// in the directory, and no container may run it from a volume of this
	// plugin. (Every volume is mounted through a view; an app's own volume
	// keeps set-id programs and devices working, as Docker's local driver
	// does.)
	NoSuid bool
	// IDMapped: the directory is used as it is, never chowned; uid and gid
	// ask for an id-mapped view instead, and mode is refused.
	IDMapped bool
	// Options are the option keys it takes; the others are refused, with
	// refused as the reason.
	Options []string

	refused      string
	neverDeleted string                                               // why on_remove=delete is refused, when not Deletable
	place        func(p Parser, s Spec, name, v string) (Spec, error) // reads the value that names the directory; nil: none
	dir          func(s Spec) string                                  // the directory, relative to the root
	named        func(s Spec) string                                  // how describe starts, "" for nothing
	logged       func(s Spec) map[string]any                          // the log fields that say which volume
	key          string                                               // the option whose value place reads ("" for the volume name)
	name         func(s Spec, prefix string) string                   // the name installers give it (see Name)
}

var kinds = [...]KindInfo{
	KindApp: {
		Name: "app", Place: "app_data/<app>/<path>",
		Exclusive: true, Deletable: true,
		Options: []string{KeyApp, KeyPath, KeyUID, KeyGID, KeyMode, KeyOnRemove, KeyAccess},
		dir:     func(s Spec) string { return "app_data/" + s.App + s.Path },
		name:    func(s Spec, _ string) string { return pathName(s.App, s.Path) },
		named:   func(Spec) string { return "" },
		logged:  func(s Spec) map[string]any { return map[string]any{"app": s.App, "path": s.Path} },
	},
	KindShared: {
		Name: "shared", Place: "shared/<name>",
		NoSuid: true, IDMapped: true,
		Options:      []string{KeyApp, KeyUID, KeyGID, KeyShared, KeyOnRemove, KeyAccess},
		refused:      "not allowed with shared: a shared directory is used as it is",
		neverDeleted: "not allowed with shared: shared directories are never deleted",
		key:          KeyShared,
		place: func(p Parser, s Spec, _, v string) (Spec, error) {
			if !slices.Contains(p.SharedNames, v) {
				return Spec{}, &OptionError{KeyShared, v, "want one of " + strings.Join(p.SharedNames, ", ")}
			}
			s.Shared = v
			return s, nil
		},
		dir:    func(s Spec) string { return "shared/" + s.Shared },
		name:   func(s Spec, prefix string) string { return prefix + "_" + sharedPrefix + "." + s.Shared },
		named:  func(s Spec) string { return "shared=" + s.Shared },
		logged: func(s Spec) map[string]any { return map[string]any{"app": s.App, "shared": s.Shared} },
	},
	KindTree: {
		Name: "tree", Place: "app_data, service_data or shared, whole",
		Contains: true, NoSuid: true, IDMapped: true,
		Options:      []string{KeyApp, KeyUID, KeyGID, KeyTree, KeyOnRemove, KeyAccess},
		refused:      "not allowed with tree: a tree volume is the whole tree, used as it is",
		neverDeleted: "not allowed with tree: trees are never deleted",
		key:          KeyTree,
		place: func(_ Parser, s Spec, _, v string) (Spec, error) {
			if !slices.Contains(trees, v) {
				return Spec{}, &OptionError{KeyTree, v, "want one of " + strings.Join(trees, ", ")}
			}
			s.Tree = v
			return s, nil
		},
		dir:    func(s Spec) string { return s.Tree },
		name:   func(s Spec, prefix string) string { return prefix + "_" + treePrefix + "." + s.Tree },
		named:  func(s Spec) string { return "tree=" + s.Tree },
		logged: func(s Spec) map[string]any { return map[string]any{"app": s.App, "tree": s.Tree} },
	},
	// A volume Docker named for a VOLUME or a -v /path. It behaves as with
	// Docker's local driver; owner options still apply.
	KindAnonymous: {
		Name: "anonymous", Place: "anonymous/<name>",
		Exclusive: true, Deletable: true,
		Options: []string{KeyUID, KeyGID, KeyMode, KeyAccess},
		refused: "not allowed for an anonymous volume (named by Docker with 64 hex digits): it lives at anonymous/<name>, " +
			"and the plugin's --anonymous setting says what Remove does",
		place: func(p Parser, s Spec, name, _ string) (Spec, error) {
			policy := p.Anonymous
			if policy == "" {
				policy = Delete
			}
			if policy == Refuse {
				return Spec{}, &AnonymousRefusedError{name}
			}
			s.Path, s.OnRemove = "/"+name, policy
			return s, nil
		},
		dir:    func(s Spec) string { return "anonymous" + s.Path },
		name:   func(s Spec, _ string) string { return s.Path[1:] }, // Docker's
		named:  func(Spec) string { return "anonymous" },
		logged: func(Spec) map[string]any { return map[string]any{"anonymous": true} },
	},
}

// Kinds lists every kind, in order.
func Kinds() []Kind {
	ks := make([]Kind, len(kinds))
	for i := range kinds {
		ks[i] = Kind(i)
	}
	return ks
}

// Info is what k is; the row is shared, and only read.
func (k Kind) Info() *KindInfo { return &kinds[k] }

func (k Kind) String() string {
	if k < 0 || int(k) >= len(kinds) {
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kinds[k].Name
}

// Takes tells whether the kind takes the option key.
func (k *KindInfo) Takes(key string) bool { return slices.Contains(k.Options, key) }
