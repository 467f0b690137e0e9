package main

import (
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"
)

// maxRequestBytes caps what one request may send. Docker's requests are a
// name, an ID and a few options: a few hundred bytes. Without a cap a
// client could make the plugin, which runs as root, decode a body of any
// size into memory.
const maxRequestBytes = 1 << 20

// engineDriver is a volume.Driver that is told when a new engine process
// activates the plugin (see driver.Driver.EngineStarted).
type engineDriver interface {
	volume.Driver
	EngineStarted() error
}

// activateManifest is the helpers' answer to Plugin.Activate.
const activateManifest = `{"Implements": ["VolumeDriver"]}`

// serveDriver serves the VolumeDriver protocol for d on l until l is
// closed: requests are logged by logged, and capped in size.
//
// Plugin.Activate is answered here rather than by the helpers: an engine
// sends it once per process (see docs/state-and-recovery.md), so it tells the driver
// that a new engine generation started. The helpers register the path for
// any method; Go's mux prefers this POST pattern (Docker always POSTs).
func serveDriver(l net.Listener, d engineDriver, log *logrus.Logger) error {
	h := volume.NewHandler(logged{d, log})
	h.HandleFunc("POST /Plugin.Activate", func(w http.ResponseWriter, _ *http.Request) {
		// The engine's activation must not fail on our bookkeeping: the
		// driver has logged the error, and the counts stay as they were.
		_ = logged{d, log}.done("Activate", "", time.Now(), d.EngineStarted())
		w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
		fmt.Fprintln(w, activateManifest)
	})
	return h.Serve(cappedListener{l, maxRequestBytes})
}

var errRequestTooLarge = fmt.Errorf("request larger than %d bytes", maxRequestBytes)

// cappedListener's connections refuse to read more than max bytes between
// two responses. The helpers' server gives no hook into its http.Server;
// the cap holds at the connection instead, which is exact for Docker's
// client: it sends one request and waits for its response.
type cappedListener struct {
	net.Listener
	max int64
}

func (l cappedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &cappedConn{Conn: c, max: l.max}, nil
}

type cappedConn struct {
	net.Conn
	max  int64
	read atomic.Int64 // bytes read since the last response; the server reads in the background
}

func (c *cappedConn) Read(p []byte) (int, error) {
	left := c.max - c.read.Load()
	if left <= 0 {
		return 0, errRequestTooLarge
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *cappedConn) Write(p []byte) (int, error) {
	c.read.Store(0)
	return c.Conn.Write(p)
}
