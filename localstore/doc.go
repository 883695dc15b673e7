// Package localstore keeps one partition's log on local disk in Apache
// Kafka's layout, so operators and Kafka's own dump tools recognise it:
//
//	<data-dir>/<topic>-<partition>/
//	    00000000000000000000.log        RecordBatch v2 bytes, offsets assigned by the log
//	    00000000000000000000.index      sparse offset -> position (8-byte entries)
//	    00000000000000000000.timeindex  sparse max timestamp -> offset (12-byte entries)
//	    00000000000000000000.txnindex   aborted transactions (Kafka's 34-byte AbortedTxn entries), once there is one
//	    00000000000000001234.snapshot   producer-state snapshot (Strata format, with ongoing transactions)
//	    leader-epoch-checkpoint         Kafka's text format
//	    log-start-offset, recovery-point, clean-shutdown   Strata's own small files
//	    cleaner-offset-checkpoint, cleaner-swap            the log cleaner's (cleaner_swap.go)
//
// It knows nothing about networking, Kafka requests, object storage or
// cluster coordination. The broker validates produce requests with
// ValidateBatch / SplitBatches, appends with Log.Append and serves fetches
// with Log.Read, whose Slice can be sent with sendfile.
//
// Transactions (KIP-98): the log follows each producer's ongoing
// transaction from its transactional batches, ends it at the marker the
// leader appends (BuildControlBatch), and indexes aborts per segment
// (txn_index.go). read_committed fetches read up to LastStableOffset and
// list AbortedTransactions; the cleaner drops aborted data and, after
// delete.retention.ms, markers (cleaner_txn.go).
package localstore

import "errors"

var (
	// ErrCorruption marks bytes on disk (or from a client) that fail a
	// structural or CRC check. Errors wrap it so errors.Is works.
	ErrCorruption = errors.New("localstore: corruption")
	// ErrOffsetOutOfRange is Kafka's OFFSET_OUT_OF_RANGE: below the log
	// start offset or beyond the log end offset.
	ErrOffsetOutOfRange = errors.New("localstore: offset out of range")
	// ErrClosed is returned by every method after Close or Delete.
	ErrClosed = errors.New("localstore: log closed")
)

// Non-obvious invariants (add to this list when a bug teaches us one):
//
//   - Offsets in the .log only increase, across segments too; recovery
//     treats the first batch that breaks this as the end of the log.
//   - The recovery point only passes a segment after its .log and indexes
//     are fsynced (background seal sync, in roll order). Open never reads
//     segments wholly below it; their indexes are checked on first use.
//   - The last time index entry of a sealed (or cleanly closed) segment
//     carries the segment's largest timestamp; lazily opened segments take
//     their max timestamp from it.
//   - Index entries above the published log end may exist in memory; readers
//     never look them up because they check the log end first.
//   - A Slice pins its segment: the descriptor outlives retention, truncation
//     and Delete until Release. Files are unlinked at once; POSIX keeps the
//     open descriptor readable.
//   - The log start offset is made durable before any segment below it is
//     deleted, so a crash cannot make deleted records readable again.
//   - A new leader epoch is made durable in leader-epoch-checkpoint before
//     the first batch of that epoch is written.
//   - A sealed segment's end offset (next) always equals the following
//     segment's base in memory: Read continues at next after a gap, so a
//     shorter next would loop. The cleaner therefore replaces a run of
//     segments by one covering exactly [first base, following base), even
//     when it ends up empty (cleaner_swap.go).
//   - An abort's transaction index entry is published together with the
//     marker's offset (one Log.mu hold), so a reader that can see the
//     marker also finds the entry. Entries are buffered in memory and
//     written on flush, roll and close, like the other indexes; the active
//     segment's index is always loaded (appends go to memory).
//   - A .txnindex cannot be rebuilt from its own segment (an entry needs
//     the producer's first offset and the LSO at the abort). Recovery
//     replays producer state from a snapshot and regenerates every entry
//     at or after it; entries below it come from the file, which is
//     durable there (the snapshot is at or below the recovery point) and
//     checked against the segment's own batches. The snapshot at the
//     active segment's base is kept so that this usually regenerates the
//     whole active index; a damaged index is rebuilt by replaying the log.
//   - Truncation happens at batch boundaries and shrinks the active file in
//     place: the broker must not serve reads of the bytes being cut (it reads
//     only below the high watermark, and a follower's log is not read by
//     consumers while it truncates).
