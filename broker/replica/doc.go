// Package replica holds the replication decisions of one partition as pure
// code, in the shape of etcd-io/raft: no I/O, no goroutines, no wall clock.
// Time comes in as arguments; the caller reads the log, talks to coord and
// answers requests, and calls in here to learn what Kafka's rules say.
//
// Leader side (leader.go, isr.go, acks.go): a *Leader is the leader's view
// of one partition it leads — every follower's log end offset and last
// caught-up time, the high watermark, and at most one ISR change in flight.
// It follows kafka.cluster.Partition and kafka.cluster.Replica:
//
//   - follower fetch offsets are the followers' log end offsets; a follower
//     is caught up while it fetched up to the leader's log end offset within
//     replica.lag.time.max.ms (Replica.updateFetchStateOrThrow,
//     isCaughtUp);
//   - the high watermark is the smallest log end offset over the "maximal
//     ISR" (KIP-497 / AlterPartition): the committed ISR plus a pending
//     addition, with a pending removal still counted until it commits;
//   - ISR expansion needs an eligible follower (KIP-903: its fetch carries
//     the broker epoch it is registered with, it is alive and not shutting
//     down) caught up to the high watermark and into the current leader
//     epoch; ISR shrink removes followers that lag longer than the lag time.
//
// The ISR changes are proposals (full coord.PartitionMeta values) that the
// caller writes with coord.UpdatePartition(..., coord.AsLeader) and reports
// back with Committed, Rejected or Failed. Only one is in flight at a time,
// as with Kafka's PendingExpandIsr / PendingShrinkIsr states.
//
// Follower side (truncation.go): where to truncate after a leader change
// (KIP-101, KIP-279), on a Fetch response's DivergingEpoch, and after
// OFFSET_OUT_OF_RANGE; and the leader's check whether to answer a follower
// fetch with a DivergingEpoch instead of records.
//
// A sketch of the wiring around one led partition (errors elided):
//
//	l, _ := replica.NewLeader(replica.Config{Meta: meta, NodeID: self,
//		LogEndOffset: log.EndOffset(), HighWatermark: checkpointHW,
//		LeaderEpochStartOffset: epochStart, LagTimeMax: lag, Now: now})
//	// replica Fetch from follower 2:
//	if d, err := replica.CheckFetchEpoch(req.LastFetchedEpoch, req.FetchOffset,
//		log.StartOffset(), log.EndOffsetForEpoch); err != nil || d.Diverging {
//		// answer OFFSET_OUT_OF_RANGE or DivergingEpoch{d.Epoch, d.EndOffset}
//	}
//	res, err := l.FollowerFetch(replica.Fetch{ReplicaID: 2,
//		BrokerEpoch: req.ReplicaEpoch, FetchOffset: req.FetchOffset,
//		Registered: replica.RegistrationOf(brokers, 2), Now: now})
//	if res.Proposal != nil {
//		stored, err := c.UpdatePartition(ctx, topic, res.Proposal.Meta, coord.AsLeader)
//		switch {
//		case err == nil:
//			res = l.Committed(stored, now)
//		case errors.Is(err, coord.ErrConflict), errors.Is(err, coord.ErrFenced):
//			res = l.Rejected(stored, now)
//		default:
//			// outcome unknown: stays in flight; retry l.Failed() later
//		}
//	}
//	if res.HWAdvanced { /* complete acks=all produces, wake consumers */ }
//	if res.Role != replica.Leading { /* drop l; become follower or restart */ }
//
// (A commit can advance the high watermark too — a shrink that drops a
// lagging follower — so check HWAdvanced on every Result.)
package replica
