package main

import (
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/portal/portal-volume/appjson"
	"github.com/portal/portal-volume/internal/install"
)

const appJSONUsage = `usage: portal-volume appjson [flags] FILE

Reads the data_dirs of the Portal app.json FILE and prints the portal-volume
volumes that replace Portal's bind mounts: by default the docker volume
create commands; with --format compose a compose override file (the
service's volumes and the volumes section); with --create it creates them
through the Docker engine, or through the plugin's own socket with
--socket.

flags:
`

// runAppJSON is the appjson subcommand. It returns the exit code:
// 0 done, 1 the app.json is refused or a create failed, 2 bad usage.
func runAppJSON(args []string, stdout, stderr io.Writer) int {
	fs := newSubcommand("appjson", appJSONUsage, stderr)
	app := fs.String("app", "", `the app's name (default: the app.json's "name")`)
	format := fs.String("format", "commands", "commands (docker volume create lines) or compose (a compose override file)")
	in := installerFlags(fs, "appjson", "then --format compose prints the compose file with the volumes external", stderr)
	create, driver := in.create, in.driver
	service := fs.String("service", "", "with --format compose, the service that mounts the volumes (default: the app's name)")

	files, code, done := parseArgs(fs, args)
	if done {
		return code
	}
	if len(files) != 1 {
		return in.usage("want exactly one app.json FILE, got %d", len(files))
	}
	if *format != "commands" && *format != "compose" {
		return in.usage("--format %q: want commands or compose", *format)
	}
	sharedNames, makeVolume, err := in.resolve()
	if err != nil {
		return in.usage("%v", err)
	}
	fail := func(msg string, problems ...string) int { return in.fail(files[0], msg, problems...) }
	data, err := readFile(files[0])
	if err != nil {
		return fail(err.Error())
	}
	var problems []string
	name := *app
	if name == "" {
		if name, err = appjson.AppName(data); err != nil {
			problems = append(problems, err.Error())
		} else if name == "" {
			problems = append(problems, `no app name: give --app NAME, or a "name" in the app.json`)
		}
	}
	judged := name
	if len(problems) > 0 {
		judged = "app" // still list the entries' problems
	}
	entries, err := appjson.FromAppJSON(data, judged, sharedNames)
	var ps appjson.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			problems = append(problems, p.String())
		}
	} else if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return fail(plural(len(problems), "problem")+"; nothing was created", problems...)
	}
	if *service == "" {
		*service = name
	}

	vols := unique(entries)
	if *create {
		report := stdout
		if *format == "compose" {
			report = stderr
		}
		if failed := install.Create(makeVolume, vols, report); len(failed) > 0 {
			return fail(plural(len(failed), "volume")+" not created", failed...)
		}
		if *format != "compose" {
			return 0
		}
	}
	if *format == "compose" {
		override(name, *service, *driver, *create, entries, vols).Write(stdout)
	} else {
		install.Commands(stdout, *driver, vols)
	}
	return 0
}

// unique is the volumes of entries, each once: entries may mount one
// shared directory at two paths.
func unique(entries []appjson.Volume) []install.Volume {
	seen := make(map[string]bool, len(entries))
	var out []install.Volume
	for _, v := range entries {
		if !seen[v.Name] {
			seen[v.Name] = true
			out = append(out, v.Volume)
		}
	}
	return out
}

// override is the compose override that mounts the app's volumes into
// service, at the paths its entries give.
func override(app, service, driver string, external bool, entries []appjson.Volume, vols []install.Volume) *install.Override {
	o := &install.Override{
		Header: []string{
			"portal-volume volumes of app " + app + ", from its app.json data_dirs.",
			"Use as an override file: docker-compose -f docker-compose.yml -f THIS_FILE up -d",
		},
		Volumes:  vols,
		Driver:   driver,
		External: external,
	}
	if len(entries) == 0 {
		o.Header = []string{"app " + app + " has no data_dirs: no volumes to mount."}
	}
	for _, v := range entries {
		// The short syntax splits at ":"; the long one does not.
		o.Mounts = append(o.Mounts, install.Mount{Service: service, Volume: v.Name, Target: v.Target, Long: strings.Contains(v.Target, ":")})
	}
	return o
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
