package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/fetchsession"
)

// The Fetch handler's side of KIP-227 sessions: the request turned into a
// fetchsession.Request, and the reply pruned to what the session says an
// incremental response carries. The session rules live in fetchsession.

// fetchContext asks the session cache what this request reads. Before v7
// there are no sessions: every fetch is sessionless.
func (b *Broker) fetchContext(version int16, req *kmsg.FetchRequest, follower bool) *fetchsession.Context {
	sr := fetchsession.Request{SessionID: req.SessionID, Epoch: req.SessionEpoch, TopicIDs: version >= 13, Follower: follower}
	if version < 7 {
		sr.SessionID, sr.Epoch = fetchsession.InvalidSessionID, fetchsession.FinalEpoch
	}
	n := 0
	for i := range req.Topics {
		n += len(req.Topics[i].Partitions)
	}
	sr.Partitions = make([]fetchsession.Partition, 0, n)
	for i := range req.Topics {
		rt := &req.Topics[i]
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sr.Partitions = append(sr.Partitions, fetchsession.Partition{
				Key: fetchsession.Key{TopicID: rt.TopicID, Topic: rt.Topic, Partition: rp.Partition},
				Params: fetchsession.Params{FetchOffset: rp.FetchOffset, LogStartOffset: rp.LogStartOffset, MaxBytes: rp.PartitionMaxBytes,
					CurrentLeaderEpoch: rp.CurrentLeaderEpoch, LastFetchedEpoch: rp.LastFetchedEpoch},
			})
		}
	}
	if sr.Epoch != fetchsession.InitialEpoch && sr.Epoch != fetchsession.FinalEpoch {
		for _, ft := range req.ForgottenTopics {
			for _, p := range ft.Partitions {
				sr.Forgotten = append(sr.Forgotten, fetchsession.Key{TopicID: ft.TopicID, Topic: ft.Topic, Partition: p})
			}
		}
	}
	fc := b.fetchSessions.NewContext(sr, b.now())
	b.metrics.fetchSessionRequests[fc.Kind].Inc()
	return fc
}

// finishFetch tells the session what the reply holds and applies its
// answer: the session id, and for an incremental fetch only the partitions
// with news (those with record bytes always stay, so the zero-copy slices
// keep their order). A duplicate request gets INVALID_FETCH_SESSION_EPOCH
// and nothing else.
func (b *Broker) finishFetch(fc *fetchsession.Context, reply *fetchReply) {
	resp := reply.resp
	if fc.Kind == fetchsession.Sessionless {
		return
	}
	outcomes := make([]fetchsession.Outcome, 0, len(fc.Partitions))
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			sp := &resp.Topics[i].Partitions[j]
			outcomes = append(outcomes, fetchsession.Outcome{HighWatermark: sp.HighWatermark, LastStableOffset: sp.LastStableOffset,
				LogStartOffset: sp.LogStartOffset, HasRecords: len(sp.RecordBatches) > 0, Error: sp.ErrorCode != 0,
				Diverging: sp.DivergingEpoch.EndOffset >= 0})
		}
	}
	id, err := b.fetchSessions.Finish(fc, outcomes, b.now())
	resp.SessionID = id
	if err != nil {
		reply.release()
		resp.ErrorCode = err.Code
		resp.Topics = nil
		return
	}
	if fc.Kind != fetchsession.Incremental {
		return
	}
	k := 0
	topics := resp.Topics[:0]
	for i := range resp.Topics {
		st := resp.Topics[i]
		kept := st.Partitions[:0]
		for _, sp := range st.Partitions {
			if outcomes[k].Send {
				kept = append(kept, sp)
			}
			k++
		}
		if len(kept) > 0 {
			st.Partitions = kept
			topics = append(topics, st)
		}
	}
	resp.Topics = topics
}
