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

	"github.com/sirupsen/logrus"

	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/driver/view"
)

// pluginSocketDir is where Docker looks for legacy plugins' sockets.
const pluginSocketDir = "/run/docker/plugins"

// settings are the daemon's settings: each a flag with an environment twin
// (the twin is what a managed plugin's config.json sets). A flag given on
// the command line wins over its twin.
type settings struct {
	Root      string
	Socket    string // absolute path
	LogLevel  logrus.Level
	LogFormat string
	Shared    []string
	// EngineAtStart: every start of the plugin is a new engine's (a
	// managed plugin, which the engine starts afresh and never sends
	// Plugin.Activate); otherwise only Plugin.Activate tells.
	EngineAtStart bool
	Anonymous     string // spec.Delete, spec.Keep or spec.Refuse
	Views         string // absolute, outside Root
	// SharedOwner is given to the shared directories the plugin makes;
	// nil: root.
	SharedOwner *view.Owner
	// HostRoot is where the host's / is mounted (the managed plugin); the
	// tree is then DataSource, a host path, mounted at Root (see tree.go).
	HostRoot   string
	DataSource string
}

var anonymousPolicies = []string{spec.Delete, spec.Keep, spec.Refuse}

// namePattern is what a socket name and a shared directory name may be:
// one path component that is never "." or "..".
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// parseSettings reads args (without the program name) and the environment.
// It returns one error naming the setting, the value and what is allowed.
func parseSettings(args []string, getenv func(string) string, stderr io.Writer) (settings, error) {
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("portal-volume", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", env("PORTAL_ROOT", "/home/portal/user_data"), "the Portal tree (env PORTAL_ROOT)")
	socket := fs.String("socket", env("PORTAL_SOCKET", "portal-volume"), "socket: a name under "+pluginSocketDir+", or a path (env PORTAL_SOCKET)")
	level := fs.String("log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (env LOG_LEVEL)")
	format := fs.String("log-format", env("LOG_FORMAT", "text"), "text or json (env LOG_FORMAT)")
	shared := fs.String("shared", env("SHARED_DIRS", "documents,media,music"), "allowed shared directory names, comma separated (env SHARED_DIRS)")
	anonymous := fs.String("anonymous", env("ANONYMOUS_VOLUMES", spec.Delete), "anonymous volumes (an image's VOLUME, -v /path): delete their directory on remove, keep it, or refuse them (env ANONYMOUS_VOLUMES)")
	engine := fs.String("engine-start", env("ENGINE_START", "activate"), "what tells a new engine: activate (Plugin.Activate; legacy) or plugin-start (every start of the plugin; managed) (env ENGINE_START)")
	views := fs.String("views", env("VIEWS_DIR", "/run/portal-volume/views"), "directory for the views (access=ro, uid/gid on shared and tree volumes), outside the root (env VIEWS_DIR)")
	sharedOwner := fs.String("shared-owner", env("SHARED_OWNER", ""), "UID:GID given to the shared directories the plugin makes, so that id-mapped views of them can be made; empty: root (env SHARED_OWNER)")
	hostRoot := fs.String("host-root", env("HOST_ROOT", ""), "where the host's / is mounted (the managed plugin): the tree is then --data-source, mounted at --root (env HOST_ROOT)")
	dataSource := fs.String("data-source", env("DATA_SOURCE", ""), "with --host-root: the Portal tree's path on the host (env DATA_SOURCE)")
	if err := fs.Parse(args); err != nil {
		return settings{}, err
	}
	if fs.NArg() > 0 {
		return settings{}, fmt.Errorf("unexpected argument %q: portal-volume takes only flags (see -h)", fs.Arg(0))
	}
	var s settings
	var err error
	if s.HostRoot, s.DataSource, err = parseHostRoot(*hostRoot, *dataSource); err != nil {
		return settings{}, err
	}
	if s.Root, err = parseRoot(*root, s.HostRoot != ""); err != nil {
		return settings{}, err
	}
	if s.Socket, err = parseSocket(*socket); err != nil {
		return settings{}, err
	}
	if s.LogLevel, err = parseLevel(*level); err != nil {
		return settings{}, err
	}
	if *format != "text" && *format != "json" {
		return settings{}, fmt.Errorf("setting --log-format (LOG_FORMAT) = %q: want text or json", *format)
	}
	s.LogFormat = *format
	if s.Shared, err = parseShared(*shared); err != nil {
		return settings{}, err
	}
	if !slices.Contains(anonymousPolicies, *anonymous) {
		return settings{}, fmt.Errorf("setting --anonymous (ANONYMOUS_VOLUMES) = %q: want one of %s", *anonymous, strings.Join(anonymousPolicies, ", "))
	}
	s.Anonymous = *anonymous
	if *engine != "activate" && *engine != "plugin-start" {
		return settings{}, fmt.Errorf("setting --engine-start (ENGINE_START) = %q: want activate or plugin-start", *engine)
	}
	s.EngineAtStart = *engine == "plugin-start"
	if s.Views, err = parseViews(*views, s.Root); err != nil {
		return settings{}, err
	}
	if s.SharedOwner, err = parseSharedOwner(*sharedOwner); err != nil {
		return settings{}, err
	}
	return s, nil
}

// parseRoot: a root the plugin mounts itself (mounted) need not exist yet.
func parseRoot(v string, mounted bool) (string, error) {
	if !filepath.IsAbs(v) {
		return "", fmt.Errorf("setting --root (PORTAL_ROOT) = %q: want an absolute path", v)
	}
	if mounted {
		return filepath.Clean(v), nil
	}
	fi, err := os.Stat(v)
	if err != nil {
		return "", fmt.Errorf("setting --root (PORTAL_ROOT) = %q: want an existing directory: %w", v, errors.Unwrap(err))
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("setting --root (PORTAL_ROOT) = %q: want an existing directory, not a file", v)
	}
	return filepath.Clean(v), nil
}

// parseHostRoot: an empty data source is left to the start, which explains
// it (see mountTree).
func parseHostRoot(hostRoot, source string) (string, string, error) {
	if hostRoot == "" {
		if source != "" {
			return "", "", fmt.Errorf("setting --data-source (DATA_SOURCE) = %q: only with --host-root (the managed plugin); the host daemon serves --root", source)
		}
		return "", "", nil
	}
	if !filepath.IsAbs(hostRoot) {
		return "", "", fmt.Errorf("setting --host-root (HOST_ROOT) = %q: want an absolute path", hostRoot)
	}
	if source != "" && (!filepath.IsAbs(source) || filepath.Clean(source) != source || source == "/") {
		return "", "", fmt.Errorf("setting --data-source (DATA_SOURCE) = %q: want a clean absolute path on the host, other than /, such as /home/portal/user_data", source)
	}
	return filepath.Clean(hostRoot), source, nil
}

func parseSocket(v string) (string, error) {
	if strings.Contains(v, "/") {
		if !filepath.IsAbs(v) {
			return "", fmt.Errorf("setting --socket (PORTAL_SOCKET) = %q: want a name or an absolute path", v)
		}
		return filepath.Clean(v), nil
	}
	if !namePattern.MatchString(v) {
		return "", fmt.Errorf("setting --socket (PORTAL_SOCKET) = %q: want a name of A-Z a-z 0-9 _ . - or an absolute path", v)
	}
	return filepath.Join(pluginSocketDir, strings.TrimSuffix(v, ".sock")+".sock"), nil
}

func parseLevel(v string) (logrus.Level, error) {
	allowed := []string{"debug", "info", "warn", "error"}
	if !slices.Contains(allowed, v) {
		return 0, fmt.Errorf("setting --log-level (LOG_LEVEL) = %q: want one of %s", v, strings.Join(allowed, ", "))
	}
	return logrus.ParseLevel(v)
}

func parseShared(v string) ([]string, error) {
	var names []string
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		if !namePattern.MatchString(n) || slices.Contains(names, n) {
			return nil, fmt.Errorf("setting --shared (SHARED_DIRS) = %q: want distinct names of A-Z a-z 0-9 _ . -, comma separated, such as documents,media,music", v)
		}
		names = append(names, n)
	}
	return names, nil
}

