package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/portal/portal-volume/internal/testutil"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestBadSettings: each bad setting stops the start with exit code 2 and
// one message naming the setting, its value and what is allowed.
func TestBadSettings(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	testutil.Write(t, file, "x")
	for _, c := range []struct {
		args []string
		env  map[string]string
		want []string
	}{
		{[]string{"--root", "relative"}, nil, []string{"--root", "PORTAL_ROOT", `"relative"`, "absolute"}},
		{[]string{"--root", filepath.Join(root, "missing")}, nil, []string{"--root", "missing", "existing directory"}},
		{[]string{"--root", file}, nil, []string{"--root", "not a file"}},
		{nil, map[string]string{"PORTAL_ROOT": "nope"}, []string{"PORTAL_ROOT", `"nope"`}},
		{[]string{"--root", root, "--socket", "a/b"}, nil, []string{"--socket", `"a/b"`, "absolute path"}},
		{[]string{"--root", root, "--socket", "-x"}, nil, []string{"--socket", `"-x"`}},
		{[]string{"--root", root, "--log-level", "trace"}, nil, []string{"--log-level", `"trace"`, "debug, info, warn, error"}},
		{[]string{"--root", root}, map[string]string{"LOG_LEVEL": "loud"}, []string{"LOG_LEVEL", `"loud"`}},
		{[]string{"--root", root, "--log-format", "xml"}, nil, []string{"--log-format", `"xml"`, "text or json"}},
		{[]string{"--root", root, "--shared", "media,,music"}, nil, []string{"--shared", `"media,,music"`}},
		{[]string{"--root", root, "--shared", "media,media"}, nil, []string{"--shared", "distinct"}},
		{[]string{"--root", root}, map[string]string{"SHARED_DIRS": "../etc"}, []string{"SHARED_DIRS", `"../etc"`}},
		{[]string{"--root", root, "--engine-start", "boot"}, nil, []string{"--engine-start", `"boot"`, "activate or plugin-start"}},
		{[]string{"--root", root}, map[string]string{"ENGINE_START": "x"}, []string{"ENGINE_START", `"x"`}},
		{[]string{"--root", root, "extra"}, nil, []string{`"extra"`}},
		{[]string{"--root", root, "--anonymous", "sometimes"}, nil, []string{"--anonymous", `"sometimes"`, "delete, keep, refuse"}},
		{[]string{"--root", root}, map[string]string{"ANONYMOUS_VOLUMES": "DELETE"}, []string{"ANONYMOUS_VOLUMES", `"DELETE"`}},
		{[]string{"--root", root, "--views", "run/views"}, nil, []string{"--views", `"run/views"`, "absolute"}},
		{[]string{"--root", root, "--views", root + "/views"}, nil, []string{"--views", "outside the root"}},
		{[]string{"--root", root}, map[string]string{"VIEWS_DIR": root}, []string{"VIEWS_DIR", "outside the root"}},
		{[]string{"--root", root, "--views", filepath.Dir(root)}, nil, []string{"--views", "not containing it"}},
		{[]string{"--root", root, "--shared-owner", "0:2000"}, nil, []string{"--shared-owner", `"0:2000"`, "UID:GID"}},
		{[]string{"--root", root, "--shared-owner", "2000"}, nil, []string{"--shared-owner", `"2000"`}},
		{[]string{"--root", root}, map[string]string{"SHARED_OWNER": "2000:x"}, []string{"SHARED_OWNER", `"2000:x"`}},
		{[]string{"--root", root, "--data-source", root}, nil, []string{"--data-source", "only with --host-root"}},
		{[]string{"--root", root, "--host-root", "mnt/host"}, nil, []string{"--host-root", `"mnt/host"`, "absolute"}},
		{[]string{"--root", "/mnt/pv/tree", "--host-root", "/mnt/host"}, map[string]string{"DATA_SOURCE": "srv/p"}, []string{"DATA_SOURCE", `"srv/p"`, "clean absolute path"}},
		{[]string{"--root", "/mnt/pv/tree", "--host-root", "/mnt/host", "--data-source", "/"}, nil, []string{"--data-source", `"/"`, "other than /"}},
		{[]string{"--bogus"}, nil, []string{"bogus"}},
	} {
		var stdout, stderr bytes.Buffer
		code := run(c.args, env(c.env), &stdout, &stderr)
		if code != 2 {
			t.Errorf("%v %v: exit %d, want 2 (stderr %q)", c.args, c.env, code, stderr.String())
		}
		for _, w := range c.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%v %v: %q does not say %q", c.args, c.env, stderr.String(), w)
			}
		}
	}
}

// TestSettingsPrecedence: a flag wins over its environment twin, the twin
// over the default.
func TestSettingsPrecedence(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	s, err := parseSettings([]string{"--root", a, "--log-level", "warn"},
		env(map[string]string{"PORTAL_ROOT": b, "LOG_LEVEL": "debug", "LOG_FORMAT": "json", "SHARED_DIRS": "photos, books", "PORTAL_SOCKET": "other", "ANONYMOUS_VOLUMES": "keep", "ENGINE_START": "plugin-start"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Root != a || s.LogLevel != logrus.WarnLevel || s.LogFormat != "json" || !s.EngineAtStart ||
		!slices.Equal(s.Shared, []string{"photos", "books"}) || s.Socket != "/run/docker/plugins/other.sock" || s.Anonymous != "keep" {
		t.Errorf("settings = %+v", s)
	}
	s, err = parseSettings([]string{"--root", a}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Socket != "/run/docker/plugins/portal-volume.sock" || s.LogLevel != logrus.InfoLevel || s.LogFormat != "text" || s.EngineAtStart ||
		!slices.Equal(s.Shared, []string{"documents", "media", "music"}) || s.Anonymous != "delete" {
		t.Errorf("defaults = %+v", s)
	}
}

// TestJSONLogLines: with LOG_FORMAT=json every event is one JSON object on
// one line, with its fields, as journald and docker plugin logs want.
func TestJSONLogLines(t *testing.T) {
	var out bytes.Buffer
	log := newLogger(settings{LogLevel: logrus.DebugLevel, LogFormat: "json"}, &out)
	log.WithFields(logrus.Fields{"volume": "a_b", "app": "a", "path": "/b\nwith a newline"}).Info("volume created")
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("one event gave %d lines: %q", len(lines), out.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil || m["volume"] != "a_b" || m["msg"] != "volume created" || m["level"] != "info" {
		t.Errorf("log line %q: %v %v", lines[0], m, err)
	}
}
