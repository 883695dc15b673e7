package broker

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/fetchsession"
	"github.com/strata-broker/strata/broker/partition"
	"github.com/strata-broker/strata/tiering"
)

// Fetch, versions 4–16.
//
// Reads whole batches from each partition's log up to the high watermark,
// within the request's max_bytes and each partition's partition_max_bytes; the
// first partition with data may exceed them by one batch (KIP-74). When less
// than min_bytes is available the request parks on every requested partition
// and is woken by the next append (no polling), or answers at max_wait_ms.
// Record bytes go from the segment file to the socket with sendfile
// (fetch_reply.go).
//
// Fetch sessions (KIP-227, v7+): fetchsession decides from the session id
// and epoch whether the request is sessionless (epoch -1: FINAL_EPOCH, also
// closing the named session — kafka-go's Client.Fetch sends id -1, epoch
// -1), full (epoch 0: a session is created when the response is built, if
// max.incremental.fetch.session.cache.slots allows), or incremental (the
// session's partitions are read; the response carries only those with
// records, errors or moved offsets); session errors are
// FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH and
// FETCH_SESSION_TOPIC_ID_ERROR, with no partitions (fetch_session.go).
// isolation_level=read_committed (KIP-98) reads only below the last stable
// offset and lists the aborted transactions of the records returned
// (fetch_txn.go); every response carries the last stable offset.
// v13+ names topics by id. v9+ checks current_leader_epoch
// (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH).
func init() { register(kmsg.Fetch, 4, 16, handleFetch) }

func handleFetch(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.FetchRequest)
	b := c.b
	maxBytes := int(req.MaxBytes)
	if h.version < 3 || maxBytes <= 0 {
		maxBytes = 1<<31 - 1
	}
	deadline := time.Now().Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	fol := b.followerOf(h.version, req)
	fc := b.fetchContext(h.version, req, fol != nil)
	if fc.Kind == fetchsession.Failed {
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = fc.Err.Code
		return resp, nil
	}
	var waiter *partition.Waiter
	var parked []*partition.Partition
	defer func() {
		for _, p := range parked {
			p.RemoveWaiter(waiter)
		}
	}()
	for {
		reply, total, parts := b.readFetch(h.version, req, fc.Partitions, maxBytes, deadline, fol, c)
		done := total >= int(req.MinBytes) || req.MaxWaitMillis <= 0 || reply.hasError || reply.hasRemote || b.ctx.Err() != nil
		remaining := time.Until(deadline)
		if done || remaining <= 0 {
			b.finishFetch(fc, reply)
			return reply, nil
		}
		// Park on every requested partition, then look once more: an append
		// between the read above and parking would otherwise be missed.
		if waiter == nil {
			waiter = partition.NewWaiter()
			for _, p := range parts {
				p.AddWaiter(waiter)
				parked = append(parked, p)
			}
			reply.release()
			continue
		}
		reply.release()
		timer := time.NewTimer(remaining)
		select {
		case <-waiter.C:
		case <-timer.C:
		case <-b.ctx.Done():
		}
		timer.Stop()
	}
}

