package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/group"
)

// FindCoordinator, versions 0–6.
//
// On a single node this broker coordinates every group. Asking for a group
// coordinator creates __consumer_offsets on first need, as Kafka does; the
// answer does not wait for loading (group requests report
// COORDINATOR_LOAD_IN_PROGRESS instead). A transactional id (key type 1,
// v1+) is coordinated by the leader of its __transaction_state partition,
// which the first such request creates; share-group keys (type 2, v6,
// KIP-932) get INVALID_REQUEST.
//
// v4+ batches keys (KIP-699): the answer lists one coordinator per key and
// leaves the single-key fields empty; v0–v3 use the single-key fields.
func init() { register(kmsg.FindCoordinator, 0, 6, handleFindCoordinator) }

func handleFindCoordinator(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if h.version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		rc := kmsg.NewFindCoordinatorResponseCoordinator()
		rc.Key = key
		node, ec, msg := c.b.findCoordinator(req.CoordinatorType, key)
		rc.ErrorCode = ec.Code
		if ec == errNone {
			rc.NodeID, rc.Host, rc.Port = node.NodeID, node.Host, node.Port
		} else {
			rc.NodeID, rc.Port = -1, -1
			rc.ErrorMessage = &msg
		}
		resp.Coordinators = append(resp.Coordinators, rc)
	}
	if h.version < 4 {
		rc := resp.Coordinators[0]
		resp.ErrorCode, resp.ErrorMessage = rc.ErrorCode, rc.ErrorMessage
		resp.NodeID, resp.Host, resp.Port = rc.NodeID, rc.Host, rc.Port
		resp.Coordinators = nil
	}
	return resp, nil
}

// findCoordinator names the coordinator of a key: for a group, the leader
// of its __consumer_offsets partition (Kafka's partitionFor), which is this
// broker on a single node.
func (b *Broker) findCoordinator(keyType int8, key string) (coordBroker, *kerr.Error, string) {
	switch keyType {
	case 0:
		if key == "" {
			return coordBroker{}, kerr.InvalidRequest, "group id must not be empty"
		}
		part, e := b.groups.PartitionFor(b.ctx, key)
		if e != nil {
			return coordBroker{}, e, "cannot create " + group.OffsetsTopic
		}
		return b.leaderOf(group.OffsetsTopic, part)
	case 1:
		if key == "" {
			return coordBroker{}, kerr.InvalidRequest, "transactional id must not be empty"
		}
		return b.txn.coordinatorOf(b.ctx, key)
	default:
		return coordBroker{}, kerr.InvalidRequest, "unsupported coordinator key type"
	}
}

// leaderOf is the live broker leading a partition, COORDINATOR_NOT_AVAILABLE
// when it has none (offline, or not known here yet).
func (b *Broker) leaderOf(topicName string, idx int32) (coordBroker, *kerr.Error, string) {
	t := b.topics.get(topicName)
	if t == nil || idx < 0 || idx >= t.count() {
		return coordBroker{}, kerr.CoordinatorNotAvailable, topicName + " is not available yet"
	}
	leader := t.meta.Partitions[idx].Leader
	if leader == b.opts.NodeID {
		return coordBroker{NodeID: b.opts.NodeID, Host: b.host, Port: b.port}, errNone, ""
	}
	for _, br := range b.topics.liveBrokers() {
		if br.NodeID == leader {
			return br, errNone, ""
		}
	}
	return coordBroker{}, kerr.CoordinatorNotAvailable, fmt.Sprintf("partition %d of %s has no live leader", idx, topicName)
}
