package volumeclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serve answers on a unix socket with answers[path] (status and body), and
// refuses a request without the plugin protocol's media type.
func serve(t *testing.T, answers map[string]struct {
	status int
	body   string
}) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != MediaType {
			w.WriteHeader(http.StatusNotAcceptable)
			return
		}
		a, ok := answers[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	})}
	go srv.Serve(l)
	c := New(sock, 5*time.Second, 2)
	t.Cleanup(func() { c.Close(); srv.Close() })
	return c
}

func TestCall(t *testing.T) {
	c := serve(t, map[string]struct {
		status int
		body   string
	}{
		"/VolumeDriver.Create": {200, "{}"},
		"/VolumeDriver.Get":    {200, `{"Volume":{"Name":"v","Mountpoint":"/m"}}`},
		"/VolumeDriver.Remove": {500, `{"Err":"volume \"v\" is in use"}`},
		"/VolumeDriver.Path":   {200, "not json"},
		"/VolumeDriver.Mount":  {502, "bad gateway"},
	})
	if err := c.Create("v", map[string]string{"app": "a"}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	var reply struct{ Volume struct{ Name, Mountpoint string } }
	if err := c.Call("VolumeDriver.Get", map[string]string{"Name": "v"}, &reply); err != nil || reply.Volume.Mountpoint != "/m" {
		t.Fatalf("Get: %+v, %v", reply, err)
	}
	var refusal *Error
	if err := c.Call("VolumeDriver.Remove", nil, nil); !errors.As(err, &refusal) || err.Error() != `volume "v" is in use` {
		t.Fatalf("Remove: %v", err)
	}
	if err := c.Call("VolumeDriver.Path", nil, nil); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Fatalf("Path: %v", err)
	}
	if err := c.Call("VolumeDriver.Mount", nil, nil); err == nil || !strings.Contains(err.Error(), "502") || errors.As(err, &refusal) {
		t.Fatalf("Mount: %v", err)
	}
	var buf bytes.Buffer
	buf.WriteString("stale")
	if err := c.Post("/VolumeDriver.Get", []byte(`{"Name":"v"}`), &buf); err != nil || !json.Valid(buf.Bytes()) {
		t.Fatalf("Post: %q, %v", buf.String(), err)
	}
	if err := c.Post("VolumeDriver.List", nil, &buf); err == nil || !strings.Contains(err.Error(), "Not Found") {
		t.Fatalf("Post to an unknown endpoint: %v", err)
	}
}

func TestNoPlugin(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	c := New(sock, time.Second, 1)
	defer c.Close()
	err := c.Create("v", nil)
	if err == nil || !strings.HasPrefix(err.Error(), "plugin socket "+sock+": dial unix") {
		t.Fatalf("%v", err)
	}
}
