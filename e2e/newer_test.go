package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portal/portal-volume/internal/engineapi"
	"github.com/portal/portal-volume/internal/testutil"
)

// TestNewerEngines: what users of a current engine reach for: a
// subdirectory of a volume as the mount (volume-subpath, API 1.45, Docker
// 26), docker volume prune (and prune --all, API 1.42) next to plugin
// volumes, and clients that speak only API 1.44 and later (the oldest
// Docker 29 accepts).
func TestNewerEngines(t *testing.T) { eachMode(t, newerCases) }

var newerCases = []testCase{
	{"CreateThroughEngineAPI", func(t *testing.T, e *env) {
		// What an installer's --create can do without the plugin's
		// socket, in either mode: ask the engine, which finds the plugin.
		sock, err := engineapi.Socket(os.Getenv("DOCKER_HOST"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = docker("volume", "rm", "-f", "engapi_data") })
		opts := map[string]string{"uid": "1000", "gid": "1000", "mode": "0750"}
		if err := engineapi.CreateVolume(context.Background(), sock, driverName, "engapi_data", opts); err != nil {
			t.Fatal(err)
		}
		wantOwner(t, e.host("app_data/engapi/data"), 1000, 1000, 0o750)
		if v := e.inspect(t, "engapi_data"); v.Status["uid"] != 1000.0 || v.Status["mode"] != "0750" {
			t.Errorf("Status %v", v.Status)
		}
		// Again with the same options: the engine's answer, not an error.
		if err := engineapi.CreateVolume(context.Background(), sock, driverName, "engapi_data", opts); err != nil {
			t.Errorf("the same create again: %v", err)
		}
		err = engineapi.CreateVolume(context.Background(), sock, driverName, "engapi-bad", map[string]string{"uid": "abc"})
		if err == nil || !strings.Contains(err.Error(), `"abc"`) || !strings.Contains(err.Error(), "uid") {
			t.Errorf("a refused create: %v, want the plugin's error naming uid and \"abc\"", err)
		}
		if _, err := docker("volume", "inspect", "engapi-bad"); err == nil {
			t.Error("the refused volume exists")
		}
	}},
	{"VolumeSubpath", func(t *testing.T, e *env) {
		needAPI(t, 45, "--mount volume-subpath (Docker 26)")
		// One directory inside each kind of volume: app, shared, tree (a
		// file manager mounting one shared directory out of the whole
		// tree) and an access=ro view of a shared directory.
		e.mustCreate(t, "subapp_data")
		e.mustCreate(t, "sub-shared", "shared=documents")
		e.mustCreate(t, "sub-tree", "tree=shared")
		e.mustCreate(t, "sub-ro", "shared=documents", "access=ro")
		testutil.Write(t, e.host("app_data/subapp/data/inner/f"), "app\n")
		testutil.Write(t, e.host("shared/documents/e2e-sub/f"), "shared\n")
		t.Cleanup(func() { os.RemoveAll(e.host("shared/documents/e2e-sub")) })
		for _, c := range []struct{ volume, sub, want, wrote string }{
			{"subapp_data", "inner", "app", "app_data/subapp/data/inner/w"},
			{"sub-shared", "e2e-sub", "shared", "shared/documents/e2e-sub/w-shared"},
			{"sub-tree", "documents/e2e-sub", "shared", "shared/documents/e2e-sub/w-tree"},
		} {
			mount := "type=volume,src=" + c.volume + ",dst=/x,volume-subpath=" + c.sub
			got := e.run(t, "--mount", mount, image, "sh", "-c", "cat /x/f && echo "+c.volume+" > /x/"+filepath.Base(c.wrote))
			if got != c.want {
				t.Errorf("%s: the container reads %q, want %q", mount, got, c.want)
			}
			if got := readFile(t, e.host(c.wrote)); got != c.volume+"\n" {
				t.Errorf("%s: %s holds %q", mount, c.wrote, got)
			}
			e.wantMounts(t, c.volume, 0)
		}
		out, err := docker("run", "--rm", "--mount", "type=volume,src=sub-ro,dst=/x,volume-subpath=e2e-sub", image,
			"sh", "-c", "cat /x/f; echo no > /x/w-ro")
		if err == nil || !strings.Contains(out, "shared") || !strings.Contains(out, "Read-only file system") {
			t.Errorf("a subpath of an access=ro view: %v %s, want the file read and the write refused", err, out)
		}
		wantGone(t, e.host("shared/documents/e2e-sub/w-ro"))
		e.wantMounts(t, "sub-ro", 0)
		wantNoViews(t, e, "after a subpath of a view")

		// A missing subdirectory, and a symlink out of the volume: the
		// engine refuses to start the container, and the mount the
		// plugin made for it is given back.
		e.run(t, "-v", "subapp_data:/v", image, "ln", "-s", "/", "/v/escape")
		for _, c := range []struct{ volume, sub string }{
			{"subapp_data", "missing"}, {"subapp_data", "escape"}, {"sub-ro", "missing"},
		} {
			out, err := docker("run", "--rm", "--mount", "type=volume,src="+c.volume+",dst=/x,volume-subpath="+c.sub, image, "true")
			t.Logf("volume-subpath=%s of %s: %v\n%s", c.sub, c.volume, err, out)
			if err == nil {
				t.Errorf("volume-subpath=%s of %s: the container ran", c.sub, c.volume)
			} else if !strings.Contains(out, c.sub) {
				t.Errorf("volume-subpath=%s of %s: the error does not name the subpath: %s", c.sub, c.volume, out)
			}
			e.wantMounts(t, c.volume, 0)
		}
		wantNoViews(t, e, "after refused subpaths")
	}},
	{"PruneLeavesPluginVolumes", func(t *testing.T, e *env) {
		// Unused volumes of the plugin, named and anonymous, next to
		// unused volumes of the local driver, which prune does remove.
		e.mustCreate(t, "prune_data")
		testutil.Write(t, e.host("app_data/prune/data/f"), "kept\n")
		before := e.anonymousDirs(t)
		id := mustDocker(t, "create", "--volume-driver", driverName, "-v", "/x", image, "true")
		anon := containerMounts(t, id)[0].Name
		t.Cleanup(func() { _, _ = docker("volume", "rm", "-f", anon) })
		mustDocker(t, "rm", id) // no -v: the anonymous volume stays, unused, its directory with it
		if left := e.newAnonymousDirs(t, before); len(left) != 1 {
			t.Fatalf("anonymous directories %v, want one", left)
		}
		local := mustDocker(t, "create", "-v", "/y", image, "true")
		localAnon := containerMounts(t, local)[0].Name
		mustDocker(t, "rm", local)
		t.Cleanup(func() { _, _ = docker("volume", "rm", "-f", localAnon, "e2e-prune-local") })
		mustDocker(t, "volume", "create", "e2e-prune-local")

		out := mustDocker(t, "volume", "prune", "-f")
		t.Logf("docker volume prune -f:\n%s", out)
		if _, err := docker("volume", "inspect", localAnon); err == nil {
			t.Errorf("prune left the local driver's anonymous volume %s", localAnon)
		}
		pluginVolumesKept := func(after string) {
			t.Helper()
			for _, v := range []string{"prune_data", anon} {
				if got := e.inspect(t, v); !strings.HasPrefix(got.Driver, driverName) {
					t.Errorf("after %s: %s has driver %q", after, v, got.Driver)
				}
			}
			if got := readFile(t, e.host("app_data/prune/data/f")); got != "kept\n" {
				t.Errorf("after %s: the named volume's file holds %q", after, got)
			}
			if _, err := os.Stat(e.host("anonymous/" + anon)); err != nil {
				t.Errorf("after %s: the anonymous volume's directory: %v", after, err)
			}
		}
		pluginVolumesKept("prune")
		if !apiAtLeast(42) {
			t.Logf("prune --all needs API 1.42 (Docker 23); this engine is %s, API %s", serverVersion, serverAPI)
			return
		}
		out = mustDocker(t, "volume", "prune", "--all", "-f")
		t.Logf("docker volume prune --all -f:\n%s", out)
		if _, err := docker("volume", "inspect", "e2e-prune-local"); err == nil {
			t.Error("prune --all left the local driver's named volume")
		}
		pluginVolumesKept("prune --all")
	}},
	{"ClientOfAPI144", func(t *testing.T, e *env) {
		needAPI(t, 44, "a client of API 1.44 (Docker 25)")
		// A client that speaks only 1.44, and one that speaks the
		// engine's own version, as a current CLI, Compose or SDK does.
		for _, v := range []string{"1.44", serverAPI} {
			name := "api" + strings.ReplaceAll(v, ".", "") + "_data"
			t.Cleanup(func() { _, _ = docker("volume", "rm", "-f", name) })
			var created inspected
			engineAPI(t, v, "POST", "/volumes/create", fmt.Sprintf(`{"Name":%q,"Driver":%q,"DriverOpts":{"uid":"1000","gid":"1000"}}`, name, driverName), http.StatusCreated, &created)
			if created.Name != name || !strings.HasPrefix(created.Driver, driverName) {
				t.Errorf("API %s: volume create answered %+v", v, created)
			}
			var got inspected
			engineAPI(t, v, "GET", "/volumes/"+name, "", http.StatusOK, &got)
			if got.Status["uid"] != 1000.0 || got.Status["mounts"] != 0.0 {
				t.Errorf("API %s: volume inspect Status %v, want uid 1000 and no mounts", v, got.Status)
			}
			var list struct{ Volumes []inspected }
			engineAPI(t, v, "GET", "/volumes?filters="+url.QueryEscape(`{"name":["`+name+`"]}`), "", http.StatusOK, &list)
			if len(list.Volumes) != 1 || !strings.HasPrefix(list.Volumes[0].Driver, driverName) {
				t.Errorf("API %s: volume list by name: %+v, want %s of %s", v, list.Volumes, name, driverName)
			}
			// A container mounting it, made and run through the API.
			var c struct{ Id string }
			engineAPI(t, v, "POST", "/containers/create", fmt.Sprintf(`{"Image":%q,"User":"1000:1000","Cmd":["sh","-c","echo api > /v/f"],"HostConfig":{"Mounts":[{"Type":"volume","Source":%q,"Target":"/v"}]}}`, image, name), http.StatusCreated, &c)
			t.Cleanup(func() { _, _ = docker("rm", "-f", c.Id) })
			engineAPI(t, v, "POST", "/containers/"+c.Id+"/start", "", http.StatusNoContent, nil)
			var wait struct{ StatusCode int }
			engineAPI(t, v, "POST", "/containers/"+c.Id+"/wait", "", http.StatusOK, &wait)
			if wait.StatusCode != 0 {
				t.Errorf("API %s: the container exited %d", v, wait.StatusCode)
			}
			wantOwner(t, e.host("app_data/"+strings.TrimSuffix(name, "_data")+"/data/f"), 1000, 1000, 0o644)
			engineAPI(t, v, "DELETE", "/containers/"+c.Id, "", http.StatusNoContent, nil)
			engineAPI(t, v, "DELETE", "/volumes/"+name, "", http.StatusNoContent, nil)
			if _, err := docker("volume", "inspect", name); err == nil {
				t.Errorf("API %s: the volume is still there after DELETE", v)
			}
		}
	}},
}

// engineAPI calls the engine's API at version v (path without the
// version prefix) on DOCKER_HOST's socket, wants status, and decodes the
// answer into out unless out is nil.
func engineAPI(t *testing.T, v, method, path, body string, status int, out any) {
	t.Helper()
	sock := strings.TrimPrefix(os.Getenv("DOCKER_HOST"), "unix://")
	if sock == "" {
		sock = "/var/run/docker.sock"
	}
	c := http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	req, err := http.NewRequest(method, "http://docker/v"+v+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s /v%s%s: %v", method, v, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("%s /v%s%s: %s %s, want %d", method, v, path, resp.Status, b, status)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s /v%s%s: %v: %s", method, v, path, err, b)
		}
	}
}
