package localstore

import (
	"os"
	"testing"
)

func TestStartAtAndAccessors(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.StartAt(1000); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != 1000 || l.LogEndOffset() != 1000 {
		t.Fatalf("after StartAt: start %d end %d", l.LogStartOffset(), l.LogEndOffset())
	}
	info, err := l.Append(buildBatch(plain(3, 1000)), 4, false)
	if err != nil || info.BaseOffset != 1000 {
		t.Fatalf("append after StartAt: %v at %d", err, info.BaseOffset)
	}
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if rp := l.RecoveryPoint(); rp != 1003 {
		t.Fatalf("recovery point %d, want 1003", rp)
	}
	if e := l.EpochStarts(); len(e) != 1 || e[0] != (EpochStart{Epoch: 4, StartOffset: 1000}) {
		t.Fatalf("epochs %+v", e)
	}
	logf, idx, tidx := SegmentFiles(dir, 1000)
	for _, p := range []string{logf, idx, tidx, SnapshotFile(dir, 1003)} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	l.Close()
	l, err = Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.LogStartOffset() != 1000 || l.LogEndOffset() != 1003 {
		t.Fatalf("after reopen: start %d end %d", l.LogStartOffset(), l.LogEndOffset())
	}
}
