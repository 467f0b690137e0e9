package state

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func wantStale(t *testing.T, m *Mounts, want map[string]int) {
	t.Helper()
	for v, n := range want {
		if got := m.Stale(v); got != n {
			t.Fatalf("Stale(%q) = %d, want %d", v, got, n)
		}
	}
}

func mustMount(t *testing.T, m *Mounts, pairs ...[2]string) {
	t.Helper()
	for _, p := range pairs {
		if err := m.Mount(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMountsGenerations(t *testing.T) {
	dir := t.TempDir()
	m := openMounts(t, dir, "boot")
	if m.Generation() != 0 {
		t.Fatalf("a new log starts at generation %d", m.Generation())
	}
	mustMount(t, m, [2]string{"a", "1"}, [2]string{"a", "1"}, [2]string{"a", "2"}, [2]string{"b", "1"}, [2]string{"c", "1"})
	if err := m.NewGeneration(); err != nil {
		t.Fatal(err)
	}
	// Everything is stale now: nothing counts as mounted by this engine.
	wantCounts(t, m, map[string]int{"a": 0, "b": 0, "c": 0})
	wantStale(t, m, map[string]int{"a": 3, "b": 1, "c": 1})
	// The new engine mounts again what it still uses: a's ID 1 (counted
	// twice by the earlier engine) is taken over and counts once.
	mustMount(t, m, [2]string{"a", "1"})
	wantCounts(t, m, map[string]int{"a": 1})
	wantStale(t, m, map[string]int{"a": 1})
	// A container the earlier engine started, stopping now: its Unmount
	// still counts.
	if ok, err := m.Unmount("b", "1"); !ok || err != nil {
		t.Fatalf("Unmount of a stale count = %v, %v", ok, err)
	}
	wantStale(t, m, map[string]int{"b": 0})
	m.Close()

	// A plugin restart is not an engine restart: the generation and which
	// count is whose survive replay (and the compaction at open).
	for range 2 {
		m = openMounts(t, dir, "boot")
		if m.Generation() != 1 {
			t.Fatalf("generation after reopen = %d, want 1", m.Generation())
		}
		wantCounts(t, m, map[string]int{"a": 1, "b": 0, "c": 0})
		wantStale(t, m, map[string]int{"a": 1, "b": 0, "c": 1})
		m.Close()
	}

	m = openMounts(t, dir, "boot")
	ids, err := m.DropStale("a")
	if err != nil || !slices.Equal(ids, []string{"2"}) {
		t.Fatalf("DropStale(a) = %v, %v; want [2]", ids, err)
	}
	wantCounts(t, m, map[string]int{"a": 1})
	wantStale(t, m, map[string]int{"a": 0, "c": 1})
	if err := m.NewGeneration(); err != nil {
		t.Fatal(err)
	}
	wantStale(t, m, map[string]int{"a": 1, "c": 1}) // stale of generation 0 and 1 alike
	m.Close()
	m = openMounts(t, dir, "boot")
	if m.Generation() != 2 {
		t.Fatalf("generation = %d, want 2", m.Generation())
	}
	wantStale(t, m, map[string]int{"a": 1, "c": 1})
	m.Close()

	// A reboot drops every count and starts generations again.
	m = openMounts(t, dir, "boot-2")
	defer m.Close()
	if m.Generation() != 0 {
		t.Fatalf("generation after a reboot = %d, want 0", m.Generation())
	}
	wantStale(t, m, map[string]int{"a": 0, "c": 0})
	wantCounts(t, m, map[string]int{"a": 0, "c": 0})
}

func TestMountsGenerationsCompaction(t *testing.T) {
	dir := t.TempDir()
	m := openMounts(t, dir, "boot")
	mustMount(t, m, [2]string{"old", "1"})
	if err := m.NewGeneration(); err != nil {
		t.Fatal(err)
	}
	mustMount(t, m, [2]string{"new", "1"})
	// Enough churn to rewrite the log in flight, more than once.
	for range 3 * compactSlack / 2 {
		mustMount(t, m, [2]string{"churn", "x"})
		if _, err := m.Unmount("churn", "x"); err != nil {
			t.Fatal(err)
		}
	}
	check := func(m *Mounts) {
		t.Helper()
		if m.Generation() != 1 {
			t.Fatalf("generation = %d, want 1", m.Generation())
		}
		wantCounts(t, m, map[string]int{"old": 0, "new": 1, "churn": 0})
		wantStale(t, m, map[string]int{"old": 1, "new": 0})
	}
	check(m)
	m.Close()
	b, err := os.ReadFile(filepath.Join(dir, mountLogName))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n > compactSlack+5 {
		t.Fatalf("log has %d lines: not compacted", n)
	}
	m = openMounts(t, dir, "boot")
	defer m.Close()
	check(m)
}

func TestMountsLogBeforeGenerations(t *testing.T) {
	// A log written by a version without generations: all of it is
	// generation 0, as if from this engine.
	dir := t.TempDir()
	text := `{"boot_id":"boot"}` + "\n" + `{"v":"a","id":"1","d":1}` + "\n" + `{"v":"a","id":"1","d":1}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, mountLogName), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	m := openMounts(t, dir, "boot")
	defer m.Close()
	wantCounts(t, m, map[string]int{"a": 2})
	wantStale(t, m, map[string]int{"a": 0})
	if err := m.NewGeneration(); err != nil {
		t.Fatal(err)
	}
	wantStale(t, m, map[string]int{"a": 2})
}
