package appjson

import "github.com/portal/portal-volume/driver/spec"

// optionKeys are the options in the order they are written.
var optionKeys = []string{spec.KeyApp, spec.KeyPath, spec.KeyShared, spec.KeyTree, spec.KeyUID, spec.KeyGID, spec.KeyMode}

// OrderedOptions are opts in a fixed order, for commands and compose files.
func OrderedOptions(opts map[string]string) [][2]string {
	var kv [][2]string
	for _, k := range optionKeys {
		if val, ok := opts[k]; ok {
			kv = append(kv, [2]string{k, val})
		}
	}
	return kv
}
