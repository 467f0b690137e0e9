package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portal/portal-volume/driver"
	"github.com/portal/portal-volume/internal/testutil"
)

// server is the daemon's serving stack in-process: the real driver on a
// temp root, served by serveDriver on a temp socket.
type server struct {
	root, sock string
	client     *http.Client
}

func startServer(t testing.TB) *server {
	t.Helper()
	root := t.TempDir()
	log := logrus.New()
	log.SetOutput(io.Discard)
	d, err := driver.New(driver.Config{Root: root, SharedNames: []string{"documents", "media", "music"}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "pv.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = serveDriver(l, d, log) }()
	t.Cleanup(func() { l.Close(); d.Close() })
	return &server{root: root, sock: sock, client: unixClient(sock)}
}

func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 64,
	}}
}

// post sends body to the endpoint and returns the status and the body.
func (s *server) post(path string, body []byte) (int, []byte, error) {
	resp, err := s.client.Post("http://plugin"+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// call sends a request and returns the driver's error text ("" on success)
// and the decoded answer.
func (s *server) call(t testing.TB, path string, req any) (string, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(req)
	status, b, err := s.post(path, body)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var res map[string]any
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("%s: status %d, body %q: %v", path, status, b, err)
	}
	errText, _ := res["Err"].(string)
	if (status == http.StatusOK) != (errText == "") {
		t.Fatalf("%s: status %d with Err %q", path, status, errText)
	}
	return errText, res
}

type req map[string]any

func TestMalformedRequests(t *testing.T) {
	s := startServer(t)
	if e, _ := s.call(t, "/VolumeDriver.Create", req{"Name": "known_data"}); e != "" {
		t.Fatal(e)
	}
	endpoints := []string{"Create", "Remove", "Mount", "Unmount", "Path", "Get"}
	for _, ep := range endpoints {
		for _, body := range []string{"", "{", "[]", `{"Name": 7}`, "\x00\xff", `{"Name":"a"}{"Name":"b"}garbage`} {
			status, b, err := s.post("/VolumeDriver."+ep, []byte(body))
			if err != nil {
				t.Fatalf("%s %q: %v", ep, body, err)
			}
			if status == http.StatusOK && !strings.HasPrefix(body, `{"Name":"a"}`) {
				t.Errorf("%s %q: answered 200 %q", ep, body, b)
			}
		}
	}
	// No name at all: refused or, for Unmount, let go of.
	wantErr := map[string]string{
		"Create": `cannot parse volume name ""`, "Remove": "no such volume", "Mount": "no such volume",
		"Path": "no such volume", "Get": "no such volume", "Unmount": "",
	}
	for ep, want := range wantErr {
		e, _ := s.call(t, "/VolumeDriver."+ep, req{})
		if (want == "") != (e == "") || !strings.Contains(e, want) {
			t.Errorf("%s {}: error %q, want %q", ep, e, want)
		}
	}
	status, _, err := s.post("/VolumeDriver.Explode", []byte("{}"))
	if err != nil || status != http.StatusNotFound {
		t.Errorf("unknown endpoint: status %d, %v", status, err)
	}
	// The server still answers correctly after all that.
	if e, res := s.call(t, "/VolumeDriver.Get", req{"Name": "known_data"}); e != "" || res["Volume"] == nil {
		t.Errorf("Get after malformed requests: %q %v", e, res)
	}
}

func TestRequestSizeIsCapped(t *testing.T) {
	s := startServer(t)
	before := testutil.Snapshot(t, s.root)
	huge := fmt.Sprintf(`{"Name":"huge_data","Opts":{"app":"huge","path":"/%s"}}`, strings.Repeat("a", 4*maxRequestBytes))
	status, b, err := s.post("/VolumeDriver.Create", []byte(huge))
	if err == nil && (status != http.StatusBadRequest || !strings.Contains(string(b), "larger than")) {
		t.Fatalf("a %d-byte request was read whole: status %d, %.200q", len(huge), status, b)
	}
	testutil.Same(t, "a refused huge request", before, testutil.Snapshot(t, s.root))
	// Just under the cap is served (and refused for its path, by name).
	under := fmt.Sprintf(`{"Name":"big_data","Opts":{"colour":"%s"}}`, strings.Repeat("b", maxRequestBytes-1024))
	if e, _ := s.call(t, "/VolumeDriver.Create", json.RawMessage(under)); !strings.Contains(e, "colour") {
		t.Errorf("request under the cap: %q", e)
	}
	if e, _ := s.call(t, "/VolumeDriver.Create", req{"Name": "after_data"}); e != "" {
		t.Errorf("Create after a huge request: %q", e)
	}
}

// TestConcurrentClients races many clients on one socket; the end state
// must be the sequential meaning of the calls that succeeded.
func TestConcurrentClients(t *testing.T) {
	s := startServer(t)
	const clients = 16
	var wg sync.WaitGroup
	run := func(f func(i int)) {
		for i := range clients {
			wg.Go(func() { f(i) })
		}
		wg.Wait()
	}

	t.Run("same name, same options", func(t *testing.T) {
		var mu sync.Mutex
		var errs []string
		run(func(int) {
			if e, _ := s.call(t, "/VolumeDriver.Create", req{"Name": "same_data", "Opts": req{"uid": "5"}}); e != "" {
				mu.Lock()
				errs = append(errs, e)
				mu.Unlock()
			}
		})
		if len(errs) > 0 {
			t.Errorf("identical creates failed: %v", errs)
		}
	})

	t.Run("same name, different options", func(t *testing.T) {
		var mu sync.Mutex
		var won []int
		run(func(i int) {
			if e, _ := s.call(t, "/VolumeDriver.Create", req{"Name": "race_data", "Opts": req{"uid": fmt.Sprint(i)}}); e == "" {
				mu.Lock()
				won = append(won, i)
				mu.Unlock()
			} else if !strings.Contains(e, "already exists with other options") {
				t.Errorf("losing create: %q", e)
			}
		})
		if len(won) != 1 {
			t.Fatalf("%d creates won, want 1", len(won))
		}
		_, res := s.call(t, "/VolumeDriver.Get", req{"Name": "race_data"})
		if uid := res["Volume"].(map[string]any)["Status"].(map[string]any)["uid"]; uid != float64(won[0]) {
			t.Errorf("uid %v, but the create with uid %d won", uid, won[0])
		}
	})

	t.Run("mount and unmount, shared and own IDs", func(t *testing.T) {
		const rounds = 20
		run(func(i int) {
			for range rounds {
				for _, id := range []string{"shared-id", fmt.Sprint("own-", i)} {
					if e, _ := s.call(t, "/VolumeDriver.Mount", req{"Name": "same_data", "ID": id}); e != "" {
						t.Errorf("mount: %s", e)
					}
				}
			}
		})
		if got := mounts(t, s, "same_data"); got != clients*rounds*2 {
			t.Errorf("mounts = %v, want %d", got, clients*rounds*2)
		}
		run(func(i int) {
			for range rounds {
				for _, id := range []string{"shared-id", fmt.Sprint("own-", i)} {
					if e, _ := s.call(t, "/VolumeDriver.Unmount", req{"Name": "same_data", "ID": id}); e != "" {
						t.Errorf("unmount: %s", e)
					}
				}
			}
		})
		if got := mounts(t, s, "same_data"); got != 0 {
			t.Errorf("mounts after every unmount = %v", got)
		}
	})

	t.Run("remove races mount", func(t *testing.T) {
		for round := range 30 {
			name := fmt.Sprintf("rm%d_data", round)
			if e, _ := s.call(t, "/VolumeDriver.Create", req{"Name": name}); e != "" {
				t.Fatal(e)
			}
			var mountErr, removeErr string
			var inner sync.WaitGroup
			inner.Go(func() { mountErr, _ = s.call(t, "/VolumeDriver.Mount", req{"Name": name, "ID": "x"}) })
			inner.Go(func() { removeErr, _ = s.call(t, "/VolumeDriver.Remove", req{"Name": name}) })
			inner.Wait()
			getErr, _ := s.call(t, "/VolumeDriver.Get", req{"Name": name})
			switch {
			case mountErr == "" && removeErr == "":
				t.Errorf("%s: both mount and remove succeeded", name)
			case mountErr == "": // mount first, remove refused: mounted, still there
				if getErr != "" || mounts(t, s, name) != 1 || !strings.Contains(removeErr, "in use") {
					t.Errorf("%s: after mount won: get %q, remove %q", name, getErr, removeErr)
				}
			case removeErr == "": // remove first (done, or still deleting), mount refused: gone
				if !strings.Contains(getErr, "no such volume") ||
					!strings.Contains(mountErr, "no such volume") && !strings.Contains(mountErr, "is being removed") {
					t.Errorf("%s: after remove won: get %q, mount %q", name, getErr, mountErr)
				}
			default:
				t.Errorf("%s: both failed: mount %q, remove %q", name, mountErr, removeErr)
			}
		}
	})
}

func mounts(t testing.TB, s *server, name string) float64 {
	t.Helper()
	e, res := s.call(t, "/VolumeDriver.Get", req{"Name": name})
	if e != "" {
		t.Fatalf("Get %s: %s", name, e)
	}
	return res["Volume"].(map[string]any)["Status"].(map[string]any)["mounts"].(float64)
}

// FuzzProtocol sends arbitrary bodies to every endpoint of one server. The
// plugin must answer each with a protocol answer (never crash, never hang),
// must create nothing outside app_data, shared and its state, and must still
// answer a Get correctly afterwards.
func FuzzProtocol(f *testing.F) {
	for _, seed := range []string{
		`{"Name":"a_b"}`, `{"Name":"a_b","Opts":{"uid":"1","mode":"750"}}`,
		`{"Name":"x","Opts":{"app":"x","path":"/../etc"}}`, `{"Name":"m","Opts":{"shared":"media"}}`,
		`{"Name":"a_b","ID":"1"}`, `{}`, `{`, `null`, `{"Name":"` + strings.Repeat("é", 300) + `"}`,
	} {
		for ep := range byte(7) {
			f.Add(ep, []byte(seed))
		}
	}
	s := startServer(f)
	if e, _ := s.call(f, "/VolumeDriver.Create", req{"Name": "fuzzkeep_data"}); e != "" {
		f.Fatal(e)
	}
	endpoints := []string{"Create", "Remove", "Mount", "Unmount", "Path", "Get", "List"}
	f.Fuzz(func(t *testing.T, ep byte, body []byte) {
		path := "/VolumeDriver." + endpoints[int(ep)%len(endpoints)]
		status, b, err := s.post(path, body)
		if err != nil {
			t.Fatalf("%s %q: %v", path, body, err)
		}
		switch status {
		case http.StatusOK, http.StatusInternalServerError:
			var v any
			if json.Unmarshal(b, &v) != nil {
				t.Fatalf("%s %q: status %d with a body that is not JSON: %q", path, body, status, b)
			}
		case http.StatusBadRequest:
		default:
			t.Fatalf("%s %q: status %d", path, body, status)
		}
		entries, err := os.ReadDir(s.root)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if n := e.Name(); n != "app_data" && n != "shared" && n != driver.StateDirName {
				t.Fatalf("%s %q made %s in the root", path, body, n)
			}
		}
		if e, _ := s.call(t, "/VolumeDriver.Get", req{"Name": "fuzzkeep_data"}); e != "" && !strings.Contains(string(body), "fuzzkeep") {
			t.Fatalf("Get after %s %q: %s", path, body, e)
		}
	})
}
