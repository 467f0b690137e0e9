package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portal/portal-volume/driver"
	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/driver/tree"
)

// pluginSocketDir is where Docker looks for legacy plugins' sockets.
const pluginSocketDir = "/run/docker/plugins"

// settings are the daemon's settings, as the rows of settingsTable fill
// them in.
type settings struct {
	// Driver is the driver's configuration: the rows that feed the driver
	// write their field of it directly (serve adds the logger).
	Driver    driver.Config
	Socket    string // absolute path
	LogLevel  logrus.Level
	LogFormat string
	// EngineAtStart: every start of the plugin is a new engine's (a
	// managed plugin, which the engine starts afresh and never sends
	// Plugin.Activate); otherwise only Plugin.Activate tells.
	EngineAtStart bool
	// HostRoot is where the host's / is mounted (the managed plugin); the
	// tree is then DataSource, a host path, mounted at the root (see
	// tree.go).
	HostRoot   string
	DataSource string
}

// setting is one row of settingsTable: a flag, its environment twin (what
// a managed plugin's config.json or a systemd unit sets), its default, its
// help, and the parser that checks a value and stores it in settings.
type setting struct {
	flag string // without dashes
	env  string
	def  string
	help string // "(env X)" is added
	// parse checks v and stores it in s. Its error says only what is
	// wanted ("want an absolute path"): the table prefixes the setting's
	// flag, twin and value. Rows are parsed in table order, so a parser
	// may read what the rows above it stored.
	parse func(v string, s *settings) error
	// managed is what config.json does with the twin.
	managed managedEnv
}

// managedEnv is how config.json, a managed plugin's manifest, carries a
// setting's environment twin; TestSettingsTable holds config.json to it.
type managedEnv struct {
	absent   bool // no entry: the manifest decides the setting otherwise
	settable bool // users may `docker plugin set` it
	// value is config.json's value when ownValue is set (settable or
	// not); otherwise config.json gives the default.
	value    string
	ownValue bool
}

// userSettable: config.json gives the default, and users may set it.
var userSettable = managedEnv{settable: true}

// fixed: config.json gives v, and users may not change it: the plugin's
// own layout (its mounts, how the engine starts it) depends on it.
func fixed(v string) managedEnv { return managedEnv{value: v, ownValue: true} }

// notInManifest: config.json has no entry for the twin.
var notInManifest = managedEnv{absent: true}

var (
	logLevels          = []string{"debug", "info", "warn", "error"}
	anonymousPolicies  = []string{spec.Delete, spec.Keep, spec.Refuse}
	defaultSharedNames = "documents,media,music"
	errWantAbsolute    = errors.New("want an absolute path")
)

