package partition

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
)

// RecordError names one record of a refused batch, KIP-467's
// batch_index / batch_index_error_message.
type RecordError struct {
	// Index is the record's position in its batch, from 0.
	Index   int32
	Message string
}

// recordErrors collects the per-record failures of one batch, as Kafka's
// LogValidator does (validateKey, then validateTimestamp, per record): every
// bad record is named, and one bad record refuses the whole batch — nothing
// of it is appended.
type recordErrors struct {
	errs      []RecordError
	timestamp bool   // some record failed its timestamp check
	noKeyMsg  string // built once per batch, shared by every keyless record
}

// addNoKey records a keyless record in a compacted topic: compaction keeps
// the latest record per key, so Kafka refuses records it could never place.
func (e *recordErrors) addNoKey(idx int32, p *Partition) {
	if e.noKeyMsg == "" {
		e.noKeyMsg = fmt.Sprintf("compacted topic cannot accept a record without a key (%s-%d)", p.Topic, p.Index)
	}
	e.add(idx, false, e.noKeyMsg)
}

func (e *recordErrors) add(idx int32, timestamp bool, msg string) {
	e.errs = append(e.errs, RecordError{Index: idx, Message: msg})
	e.timestamp = e.timestamp || timestamp
}

// result is the partition's answer: INVALID_TIMESTAMP if any record failed
// on its timestamp, INVALID_RECORD otherwise (Kafka's processRecordErrors),
// with a message naming the first three.
func (e *recordErrors) result(numRecords int32) ProduceResult {
	var b strings.Builder
	for i, re := range e.errs[:min(3, len(e.errs))] {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "record %d: %s", re.Index, re.Message)
	}
	code, reason := kerr.InvalidRecord, "invalid"
	if e.timestamp {
		code, reason = kerr.InvalidTimestamp, "timestamp"
	}
	res := reject(code, reason, "%d of %d records in the batch were rejected (the first %d: %s)", len(e.errs), numRecords, min(3, len(e.errs)), b.String())
	res.RecordErrors = e.errs
	return res
}