// parseViews: the views must never show up inside the tree (a backup of
// the tree reads every file once), nor the tree inside them.
func parseViews(v, root string) (string, error) {
	if !filepath.IsAbs(v) {
		return "", fmt.Errorf("setting --views (VIEWS_DIR) = %q: want an absolute path", v)
	}
	v = filepath.Clean(v)
	inside := func(a, b string) bool { return a == b || strings.HasPrefix(a, strings.TrimSuffix(b, "/")+"/") }
	if inside(v, root) || inside(root, v) {
		return "", fmt.Errorf("setting --views (VIEWS_DIR) = %q: want a directory outside the root %s, and not containing it", v, root)
	}
	return v, nil
}

func parseSharedOwner(v string) (*view.Owner, error) {
	if v == "" {
		return nil, nil
	}
	u, g, ok := strings.Cut(v, ":")
	uid, uerr := strconv.ParseUint(u, 10, 32)
	gid, gerr := strconv.ParseUint(g, 10, 32)
	if !ok || uerr != nil || gerr != nil || uid == 0 || gid == 0 || uid > spec.MaxID || gid > spec.MaxID {
		return nil, fmt.Errorf("setting --shared-owner (SHARED_OWNER) = %q: want UID:GID, two decimal ids from 1 to %d (root would defeat the id-mapped views), such as 2000:2000", v, spec.MaxID)
	}
	return &view.Owner{UID: uint32(uid), GID: uint32(gid)}, nil
}
