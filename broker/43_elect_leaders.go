package broker

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/placement"
	"github.com/strata-broker/strata/coord"
)

// ElectLeaders, versions 0–2 (KIP-183, KIP-460).
//
// Manual leader rebalancing, as kafka-leader-election.sh does: a PREFERRED
// election (type 0) makes each named partition's first replica its leader
// if that replica is live and in the ISR — ELECTION_NOT_NEEDED when it
// already leads, PREFERRED_LEADER_NOT_AVAILABLE when it cannot; an UNCLEAN
// election (type 1, v1+) elects from outside the ISR only when no ISR
// member is alive (ELIGIBLE_LEADERS_NOT_AVAILABLE otherwise is answered
// ELECTION_NOT_NEEDED when the leader is fine). A null topic list means every
// partition. The controller carries it out (others forward it); each change
// is a fenced coord write like any election.
func init() { register(kmsg.ElectLeaders, 0, 2, handleElectLeaders) }

func handleElectLeaders(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.ElectLeadersRequest)
	b := c.b
	req.SetVersion(h.version)
	if resp, forwarded, err := b.forwardToController(b.ctx, req); forwarded {
		if err != nil {
			r := req.ResponseKind().(*kmsg.ElectLeadersResponse)
			r.ErrorCode = kerr.NotController.Code
			return r, nil
		}
		return resp, nil
	}
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	targets := req.Topics
	if targets == nil {
		for _, t := range b.topics.all() {
			rt := kmsg.NewElectLeadersRequestTopic()
			rt.Topic = t.meta.Name
			for i := int32(0); i < t.count(); i++ {
				rt.Partitions = append(rt.Partitions, i)
			}
			targets = append(targets, rt)
		}
	}
	live := placement.LiveOf(b.topics.liveBrokers())
	for _, rt := range targets {
		st := kmsg.NewElectLeadersResponseTopic()
		st.Topic = rt.Topic
		for _, idx := range rt.Partitions {
			sp := kmsg.NewElectLeadersResponseTopicPartition()
			sp.Partition = idx
			if err := b.electOne(rt.Topic, idx, req.ElectionType, live); err != nil {
				sp.ErrorCode = errorCodeOr(err, kerr.UnknownServerError).Code
				msg := err.Error()
				sp.ErrorMessage = &msg
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// electOne runs one manual election on the controller.
func (b *Broker) electOne(topicName string, idx int32, electionType int8, live placement.Live) error {
	t := b.topics.get(topicName)
	if t == nil || idx < 0 || idx >= t.count() {
		return kerr.UnknownTopicOrPartition
	}
	pm := t.meta.Partitions[idx]
	var d placement.Decision
	switch electionType {
	case 0:
		var err error
		if d, err = placement.PreferredLeader(pm, live); err != nil {
			return err
		}
	case 1:
		d = placement.ElectLeader(pm, live, true)
		if !d.Changed {
			return kerr.ElectionNotNeeded
		}
	default:
		return kerr.InvalidRequest
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	stored, err := b.coord.UpdatePartition(ctx, topicName, d.Meta, coord.AsController)
	if errors.Is(err, coord.ErrNotController) {
		return kerr.NotController
	}
	if err != nil {
		return err
	}
	b.log.Info("manual leader election", "topic", topicName, "partition", idx, "type", electionType, "leader", stored.Leader, "leader_epoch", stored.LeaderEpoch, "unclean", d.Unclean)
	return nil
}
