package broker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/broker/partition"
	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/coord"
)

// Marker jobs: once a transaction's PrepareCommit or PrepareAbort is
// written, its coordinator writes a commit or abort marker to every
// partition of the transaction — itself where it leads the partition, else
// with WriteTxnMarkers to the partition's leader — and then the transaction's
// CompleteCommit/CompleteAbort (Kafka's TransactionMarkerChannelManager and
// TransactionMarkerRequestCompletionHandler). Retriable failures (a leader
// moving, too few in-sync replicas, a timeout) are retried with backoff for
// as long as this broker coordinates the transaction at the job's
// coordinator epoch; a fenced producer or coordinator epoch abandons the job,
// as Kafka does (a newer coordinator owns the transaction). A partition whose
// topic is gone is skipped.

// markerRetryBackoff grows from min to max between marker attempts (real
// time: this is I/O backoff, not a protocol timeout).
const (
	markerRetryMin = 50 * time.Millisecond
	markerRetryMax = 2 * time.Second
	// markerWriteTimeout bounds one round of marker appends.
	markerWriteTimeout = 30 * time.Second
)

// writeTxnMarkersVersion is the WriteTxnMarkers version coordinators send.
const writeTxnMarkersVersion = 1

// startMarkers runs a marker job in the background.
func (h *txnHost) startMarkers(job *txn.MarkerJob) {
	if !h.b.goBackground(func() { h.runMarkers(job) }) {
		h.b.log.Warn("broker closing: transaction markers left for the next coordinator", "transactional_id", job.TransactionalID)
	}
}

// runMarkers writes job's markers, then its completion record.
func (h *txnHost) runMarkers(job *txn.MarkerJob) {
	b := h.b
	statePart := job.Complete.Partition
	marker := partition.Marker{ProducerID: job.ProducerID, ProducerEpoch: job.ProducerEpoch, CoordinatorEpoch: job.CoordinatorEpoch, Commit: job.Commit}
	remaining := job.Partitions
	backoff := markerRetryMin
	wait := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, markerRetryMax)
		select {
		case <-t.C:
			return true
		case <-b.ctx.Done():
			return false
		}
	}
	for len(remaining) > 0 {
		if b.ctx.Err() != nil || !h.leads(statePart, job.CoordinatorEpoch) {
			return // the next coordinator loads PrepareX and writes them
		}
		results := h.sendMarkers(marker, remaining)
		var retry []txn.TopicPartition
		for _, tp := range remaining {
			switch err := results[tp]; err {
			case nil, kerr.UnsupportedForMessageFormat, kerr.UnsupportedVersion:
			case kerr.InvalidProducerEpoch, kerr.TransactionCoordinatorFenced:
				b.log.Warn("transaction markers fenced; abandoning them", "transactional_id", job.TransactionalID,
					"topic", tp.Topic, "partition", tp.Partition, "err", err)
				return
			default:
				retry = append(retry, tp)
			}
		}
		remaining = retry
		if len(remaining) > 0 && !wait() {
			return
		}
	}
	backoff = markerRetryMin
	for {
		res := h.apply(job.Complete)
		if !res.Retry {
			if res.Err != nil && res.Err != kerr.NotCoordinator {
				b.log.Warn("cannot complete transaction", "transactional_id", job.TransactionalID, "err", res.Err)
			}
			return
		}
		if !h.leads(statePart, job.CoordinatorEpoch) || !wait() {
			return
		}
	}
}

