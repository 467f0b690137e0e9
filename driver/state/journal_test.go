package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portal/portal-volume/driver/spec"
)

// crash drops r as a kill -9 would: the committer stops after the changes
// already answered, no checkpoint runs, and the files are closed (which
// releases the lock, as the process's exit does).
func (r *Records) crash() {
	r.journal.closeOnce.Do(func() {
		_ = r.journal.stop()
		_ = r.journal.dirFile.Close()
	})
	_ = r.closeFiles()
}

func journalLines(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, journalName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// TestJournalSurvivesCrash: acknowledged changes are in the journal, and a
// crash before any checkpoint loses none of them; a clean Close leaves the
// record files alone telling the state.
func TestJournalSurvivesCrash(t *testing.T) {
	dir := t.TempDir()
	r, _ := openRecords(t, dir)
	a, b, c := vol("a_data", "a", "/data"), vol("b_data", "b", "/data"), vol("c_data", "c", "/data")
	for _, v := range []Volume{a, b, c} {
		if err := r.Put(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Delete("b_data"); err != nil {
		t.Fatal(err)
	}
	c.Spec.UID = 7
	if err := r.Put(c); err != nil {
		t.Fatal(err)
	}
	if n := len(files(t, filepath.Join(dir, recordsDir))); n != 0 {
		t.Fatalf("%d record files before a checkpoint", n)
	}
	if n := len(journalLines(t, dir)); n != 5 {
		t.Fatalf("journal has %d lines, want 5", n)
	}
	r.crash()
	r, got := openRecords(t, dir)
	sameVolumes(t, got, []Volume{a, c})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if lines := journalLines(t, dir); lines != nil {
		t.Fatalf("journal after a clean close: %q", lines)
	}
	r, got = openRecords(t, dir)
	defer r.Close()
	sameVolumes(t, got, []Volume{a, c})
	if n := len(files(t, filepath.Join(dir, recordsDir))); n != 2 {
		t.Fatalf("%d record files after the checkpoint, want 2", n)
	}
}

// TestJournalTornAndBadLines: the last line cut off by a crash (half way,
// or just before its newline), and a line whose checksum does not match,
// are passed over; the rest applies, and the cut line stays ignored after
// later appends (which must not complete it) and another start.
func TestJournalTornAndBadLines(t *testing.T) {
	for _, cutAt := range []string{"half way", "before its newline"} {
		t.Run(cutAt, func(t *testing.T) {
			dir := t.TempDir()
			r, _ := openRecords(t, dir)
			a := vol("a_data", "a", "/data")
			if err := r.Put(a); err != nil {
				t.Fatal(err)
			}
			r.crash()
			b, _ := journalLine(journalEntry{Put: &Volume{Name: "b_data", Spec: a.Spec, CreatedAt: a.CreatedAt}})
			flipped := []byte(strings.Replace(string(b), "b_data", "x_data", 1)) // checksum no longer matches
			cut := b[:len(b)/2]
			if cutAt == "before its newline" {
				cut = b[:len(b)-1]
			}
			f, err := os.OpenFile(filepath.Join(dir, journalName), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, part := range [][]byte{flipped, []byte("not a line\n"), cut} {
				if _, err := f.Write(part); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			r, got := openRecords(t, dir)
			sameVolumes(t, got, []Volume{a})
			c := vol("c_data", "c", "/data")
			if err := r.Put(c); err != nil {
				t.Fatal(err)
			}
			r.crash()
			r, got = openRecords(t, dir)
			defer r.Close()
			sameVolumes(t, got, []Volume{a, c})
		})
	}
}

// TestJournalCheckpoint: past checkpointAfter lines the journal is rotated
// and checkpointed in the background while changes go on, concurrently;
// a checkpoint cut off by a crash is finished at the next start.
func TestJournalCheckpoint(t *testing.T) {
	defer func(n int) { checkpointAfter = n }(checkpointAfter)
	checkpointAfter = 500
	dir := t.TempDir()
	r, _ := openRecords(t, dir)
	n := checkpointAfter + 100
	var want []Volume
	for i := range n {
		want = append(want, vol(fmt.Sprintf("v%d_data", i), fmt.Sprintf("v%d", i), "/data"))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if err := r.Put(want[i]); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The checkpoint runs in the background: wait for its record files.
	waitFor(t, fmt.Sprintf("%d record files", checkpointAfter), func() bool {
		return len(files(t, filepath.Join(dir, recordsDir))) >= checkpointAfter
	})
	r.crash()
	if _, err := os.Lstat(filepath.Join(dir, oldJournalName)); err == nil {
		t.Fatal("the checkpoint left the old journal")
	}
	if lines := len(journalLines(t, dir)); lines >= checkpointAfter {
		t.Fatalf("journal has %d lines after a checkpoint", lines)
	}
	r, got := openRecords(t, dir)
	sameVolumes(t, got, want)
	r.crash()

	// A checkpoint cut off: the old journal is back, a record file is
	// stale. Start-up applies it, and finishes the checkpoint.
	stale := want[0]
	stale.Spec.Path = "/stale"
	line, _ := journalLine(journalEntry{Put: &want[0]})
	if err := os.WriteFile(filepath.Join(dir, oldJournalName), line, 0o600); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(stale)
	if err := os.WriteFile(filepath.Join(dir, recordsDir, fileName(stale.Name)), data, 0o600); err != nil {
		t.Fatal(err)
	}
	r, got = openRecords(t, dir)
	sameVolumes(t, got, want)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, oldJournalName)); err == nil {
		t.Fatal("the old journal is still there after a clean close")
	}
	r, got = openRecords(t, dir)
	defer r.Close()
	sameVolumes(t, got, want)
}

// TestCheckpointGivesWay: the checkpoint of a full journal writes no
// record while changes keep coming in; once the current journal is full
// too it goes on anyway, so that the journals stay bounded; and what it
// wrote, with the journal, is the whole state.
func TestCheckpointGivesWay(t *testing.T) {
	defer func(n int, q time.Duration) { checkpointAfter, quietFor = n, q }(checkpointAfter, quietFor)
	// quietFor is far above the time between two changes of one caller
	// (one fdatasync), so that only a stalled disk ends a burst early.
	checkpointAfter, quietFor = 300, 2*time.Second
	dir := t.TempDir()
	r, _ := openRecords(t, dir)
	defer func() { r.crash() }() // before the variables are restored
	var want []Volume
	put := func(name string) {
		t.Helper()
		v := vol(name+"_data", name, "/data")
		if err := r.Put(v); err != nil {
			t.Fatal(err)
		}
		want = append(want, v)
	}
	records := func() int { return len(files(t, filepath.Join(dir, recordsDir))) }
	// One caller, one line per commit: the journal is rotated at exactly
	// checkpointAfter lines (just after the last is answered), and its
	// checkpoint starts.
	for i := range checkpointAfter {
		put(fmt.Sprintf("a%d", i))
	}
	waitFor(t, "the journal's rotation", func() bool {
		_, err := os.Lstat(filepath.Join(dir, oldJournalName))
		return err == nil
	})
	// Changes go on until the current journal is one line short of full:
	// the checkpoint waits.
	for i := range checkpointAfter - 1 {
		put(fmt.Sprintf("b%d", i))
		if n := records(); n > 0 {
			t.Fatalf("%d record files written while changes came in (%d changes after the rotation)", n, i+1)
		}
	}
	// The current journal is full: the checkpoint goes on while changes
	// still come in (after the quietFor it may be sleeping).
	full := time.Now()
	for i := 0; records() == 0; i++ {
		if time.Since(full) > 5*quietFor {
			t.Fatalf("no record file in %v of changes (%d) beside a full journal", 5*quietFor, i)
		}
		put(fmt.Sprintf("c%d", i))
	}
	waitFor(t, "end of the checkpoint", func() bool { return oldJournalGone(dir) })
	r.crash()
	r, got := openRecords(t, dir)
	sameVolumes(t, got, want)
}

// oldJournalGone tells whether the checkpoint of the old journal in the
// state directory dir has ended (and deleted it).
func oldJournalGone(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, oldJournalName))
	return errors.Is(err, os.ErrNotExist)
}

// waitFor polls cond until it holds, for at most 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCheckpointPassesOverSuperseded: a checkpoint of the old journal
// writes no record of a volume that the current journal changes again
// (removed, or put with other options): the current journal's line, read
// after the record files, tells its state. The current journal is read at
// start-up, and its changes are counted from its appends.
func TestCheckpointPassesOverSuperseded(t *testing.T) {
	dir := t.TempDir()
	r, _ := openRecords(t, dir)
	r.crash()
	a, b, c := vol("a_data", "a", "/data"), vol("b_data", "b", "/data"), vol("c_data", "c", "/data")
	newC := c
	newC.Spec.UID = 7
	write := func(name string, entries ...journalEntry) {
		t.Helper()
		var data []byte
		for _, e := range entries {
			line, err := journalLine(e)
			if err != nil {
				t.Fatal(err)
			}
			data = append(data, line...)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A crash cut off the checkpoint of the old journal; the current one
	// removed b and changed c since.
	write(oldJournalName, journalEntry{Put: &a}, journalEntry{Put: &b}, journalEntry{Put: &c})
	write(journalName, journalEntry{Del: "b_data"}, journalEntry{Put: &newC})
	r, got := openRecords(t, dir)
	sameVolumes(t, got, []Volume{a, newC})
	waitFor(t, "end of the old journal's checkpoint", func() bool { return oldJournalGone(dir) })
	if got, want := files(t, filepath.Join(dir, recordsDir)), []string{fileName("a_data")}; !slices.Equal(got, want) {
		t.Fatalf("record files after the checkpoint: %q, want only a's %q", got, want)
	}
	r.crash()
	r, got = openRecords(t, dir)
	sameVolumes(t, got, []Volume{a, newC})

	// A running daemon counts a volume as changed once its line is on
	// disk, and starts counting afresh with each new journal.
	d := vol("d_data", "d", "/data")
	if err := r.Put(d); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"b_data", "c_data", "d_data"} {
		if !r.journal.superseded(name) {
			t.Errorf("%s is changed in the current journal, and not counted", name)
		}
	}
	if r.journal.superseded("a_data") {
		t.Error("a_data is counted as changed, and the current journal has no line of it")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r, got = openRecords(t, dir)
	defer r.Close()
	sameVolumes(t, got, []Volume{a, newC, d})
	if n := len(files(t, filepath.Join(dir, recordsDir))); n != 3 {
		t.Fatalf("%d record files after a clean close, want 3", n)
	}
	if r.journal.superseded("d_data") {
		t.Error("d_data counted as changed in an empty journal")
	}
}

func FuzzJournalLine(f *testing.F) {
	v := Volume{Name: "gitea_data", Spec: spec.Spec{App: "gitea", Path: "/data", Mode: 0o755, OnRemove: spec.Keep}, Format: RecordFormat}
	for _, e := range []journalEntry{{Put: &v}, {Del: "gitea_data"}} {
		line, _ := journalLine(e)
		f.Add(line[:len(line)-1])
	}
	f.Add([]byte(`00000000 {"del":"x"}`))
	f.Add([]byte(`zzzzzzzz {}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := parseJournalLine(line)
		if err != nil {
			return
		}
		// What parses is one change, and encodes to a line that parses
		// to the same change.
		again, err := journalLine(e)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := parseJournalLine(again[:len(again)-1])
		if err != nil || e2.name() != e.name() || (e2.Put == nil) != (e.Put == nil) {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", line, e, again, e2, err)
		}
	})
}

// TestJournalClosed: a change after Close fails, it does not panic.
func TestJournalClosed(t *testing.T) {
	r, _ := openRecords(t, t.TempDir())
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Put(vol("a_data", "a", "/data")); !errors.Is(err, errJournalClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
}

// failCheckpoints makes the next n checkpoints of r fail (every one when n
// is negative) until the returned func is called. Both run between calls
// of r: the committer, which starts the checkpoints, is synchronised with
// them.
func failCheckpoints(r *Records, n int) (restore func()) {
	orig := r.journal.checkpoint
	var calls atomic.Int64
	r.journal.checkpoint = func(entries []journalEntry, current currentJournal) (checkpointDone, error) {
		if n >= 0 && calls.Add(1) > int64(n) {
			return orig(entries, current)
		}
		return checkpointDone{}, errors.New("no space left on device (injected)")
	}
	return func() { r.journal.checkpoint = orig }
}

// TestFailedCheckpoint: a checkpoint of the old journal that fails (a full
// disk) keeps it. While the plugin runs, the checkpoint is tried again
// once the current journal is full; and a clean stop that cannot
// checkpoint it either keeps the current journal too, so that the next
// start applies both in their order.
func TestFailedCheckpoint(t *testing.T) {
	defer func(n int, d time.Duration) { checkpointAfter, checkpointRetry = n, d }(checkpointAfter, checkpointRetry)
	checkpointAfter, checkpointRetry = 4, 0
	dir := t.TempDir()
	r, _ := openRecords(t, dir)
	var vols []Volume
	put := func() {
		t.Helper()
		i := len(vols)
		vols = append(vols, vol(fmt.Sprintf("v%d_data", i), fmt.Sprint("v", i), "/data"))
		if err := r.Put(vols[i]); err != nil {
			t.Fatal(err)
		}
	}
	failedCheckpoint := func() {
		t.Helper()
		for r.journal.failedAt.Load() == 0 && len(vols) < 100 {
			put() // until the journal rotates, and its checkpoint fails
			waitFor(t, "checkpoint to end", func() bool { return !r.journal.checkpointing.Load() })
		}
		if oldJournalGone(dir) {
			t.Fatal("a checkpoint failed, and the old journal is gone")
		}
	}

	restore := failCheckpoints(r, -1)
	failedCheckpoint()
	restore()
	for r.journal.lines.Load() < int64(checkpointAfter) {
		put()
	}
	waitFor(t, "checkpoint of the old journal tried again once the current one was full", func() bool { return oldJournalGone(dir) })
	r.crash()
	r, got := openRecords(t, dir)
	sameVolumes(t, got, vols)

	// The stop cannot checkpoint the old journal either (it could the
	// current one): both stay.
	restore = failCheckpoints(r, -1)
	failedCheckpoint()
	deleted := 0
	remove := func() {
		t.Helper()
		if err := r.Delete(vols[deleted].Name); err != nil {
			t.Fatal(err)
		}
		deleted++
	}
	remove()
	restore()
	failCheckpoints(r, 1)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if oldJournalGone(dir) || journalLines(t, dir) == nil {
		t.Fatal("a clean stop that could not checkpoint the old journal did not keep both journals")
	}
	r, got = openRecords(t, dir)
	sameVolumes(t, got, vols[deleted:])

	// The disk is sound again by the stop, before a retry: the stop
	// checkpoints the old journal, then the current one.
	waitFor(t, "checkpoint at the start", func() bool { return !r.journal.checkpointing.Load() && oldJournalGone(dir) })
	checkpointRetry = time.Hour
	restore = failCheckpoints(r, -1)
	failedCheckpoint()
	remove()
	restore()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if !oldJournalGone(dir) || journalLines(t, dir) != nil {
		t.Fatal("a clean stop left a journal")
	}
	r, got = openRecords(t, dir)
	defer r.Close()
	sameVolumes(t, got, vols[deleted:])
}

// TestJournalFailStop: a batch that fails and cannot be cut off leaves the
// journal's end unknown: that change and every later one are refused, and
// the next start has exactly the changes acknowledged before.
func TestJournalFailStop(t *testing.T) {
	dir := t.TempDir()
	r, _ := openRecords(t, dir)
	a := vol("a_data", "a", "/data")
	if err := r.Put(a); err != nil {
		t.Fatal(err)
	}
	// A descriptor that takes the write but can neither flush nor truncate
	// (a pipe), in the committer's place (between calls, so that the
	// committer is synchronised).
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	journal := r.journal.f
	defer journal.Close()
	r.journal.f = pw
	if err := r.Put(vol("b_data", "b", "/data")); err == nil {
		t.Fatal("a Put whose flush failed succeeded")
	}
	err = r.Delete("a_data")
	if err == nil || !strings.Contains(err.Error(), "restart portal-volume") {
		t.Fatalf("a change after the failure: %v, want a refusal that says to restart", err)
	}
	r.crash()
	r, got := openRecords(t, dir)
	defer r.Close()
	sameVolumes(t, got, []Volume{a})
}

// TestEmptyOldJournal: an old journal without one whole line (cut by a
// crash as it began) is checkpointed at the start all the same, that is
// deleted: otherwise no journal could rotate again.
func TestEmptyOldJournal(t *testing.T) {
	dir := t.TempDir()
	r, _ := openRecords(t, dir)
	r.crash()
	if err := os.WriteFile(filepath.Join(dir, oldJournalName), []byte(`{"torn`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, _ = openRecords(t, dir)
	defer r.Close()
	waitFor(t, "old journal's deletion", func() bool { return oldJournalGone(dir) })
}
