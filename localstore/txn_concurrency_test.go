package localstore

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
)

// txnReaders runs goroutines asking what the fetch path asks (LSO, aborted
// transactions up to it, a sealed segment's index for tiering) and checking
// what must hold whatever the writer does: entries overlap the range, come
// in marker order, lie below the log end, and the LSO never passes it.
func txnReaders(t *testing.T, l *Log, n int, done *atomic.Bool) *sync.WaitGroup {
	var wg sync.WaitGroup
	for r := 0; r < n; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for i := 0; !done.Load(); i++ {
				start := l.LogStartOffset()
				lso := l.LastStableOffset(l.LogEndOffset())
				if fu := l.FirstUnstableOffset(); fu >= 0 && fu < lso {
					t.Errorf("first unstable %d below the LSO %d", fu, lso)
					return
				}
				from := start + int64(i*7+r)%max(lso-start, 1)
				got, err := l.AbortedTransactions(from, lso)
				if err != nil {
					t.Errorf("AbortedTransactions(%d, %d): %v", from, lso, err)
					return
				}
				end := l.LogEndOffset()
				prev := int64(-1)
				for _, a := range got {
					if a.LastOffset < from || a.FirstOffset >= lso || a.LastOffset <= prev || a.LastOffset >= end {
						t.Errorf("AbortedTransactions(%d, %d) (log end %d) returned %+v", from, lso, end, got)
						return
					}
					prev = a.LastOffset
				}
				if i%16 == 0 {
					for _, s := range l.Segments() {
						if !s.Sealed {
							continue
						}
						// Retention or the cleaner may remove it meanwhile.
						if b, err := l.SegmentTxnIndex(s.BaseOffset, s.NextOffset); err == nil {
							if _, err := DecodeTxnIndex(b, s.BaseOffset, s.NextOffset); err != nil {
								t.Errorf("segment %d index: %v", s.BaseOffset, err)
								return
							}
						}
					}
				}
			}
		}(r)
	}
	return &wg
}

// TestTxnConcurrentReaders: readers race a writer that appends
// transactions, rolls and flushes, on a log reopened with sealed segments
// whose indexes load lazily under the readers; afterwards the log agrees
// with the model. Run with -race.
func TestTxnConcurrentReaders(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.SegmentBytes = 900
	dir := t.TempDir()
	l := openTestLog(t, dir, cfg)
	w := newTxnLog(t, l, clock)
	for r := 0; r < 6; r++ {
		txnHistory(w, r, false)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, cfg)
	defer l.Close()
	w.l = l
	var done atomic.Bool
	wg := txnReaders(t, l, 4, &done)
	for r := 6; r < 40; r++ {
		txnHistory(w, r, r%5 == 0)
		if r%5 == 0 {
			w.abort(int64(10*(r+1)) + 3)
		}
		if r%7 == 0 {
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	done.Store(true)
	wg.Wait()
	checkTxnState(t, l, w.ops)
}

// TestTxnConcurrentWithCleanerAndRetention: the same readers while a
// cleaner pass and retention run beside the writer on a compacted log.
func TestTxnConcurrentWithCleanerAndRetention(t *testing.T) {
	clock := newFakeClock()
	cfg := cleanerTestConfig(clock)
	l := openTestLog(t, t.TempDir(), cfg)
	defer l.Close()
	w := newTxnLog(t, l, clock)
	var done atomic.Bool
	wg := txnReaders(t, l, 3, &done)
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for !done.Load() {
			if _, err := l.Clean(context.Background(), alwaysClean, math.MaxInt64); err != nil && err != errCleanerRaced {
				t.Errorf("Clean: %v", err)
				return
			}
		}
	}()
	for r := 0; r < 40; r++ {
		txnHistory(w, r%4, false) // the same keys and producers again and again
		if r%10 == 9 {
			segs := l.Segments()
			if _, err := l.DeleteRecordsBefore(segs[len(segs)/3].BaseOffset); err != nil {
				t.Fatal(err)
			}
		}
	}
	done.Store(true)
	bg.Wait()
	wg.Wait()
	if got := l.FirstUnstableOffset(); got != -1 {
		t.Fatalf("first unstable %d with every transaction ended", got)
	}
	mustClean(t, l, alwaysClean)
	checkCleanedTxnFiles(t, l)
}
