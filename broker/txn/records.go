package txn

// The records of __transaction_state, Kafka's TransactionLog: key
// TxnMetadataKey (version 0: the transactional id), value TxnMetadataValue
// (the metadata; a null value is a tombstone for an expired id). Encoded
// and decoded with kmsg's types, the one codec for this wire format.

import (
	"errors"
	"fmt"
	"math"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrBadRecord marks a __transaction_state record that does not decode or
// describes an impossible state. Loading skips it (the id keeps what
// earlier records said).
var ErrBadRecord = errors.New("txn: bad transaction state record")

// ErrUnknownKey marks a record whose key version this coordinator does not
// know. Kafka ignores such records with a warning ("a left over from an
// aborted upgrade"); so does LoadRecord.
var ErrUnknownKey = errors.New("txn: unknown transaction state key version")

// EncodeKey is the record key for a transactional id.
func EncodeKey(transactionalID string) []byte {
	k := kmsg.NewTxnMetadataKey()
	k.Version = 0
	k.TransactionalID = transactionalID
	return k.AppendTo(nil)
}

// EncodeValue is the record value for m. Version 0, as Kafka writes before
// transaction.version 1, unless m has a previous producer id to keep
// (after an epoch-exhaustion rotation), which only version 1 holds (a
// tagged field; Kafka 3.5+ reads it). Empty transactions store a null
// partition list, as Kafka does.
func EncodeValue(m Metadata) []byte {
	v := kmsg.NewTxnMetadataValue()
	v.Version = 0
	if m.PrevProducerID >= 0 {
		v.Version = 1
		v.PreviousProducerID = m.PrevProducerID
	}
	v.ProducerID = m.ProducerID
	v.ProducerEpoch = m.ProducerEpoch
	v.TimeoutMillis = m.TimeoutMs
	v.State = kmsg.TransactionState(m.State)
	v.LastUpdateTimestamp = m.LastUpdateMs
	v.StartTimestamp = m.StartTimeMs
	if m.State != Empty {
		v.Topics = []kmsg.TxnMetadataValueTopic{}
		for _, tp := range m.Partitions {
			if n := len(v.Topics); n == 0 || v.Topics[n-1].Topic != tp.Topic {
				t := kmsg.NewTxnMetadataValueTopic()
				t.Topic = tp.Topic
				v.Topics = append(v.Topics, t)
			}
			t := &v.Topics[len(v.Topics)-1]
			t.Partitions = append(t.Partitions, tp.Partition)
		}
	}
	return v.AppendTo(nil)
}

// DecodeRecord reads one record of __transaction_state: the transactional
// id, and its metadata, or nil for a tombstone (a nil value). Errors wrap
// ErrBadRecord or ErrUnknownKey. Beyond the encoding, it rejects states a
// coordinator never writes (Dead, PrepareEpochFence, unknown ids), a
// producer id or epoch out of range for the state, a non-positive
// timeout, and an Ongoing or Prepare* transaction without partitions: such
// a record would leave a transaction nobody can finish.
func DecodeRecord(key, value []byte) (string, *Metadata, error) {
	if len(key) < 2 {
		return "", nil, fmt.Errorf("%w: key of %d bytes", ErrBadRecord, len(key))
	}
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(key); err != nil {
		return "", nil, fmt.Errorf("%w: key: %v", ErrBadRecord, err)
	}
	if k.Version != 0 {
		return "", nil, fmt.Errorf("%w: %d", ErrUnknownKey, k.Version)
	}
	id := k.TransactionalID
	if id == "" {
		return "", nil, fmt.Errorf("%w: empty transactional id", ErrBadRecord)
	}
	if value == nil {
		return id, nil, nil
	}
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(value); err != nil {
		return id, nil, fmt.Errorf("%w: value for %q: %v", ErrBadRecord, id, err)
	}
	if v.Version < 0 || v.Version > 1 {
		return id, nil, fmt.Errorf("%w: value version %d for %q", ErrBadRecord, v.Version, id)
	}
	m := &Metadata{
		TransactionalID:   id,
		ProducerID:        v.ProducerID,
		PrevProducerID:    -1,
		ProducerEpoch:     v.ProducerEpoch,
		LastProducerEpoch: -1, // not stored, as in Kafka
		TimeoutMs:         v.TimeoutMillis,
		State:             State(v.State),
		StartTimeMs:       v.StartTimestamp,
		LastUpdateMs:      v.LastUpdateTimestamp,
	}
	if v.Version >= 1 && v.PreviousProducerID >= 0 {
		m.PrevProducerID = v.PreviousProducerID
	}
	bad := func(why string) (string, *Metadata, error) {
		return id, nil, fmt.Errorf("%w: %q: %s", ErrBadRecord, id, why)
	}
	switch m.State {
	case Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort:
	default:
		return bad(fmt.Sprintf("state %d is never written", v.State))
	}
	switch {
	case m.ProducerID < 0:
		return bad("negative producer id")
	case m.ProducerEpoch < 0 || m.ProducerEpoch == math.MaxInt16 && m.State != PrepareAbort && m.State != CompleteAbort:
		// Only a fence (abort) may reach the last epoch.
		return bad(fmt.Sprintf("producer epoch %d", m.ProducerEpoch))
	case m.TimeoutMs <= 0:
		return bad(fmt.Sprintf("timeout %d ms", m.TimeoutMs))
	}
	if m.State != Empty {
		seen := map[TopicPartition]bool{}
		for _, t := range v.Topics {
			if t.Topic == "" {
				return bad("empty topic name")
			}
			for _, p := range t.Partitions {
				tp := TopicPartition{Topic: t.Topic, Partition: p}
				if p < 0 || seen[tp] {
					return bad(fmt.Sprintf("bad or repeated partition %s-%d", t.Topic, p))
				}
				seen[tp] = true
				m.Partitions = append(m.Partitions, tp)
			}
		}
		sortTPs(m.Partitions)
	}
	switch m.State {
	case Ongoing, PrepareCommit, PrepareAbort:
		if len(m.Partitions) == 0 {
			return bad(m.State.String() + " without partitions")
		}
		if m.StartTimeMs < 0 {
			return bad(m.State.String() + " without a start time")
		}
	}
	return id, m, nil
}
