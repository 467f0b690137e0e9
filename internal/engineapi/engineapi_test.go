package engineapi

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// engine serves handler on a unix socket, as dockerd does, and returns it.
func engine(t *testing.T, handler http.HandlerFunc) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

func TestCreateVolumeSendsWhatDockerVolumeCreateSends(t *testing.T) {
	var got struct {
		Name       string
		Driver     string
		DriverOpts map[string]string
	}
	var method, path string
	sock := engine(t, func(w http.ResponseWriter, r *http.Request) {
		method, path = r.Method, r.URL.Path
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"Name":"gitea_data","Driver":"portal-volume"}`))
	})
	opts := map[string]string{"uid": "1000", "gid": "1000"}
	if err := CreateVolume(context.Background(), sock, "portal-volume", "gitea_data", opts); err != nil {
		t.Fatal(err)
	}
	if method != http.MethodPost || path != "/volumes/create" {
		t.Errorf("request %s %s, want POST /volumes/create", method, path)
	}
	if got.Name != "gitea_data" || got.Driver != "portal-volume" || !reflect.DeepEqual(got.DriverOpts, opts) {
		t.Errorf("body %+v", got)
	}
}

func TestCreateVolumeReturnsTheEnginesMessage(t *testing.T) {
	const msg = `create gitea_data: VolumeDriver.Create: setting uid: "abc" is not a number`
	sock := engine(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"message":` + jsonString(msg) + `}`))
	})
	err := CreateVolume(context.Background(), sock, "portal-volume", "gitea_data", map[string]string{"uid": "abc"})
	if err == nil || err.Error() != msg {
		t.Errorf("error %v, want the engine's message %q", err, msg)
	}
}

func TestCreateVolumeNamesTheSocketItCannotReach(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	err := CreateVolume(context.Background(), sock, "portal-volume", "gitea_data", nil)
	if err == nil || !strings.Contains(err.Error(), "Docker engine at "+sock) || strings.Contains(err.Error(), "http://") {
		t.Errorf("error %v, want one naming %s and no URL", err, sock)
	}
}

func TestSocket(t *testing.T) {
	for host, want := range map[string]string{
		"":                          DefaultSocket,
		"unix:///run/e2e/dock.sock": "/run/e2e/dock.sock",
	} {
		if got, err := Socket(host); err != nil || got != want {
			t.Errorf("Socket(%q) = %q, %v; want %q", host, got, err, want)
		}
	}
	for _, host := range []string{"tcp://10.0.0.1:2375", "unix://", "ssh://host"} {
		if _, err := Socket(host); err == nil || !strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), "--socket") {
			t.Errorf("Socket(%q): %v, want an error naming it and --socket", host, err)
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