// readFetch reads every partition of fetch once, in order, and builds the
// reply: the request's partitions, or an incremental fetch's session
// partitions (fetchsession). Each run of partitions of one topic is one
// response topic. Partitions below the local log start are read from the
// bucket in parallel, each on its own goroutine, and answered with what has
// arrived by the deadline (finishRemote).
func (b *Broker) readFetch(version int16, req *kmsg.FetchRequest, fetch []fetchsession.Partition, maxBytes int, deadline time.Time, fol *fetchingFollower, c *conn) (*fetchReply, int, []*partition.Partition) {
	reply := &fetchReply{resp: req.ResponseKind().(*kmsg.FetchResponse)}
	resp := reply.resp
	total := 0
	var parts []*partition.Partition
	var remote []pendingRemote
	var remoteDone chan struct{}
	for i := 0; i < len(fetch); {
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = fetch[i].Topic, fetch[i].TopicID
		var t *topic
		if version >= 13 {
			t = b.topics.getByID(st.TopicID)
		} else {
			t = b.topics.get(st.Topic)
		}
		for ; i < len(fetch) && fetch[i].Topic == st.Topic && fetch[i].TopicID == st.TopicID; i++ {
			rp := fetch[i].RequestPartition()
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			// Never null: kmsg would encode nil as length -1, which
			// librdkafka rejects ("invalid MessageSetSize -1"); Kafka
			// sends an empty record set.
			sp.RecordBatches = []byte{}
			var p *partition.Partition
			if t != nil {
				p = t.partition(rp.Partition)
			}
			if p == nil {
				if version >= 13 && t == nil {
					sp.ErrorCode = kerr.UnknownTopicID.Code
				} else {
					sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				}
				reply.hasError = true
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			parts = append(parts, p)
			hw := p.HighWatermark()
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = hw, p.LastStableOffset(), p.LogStartOffset()
			committed := readCommitted(req, fol)
			if ec := checkLeaderEpoch(rp.CurrentLeaderEpoch, p.LeaderEpoch()); ec != nil {
				sp.ErrorCode = ec.Code
				reply.hasError = true
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if !p.IsLeader() {
				// No fetch from followers (KIP-392): the client goes to the
				// leader, told where it is (KIP-951) from v16 on.
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				b.fetchLeaderHint(&sp, resp, t, rp.Partition)
				reply.hasError = true
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			budget := min(int(rp.PartitionMaxBytes), maxBytes-total)
			if fol != nil {
				// A follower replicating: past the high watermark, no
				// bucket reads, and its fetch feeds the ISR state.
				if n, ok := b.readForFollower(&sp, p, rp, max(budget, 1), reply, fol); ok {
					total += n
				} else {
					reply.hasError = true
				}
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			minOne := total == 0
			if budget <= 0 && !minOne {
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if p.IsRemoteOffset(rp.FetchOffset) {
				// Below the local log start: read from the bucket beside
				// this goroutine; its budget is held until it answers.
				budget = max(budget, 1)
				if remoteDone == nil {
					remoteDone = make(chan struct{}, len(fetch))
				}
				remote = append(remote, pendingRemote{topic: len(resp.Topics), partition: len(st.Partitions), p: p,
					offset: rp.FetchOffset, reserved: budget,
					read: b.startRemoteRead(c.tierSession(), deadline, p, rp.FetchOffset, budget, committed, remoteDone)})
				total += budget
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			sl, err := readLocalIsolated(p, rp.FetchOffset, budget, minOne, committed)
			if err == nil && committed && sl.Size > 0 {
				if sp.AbortedTransactions, err = localAborted(p, rp.FetchOffset, sl); err != nil {
					sl.Release()
				}
			}
			switch {
			case errors.Is(err, partition.ErrOffsetOutOfRange):
				sp.ErrorCode = kerr.OffsetOutOfRange.Code
				reply.hasError = true
			case err != nil:
				b.log.Error("fetch read failed", "topic", p.Topic, "partition", p.Index, "offset", rp.FetchOffset, "err", err)
				sp.ErrorCode = kerr.KafkaStorageError.Code
				reply.hasError = true
			case sl.Size > 0:
				sp.RecordBatches = reply.addSlice(sl)
				total += int(sl.Size)
				b.metrics.bytesOut.Add(float64(sl.Size))
			default:
				sl.Release()
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	total = b.finishRemote(reply, remote, remoteDone, total, int(req.MinBytes), deadline)
	return reply, total, parts
}

// pendingRemote is a partition of the reply whose records are being read
// from the bucket.
type pendingRemote struct {
	topic, partition int // indexes into the response
	p                *partition.Partition
	offset           int64
	reserved         int // what readFetch counted for it in total
	read             *remoteRead
}

// finishRemote puts the reply's remote reads into it. It answers with what
// is ready rather than wait for every GET: first each read either finishes
// or says it has to wait for the bucket; if that is less than min_bytes (at
// least one byte), it waits for more of them to finish, until the deadline
// (max_wait_ms). Reads still waiting then are cancelled — they return
// nothing and leave their stream where it was, its GETs going on for the
// next fetch — and whatever finished meanwhile is sent too. It returns total
// with the reservations replaced by what was read.
func (b *Broker) finishRemote(reply *fetchReply, remote []pendingRemote, anyDone <-chan struct{}, total, minBytes int, deadline time.Time) int {
	if len(remote) == 0 {
		return total
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	expired := false
	got := total
	for _, pr := range remote {
		got -= pr.reserved
	}
	for _, pr := range remote {
		if expired {
			break
		}
		select {
		case <-pr.read.done:
		case <-pr.read.waiting:
		case <-timer.C:
			expired = true
		}
	}
	ready := func() (n, pending int) {
		for _, pr := range remote {
			if !pr.read.finished() {
				pending++
			} else if pr.read.err == nil {
				n += pr.read.recs.Size
			}
		}
		return n, pending
	}
	for !expired {
		n, pending := ready()
		if got+n >= max(minBytes, 1) || pending == 0 {
			break
		}
		select {
		case <-anyDone:
		case <-timer.C:
			expired = true
		}
	}
	for _, pr := range remote {
		pr.read.cancel()
	}
	for _, pr := range remote {
		<-pr.read.done
		sp := &reply.resp.Topics[pr.topic].Partitions[pr.partition]
		total -= pr.reserved
		recs, err := pr.read.recs, pr.read.err
		switch {
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			// Nothing in time; the client asks again.
		case errors.Is(err, tiering.ErrNotRemote):
			sp.ErrorCode = kerr.OffsetOutOfRange.Code
			reply.hasError = true
		case err != nil:
			// A corrupt object is an error to the client, never data.
			b.log.Error("remote fetch failed", "topic", pr.p.Topic, "partition", pr.p.Index, "offset", pr.offset, "err", err)
			sp.ErrorCode = kerr.KafkaStorageError.Code
			reply.hasError = true
		case recs.Size > 0:
			sp.RecordBatches, sp.AbortedTransactions = reply.addRecords(recs), pr.read.aborted
			reply.hasRemote = true
			total += recs.Size
			b.metrics.bytesOut.Add(float64(recs.Size))
		}
	}
	return total
}

// checkLeaderEpoch implements KIP-320's fencing of stale or future leader epochs.
func checkLeaderEpoch(requested, current int32) *kerr.Error {
	switch {
	case requested < 0:
		return nil
	case requested < current:
		return kerr.FencedLeaderEpoch
	case requested > current:
		return kerr.UnknownLeaderEpoch
	}
	return nil
}
