package localstore

import (
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
)

// TestConcurrentReadersAndWriter runs readers against a writer that appends,
// rolls and deletes old segments; run with -race.
func TestConcurrentReadersAndWriter(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.SegmentBytes = 800
	l := openTestLog(t, t.TempDir(), cfg)
	defer l.Close()
	var done atomic.Bool
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				start, end := l.LogStartOffset(), l.LogEndOffset()
				if start >= end {
					continue
				}
				off := start + (end-start)/2
				s, err := l.Read(off, 4096, end, true)
				if err != nil {
					// Retention may have moved the start meanwhile.
					if off < l.LogStartOffset() {
						continue
					}
					t.Errorf("read %d: %v", off, err)
					return
				}
				b := make([]byte, s.Size)
				if _, err := s.File.ReadAt(b, s.Pos); err != nil {
					t.Errorf("ReadAt: %v", err)
				}
				s.Release()
				parts, err := SplitBatches(b)
				if err != nil {
					t.Errorf("split: %v", err)
					return
				}
				for _, p := range parts {
					if _, err := ValidateBatch(p); err != nil {
						t.Errorf("validate: %v", err)
						return
					}
				}
				l.OffsetForTimestamp(50)
				l.Segments()
			}
		}()
	}
	for i := 0; i < 400; i++ {
		mustAppend(t, l, plain(2, int64(i)), int32(i/100))
		if i%50 == 49 {
			if _, err := l.DeleteRecordsBefore(l.LogEndOffset() - 40); err != nil {
				t.Fatal(err)
			}
		}
	}
	done.Store(true)
	wg.Wait()
}

func BenchmarkAppend(b *testing.B) {
	cfg := Config{SegmentBytes: 64 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	l, err := Open(b.TempDir(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batch := buildBatch(batchSpec{records: 100, valueSize: 150, producerID: -1, baseSeq: -1})
	b.SetBytes(int64(len(batch)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.Append(batch, 0, false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	l, err := Open(b.TempDir(), Config{SegmentBytes: 64 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batch := buildBatch(batchSpec{records: 10, valueSize: 100, producerID: -1, baseSeq: -1})
	for i := 0; i < 10000; i++ {
		if _, err := l.Append(batch, 0, false); err != nil {
			b.Fatal(err)
		}
	}
	end := l.LogEndOffset()
	b.SetBytes(1 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := l.Read(int64(i*37)%end, 1<<20, end, true)
		if err != nil {
			b.Fatal(err)
		}
		s.Release()
	}
}
