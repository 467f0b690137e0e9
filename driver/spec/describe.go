package spec

import (
	"fmt"
	"strings"
)

// Describe lists s as the options that give it, for messages.
func (s Spec) Describe() string {
	k := s.Kind.Info()
	var parts []string
	if n := k.named(s); n != "" {
		parts = append(parts, n)
	}
	if s.App != "" {
		parts = append(parts, "app="+s.App)
	}
	if s.ReadOnly {
		parts = append(parts, "access=ro")
	}
	if s.IDMap {
		parts = append(parts, fmt.Sprintf("uid=%d gid=%d (id-mapped view)", s.UID, s.GID))
	}
	if k.IDMapped { // never chowned, never deleted: nothing more to say
		return strings.Join(parts, " ")
	}
	if k.Takes(KeyPath) {
		parts = append(parts, "path="+s.Path)
	}
	if s.Enforce {
		parts = append(parts, fmt.Sprintf("uid=%d gid=%d mode=%s", s.UID, s.GID, s.ModeString()))
	} else {
		parts = append(parts, "owner left to Docker and the app")
	}
	return strings.Join(append(parts, "on_remove="+s.OnRemove), " ")
}

// Status is s as a volume's Status shows it: every option's value, and who
// owns the volume root.
func (s Spec) Status() map[string]any {
	return map[string]any{
		KeyApp:      s.App,
		KeyPath:     s.Path,
		KeyUID:      s.UID,
		KeyGID:      s.GID,
		KeyMode:     s.ModeString(),
		KeyShared:   s.Shared,
		KeyTree:     s.Tree,
		KeyOnRemove: s.OnRemove,
		KeyAccess:   s.Access(),
		"owner":     s.OwnerStatus(),
	}
}

// OwnerStatus tells who owns the volume root: the plugin ("enforced", set
// at Create and every Mount) or Docker and the app ("docker").
func (s Spec) OwnerStatus() string {
	if s.Enforce {
		return "enforced"
	}
	return "docker"
}

// LogFields are the log fields that say which volume s is (logrus.Fields
// takes them as they are).
func (s Spec) LogFields() map[string]any { return s.Kind.Info().logged(s) }

// ViewOptions are the options of s that ask for a view, as a message says
// them; "" when none does.
func (s Spec) ViewOptions() string {
	var o []string
	if s.ReadOnly {
		o = append(o, "access=ro")
	}
	if s.IDMap {
		o = append(o, fmt.Sprintf("uid=%d gid=%d on a shared or tree volume", s.UID, s.GID))
	}
	return strings.Join(o, " ")
}
