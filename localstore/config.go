package localstore

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Config holds the topic-level settings that shape one partition's log.
// Names follow Kafka's topic configs; defaults are Kafka's.
type Config struct {
	// SegmentBytes is segment.bytes: roll when an append would make the
	// active segment larger than this. Default 1 GiB; at most 2 GiB - 1
	// because index positions are int32.
	SegmentBytes int64
	// SegmentMs is segment.ms: roll when the active segment's first append
	// is older than this. Default 7 days.
	SegmentMs time.Duration
	// IndexIntervalBytes is index.interval.bytes: the log adds an offset
	// and time index entry each time this many bytes were appended since
	// the previous entry. Default 4096.
	IndexIntervalBytes int
	// SegmentIndexBytes is segment.index.bytes: bounds each index to
	// SegmentIndexBytes/8 offset entries and SegmentIndexBytes/12 time
	// entries; the segment rolls when either is full. Default 10 MiB.
	SegmentIndexBytes int
	// FlushMessages is flush.messages: fsync after this many messages.
	// 0 or MaxInt64 means never (Kafka's default, relying on replication).
	FlushMessages int64
	// FlushMs is flush.ms: FlushIfDue fsyncs when this long has passed since
	// the last flush. 0 means never.
	FlushMs time.Duration
	// Now is the clock; nil means time.Now. Tests inject a fake one.
	Now func() time.Time
	// Logger receives recovery and truncation reports; nil means slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with Kafka's defaults.
func (c *Config) EnsureDefaults() {
	if c.SegmentBytes == 0 {
		c.SegmentBytes = 1 << 30
	}
	if c.SegmentMs == 0 {
		c.SegmentMs = 7 * 24 * time.Hour
	}
	if c.IndexIntervalBytes == 0 {
		c.IndexIntervalBytes = 4096
	}
	if c.SegmentIndexBytes == 0 {
		c.SegmentIndexBytes = 10 << 20
	}
	if c.FlushMessages == 0 {
		c.FlushMessages = math.MaxInt64
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports settings the log cannot honour.
func (c Config) Validate() error {
	var errs []error
	if c.SegmentBytes < BatchHeaderSize || c.SegmentBytes > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("segment.bytes %d must be in [%d, %d]", c.SegmentBytes, BatchHeaderSize, math.MaxInt32))
	}
	if c.SegmentMs <= 0 {
		errs = append(errs, fmt.Errorf("segment.ms %v must be positive", c.SegmentMs))
	}
	if c.IndexIntervalBytes < 0 {
		errs = append(errs, fmt.Errorf("index.interval.bytes %d must not be negative", c.IndexIntervalBytes))
	}
	// Room for at least two time index entries (one reserved for the
	// final entry written when the segment is sealed).
	if c.SegmentIndexBytes < 2*timeEntrySize {
		errs = append(errs, fmt.Errorf("segment.index.bytes %d must be at least %d", c.SegmentIndexBytes, 2*timeEntrySize))
	}
	if c.FlushMessages < 0 {
		errs = append(errs, fmt.Errorf("flush.messages %d must not be negative", c.FlushMessages))
	}
	if c.FlushMs < 0 {
		errs = append(errs, fmt.Errorf("flush.ms %v must not be negative", c.FlushMs))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("localstore: invalid config: %w", err)
	}
	return nil
}
