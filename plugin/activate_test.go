package main

import (
	"encoding/json"
	"net/http"
	"os"
	"testing"
)

// TestActivateStartsEngineGeneration: Plugin.Activate answers as the
// helpers did, and what the earlier engine mounted stops counting (nothing
// here has the directory mounted), while the new engine's mounts count.
func TestActivateStartsEngineGeneration(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	s := startServer(t)
	if e, _ := s.call(t, "/VolumeDriver.Create", req{"Name": "act_data"}); e != "" {
		t.Fatal(e)
	}
	if e, _ := s.call(t, "/VolumeDriver.Mount", req{"Name": "act_data", "ID": "old"}); e != "" {
		t.Fatal(e)
	}
	mountsOf := func() float64 {
		t.Helper()
		_, res := s.call(t, "/VolumeDriver.Get", req{"Name": "act_data"})
		return res["Volume"].(map[string]any)["Status"].(map[string]any)["mounts"].(float64)
	}
	if n := mountsOf(); n != 1 {
		t.Fatalf("mounts %v before the activation, want 1", n)
	}
	status, b, err := s.post("/Plugin.Activate", nil)
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct{ Implements []string }
	if status != http.StatusOK || json.Unmarshal(b, &manifest) != nil || len(manifest.Implements) != 1 || manifest.Implements[0] != "VolumeDriver" {
		t.Fatalf("Plugin.Activate: %d %q", status, b)
	}
	if n := mountsOf(); n != 0 {
		t.Fatalf("mounts %v after a new engine activated, want 0", n)
	}
	if e, _ := s.call(t, "/VolumeDriver.Mount", req{"Name": "act_data", "ID": "new"}); e != "" {
		t.Fatal(e)
	}
	if n := mountsOf(); n != 1 {
		t.Fatalf("mounts %v after the new engine's Mount, want 1", n)
	}
	// Capabilities, the suite's readiness probe, starts nothing.
	if e, _ := s.call(t, "/VolumeDriver.Capabilities", nil); e != "" {
		t.Fatal(e)
	}
	if n := mountsOf(); n != 1 {
		t.Fatalf("mounts %v after Capabilities, want 1", n)
	}
}
