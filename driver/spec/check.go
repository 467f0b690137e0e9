package spec

import (
	"fmt"
	"strconv"
)

// Check tells whether s, read back for the volume name (from the state
// directory, which the plugin trusts no further than a client), is what
// Parse makes of the options that describe it: a record that says anything
// a Create could not have made (a path with "..", a tree that is no tree,
// an owner where none may be given) is refused with the reason.
//
// Two of the daemon's settings may have changed since the volume was made,
// and do not make it another volume: the allowed shared names (a shared
// name only has to be one plain directory name) and what Remove does to
// anonymous volumes (taken from s).
func (p Parser) Check(name string, s Spec) error {
	if s.Kind < 0 || int(s.Kind) >= len(kinds) {
		return fmt.Errorf("record of volume %q: unknown kind %d", name, int(s.Kind))
	}
	q := p
	if s.Kind == KindShared {
		if !plainName(s.Shared) {
			return fmt.Errorf("record of volume %q: shared directory name %q is not one plain directory name", name, s.Shared)
		}
		q.SharedNames = []string{s.Shared}
	}
	if s.Kind == KindAnonymous {
		q.Anonymous = s.OnRemove
		if s.OnRemove != Keep && s.OnRemove != Delete {
			return fmt.Errorf("record of volume %q: on_remove %q, want keep or delete", name, s.OnRemove)
		}
	}
	got, err := q.Parse(name, s.options())
	if err != nil {
		return fmt.Errorf("record of volume %q: %w", name, err)
	}
	if canonical(got) != canonical(s) {
		return fmt.Errorf("record of volume %q says %s (%s), which no Create makes; its options make %s (%s)",
			name, s.Describe(), s.Dir(), got.Describe(), got.Dir())
	}
	return nil
}

// options are the Create options that describe s.
func (s Spec) options() map[string]string {
	k := s.Kind.Info()
	o := map[string]string{}
	if k.key != "" {
		o[k.key] = s.Shared + s.Tree // the one of them that k has
	}
	if s.App != "" {
		o[KeyApp] = s.App
	}
	if k.Takes(KeyPath) {
		o[KeyPath] = s.Path
	}
	if k.Takes(KeyOnRemove) {
		o[KeyOnRemove] = s.OnRemove
	}
	if s.ReadOnly {
		o[KeyAccess] = AccessRO
	}
	if s.Enforce || s.IDMap {
		o[KeyUID] = strconv.FormatUint(uint64(s.UID), 10)
		o[KeyGID] = strconv.FormatUint(uint64(s.GID), 10)
	}
	if s.Enforce {
		o[KeyMode] = s.ModeString()
	}
	return o
}

// canonical is s without the owner fields that mean nothing for it.
func canonical(s Spec) Spec {
	if !s.Enforce {
		s.Mode = 0
		if !s.IDMap {
			s.UID, s.GID = 0, 0
		}
	}
	return s
}

// plainName tells whether n is one directory name: not empty, no "/" or
// NUL, not "." or "..".
func plainName(n string) bool {
	if n == "" || n == "." || n == ".." {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] == '/' || n[i] == 0 {
			return false
		}
	}
	return true
}