// settingsTable is every setting of the daemon, one row each; flags,
// environment lookups, -h and error messages are made from it. A new
// setting is a new row here, plus the field it fills (a driver.Config
// field when the driver uses it, so that serve hands it over as it is),
// its entry in config.json when users of the managed plugin may set it
// (or when the managed plugin needs another value than the default), and
// its row in docs/settings.md. TestSettingsTable holds config.json and the
// doc to this table.
var settingsTable = []setting{
	{
		flag: "host-root", env: "HOST_ROOT", def: "",
		help:    "where the host's / is mounted (the managed plugin): the tree is then --data-source, mounted at --root",
		managed: notInManifest, // config.json's entrypoint passes the flag: env from a new config.json never reaches an upgraded plugin
		parse: func(v string, s *settings) error {
			if v != "" && !filepath.IsAbs(v) {
				return errWantAbsolute
			}
			if v != "" {
				s.HostRoot = filepath.Clean(v)
			}
			return nil
		},
	},
	{
		flag: "data-source", env: "DATA_SOURCE", def: "",
		help:    "with --host-root: the Portal tree's path on the host",
		managed: managedEnv{settable: true, value: "/home/portal/user_data", ownValue: true},
		// An empty data source under --host-root is left to the start,
		// which explains it (see mountTree).
		parse: func(v string, s *settings) error {
			switch {
			case v == "":
			case s.HostRoot == "":
				return errors.New("only with --host-root (the managed plugin); the host daemon serves --root")
			case !filepath.IsAbs(v) || filepath.Clean(v) != v || v == "/":
				return errors.New("want a clean absolute path on the host, other than /, such as /home/portal/user_data")
			}
			s.DataSource = v
			return nil
		},
	},
	{
		flag: "root", env: "PORTAL_ROOT", def: "/home/portal/user_data",
		help:    "the Portal tree",
		managed: fixed("/mnt/pv/tree"),
		parse: func(v string, s *settings) (err error) {
			s.Driver.Root, err = rootDir(v, s.HostRoot != "")
			return err
		},
	},
	{
		flag: "socket", env: "PORTAL_SOCKET", def: "portal-volume",
		help:    "socket: a name under " + pluginSocketDir + ", or an absolute path",
		managed: notInManifest, // a managed plugin's socket is config.json's interface.socket
		parse: func(v string, s *settings) (err error) {
			s.Socket, err = socketPath(v)
			return err
		},
	},
	{
		flag: "log-level", env: "LOG_LEVEL", def: "info",
		help:    "debug, info, warn or error",
		managed: userSettable,
		parse: func(v string, s *settings) error {
			if !slices.Contains(logLevels, v) {
				return fmt.Errorf("want one of %s", strings.Join(logLevels, ", "))
			}
			var err error
			s.LogLevel, err = logrus.ParseLevel(v)
			return err
		},
	},
	{
		flag: "log-format", env: "LOG_FORMAT", def: "text",
		help:    "text or json",
		managed: userSettable,
		parse: func(v string, s *settings) error {
			if v != "text" && v != "json" {
				return errors.New("want text or json")
			}
			s.LogFormat = v
			return nil
		},
	},
	{
		flag: "shared", env: "SHARED_DIRS", def: defaultSharedNames,
		help:    "allowed shared directory names, comma separated",
		managed: userSettable,
		parse: func(v string, s *settings) (err error) {
			s.Driver.SharedNames, err = sharedNames(v)
			return err
		},
	},
	{
		flag: "anonymous", env: "ANONYMOUS_VOLUMES", def: spec.Delete,
		help:    "anonymous volumes (an image's VOLUME, -v /path): delete their directory on remove, keep it, or refuse them",
		managed: userSettable,
		parse: func(v string, s *settings) error {
			if !slices.Contains(anonymousPolicies, v) {
				return fmt.Errorf("want one of %s", strings.Join(anonymousPolicies, ", "))
			}
			s.Driver.Anonymous = v
			return nil
		},
	},
	{
		flag: "engine-start", env: "ENGINE_START", def: "activate",
		help:    "what tells a new engine: activate (Plugin.Activate; legacy) or plugin-start (every start of the plugin; managed)",
		managed: fixed("plugin-start"),
		parse: func(v string, s *settings) error {
			if v != "activate" && v != "plugin-start" {
				return errors.New("want activate or plugin-start")
			}
			s.EngineAtStart = v == "plugin-start"
			return nil
		},
	},
	{
		flag: "views", env: "VIEWS_DIR", def: "/run/portal-volume/views",
		help:    "directory for the views that every volume is mounted through, outside the root",
		managed: fixed("/mnt/pv/views"),
		parse: func(v string, s *settings) (err error) {
			s.Driver.ViewsDir, err = parseViews(v, s.Driver.Root)
			return err
		},
	},
	{
		flag: "shared-owner", env: "SHARED_OWNER", def: "",
		help:    "UID:GID given to the shared directories the plugin makes, so that id-mapped views of them can be made; empty: root",
		managed: userSettable,
		parse: func(v string, s *settings) (err error) {
			s.Driver.SharedOwner, err = parseSharedOwner(v)
			return err
		},
	},
	{
		flag: "usage-interval", env: "USAGE_INTERVAL", def: defaultUsageInterval,
		help:    "how often each volume's disk usage (in docker volume inspect) is measured in the background: a duration such as 24h or 30m; 0: never",
		managed: userSettable,
		parse: func(v string, s *settings) (err error) {
			s.Driver.UsageInterval, err = parseUsageInterval(v)
			return err
		},
	},
}

// set parses v into s; a bad value gets one error naming the setting, its
// twin, the value and what is allowed.
func (r setting) set(v string, s *settings) error {
	if err := r.parse(v, s); err != nil {
		return fmt.Errorf("setting --%s (%s) = %q: %w", r.flag, r.env, v, err)
	}
	return nil
}

// settingNamed is the row of flag name; there is always one.
func settingNamed(name string) setting {
	i := slices.IndexFunc(settingsTable, func(r setting) bool { return r.flag == name })
	return settingsTable[i]
}

