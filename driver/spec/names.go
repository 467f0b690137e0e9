package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// This file is the naming rule and the layout, both ways: a volume name
// and the directory it means (splitName, Spec.Dir), and the stable name an
// installer gives a directory (Name, ForDir).
//
// # Names installers give
//
// Names are stable: an installed app's volumes keep their names across
// releases. A volume's name is <prefix>_<rest>, where the prefix is the app
// of an app volume and the installing app (or compose project) of a shared
// or tree volume, and rest takes one of four forms:
//
//   - path form: the folded path's components joined by ".", as in
//     gitea_data (path /data) or paperless-ngx_usr.src.paperless.data (path
//     /usr/src/paperless/data). It is used when every component is
//     [A-Za-z0-9_-]+, the first component is not "shared", "tree" or "x"
//     unless it is the only one, and the whole name is at most 255 bytes.
//   - shared form: shared.<name>, as in navidrome_shared.music.
//   - tree form: tree.<tree>, as in filebrowser_tree.app_data.
//   - hash form: x.<h>, where h is the first 16 lower-case hex digits of
//     the SHA-256 of the folded path, as in convos_x.79a9b5a372095dbd (path
//     /~/convos/data), for every other path (a "." or "~" or a non-ASCII
//     character in a component, a reserved first component followed by
//     more, or a name that would be too long).
//
// The forms never overlap: a path-form rest never contains "..", never
// starts or ends with ".", and starts with "shared.", "tree." or "x." only
// if its first component is reserved with more after it, which sends the
// path to the hash form. Within the path form, components hold no ".", so
// joining them with "." loses nothing: distinct folded paths of one app get
// distinct names. Distinct hash-form paths could in theory share a hash;
// an installer must refuse a file in which that happens.
//
// Names match Docker's [a-zA-Z0-9][a-zA-Z0-9_.-]+ (an app starts with a
// letter or digit, and rest uses only A-Z a-z 0-9 _ . -) and are at most
// 255 bytes (an app is at most 64 bytes and a shared name at most 64).
// For an app without "_" in its name, the app is what comes before the
// first "_" of the volume name, so names of different apps differ too, and
// a one-component path gets exactly the name the <app>_<dir> rule reads
// back (gitea_data is app gitea, path /data). Other names mean their
// directory only through their options: they are created with the options
// before anything mounts them by name.

// MaxNameLen is the longest volume name Name gives.
const MaxNameLen = 255

// DockerNamePattern is what Docker accepts as a volume name.
var DockerNamePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// DefaultSharedNames are the shared directories a plugin allows when it is
// not told otherwise.
var DefaultSharedNames = []string{"documents", "media", "music"}

// SharedNamePattern is what a shared directory's name may be (the
// daemon's setting allows no other): one path component that is never "."
// or "..".
var SharedNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

var componentPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Reserved first components: a path-form rest starting with one of these
// and a "." would look like the shared, tree or hash form.
const (
	sharedPrefix = "shared"
	treePrefix   = "tree"
	hashPrefix   = "x"
)

// Name is the stable name an installer gives the volume s; prefix names
// shared and tree volumes (an app volume is named by its app), and an
// anonymous volume keeps Docker's name.
func Name(s Spec, prefix string) string { return kinds[s.Kind].name(s, prefix) }

// pathName is the path form of app's volume for a folded path, or the hash
// form when the path form cannot say it.
func pathName(app, folded string) string {
	comps := strings.Split(folded[1:], "/")
	readable := len(comps) == 1 || (comps[0] != sharedPrefix && comps[0] != treePrefix && comps[0] != hashPrefix)
	for _, c := range comps {
		readable = readable && componentPattern.MatchString(c)
	}
	if readable {
		if name := app + "_" + strings.Join(comps, "."); len(name) <= MaxNameLen {
			return name
		}
	}
	sum := sha256.Sum256([]byte(folded))
	return app + "_" + hashPrefix + "." + hex.EncodeToString(sum[:8])
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

// CheckApp says whether app is a name the plugin takes as an app.
func CheckApp(app string) error {
	if !appPattern.MatchString(app) {
		return fmt.Errorf("app name %q: want %s", app, appAllowed)
	}
	return nil
}

// ForDir is the volume whose directory is rel (relative to the root, clean,
// not empty), with the default owner, or why no volume is that directory.
// A shared volume's name is not checked against the allowed ones.
func ForDir(rel string) (Spec, error) {
	comps := strings.Split(rel, "/")
	s := Spec{Mode: DefaultMode, OnRemove: Keep}
	switch {
	case len(comps) == 1 && slices.Contains(trees, comps[0]):
		s.Kind, s.Tree = KindTree, comps[0]
	case comps[0] == TreeShared && len(comps) == 2:
		s.Kind, s.Shared = KindShared, comps[1]
	case comps[0] == TreeShared:
		return Spec{}, fmt.Errorf("%s lies inside shared directory shared/%s: a volume is a whole shared directory", rel, comps[1])
	case comps[0] == TreeAppData && len(comps) == 2:
		return Spec{}, fmt.Errorf("%s is an app's whole directory: a volume is one directory below it, or the whole app_data tree", rel)
	case comps[0] == TreeAppData:
		if err := CheckApp(comps[1]); err != nil {
			return Spec{}, fmt.Errorf("%s: %v", rel, err)
		}
		sub := "/" + strings.Join(comps[2:], "/")
		folded, err := FoldPath(sub)
		if err != nil {
			return Spec{}, fmt.Errorf("%s: path %s: %v", rel, sub, err)
		}
		s.App, s.Path = comps[1], folded
	case comps[0] == TreeServiceData:
		return Spec{}, errors.New(rel + " lies inside service_data: only the whole service_data tree is a volume")
	default:
		return Spec{}, errors.New(rel + " is not under app_data, service_data or shared of the root")
	}
	return s, nil
}
