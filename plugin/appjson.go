package main

import (
	"fmt"
	"io"
)

// runAppJSON is the appjson subcommand (issue 7); placeholder until it lands.
func runAppJSON(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "portal-volume appjson: not implemented yet")
	return 2
}
