package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Admin requests that change metadata (CreateTopics, DeleteTopics,
// CreatePartitions, AlterConfigs, IncrementalAlterConfigs) are the
// controller's to carry out. A broker that is not the controller forwards
// them to it unchanged and relays the answer (as Kafka brokers do since
// KIP-590), so a client may send them to any broker.

// forwardTimeout bounds one forwarded request.
const forwardTimeout = 60 * time.Second

// forwardToController sends req (at its version) to the controller over the
// broker's peer connections (peers.go) and returns the controller's
// response. ok is false when this broker is the controller (handle it here).
func (b *Broker) forwardToController(ctx context.Context, req kmsg.Request) (resp kmsg.Response, ok bool, err error) {
	if _, active := b.ctrl.activeTerm(ctx); active {
		return nil, false, nil
	}
	id, _ := b.coord.Controller()
	if id < 0 || id == b.opts.NodeID {
		return nil, true, fmt.Errorf("broker: no controller to forward %s to", kmsg.NameForKey(req.Key()))
	}
	rctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	resp, err = b.peers.do(rctx, id, req)
	return resp, true, err
}

// forwardCreateTopic asks the controller to create one topic (auto-creation,
// __consumer_offsets) and maps its answer.
func (b *Broker) forwardCreateTopic(ctx context.Context, name string, partitions int32, rf int16, configs map[string]string) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	req.TimeoutMillis = int32(forwardTimeout / time.Millisecond)
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, rf
	for k, v := range configs {
		v := v
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, &v
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	resp, ok, err := b.forwardToController(ctx, req)
	if !ok {
		return fmt.Errorf("broker: became the controller while forwarding the creation of %s", name)
	}
	if err != nil {
		return err
	}
	for _, st := range resp.(*kmsg.CreateTopicsResponse).Topics {
		if st.ErrorCode == kerr.TopicAlreadyExists.Code {
			return errTopicExists
		}
		if st.ErrorCode != 0 {
			msg := ""
			if st.ErrorMessage != nil {
				msg = *st.ErrorMessage
			}
			return fmt.Errorf("controller refused to create %s: %w: %s", name, kerr.ErrorForCode(st.ErrorCode), msg)
		}
	}
	return nil
}

// forwardAdmin forwards a metadata-changing admin request to the controller
// when this broker is not it. handled is false when the request is to be
// answered here. If the controller cannot be reached, every item of the
// request is answered NOT_CONTROLLER, which clients retry after refreshing
// metadata.
func (c *conn) forwardAdmin(h *reqHeader, req kmsg.Request) (resp any, handled bool) {
	b := c.b
	req.SetVersion(h.version)
	fresp, forwarded, err := b.forwardToController(b.ctx, req)
	if !forwarded {
		return nil, false
	}
	if err == nil {
		return fresp, true
	}
	c.log.Warn("cannot forward to the controller", "api", kmsg.NameForKey(req.Key()), "err", err)
	return notControllerResponse(req, err.Error()), true
}

// notControllerResponse answers every item of an admin request with
// NOT_CONTROLLER.
func notControllerResponse(kreq kmsg.Request, why string) kmsg.Response {
	code := kerr.NotController.Code
	msg := &why
	switch req := kreq.(type) {
	case *kmsg.CreateTopicsRequest:
		resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewCreateTopicsResponseTopic()
			st.Topic, st.ErrorCode, st.ErrorMessage, st.NumPartitions, st.ReplicationFactor = rt.Topic, code, msg, -1, -1
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	case *kmsg.DeleteTopicsRequest:
		resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
		for _, n := range req.TopicNames {
			n := n
			st := kmsg.NewDeleteTopicsResponseTopic()
			st.Topic, st.ErrorCode, st.ErrorMessage = &n, code, msg
			resp.Topics = append(resp.Topics, st)
		}
		for _, rt := range req.Topics {
			st := kmsg.NewDeleteTopicsResponseTopic()
			st.Topic, st.TopicID, st.ErrorCode, st.ErrorMessage = rt.Topic, rt.TopicID, code, msg
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	case *kmsg.CreatePartitionsRequest:
		resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewCreatePartitionsResponseTopic()
			st.Topic, st.ErrorCode, st.ErrorMessage = rt.Topic, code, msg
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	case *kmsg.AlterConfigsRequest:
		resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
		for _, rr := range req.Resources {
			sr := kmsg.NewAlterConfigsResponseResource()
			sr.ResourceType, sr.ResourceName, sr.ErrorCode, sr.ErrorMessage = rr.ResourceType, rr.ResourceName, code, msg
			resp.Resources = append(resp.Resources, sr)
		}
		return resp
	case *kmsg.IncrementalAlterConfigsRequest:
		resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
		for _, rr := range req.Resources {
			sr := kmsg.NewIncrementalAlterConfigsResponseResource()
			sr.ResourceType, sr.ResourceName, sr.ErrorCode, sr.ErrorMessage = rr.ResourceType, rr.ResourceName, code, msg
			resp.Resources = append(resp.Resources, sr)
		}
		return resp
	}
	panic("broker: notControllerResponse: not an admin request: " + kmsg.NameForKey(kreq.Key()))
}
