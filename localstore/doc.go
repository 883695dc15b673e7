// Package localstore keeps one partition's log on local disk in Apache
// Kafka's layout, so operators and Kafka's own dump tools recognise it:
//
//	<data-dir>/<topic>-<partition>/
//	    00000000000000000000.log        RecordBatch v2 bytes, offsets assigned by the log
//	    00000000000000000000.index      sparse offset -> position (8-byte entries)
//	    00000000000000000000.timeindex  sparse max timestamp -> offset (12-byte entries)
//	    00000000000000001234.snapshot   producer-state snapshot (Strata format)
//	    leader-epoch-checkpoint         Kafka's text format
//	    log-start-offset, recovery-point, clean-shutdown   Strata's own small files
//
// It knows nothing about networking, Kafka requests, object storage or
// cluster coordination. The broker validates produce requests with
// ValidateBatch / SplitBatches, appends with Log.Append and serves fetches
// with Log.Read, whose Slice can be sent with sendfile.
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
