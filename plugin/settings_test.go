package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
		{[]string{"--root", root, "--usage-interval", "daily"}, nil, []string{"--usage-interval", `"daily"`, "24h", "0 to measure none"}},
		{[]string{"--root", root, "--usage-interval", "-1h"}, nil, []string{"--usage-interval", `"-1h"`}},
		{[]string{"--root", root}, map[string]string{"USAGE_INTERVAL": "10ms"}, []string{"USAGE_INTERVAL", `"10ms"`, "at least 1s"}},
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
		env(map[string]string{"PORTAL_ROOT": b, "LOG_LEVEL": "debug", "LOG_FORMAT": "json", "SHARED_DIRS": "photos, books", "PORTAL_SOCKET": "other", "ANONYMOUS_VOLUMES": "keep", "ENGINE_START": "plugin-start", "USAGE_INTERVAL": "6h"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Driver.Root != a || s.LogLevel != logrus.WarnLevel || s.LogFormat != "json" || !s.EngineAtStart ||
		!slices.Equal(s.Driver.SharedNames, []string{"photos", "books"}) || s.Socket != "/run/docker/plugins/other.sock" || s.Driver.Anonymous != "keep" || s.Driver.UsageInterval != 6*time.Hour {
		t.Errorf("settings = %+v", s)
	}
	s, err = parseSettings([]string{"--root", a}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Socket != "/run/docker/plugins/portal-volume.sock" || s.LogLevel != logrus.InfoLevel || s.LogFormat != "text" || s.EngineAtStart ||
		!slices.Equal(s.Driver.SharedNames, []string{"documents", "media", "music"}) || s.Driver.Anonymous != "delete" || s.Driver.UsageInterval != 24*time.Hour {
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

// TestSettingsTable holds what describes the settings to the table they
// come from: config.json's env entries (a managed plugin's settings) and
// the table in docs/settings.md.
func TestSettingsTable(t *testing.T) {
	flags, envs := map[string]bool{}, map[string]bool{}
	for _, r := range settingsTable {
		if flags[r.flag] || envs[r.env] || r.help == "" || r.parse == nil {
			t.Errorf("row --%s (%s): a flag or twin used twice, or no help or parser", r.flag, r.env)
		}
		flags[r.flag], envs[r.env] = true, true
	}

	t.Run("config.json", func(t *testing.T) {
		var manifest struct {
			Env []struct {
				Name, Description, Value string
				Settable                 []string
			}
		}
		data, err := os.ReadFile("../config.json")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &manifest); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range manifest.Env {
			seen[e.Name] = true
			i := slices.IndexFunc(settingsTable, func(r setting) bool { return r.env == e.Name })
			if i < 0 {
				t.Errorf("config.json sets %s, which is no setting", e.Name)
				continue
			}
			r := settingsTable[i]
			settable := slices.Contains(e.Settable, "value")
			switch {
			case e.Description == "":
				t.Errorf("config.json's %s has no description", e.Name)
			case r.managed.absent:
				t.Errorf("config.json sets %s, which the table says it does not", e.Name)
			case settable != r.managed.settable || e.Value != r.managedValue():
				t.Errorf("config.json's %s: settable %v, value %q; want settable %v, value %q", e.Name, settable, e.Value, r.managed.settable, r.managedValue())
			}
		}
		for _, r := range settingsTable {
			if !r.managed.absent && !seen[r.env] {
				t.Errorf("config.json has no entry for %s (--%s)", r.env, r.flag)
			}
		}
	})

	t.Run("docs/settings.md", func(t *testing.T) {
		rows := markdownTable(t, "../docs/settings.md", "flag")
		documented := map[string]bool{}
		for _, cells := range rows {
			if len(cells) < 5 {
				t.Errorf("docs/settings.md: row %q: want flag, environment, default, managed plugin, meaning", cells)
				continue
			}
			flag := strings.TrimPrefix(unquote(cells[0]), "--")
			documented[flag] = true
			i := slices.IndexFunc(settingsTable, func(r setting) bool { return r.flag == flag })
			if i < 0 {
				t.Errorf("docs/settings.md documents --%s, which is no setting", flag)
				continue
			}
			r := settingsTable[i]
			def := unquote(cells[2])
			if def == "empty" {
				def = ""
			}
			var managed string
			switch {
			case r.managed.absent:
				managed = "none"
			case r.managed.settable && r.managed.ownValue:
				managed = "settable, `" + r.managed.value + "`"
			case r.managed.settable:
				managed = "settable"
			default:
				managed = "fixed `" + r.managed.value + "`"
			}
			if unquote(cells[1]) != r.env || def != r.def || !strings.HasPrefix(cells[3], managed) {
				t.Errorf("docs/settings.md: --%s: environment %q, default %q, managed %q; want %q, %q, %q", flag, cells[1], cells[2], cells[3], r.env, r.def, managed)
			}
		}
		for _, r := range settingsTable {
			if !documented[r.flag] {
				t.Errorf("docs/settings.md does not document --%s (%s)", r.flag, r.env)
			}
		}
	})
}

// managedValue is the value config.json gives the twin.
func (r setting) managedValue() string {
	if r.managed.ownValue {
		return r.managed.value
	}
	return r.def
}

// markdownTable returns the body rows, as trimmed cells, of the table in
// file whose first header cell is first.
func markdownTable(t *testing.T, file, first string) [][]string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			if in {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case !in && cells[0] == first:
			in = true
		case in && strings.HasPrefix(cells[0], "---"):
		case in:
			rows = append(rows, cells)
		}
	}
	if len(rows) == 0 {
		t.Fatalf("%s has no table whose first column is %q", file, first)
	}
	return rows
}

// unquote drops the backticks around a table cell's code.
func unquote(cell string) string { return strings.Trim(cell, "`") }
