package broker

// The log cleaner loop: Kafka's LogCleaner thread. Every
// logCleanerInterval it runs one localstore cleaner pass on each partition
// of each topic whose resolved cleanup.policy includes compact (compact, or
// compact,delete), __consumer_offsets included. localstore decides whether a
// partition is worth cleaning (min.cleanable.dirty.ratio,
// min/max.compaction.lag.ms) and does the crash-safe rewrite; this file
// only maps topic configs and schedules. Kafka runs log.cleaner.threads
// (default 1) threads over the filthiest logs first; Strata walks
// partitions in topic order on one goroutine, which is the same work at the
// default thread count.

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/strata-broker/strata/localstore"
)

// logCleanerInterval is Kafka's log.cleaner.backoff.ms default: how long the
// cleaner sleeps when no log needs cleaning.
const logCleanerInterval = 15 * time.Second

// logCleanerLoop runs the cleaner until the broker closes.
func (b *Broker) logCleanerLoop() {
	t := time.NewTicker(logCleanerInterval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
			_ = b.CleanLogs(b.ctx)
		}
	}
}

// CleanLogs runs one cleaner pass now over every compacted partition (the
// loop calls it on a timer; tests call it directly). Each partition is
// cleaned up to its high watermark, never in its active segment. Errors are
// logged and joined; a failing partition does not stop the others.
func (b *Broker) CleanLogs(ctx context.Context) error {
	var errs []error
	for _, t := range b.topics.all() {
		tc := t.cfg
		if tc == nil || !tc.compact {
			continue
		}
		for _, p := range t.hosted() {
			if ctx.Err() != nil {
				return errors.Join(append(errs, ctx.Err())...)
			}
			res, err := p.Clean(ctx, cleanerConfigFor(tc))
			switch {
			case errors.Is(err, localstore.ErrClosed):
				// Deleted or closing meanwhile.
			case err != nil && ctx.Err() != nil:
				return errors.Join(append(errs, ctx.Err())...)
			case err != nil:
				b.log.Error("log cleaner failed", "topic", p.Topic, "partition", p.Index, "err", err)
				errs = append(errs, err)
			case res.Cleaned:
				b.log.Info("log cleaner pass", "topic", p.Topic, "partition", p.Index, "reason", res.Plan.Reason,
					"cleaned_up_to", res.CleanedUpTo, "bytes_before", res.BytesBefore, "bytes_after", res.BytesAfter,
					"records_removed", res.RecordsRemoved, "tombstones_removed", res.TombstonesRemoved, "keyless_kept", res.KeylessRecords)
			}
		}
	}
	return errors.Join(errs...)
}

// cleanerConfigFor maps a topic's effective configs (Kafka names, validated
// at create/alter time) to the cleaner's settings. Kafka's zero for
// min.cleanable.dirty.ratio and delete.retention.ms is a real value there,
// spelled negative in localstore where zero means "default".
func cleanerConfigFor(tc *topicConfig) localstore.CleanerConfig {
	ms := func(name string) time.Duration {
		v, _ := strconv.ParseInt(tc.raw[name], 10, 64)
		return msDuration(v)
	}
	ratio, _ := strconv.ParseFloat(tc.raw["min.cleanable.dirty.ratio"], 64)
	if ratio == 0 {
		ratio = -1
	}
	deleteRetention := ms("delete.retention.ms")
	if deleteRetention == 0 {
		deleteRetention = -1
	}
	return localstore.CleanerConfig{
		DeleteRetention:        deleteRetention,
		MinCleanableDirtyRatio: ratio,
		MinCompactionLag:       ms("min.compaction.lag.ms"),
		MaxCompactionLag:       ms("max.compaction.lag.ms"),
	}
}
