// Package migrate moves a Portal app that bind-mounts directories of the
// Portal tree onto portal-volume volumes on the very same directories.
//
// It reads a compose file (a rendered Portal docker-compose.yml.template,
// or the one file Portal's old core generated for all apps) and plans, for
// every bind mount of a directory under the root, the volume that replaces
// it; Override writes the plan as a compose override file. Nothing is
// copied or moved: the volumes adopt the directories where they are.
//
// # Reading
//
// Only services.<name>.volumes is read, in both syntaxes: the short one
// ("SOURCE:TARGET[:MODE]", a bind when SOURCE starts with "/", "." or "~")
// and the long one (type: bind, source, target, read_only). A relative
// source is relative to the compose file's directory, "~" is the home
// directory, as compose reads them. The narrow reading (go.yaml.in/yaml/v3,
// not compose-spec's loader) keeps the plugin's one binary small; compose
// itself judges the rest of the file when it runs.
//
// # Mapping
//
// With the root R (the plugin's --root):
//
//	R/app_data/<app>/<sub>   app <app>, path /<sub>: named as spec.Name names it (<app>_<sub, "."-joined>)
//	R/shared/<name>          shared <name>: <project>_shared.<name>
//	R/shared                 tree shared:   <project>_tree.shared
//	R/app_data               tree app_data: <project>_tree.app_data
//	R/service_data           tree service_data: <project>_tree.service_data
//
// The project is the compose project the file runs as (by default its
// directory's name, as compose takes it). An existing app directory is
// adopted with its current owner and mode as explicit uid, gid and mode
// options, so that adoption changes nothing; a missing one gets no owner
// options (root 0755, then left to Docker and the app). Shared directories
// and trees are never chowned, so they take no owner options. Names are
// stable: the same directory always gets the same name.
//
// What a volume cannot be stays a bind mount and is reported with the
// reason: a file, a path outside the root, a path that leaves the root
// through "..", a symlink below the root, a shared name the plugin does
// not allow, the root itself or an app's whole directory, a directory
// inside another one that is mounted too (volumes do not nest), and a
// source that is still a template or a variable.
package migrate

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Mount is one entry of a service's volumes list.
type Mount struct {
	Service  string
	Index    int    // position in the service's volumes list
	Spec     string // the entry as written, short syntax, for messages
	Source   string // as written; "" for an anonymous volume
	Target   string // as written, so that an override entry merges onto it
	Bind     bool   // a host path, not a named or anonymous volume
	ReadOnly bool
	Long     bool // written in the long syntax
}

func (m Mount) String() string {
	return fmt.Sprintf("services.%s.volumes[%d] %q", m.Service, m.Index, m.Spec)
}

// File is what migrate reads of a compose file.
type File struct {
	Mounts []Mount // service by service (in name order), in list order
	Kept   []Kept  // entries not understood, with the reason
}

// Kept is a mount the override leaves as it is, and why.
type Kept struct {
	Mount  Mount
	Reason string
}

func (k Kept) String() string { return k.Mount.String() + ": " + k.Reason }

// composeFile is the part of a compose file that is read.
type composeFile struct {
	Services map[string]*struct {
		Volumes []yaml.Node `yaml:"volumes"`
	} `yaml:"services"`
}

// longVolume is the long volume syntax.
type longVolume struct {
	Type     string `yaml:"type"`
	Source   string `yaml:"source"`
	Target   string `yaml:"target"`
	ReadOnly bool   `yaml:"read_only"`
}

// Read reads the services' volumes of a compose file.
func Read(data []byte) (*File, error) {
	var top yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("not a YAML file: %v", err)
	}
	if len(top.Content) == 0 || top.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a compose file: want a YAML mapping with a services section")
	}
	var cf composeFile
	if err := top.Decode(&cf); err != nil {
		return nil, fmt.Errorf("not a compose file: %v", err)
	}
	if len(cf.Services) == 0 {
		return nil, errors.New("not a compose file: no services section (the version 1 format, without one, is not read)")
	}
	f := &File{}
	names := make([]string, 0, len(cf.Services))
	for name := range cf.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		svc := cf.Services[name]
		if svc == nil {
			continue
		}
		for i, n := range svc.Volumes {
			m, err := readMount(name, i, &n)
			if err != nil {
				f.Kept = append(f.Kept, Kept{m, err.Error()})
				continue
			}
			f.Mounts = append(f.Mounts, m)
		}
	}
	return f, nil
}

func readMount(service string, i int, n *yaml.Node) (Mount, error) {
	m := Mount{Service: service, Index: i}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias // "- *anchor": the entry it names
	}
	switch n.Kind {
	case yaml.ScalarNode:
		m.Spec = n.Value
		return m, parseShort(&m)
	case yaml.MappingNode:
		var lv longVolume
		if err := n.Decode(&lv); err != nil {
			m.Spec = "{...}"
			return m, fmt.Errorf("not a volume entry: %v", err)
		}
		m.Source, m.Target, m.ReadOnly, m.Long = lv.Source, lv.Target, lv.ReadOnly, true
		m.Spec = lv.Source + ":" + lv.Target
		if lv.ReadOnly {
			m.Spec += ":ro"
		}
		m.Bind = lv.Type == "bind"
		if m.Target == "" {
			return m, errors.New("no target")
		}
		return m, nil
	}
	m.Spec = "?"
	return m, errors.New("not a volume entry: want a string or a mapping")
}

// shortModes are the options the short syntax takes after the target.
var shortModes = []string{"ro", "rw", "z", "Z", "nocopy", "consistent", "cached", "delegated",
	"shared", "rshared", "slave", "rslave", "private", "rprivate"}

// parseShort reads SOURCE:TARGET[:MODE], or TARGET alone.
func parseShort(m *Mount) error {
	parts := strings.Split(m.Spec, ":")
	switch len(parts) {
	case 1:
		m.Target = parts[0]
		return nil
	case 2, 3:
		m.Source, m.Target = parts[0], parts[1]
	default:
		return errors.New(`want SOURCE:TARGET[:MODE] (a path with ":" needs the long syntax)`)
	}
	if m.Source == "" || m.Target == "" {
		return errors.New("want SOURCE:TARGET[:MODE]")
	}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			if !slices.Contains(shortModes, o) {
				return fmt.Errorf("unknown mode %q", o)
			}
			if o == "ro" {
				m.ReadOnly = true
			}
		}
	}
	m.Bind = strings.HasPrefix(m.Source, "/") || strings.HasPrefix(m.Source, ".") || strings.HasPrefix(m.Source, "~")
	return nil
}

// hasVariable says whether s still holds what compose or Portal would
// replace before use.
func hasVariable(s string) bool {
	return strings.Contains(s, "$") || strings.Contains(s, "{{")
}
