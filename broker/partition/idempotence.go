package partition

import (
	"math"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/localstore"
)

// seqCheck is the verdict on an idempotent batch.
type seqCheck struct {
	// duplicate is set when the batch repeats one already in the log; the
	// producer gets the original offsets back with no error (Kafka behaviour).
	duplicate *localstore.ProducerBatch
	err       *kerr.Error
}

// checkSequence applies Kafka's idempotent-producer rules (ProducerAppendInfo)
// to a batch header, given what the log remembers of that producer. It is a
// pure function: no I/O, no clock.
//
//   - unknown producer: accepted at any sequence (since KIP-360 Kafka cannot
//     tell a new producer from one whose state expired);
//   - older epoch: INVALID_PRODUCER_EPOCH (a zombie);
//   - newer epoch: the sequence must restart at 0;
//   - same epoch: a repeat of one of the last five batches is a duplicate;
//     otherwise the first sequence must follow the last one, wrapping at
//     MaxInt32 to 0, or the batch is OUT_OF_ORDER_SEQUENCE_NUMBER.
func checkSequence(e localstore.ProducerEntry, known bool, h localstore.BatchHeader) seqCheck {
	if !known {
		return seqCheck{}
	}
	if h.ProducerEpoch < e.Epoch {
		return seqCheck{err: kerr.InvalidProducerEpoch}
	}
	if h.ProducerEpoch > e.Epoch {
		if h.BaseSequence != 0 {
			return seqCheck{err: kerr.OutOfOrderSequenceNumber}
		}
		return seqCheck{}
	}
	last := lastSequence(h)
	for i := range e.Batches {
		pb := e.Batches[i]
		if pb.FirstSeq == h.BaseSequence && pb.LastSeq == last {
			return seqCheck{duplicate: &pb}
		}
	}
	if len(e.Batches) == 0 {
		return seqCheck{}
	}
	expected := nextSequence(e.Batches[len(e.Batches)-1].LastSeq)
	if h.BaseSequence != expected {
		return seqCheck{err: kerr.OutOfOrderSequenceNumber}
	}
	return seqCheck{}
}

func lastSequence(h localstore.BatchHeader) int32 {
	s := int64(h.BaseSequence) + int64(h.LastOffsetDelta)
	if s > math.MaxInt32 {
		s -= math.MaxInt32 + 1
	}
	return int32(s)
}

func nextSequence(s int32) int32 {
	if s == math.MaxInt32 {
		return 0
	}
	return s + 1
}
