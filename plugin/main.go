// Command portal-volume is the Docker volume plugin that gives Portal apps
// their persistent directories. It serves the VolumeDriver protocol on a
// unix socket, as a legacy plugin on the host (under systemd, by socket
// activation) or as a managed plugin.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"

	"github.com/portal/portal-volume/driver"
)

func main() {
	if isVersionFlag(os.Args[1:]) {
		printVersion(os.Stdout)
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "appjson" {
		os.Exit(runAppJSON(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		os.Exit(runMigrate(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "usage" {
		os.Exit(runUsage(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is the daemon; it returns the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	s, err := parseSettings(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "portal-volume:", err)
		return 2
	}
	log := newLogger(s, stdout)
	log.WithFields(versionFields()).Info("portal-volume starting")
	if getenv("GOMEMLIMIT") == "" {
		// A List of 100,000 volumes builds ~11 MB of JSON in buffers that
		// stay pooled; with GOGC's default the heap then grows to twice
		// its peak. A soft limit keeps the daemon under 100 MB there; the
		// Go runtime caps the GC work it may cost. GOMEMLIMIT overrides.
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if getenv("GOGC") == "" {
		// The daemon keeps its volumes in memory (about 1 MB at 1,000),
		// a heap so small that Go's default goal collects about twice as
		// often per call as a plugin that keeps nothing: half of what
		// Get and Unmount cost above the protocol's own cost. At 100,000
		// volumes the memory limit above, not GOGC, sets the peak (the
		// same 90 MiB with either). GOGC overrides.
		debug.SetGCPercent(defaultGCPercent)
	}
	if err := serve(s, log); err != nil {
		log.WithError(err).Error("portal-volume stopped")
		fmt.Fprintln(stderr, "portal-volume:", err)
		return 1
	}
	return 0
}

// defaultMemoryLimit is the daemon's soft memory limit (GOMEMLIMIT).
const defaultMemoryLimit = 80 << 20

// defaultGCPercent is the daemon's GOGC.
const defaultGCPercent = 200

func newLogger(s settings, out io.Writer) *logrus.Logger {
	log := logrus.New()
	// Stdout: dockerd logs a managed plugin's stderr at error level.
	log.SetOutput(out)
	log.SetLevel(s.LogLevel)
	if s.LogFormat == "json" {
		log.SetFormatter(&logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano})
	} else {
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableColors: true})
	}
	return log
}

// serve loads the state, then takes the socket, then tells systemd it is
// ready: the first request is answered from the loaded state.
func serve(s settings, log *logrus.Logger) error {
	if s.HostRoot != "" {
		if err := mountTree(s.HostRoot, s.DataSource, s.Driver.Root, log); err != nil {
			return holdRefusal(err, log)
		}
	}
	cfg := s.Driver
	cfg.Log = log
	d, err := driver.New(cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	if s.EngineAtStart {
		if err := d.EngineStarted(); err != nil {
			return err
		}
	}
	l, activated, err := listen(s.Socket)
	if err != nil {
		return err
	}
	if s.HostRoot == "" && cfg.ViewsDir != "" {
		l = viewsCheckedListener{l, &engineViews{dir: d.ViewsDir, log: log}}
	}
	log.WithFields(logrus.Fields{"socket": l.Addr().String(), "socket_activated": activated, "shared": cfg.SharedNames, "anonymous": cfg.Anonymous}).Info("serving")

	served := make(chan error, 1)
	go func() { served <- serveDriver(l, d, log) }()
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.WithError(err).Warn("could not notify systemd")
	}
	stopWatchdog := watchdog(log)
	defer stopWatchdog()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case got := <-sig:
		log.WithField("signal", got.String()).Info("shutting down")
		_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
		// Closing the listener stops new connections (and removes a socket
		// file we made); d.Close, deferred, waits for calls in flight.
		l.Close()
		return nil
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	}
}

// watchdog pings systemd's watchdog at half its interval when one is set.
func watchdog(log *logrus.Logger) (stop func()) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every == 0 {
		return func() {}
	}
	t := time.NewTicker(every / 2)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			case <-done:
				return
			}
		}
	}()
	log.WithField("interval", every).Info("systemd watchdog enabled")
	return func() { t.Stop(); close(done) }
}
