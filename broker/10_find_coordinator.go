package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/group"
)

// FindCoordinator, versions 0–6.
//
// On a single node this broker coordinates every group. Asking for a group
// coordinator creates __consumer_offsets on first need, as Kafka does; the
// answer does not wait for loading (group requests report
// COORDINATOR_LOAD_IN_PROGRESS instead). Transaction coordinators (key type 1)
// get COORDINATOR_NOT_AVAILABLE until transactions exist; share-group keys
// (type 2, v6, KIP-932) get INVALID_REQUEST.
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
		ec, msg := c.b.findCoordinator(req.CoordinatorType, key)
		rc.ErrorCode = ec.Code
		if ec == errNone {
			rc.NodeID, rc.Host, rc.Port = c.b.opts.NodeID, c.b.host, c.b.port
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

func (b *Broker) findCoordinator(keyType int8, key string) (*kerr.Error, string) {
	switch keyType {
	case 0:
		if key == "" {
			return kerr.InvalidRequest, "group id must not be empty"
		}
		// The coordinator is the leader of the group's __consumer_offsets
		// partition: on a single node, this broker.
		if _, e := b.groups.PartitionFor(b.ctx, key); e != nil {
			return e, "cannot create " + group.OffsetsTopic
		}
		return errNone, ""
	case 1:
		return kerr.CoordinatorNotAvailable, "transactions are not supported yet"
	default:
		return kerr.InvalidRequest, "unsupported coordinator key type"
	}
}
