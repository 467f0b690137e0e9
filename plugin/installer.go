package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/internal/engineapi"
	"github.com/portal/portal-volume/internal/install"
	"github.com/portal/portal-volume/internal/volumeclient"
)

// defaultDriver is the name Docker knows the plugin by.
const defaultDriver = "portal-volume"

// createTimeout bounds one Create call; Docker gives a plugin about as long.
const createTimeout = 60 * time.Second

// installer is what the appjson and migrate subcommands share: the flags
// that say which plugin the volumes are for and how to reach it, and the
// way they report.
type installer struct {
	cmd    string // "appjson" or "migrate"
	stderr io.Writer
	create *bool
	driver *string
	socket *string
	shared *string
}

// newSubcommand is the flag set of the subcommand cmd, whose -h prints
// usage and then the flags.
func newSubcommand(cmd, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("portal-volume "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags and file names in any order. When there is
// nothing more to do (-h, or a bad flag, already reported by fs) done is
// set, with the exit code.
func parseArgs(fs *flag.FlagSet, args []string) (files []string, code int, done bool) {
	files, err := parseInterleaved(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return nil, 0, true
	case err != nil:
		return nil, 2, true
	}
	return files, 0, false
}

// installerFlags adds the shared flags to fs; createHelp says what
// --create does to the subcommand's output.
func installerFlags(fs *flag.FlagSet, cmd, createHelp string, stderr io.Writer) *installer {
	return &installer{
		cmd:    cmd,
		stderr: stderr,
		create: fs.Bool("create", false, "create the volumes through the Docker engine (DOCKER_HOST, or its default socket), or through the plugin's --socket when given; "+createHelp),
		driver: fs.String("driver", defaultDriver, "the volume driver's name, as Docker knows the plugin"),
		socket: fs.String("socket", "", "with --create: the plugin's socket, a name under "+pluginSocketDir+" or a path, to create through it instead of the engine"),
		shared: fs.String("shared", strings.Join(spec.DefaultSharedNames, ","), "the shared directories the plugin allows (its --shared), comma separated"),
	}
}

// resolve checks the shared flags: the allowed shared names, and how
// --create makes volumes.
func (in *installer) resolve() (sharedNames []string, create install.Creator, err error) {
	if sharedNames, err = parseShared(*in.shared); err != nil {
		return nil, nil, err
	}
	create, err = in.creator()
	return sharedNames, create, err
}

// creator is how --create makes volumes. Through the engine's API by
// default, as docker volume create does: the engine finds the plugin in
// either mode, wherever its socket lives, and keeps a record of each volume
// with its options. Through the plugin's own socket when --socket names it.
func (in *installer) creator() (install.Creator, error) {
	if *in.socket != "" {
		sockPath, err := parseSocket(*in.socket)
		if err != nil {
			return nil, err
		}
		return volumeclient.New(sockPath, createTimeout, 1).Create, nil
	}
	engine, err := engineapi.Socket(os.Getenv("DOCKER_HOST"))
	if err != nil {
		return nil, err
	}
	driver := *in.driver
	return func(name string, opts map[string]string) error {
		ctx, cancel := context.WithTimeout(context.Background(), createTimeout)
		defer cancel()
		return engineapi.CreateVolume(ctx, engine, driver, name, opts)
	}, nil
}

// usage reports bad usage; it returns the exit code 2.
func (in *installer) usage(format string, a ...any) int {
	fmt.Fprintf(in.stderr, "portal-volume %s: "+format+"\n", append([]any{in.cmd}, a...)...)
	fmt.Fprintf(in.stderr, "run portal-volume %s -h for help\n", in.cmd)
	return 2
}

// fail reports what is wrong with file, one line each; it returns the exit
// code 1.
func (in *installer) fail(file, msg string, lines ...string) int {
	fmt.Fprintf(in.stderr, "portal-volume %s: %s: %s\n", in.cmd, file, msg)
	for _, l := range lines {
		fmt.Fprintln(in.stderr, "  "+l)
	}
	return 1
}

// readFile reads the subcommand's input, with an error that says only
// what went wrong (the caller names the file).
func readFile(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return data, err
}

// parseInterleaved parses flags that may come before or after the
// arguments, and returns the arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