// namePattern is what a socket name and a shared directory name may be:
// one path component that is never "." or "..".
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// parseSettings reads args (without the program name) and the environment:
// a flag given wins over its twin, a twin set and not empty over the
// default. It returns one error naming the setting, the value and what is
// allowed.
func parseSettings(args []string, getenv func(string) string, stderr io.Writer) (settings, error) {
	fs := flag.NewFlagSet("portal-volume", flag.ContinueOnError)
	fs.SetOutput(stderr)
	values := make([]*string, len(settingsTable))
	for i, r := range settingsTable {
		def := r.def
		if v := getenv(r.env); v != "" {
			def = v
		}
		values[i] = fs.String(r.flag, def, r.help+" (env "+r.env+")")
	}
	if err := fs.Parse(args); err != nil {
		return settings{}, err
	}
	if fs.NArg() > 0 {
		return settings{}, fmt.Errorf("unexpected argument %q: portal-volume takes only flags (see -h)", fs.Arg(0))
	}
	var s settings
	for i, r := range settingsTable {
		if err := r.set(*values[i], &s); err != nil {
			return settings{}, err
		}
	}
	return s, nil
}

// parseRoot, parseShared and parseSocket read a value as the daemon's
// --root, --shared and --socket do, with the daemon's error: the
// subcommands take the same values.
func parseRoot(v string) (string, error) {
	var s settings
	err := settingNamed("root").set(v, &s)
	return s.Driver.Root, err
}

func parseShared(v string) ([]string, error) {
	var s settings
	err := settingNamed("shared").set(v, &s)
	return s.Driver.SharedNames, err
}

func parseSocket(v string) (string, error) {
	var s settings
	err := settingNamed("socket").set(v, &s)
	return s.Socket, err
}

// rootDir: a root the plugin mounts itself (mounted) need not exist yet.
func rootDir(v string, mounted bool) (string, error) {
	if !filepath.IsAbs(v) {
		return "", errWantAbsolute
	}
	if mounted {
		return filepath.Clean(v), nil
	}
	fi, err := os.Stat(v)
	if err != nil {
		return "", fmt.Errorf("want an existing directory: %w", errors.Unwrap(err))
	}
	if !fi.IsDir() {
		return "", errors.New("want an existing directory, not a file")
	}
	return filepath.Clean(v), nil
}

func socketPath(v string) (string, error) {
	if strings.Contains(v, "/") {
		if !filepath.IsAbs(v) {
			return "", errors.New("want a name or an absolute path")
		}
		return filepath.Clean(v), nil
	}
	if !namePattern.MatchString(v) {
		return "", errors.New("want a name of A-Z a-z 0-9 _ . - or an absolute path")
	}
	return filepath.Join(pluginSocketDir, strings.TrimSuffix(v, ".sock")+".sock"), nil
}

func sharedNames(v string) ([]string, error) {
	var names []string
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		if !namePattern.MatchString(n) || slices.Contains(names, n) {
			return nil, fmt.Errorf("want distinct names of A-Z a-z 0-9 _ . -, comma separated, such as %s", defaultSharedNames)
		}
		names = append(names, n)
	}
	return names, nil
}

// parseViews: the views must never show up inside the tree (a backup of
// the tree reads every file once), nor the tree inside them.
func parseViews(v, root string) (string, error) {
	if !filepath.IsAbs(v) {
		return "", errWantAbsolute
	}
	v = filepath.Clean(v)
	inside := func(a, b string) bool { return a == b || strings.HasPrefix(a, strings.TrimSuffix(b, "/")+"/") }
	if inside(v, root) || inside(root, v) {
		return "", fmt.Errorf("want a directory outside the root %s, and not containing it", root)
	}
	return v, nil
}

func parseSharedOwner(v string) (*tree.Owner, error) {
	if v == "" {
		return nil, nil
	}
	u, g, ok := strings.Cut(v, ":")
	uid, uerr := strconv.ParseUint(u, 10, 32)
	gid, gerr := strconv.ParseUint(g, 10, 32)
	if !ok || uerr != nil || gerr != nil || uid == 0 || gid == 0 || uid > spec.MaxID || gid > spec.MaxID {
		return nil, fmt.Errorf("want UID:GID, two decimal ids from 1 to %d (root would defeat the id-mapped views), such as 2000:2000", spec.MaxID)
	}
	return &tree.Owner{UID: uint32(uid), GID: uint32(gid)}, nil
}

// defaultUsageInterval: a walk of a million photos on a Raspberry Pi costs
// a minute or so of one core and evicts part of the page cache, and wakes
// a sleeping disk; once a day that goes unnoticed. Fresh figures are a
// portal-volume usage away.
const defaultUsageInterval = "24h"

func parseUsageInterval(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || (d != 0 && d < time.Second) {
		return 0, errors.New("want a duration of at least 1s, such as 24h, 6h or 30m, or 0 to measure none")
	}
	return d, nil
}
