package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/sirupsen/logrus"
)

// The build stamps these (go build -ldflags "-X main.version=… -X
// main.commit=…"); scripts/build.sh takes them from git describe, or from
// VERSION and COMMIT. A build without a stamp says so.
var (
	version = "unstamped"
	commit  = "unknown"
)

// isVersionFlag tells whether args (without the program name) ask for the
// version and nothing else.
func isVersionFlag(args []string) bool {
	return len(args) == 1 && (args[0] == "--version" || args[0] == "-version")
}

// printVersion writes what --version prints: one line an operator can
// paste into a report.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "portal-volume %s (commit %s, %s %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// versionFields are the build's fields for the daemon's first log line.
func versionFields() logrus.Fields {
	return logrus.Fields{"version": version, "commit": commit, "go": runtime.Version()}
}