// sendMarkers writes one marker to each partition, grouped by leader: the
// local ones directly, the others with one WriteTxnMarkers per broker. A
// partition whose topic no longer exists counts as done (nil); one with no
// live leader gets NOT_LEADER_OR_FOLLOWER (retried).
func (h *txnHost) sendMarkers(m partition.Marker, tps []txn.TopicPartition) map[txn.TopicPartition]*kerr.Error {
	b := h.b
	out := make(map[txn.TopicPartition]*kerr.Error, len(tps))
	byLeader := map[int32][]txn.TopicPartition{}
	for _, tp := range tps {
		t := b.topics.get(tp.Topic)
		switch {
		case t == nil && !h.topicGone(tp.Topic):
			// Not in this broker's view yet (still loading at start, or
			// created moments ago elsewhere): retry.
			out[tp] = kerr.UnknownTopicOrPartition
		case t == nil, tp.Partition < 0 || tp.Partition >= t.count():
			out[tp] = nil // deleted: nobody can read it, as Kafka skips it
		case t.meta.Partitions[tp.Partition].Leader < 0:
			out[tp] = kerr.NotLeaderForPartition
		default:
			l := t.meta.Partitions[tp.Partition].Leader
			byLeader[l] = append(byLeader[l], tp)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for leader, list := range byLeader {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var res map[txn.TopicPartition]*kerr.Error
			if leader == b.opts.NodeID {
				ctx, cancel := context.WithTimeout(b.ctx, markerWriteTimeout)
				res = b.writeMarkersLocal(ctx, m, list)
				cancel()
			} else {
				res = h.writeMarkersRemote(leader, m, list)
			}
			mu.Lock()
			for tp, e := range res {
				out[tp] = e
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// writeMarkersRemote sends one WriteTxnMarkers to a partition's leader.
func (h *txnHost) writeMarkersRemote(leader int32, m partition.Marker, tps []txn.TopicPartition) map[txn.TopicPartition]*kerr.Error {
	b := h.b
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.SetVersion(writeTxnMarkersVersion)
	rm := kmsg.NewWriteTxnMarkersRequestMarker()
	rm.ProducerID, rm.ProducerEpoch, rm.Committed, rm.CoordinatorEpoch = m.ProducerID, m.ProducerEpoch, m.Commit, m.CoordinatorEpoch
	idx := map[string]int{}
	for _, tp := range tps {
		i, ok := idx[tp.Topic]
		if !ok {
			i = len(rm.Topics)
			idx[tp.Topic] = i
			rt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
			rt.Topic = tp.Topic
			rm.Topics = append(rm.Topics, rt)
		}
		rm.Topics[i].Partitions = append(rm.Topics[i].Partitions, tp.Partition)
	}
	req.Markers = append(req.Markers, rm)
	out := make(map[txn.TopicPartition]*kerr.Error, len(tps))
	for _, tp := range tps {
		out[tp] = kerr.NotLeaderForPartition // unless answered
	}
	resp, err := b.peers.do(b.ctx, leader, req)
	if err != nil {
		if b.ctx.Err() == nil {
			b.log.Warn("cannot send transaction markers", "broker", leader, "err", err)
		}
		return out
	}
	for _, sm := range resp.(*kmsg.WriteTxnMarkersResponse).Markers {
		if sm.ProducerID != m.ProducerID {
			continue
		}
		for _, st := range sm.Topics {
			for _, sp := range st.Partitions {
				tp := txn.TopicPartition{Topic: st.Topic, Partition: sp.Partition}
				if _, asked := out[tp]; asked {
					out[tp] = kerrOrNil(sp.ErrorCode)
				}
			}
		}
	}
	return out
}

// writeMarkersLocal appends a marker to each of the listed partitions this
// broker leads, concurrently, and tells the group coordinator of markers in
// __consumer_offsets once they are committed (Kafka's WriteTxnMarkers
// handler calling onTransactionCompleted). It is both the coordinator's own
// path and the WriteTxnMarkers handler's.
func (b *Broker) writeMarkersLocal(ctx context.Context, m partition.Marker, tps []txn.TopicPartition) map[txn.TopicPartition]*kerr.Error {
	out := make(map[txn.TopicPartition]*kerr.Error, len(tps))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, tp := range tps {
		_, p := b.topics.partition(tp.Topic, tp.Partition)
		if p == nil {
			out[tp] = kerr.UnknownTopicOrPartition
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			off, kerrv := p.AppendMarker(ctx, m)
			if kerrv == nil && tp.Topic == group.OffsetsTopic {
				b.groups.CompleteTransaction(tp.Partition, m.ProducerID, m.Commit, off)
			}
			mu.Lock()
			out[tp] = kerrv
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// topicGone asks coord (the source of truth, not this broker's view of it)
// whether a topic no longer exists. Only marker jobs ask, for a topic the
// registry does not know.
func (h *txnHost) topicGone(name string) bool {
	_, err := h.b.coord.Topic(h.b.ctx, name)
	return errors.Is(err, coord.ErrUnknownTopic)
}

// kerrOrNil turns an error code into a *kerr.Error, nil for 0.
func kerrOrNil(code int16) *kerr.Error {
	if code == 0 {
		return nil
	}
	if e, ok := kerr.ErrorForCode(code).(*kerr.Error); ok {
		return e
	}
	return kerr.UnknownServerError
}
