package state

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCheckpointBatches: a checkpoint of more records than one batch
// leaves exactly the latest record of every volume, and no temp file.
func TestCheckpointBatches(t *testing.T) {
	dir := t.TempDir()
	r, _ := openRecords(t, dir)
	defer r.Close()
	n := 2*checkpointBatch() + 100
	var entries []journalEntry
	var want []Volume
	for i := range n {
		v := vol(fmt.Sprintf("v%d_data", i), fmt.Sprintf("v%d", i), "/data")
		entries = append(entries, journalEntry{Put: &v})
	}
	// Every third volume is removed again, every fifth changed.
	for i := range n {
		v := *entries[i].Put
		switch {
		case i%3 == 0:
			entries = append(entries, journalEntry{Del: v.Name})
		case i%5 == 0:
			v.Spec.UID = 7
			entries = append(entries, journalEntry{Put: &v})
			want = append(want, v)
		default:
			want = append(want, v)
		}
	}
	if _, err := r.checkpoint(entries, nil); err != nil {
		t.Fatal(err)
	}
	recs := files(t, filepath.Join(dir, recordsDir))
	if len(recs) != len(want) {
		t.Fatalf("%d record files, want %d", len(recs), len(want))
	}
	for _, name := range recs {
		if strings.HasPrefix(name, tmpPrefix) {
			t.Fatalf("temp file %s left", name)
		}
	}
	r.crash()
	r, got := openRecords(t, dir)
	sameVolumes(t, got, want)
}

// TestCheckpointFailureLeavesNoTemp: a record that cannot be renamed into
// place fails the checkpoint with an error that names it, and the batch's
// other temp files go; the records written before it are whole, the
// journal keeps every change, and the next checkpoint finishes the work.
func TestCheckpointFailureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	r, _ := openRecords(t, dir)
	defer r.Close()
	a, b, c := vol("a_data", "a", "/data"), vol("b_data", "b", "/data"), vol("c_data", "c", "/data")
	entries := []journalEntry{{Put: &a}, {Put: &b}, {Put: &c}, {Del: "x_data"}}
	// A directory where b's record goes: its rename fails.
	blocker := filepath.Join(dir, recordsDir, fileName(b.Name))
	if err := os.Mkdir(blocker, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := r.checkpoint(entries, nil)
	if err == nil || !strings.Contains(err.Error(), fileName(b.Name)) {
		t.Fatalf("checkpoint with b's record blocked: error %v, want one naming %s", err, fileName(b.Name))
	}
	for _, name := range files(t, filepath.Join(dir, recordsDir)) {
		if strings.HasPrefix(name, tmpPrefix) {
			t.Fatalf("temp file %s left after a failed checkpoint", name)
		}
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if _, err := r.checkpoint(entries, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{fileName(a.Name), fileName(b.Name), fileName(c.Name)}
	slices.Sort(want)
	if got := files(t, filepath.Join(dir, recordsDir)); !slices.Equal(got, want) {
		t.Fatalf("record files %q, want %q", got, want)
	}
	r.crash()
	r, got := openRecords(t, dir)
	sameVolumes(t, got, []Volume{a, b, c})
}

// BenchmarkCheckpoint times a checkpoint of one batch of new records and
// of their removal, against the cost of one record written durably alone
// (temp file, fsync, rename, directory fsync) measured in the same
// iterations: puts/record and dels/record are the cost of one record in
// the checkpoint as a fraction of that.
//
//	go test -run '^$' -bench BenchmarkCheckpoint -benchtime 5x ./driver/state
func BenchmarkCheckpoint(b *testing.B) {
	n := checkpointBatch()
	var alone, puts, dels time.Duration
	for range b.N {
		dir := b.TempDir()
		r, _, err := OpenRecords(dir, quiet())
		if err != nil {
			b.Fatal(err)
		}
		var put, del []journalEntry
		for i := range n {
			v := vol(fmt.Sprintf("v%d_data", i), fmt.Sprintf("v%d", i), "/data")
			put = append(put, journalEntry{Put: &v})
			del = append(del, journalEntry{Del: v.Name})
		}
		const single = 16
		start := time.Now()
		for i := range single {
			v := vol(fmt.Sprintf("single%d_data", i), "single", "/data")
			if err := r.applyBatch([]journalEntry{{Put: &v}}); err != nil {
				b.Fatal(err)
			}
		}
		alone += time.Since(start) / single
		start = time.Now()
		if _, err := r.checkpoint(put, nil); err != nil {
			b.Fatal(err)
		}
		puts += time.Since(start) / time.Duration(n)
		start = time.Now()
		if _, err := r.checkpoint(del, nil); err != nil {
			b.Fatal(err)
		}
		dels += time.Since(start) / time.Duration(n)
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(alone.Microseconds())/float64(b.N), "µs/durable-write")
	b.ReportMetric(float64(puts)/float64(alone), "puts/record")
	b.ReportMetric(float64(dels)/float64(alone), "dels/record")
}
