package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portal/portal-volume/appjson"
)

const appJSONUsage = `usage: portal-volume appjson [flags] FILE

Reads the data_dirs of the Portal app.json FILE and prints the portal-volume
volumes that replace Portal's bind mounts: by default the docker volume
create commands; with --format compose a compose override file (the
service's volumes and the volumes section); with --create it creates them
through the plugin's socket.

flags:
`

// defaultDriver is the name Docker knows the plugin by.
const defaultDriver = "portal-volume"

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
	sharedNames, sockPath, err := in.resolve()
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
	vols, err := appjson.FromAppJSON(data, judged, sharedNames)
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

	if !*create {
		if *format == "compose" {
			writeCompose(stdout, *driver, name, *service, vols, false)
		} else {
			writeCommands(stdout, *driver, vols)
		}
		return 0
	}
	report := stdout
	if *format == "compose" {
		report = stderr
	}
	var failed []string
	for _, v := range unique(vols) {
		if err := createVolume(sockPath, v.Name, v.Options); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", v.Name, err))
			continue
		}
		fmt.Fprintf(report, "created %s (%s)\n", v.Name, v.Dir)
	}
	if len(failed) > 0 {
		return fail(plural(len(failed), "volume")+" not created", failed...)
	}
	if *format == "compose" {
		writeCompose(stdout, *driver, name, *service, vols, true)
	}
	return 0
}

// unique drops later entries that name a volume already listed (entries
// mounting one shared directory at two paths).
func unique(vols []appjson.Volume) []appjson.Volume {
	seen := make(map[string]bool, len(vols))
	var out []appjson.Volume
	for _, v := range vols {
		if !seen[v.Name] {
			seen[v.Name] = true
			out = append(out, v)
		}
	}
	return out
}

func writeCommands(w io.Writer, driver string, vols []appjson.Volume) {
	for _, v := range unique(vols) {
		var b strings.Builder
		b.WriteString("docker volume create -d " + shellQuote(driver))
		for _, kv := range appjson.OrderedOptions(v.Options) {
			b.WriteString(" -o " + shellQuote(kv[0]+"="+kv[1]))
		}
		b.WriteString(" " + shellQuote(v.Name))
		fmt.Fprintln(w, b.String())
	}
}

// writeCompose prints a compose override file: the service's volumes and
// the top-level volumes section. Every string is double-quoted, so that
// YAML reads no name or value as a number or a boolean.
func writeCompose(w io.Writer, driver, app, service string, vols []appjson.Volume, external bool) {
	q := strconv.Quote
	if len(vols) == 0 {
		fmt.Fprintf(w, "# app %s has no data_dirs: no volumes to mount.\n", app)
		return
	}
	fmt.Fprintf(w, "# portal-volume volumes of app %s, from its app.json data_dirs.\n", app)
	fmt.Fprintf(w, "# Use as an override file: docker-compose -f docker-compose.yml -f THIS_FILE up -d\n")
	fmt.Fprintln(w, "services:")
	fmt.Fprintf(w, "  %s:\n", q(service))
	fmt.Fprintln(w, "    volumes:")
	for _, v := range vols {
		if strings.Contains(v.Target, ":") {
			// The short syntax splits at ":"; the long one does not.
			fmt.Fprintf(w, "      - type: volume\n        source: %s\n        target: %s\n        volume:\n          nocopy: true\n",
				q(v.Name), q(v.Target))
			continue
		}
		fmt.Fprintf(w, "      - %s\n", q(v.Name+":"+v.Target+":nocopy"))
	}
	fmt.Fprintln(w, "volumes:")
	for _, v := range unique(vols) {
		fmt.Fprintf(w, "  %s:\n", q(v.Name))
		fmt.Fprintf(w, "    name: %s\n", q(v.Name))
		if external {
			// Made through the socket, Docker holds no options for them,
			// and docker-compose 1.x refuses driver_opts that differ from
			// what Docker holds.
			fmt.Fprintln(w, "    external: true")
			continue
		}
		fmt.Fprintf(w, "    driver: %s\n", q(driver))
		fmt.Fprintln(w, "    driver_opts:")
		for _, kv := range appjson.OrderedOptions(v.Options) {
			fmt.Fprintf(w, "      %s: %s\n", kv[0], q(kv[1]))
		}
	}
}

// shellQuote quotes s for a POSIX shell, when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/=:@%+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// createTimeout bounds one Create call; Docker gives a plugin about as long.
const createTimeout = 60 * time.Second

// createVolume asks the plugin at sockPath to create the volume name with
// opts, as Docker would.
func createVolume(sockPath, name string, opts map[string]string) error {
	body, err := json.Marshal(struct {
		Name string
		Opts map[string]string
	}{name, opts})
	if err != nil {
		return err
	}
	client := &http.Client{
		Timeout: createTimeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sockPath)
			},
		},
	}
	defer client.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, "http://plugin/VolumeDriver.Create", bytes.NewReader(body))
	if err != nil {
		return err
	}
	const mime = "application/vnd.docker.plugins.v1.2+json"
	req.Header.Set("Content-Type", mime)
	req.Header.Set("Accept", mime)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("plugin socket %s: %w", sockPath, unwrapURL(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("plugin socket %s: reading the answer: %w", sockPath, err)
	}
	var answer struct{ Err string }
	jsonErr := json.Unmarshal(raw, &answer)
	switch {
	case answer.Err != "":
		return errors.New(answer.Err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("plugin answered %s: %s", resp.Status, strings.TrimSpace(string(raw)))
	case jsonErr != nil:
		return fmt.Errorf("plugin answered %q, not JSON", strings.TrimSpace(string(raw)))
	}
	return nil
}

// unwrapURL drops net/http's "Post http://portal-volume/...": the socket
// is what the user knows.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
