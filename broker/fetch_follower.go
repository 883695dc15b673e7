package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/partition"
	"github.com/strata-broker/strata/broker/replica"
)

// fetchingFollower is the broker behind a replica Fetch: its node id and the
// broker epoch it sent (ReplicaState, KIP-903; -1 before Fetch v15). Its
// registration is looked up at every read of the fetch (readForFollower),
// not once per request: a fetch parked for up to replica.fetch.wait.max.ms
// may outlive the process that sent it, and re-read with the registration
// of that time it would still look eligible after the broker restarted
// (new epoch, perhaps a wiped log) — and its fetch offset, the dead
// process's log end, would take the new process back into the ISR.
type fetchingFollower struct {
	id    int32
	epoch int64
}

// followerOf tells a follower's replica fetch from a consumer's: a replica
// id >= 0 (the v15+ ReplicaState, or the older ReplicaID field).
func (b *Broker) followerOf(version int16, req *kmsg.FetchRequest) *fetchingFollower {
	id, epoch := req.ReplicaID, int64(-1)
	if version >= 15 {
		id, epoch = req.ReplicaState.ID, req.ReplicaState.Epoch
	}
	if id < 0 {
		return nil
	}
	return &fetchingFollower{id: id, epoch: epoch}
}

// readForFollower answers one partition of a replica fetch, Kafka's
// Partition.fetchRecords for a follower: the follower's last fetched epoch
// is checked against this log (DivergingEpoch, KIP-320/KIP-595 style) before
// anything else; then the fetch offset is recorded as the follower's log end
// (Leader.FollowerFetch: ISR and high watermark), and records are read up to
// the log end offset. An ISR change the fetch makes possible goes to the ISR
// writer. ok is false when the partition is answered with an error or a
// divergence (the fetch returns at once).
func (b *Broker) readForFollower(sp *kmsg.FetchResponseTopicPartition, p *partition.Partition, rp kmsg.FetchRequestTopicPartition, budget int, reply *fetchReply, fol *fetchingFollower) (int, bool) {
	sp.LogStartOffset = p.LocalLogStartOffset()
	if rp.FetchOffset < p.LocalLogStartOffset() {
		// Below this log: the follower starts over at its start
		// (replica.ResetOutOfRange).
		sp.ErrorCode = kerr.OffsetOutOfRange.Code
		return 0, false
	}
	chk, err := replica.CheckFetchEpoch(rp.LastFetchedEpoch, rp.FetchOffset, p.LocalLogStartOffset(), p.EndOffsetForEpoch)
	if err != nil {
		sp.ErrorCode = kerrCode(err)
		return 0, false
	}
	if chk.Diverging {
		sp.DivergingEpoch.Epoch, sp.DivergingEpoch.EndOffset = chk.Epoch, chk.EndOffset
		return 0, false
	}
	res, err := p.FollowerFetch(replica.Fetch{ReplicaID: fol.id, BrokerEpoch: fol.epoch, FetchOffset: rp.FetchOffset,
		Registered: replica.RegistrationOf(b.topics.liveBrokers(), fol.id), Now: b.now()})
	if err != nil {
		sp.ErrorCode = kerrCode(err)
		if !errors.Is(err, kerr.OffsetOutOfRange) {
			b.log.Warn("refused a replica fetch", "topic", p.Topic, "partition", p.Index, "replica", fol.id, "broker_epoch", fol.epoch, "err", err)
		}
		return 0, false
	}
	if res.Proposal != nil {
		b.isr.submit(p, *res.Proposal)
	}
	sp.HighWatermark, sp.LastStableOffset = p.HighWatermark(), p.HighWatermark()
	sl, err := p.ReadForFollower(rp.FetchOffset, budget)
	switch {
	case errors.Is(err, partition.ErrOffsetOutOfRange):
		sp.ErrorCode = kerr.OffsetOutOfRange.Code
		return 0, false
	case err != nil:
		b.log.Error("replica fetch read failed", "topic", p.Topic, "partition", p.Index, "offset", rp.FetchOffset, "err", err)
		sp.ErrorCode = kerr.KafkaStorageError.Code
		return 0, false
	case sl.Size > 0:
		sp.RecordBatches = reply.addSlice(sl)
		b.metrics.replicationBytesOut.Add(float64(sl.Size))
		return int(sl.Size), true
	}
	sl.Release()
	return 0, true
}

// kerrCode is the Kafka error code an error wraps, UNKNOWN_SERVER_ERROR if
// none.
func kerrCode(err error) int16 {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	return kerr.UnknownServerError.Code
}

// fetchLeaderHint fills KIP-951's CurrentLeader (Fetch v12+ carries the
// field; clients use it from v16 with NodeEndpoints) so a client that asked
// the wrong broker goes to the leader without a metadata round trip.
func (b *Broker) fetchLeaderHint(sp *kmsg.FetchResponseTopicPartition, resp *kmsg.FetchResponse, t *topic, idx int32) {
	if t == nil || int(idx) >= len(t.meta.Partitions) {
		return
	}
	pm := t.meta.Partitions[idx]
	sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = pm.Leader, pm.LeaderEpoch
	for _, br := range b.topics.liveBrokers() {
		if br.NodeID != pm.Leader {
			continue
		}
		for _, ne := range resp.Brokers {
			if ne.NodeID == br.NodeID {
				return
			}
		}
		ne := kmsg.NewFetchResponseBroker()
		ne.NodeID, ne.Host, ne.Port = br.NodeID, br.Host, br.Port
		if br.Rack != "" {
			rack := br.Rack
			ne.Rack = &rack
		}
		resp.Brokers = append(resp.Brokers, ne)
	}
}
