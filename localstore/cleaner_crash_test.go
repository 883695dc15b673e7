package localstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

var errInjectedCrash = errors.New("injected crash")

// TestCleanerCrashAtEveryStage stops a pass at each stage of the swap
// protocol, abandons the log as kill -9 would, reopens it and checks that
// it reads back correctly: every key's latest value, increasing offsets,
// no cleaner temporaries, and a working next pass.
func TestCleanerCrashAtEveryStage(t *testing.T) {
	stages := []string{"cleaned-written", "swap-descriptor-written", "swap-renamed", "old-segments-unlinked", "swap-finished"}
	for _, stage := range stages {
		for _, nth := range []int{1, 2} { // in the first or the second group
			t.Run(fmt.Sprintf("%s/group%d", stage, nth), func(t *testing.T) {
				clock := newFakeClock()
				dir := t.TempDir()
				cfg := cleanerTestConfig(clock)
				l := openTestLog(t, dir, cfg)
				writeUpdates(t, l, clock, 0, 150, 5)
				if err := l.Roll(); err != nil {
					t.Fatal(err)
				}
				before := readKeyed(t, l)
				seen := 0
				cleanerHook = func(s string) error {
					if s == stage {
						if seen++; seen == nth {
							return errInjectedCrash
						}
					}
					return nil
				}
				defer func() { cleanerHook = nil }()
				if _, err := l.Clean(context.Background(), alwaysClean, math.MaxInt64); !errors.Is(err, errInjectedCrash) {
					t.Fatalf("Clean: %v", err)
				}
				cleanerHook = nil
				simulateCrash(t, l)

				l = openTestLog(t, dir, cfg)
				defer l.Close()
				leftovers(t, dir)
				after := readKeyed(t, l)
				checkSameLatest(t, before, after)
				// The crash loses at most the group being swapped; earlier
				// groups of the pass are in place.
				committed := nth > 1 || stage == "swap-renamed" || stage == "old-segments-unlinked" || stage == "swap-finished"
				if committed != (len(after) < len(before)) {
					t.Fatalf("%d records before, %d after a crash at %s", len(before), len(after), stage)
				}
				for _, r := range after {
					s, err := l.Read(r.offset, 1, l.LogEndOffset(), true)
					if err != nil || s.FirstOffset > r.offset || s.LastOffset < r.offset {
						t.Fatalf("Read(%d) after recovery: %+v %v", r.offset, s, err)
					}
					s.Release()
				}
				if l.CleanerCheckpoint() != -1 {
					t.Fatal("checkpoint written by an interrupted pass")
				}
				// The next pass finishes the job.
				mustClean(t, l, alwaysClean)
				final := readKeyed(t, l)
				checkSameLatest(t, before, final)
				if len(final) != 5 {
					t.Fatalf("%d records after a full pass, want 5", len(final))
				}
				leftovers(t, dir)
				if info := appendKeyed(t, l, keyed(1, rec("key-0", "new"))); info.BaseOffset != before[len(before)-1].offset+1 {
					t.Fatalf("append after recovery at %d", info.BaseOffset)
				}
			})
		}
	}
}

// TestCleanerRecoveryStrayFiles: swap files that do not match a descriptor
// are discarded, and the log is untouched.
func TestCleanerRecoveryStrayFiles(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	cfg := cleanerTestConfig(clock)
	l := openTestLog(t, dir, cfg)
	writeUpdates(t, l, clock, 0, 60, 5)
	before := readKeyed(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	junk := map[string]string{
		"00000000000000000000.log.swap":    "not a segment",
		"00000000000000000005.log.cleaned": "half written",
		"00000000000000000000.index.swap":  "x",
	}
	for name, data := range junk {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A descriptor for another base does not adopt the swap either.
	if err := os.WriteFile(filepath.Join(dir, cleanerSwapFile), encodeSwapDescriptor(7, 9), 0o644); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, cfg)
	defer l.Close()
	leftovers(t, dir)
	after := readKeyed(t, l)
	if len(after) != len(before) {
		t.Fatalf("%d records, want %d", len(after), len(before))
	}
	checkSameLatest(t, before, after)
}
