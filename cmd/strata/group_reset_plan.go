package main

import (
	"fmt"
	"math"
	"time"
)

// resetKind is the --to-* option of reset-offsets.
type resetKind int

const (
	resetToEarliest resetKind = iota + 1
	resetToLatest
	resetToOffset
	resetToDatetime
	resetShiftBy
)

// resetSpec is a parsed --to-* option.
type resetSpec struct {
	Kind   resetKind
	Offset int64     // --to-offset
	Shift  int64     // --shift-by
	Time   time.Time // --to-datetime
}

func (s resetSpec) String() string {
	switch s.Kind {
	case resetToEarliest:
		return "--to-earliest"
	case resetToLatest:
		return "--to-latest"
	case resetToOffset:
		return fmt.Sprintf("--to-offset %d", s.Offset)
	case resetToDatetime:
		return "--to-datetime " + s.Time.Format(time.RFC3339Nano)
	case resetShiftBy:
		return fmt.Sprintf("--shift-by %d", s.Shift)
	}
	return "?"
}

// resetInput is what the broker told about one partition to reset.
type resetInput struct {
	Topic     string
	Partition int32
	Committed int64 // -1: nothing committed
	LogStart  int64
	LogEnd    int64
	// AtTime is the first offset whose timestamp is at or after the
	// --to-datetime time (the log end when there is none); only for
	// resetToDatetime.
	AtTime int64
}

// resetRow is one line of the plan.
type resetRow struct {
	Topic     string
	Partition int32
	Current   int64 // -1: nothing committed
	New       int64
	// Clamped says the requested offset was outside [log start, log end]
	// and New is the nearest end of that range.
	Clamped   bool
	Requested int64
}

// planReset computes the new offset of every partition, as
// kafka-consumer-groups --reset-offsets does: earliest and latest are the
// log start and end; --to-offset and --shift-by are clamped into [log
// start, log end] (Kafka's checkOffsetsRange); --to-datetime takes the first
// offset at or after the time, or the log end if no record is that new;
// --shift-by needs a committed offset to shift from. It is a pure function
// of its inputs so the rules are tested by table.
func planReset(spec resetSpec, in []resetInput) ([]resetRow, error) {
	rows := make([]resetRow, 0, len(in))
	for _, p := range in {
		var want int64
		clamp := false
		switch spec.Kind {
		case resetToEarliest:
			want = p.LogStart
		case resetToLatest:
			want = p.LogEnd
		case resetToOffset:
			want, clamp = spec.Offset, true
		case resetShiftBy:
			if p.Committed < 0 {
				return nil, fmt.Errorf("cannot shift the offset of %s-%d: the group has no committed offset for it", p.Topic, p.Partition)
			}
			want, clamp = p.Committed+spec.Shift, true
			if spec.Shift > 0 && want < p.Committed { // overflow: past any end
				want = math.MaxInt64
			}
		case resetToDatetime:
			want = p.AtTime
			if want < 0 {
				want = p.LogEnd
			}
		default:
			return nil, fmt.Errorf("unknown reset option %d", spec.Kind)
		}
		r := resetRow{Topic: p.Topic, Partition: p.Partition, Current: p.Committed, New: want, Requested: want}
		if clamp {
			switch {
			case want < p.LogStart:
				r.New, r.Clamped = p.LogStart, true
			case want > p.LogEnd:
				r.New, r.Clamped = p.LogEnd, true
			}
		}
		rows = append(rows, r)
	}
	return rows, nil
}
