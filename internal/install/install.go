// Package install is what the installer subcommands (appjson, migrate)
// do with the volumes their input gives: print the docker volume create
// commands, write a compose override that mounts them, or create them
// through the plugin's socket.
package install

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/portal/portal-volume/driver/spec"
)

// Volume is a volume to create: its name, the driver options that create
// it (always explicit), and the volume they mean.
type Volume struct {
	Name    string
	Options map[string]string
	Spec    spec.Spec
}

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

// Commands prints one docker volume create command per volume.
func Commands(w io.Writer, driver string, vols []Volume) {
	for _, v := range vols {
		var b strings.Builder
		b.WriteString("docker volume create -d " + ShellQuote(driver))
		for _, kv := range OrderedOptions(v.Options) {
			b.WriteString(" -o " + ShellQuote(kv[0]+"="+kv[1]))
		}
		b.WriteString(" " + ShellQuote(v.Name))
		fmt.Fprintln(w, b.String())
	}
}

// ShellQuote quotes s for a POSIX shell, when it needs it.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/=:@%+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Creator creates one volume: through the engine's API, or the plugin's
// socket.
type Creator func(name string, opts map[string]string) error

// Create creates every volume with create, reporting each one made on
// report, and returns a line per volume not created.
func Create(create Creator, vols []Volume, report io.Writer) (failed []string) {
	for _, v := range vols {
		if err := create(v.Name, v.Options); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", v.Name, err))
			continue
		}
		fmt.Fprintf(report, "created %s (%s)\n", v.Name, v.Spec.Dir())
	}
	return failed
}

// Mount is one entry of a service's volumes in an override.
type Mount struct {
	Service  string
	Volume   string // its name
	Target   string // as the file it merges onto spells it
	ReadOnly bool
	Long     bool // written in the long syntax
}

// Override is a compose override file: the services' volumes and the
// top-level volumes section.
type Override struct {
	Header   []string // comment lines at the top, without "# "
	Empty    []string // the lines written after the header when there is no mount
	Mounts   []Mount  // service by service
	Volumes  []Volume // each once
	Driver   string
	External bool // created beforehand: no driver and options, external: true
}

// Write writes the override. Both compose clients merge a service's
// volumes by target, but not alike: Compose v2 cleans a short-syntax
// target ("/srv/x/" is "/srv/x") before it merges and a long-syntax one
// only after, docker-compose v1 compares targets as written. So each entry
// has the syntax and the target spelling of the entry it replaces, and both
// clients see the same key in both files. Every mount has nocopy, every
// volume a fixed name; external ones (created through the socket, so that
// Docker holds no options for them) carry no driver options, which
// docker-compose v1 would compare with what Docker holds. Every string is
// double-quoted, so that YAML reads none as a number or boolean.
func (o *Override) Write(w io.Writer) {
	q := strconv.Quote
	for _, l := range o.Header {
		fmt.Fprintln(w, "# "+l)
	}
	if len(o.Mounts) == 0 {
		for _, l := range o.Empty {
			fmt.Fprintln(w, l)
		}
		return
	}
	fmt.Fprintln(w, "services:")
	service := ""
	for i, m := range o.Mounts {
		if i == 0 || m.Service != service {
			service = m.Service
			fmt.Fprintf(w, "  %s:\n    volumes:\n", q(service))
		}
		if !m.Long {
			mode := "nocopy"
			if m.ReadOnly {
				mode = "ro,nocopy"
			}
			fmt.Fprintf(w, "      - %s\n", q(m.Volume+":"+m.Target+":"+mode))
			continue
		}
		fmt.Fprintf(w, "      - type: volume\n        source: %s\n        target: %s\n", q(m.Volume), q(m.Target))
		if m.ReadOnly {
			fmt.Fprintln(w, "        read_only: true")
		}
		fmt.Fprintln(w, "        volume:\n          nocopy: true")
	}
	fmt.Fprintln(w, "volumes:")
	for _, v := range o.Volumes {
		fmt.Fprintf(w, "  %s:\n    name: %s\n", q(v.Name), q(v.Name))
		if o.External {
			fmt.Fprintln(w, "    external: true")
			continue
		}
		fmt.Fprintf(w, "    driver: %s\n    driver_opts:\n", q(o.Driver))
		for _, kv := range OrderedOptions(v.Options) {
			fmt.Fprintf(w, "      %s: %s\n", kv[0], q(kv[1]))
		}
	}
}
