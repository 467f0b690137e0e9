// Package e2e is portal-volume's end-to-end suite: the built plugin as a
// real process (legacy mode) or a real managed plugin, a real Docker engine
// calling it, and real containers writing through it. The tests are in the
// _test files; see docs/development.md.
package e2e
