package replica

import "github.com/twmb/franz-go/pkg/kerr"

// IsCommitted reports whether offset is below the high watermark: every
// replica of the maximal ISR has it, so an acks=all produce whose last
// offset it is can be answered.
func (l *Leader) IsCommitted(offset int64) bool { return offset < l.hw }

// ISRSize is the size of the committed ISR.
func (l *Leader) ISRSize() int { return len(l.meta.ISR) }

// effectiveMinISR is Kafka's effectiveMinIsr: min.insync.replicas capped at
// the replication factor, so a topic configured above its replica count
// still accepts writes once every replica is in sync.
func (l *Leader) effectiveMinISR(minISR int) int {
	return min(minISR, len(l.meta.Replicas))
}

// CheckMinISR is the acks=all check before appending (Kafka's
// appendRecordsToLeader): with fewer replicas in the committed ISR than
// min.insync.replicas, the batch is refused with NOT_ENOUGH_REPLICAS and not
// written. It returns nil when the append may go ahead. acks=0/1 produces do
// not call it.
func (l *Leader) CheckMinISR(minISR int) *kerr.Error {
	if len(l.meta.ISR) < l.effectiveMinISR(minISR) {
		return kerr.NotEnoughReplicas
	}
	return nil
}

// AcksAll is Kafka's checkEnoughReplicasReachOffset for an acks=all produce
// appended up to endOffset (its last offset + 1): done once the high
// watermark has reached endOffset. If by then the maximal ISR has shrunk
// below min.insync.replicas (the batch was appended before a shrink
// committed), the produce is answered NOT_ENOUGH_REPLICAS_AFTER_APPEND: the
// data is written but fewer replicas than asked hold it.
func (l *Leader) AcksAll(endOffset int64, minISR int) (done bool, err *kerr.Error) {
	if l.hw < endOffset {
		return false, nil
	}
	if len(l.MaximalISR()) < l.effectiveMinISR(minISR) {
		return true, kerr.NotEnoughReplicasAfterAppend
	}
	return true, nil
}
