package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Metadata, versions 0–12.
//
// Brokers, cluster id, controller, and per-topic partitions with leader,
// leader epoch (v7+), replicas and ISR. A null topic list (v1+; empty in v0)
// means all topics, internal ones included and flagged IsInternal, as Kafka
// does — clients filter them. Unknown topics are auto-created when the request
// allows it (v4+) and auto.create.topics.enable is on, except internal names.
// v10+ returns topic ids (KIP-516); v12 may ask by id.
func init() { register(kmsg.Metadata, 0, 12, handleMetadata) }

func handleMetadata(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.MetadataRequest)
	b := c.b
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	brokers := b.topics.liveBrokers()
	live := map[int32]bool{}
	for _, br := range brokers {
		live[br.NodeID] = true
		rb := kmsg.NewMetadataResponseBroker()
		rb.NodeID, rb.Host, rb.Port = br.NodeID, br.Host, br.Port
		if br.Rack != "" {
			rack := br.Rack
			rb.Rack = &rack
		}
		resp.Brokers = append(resp.Brokers, rb)
	}
	cid := b.coord.ClusterID()
	resp.ClusterID = &cid
	resp.ControllerID, _ = b.coord.Controller()

	all := req.Topics == nil || (h.version == 0 && len(req.Topics) == 0)
	if all {
		for _, t := range b.topics.all() {
			resp.Topics = append(resp.Topics, metadataTopic(t, errNone, live))
		}
		return resp, nil
	}
	autoCreate := b.settings.autoCreateTopics && (h.version < 4 || req.AllowAutoTopicCreation)
	for _, rt := range req.Topics {
		var t *topic
		name := ""
		if rt.Topic != nil {
			name = *rt.Topic
			t = b.topics.get(name)
		} else if rt.TopicID != ([16]byte{}) {
			t = b.topics.getByID(rt.TopicID)
		}
		if t == nil && rt.Topic != nil {
			if err := validateTopicName(name); err != nil {
				resp.Topics = append(resp.Topics, metadataError(name, rt.TopicID, kerr.InvalidTopicException))
				continue
			}
			if autoCreate && !isInternalTopic(name) {
				var err error
				t, err = b.createTopic(b.ctx, name, b.settings.numPartitions, b.settings.defaultReplication, nil)
				if errors.Is(err, errTopicExists) {
					t = b.topics.get(name)
				} else if err != nil {
					c.log.Error("auto-create topic failed", "topic", name, "err", err)
					resp.Topics = append(resp.Topics, metadataError(name, rt.TopicID, errorCodeOr(err, kerr.UnknownServerError)))
					continue
				}
				if t == nil {
					// Created by the controller, not seen here yet: Kafka
					// answers LEADER_NOT_AVAILABLE while a topic is made.
					resp.Topics = append(resp.Topics, metadataError(name, rt.TopicID, kerr.LeaderNotAvailable))
					continue
				}
			}
		}
		if t == nil {
			ec := kerr.UnknownTopicOrPartition
			if rt.Topic == nil {
				ec = kerr.UnknownTopicID
			}
			resp.Topics = append(resp.Topics, metadataError(name, rt.TopicID, ec))
			continue
		}
		resp.Topics = append(resp.Topics, metadataTopic(t, errNone, live))
	}
	return resp, nil
}

func metadataError(name string, id [16]byte, err *kerr.Error) kmsg.MetadataResponseTopic {
	rt := kmsg.NewMetadataResponseTopic()
	if name != "" {
		rt.Topic = &name
	}
	rt.TopicID = id
	rt.ErrorCode = err.Code
	return rt
}

// metadataTopic describes a topic: per partition its leader (-1 and
// LEADER_NOT_AVAILABLE while offline), leader epoch, replicas, ISR and the
// replicas whose brokers are not live (offline replicas, v5+).
func metadataTopic(t *topic, err *kerr.Error, live map[int32]bool) kmsg.MetadataResponseTopic {
	rt := kmsg.NewMetadataResponseTopic()
	name := t.meta.Name
	rt.Topic = &name
	rt.TopicID = t.meta.ID
	rt.IsInternal = t.meta.Internal
	rt.ErrorCode = err.Code
	for _, pm := range t.meta.Partitions {
		rp := kmsg.NewMetadataResponseTopicPartition()
		rp.Partition = pm.Partition
		rp.Leader = pm.Leader
		rp.LeaderEpoch = pm.LeaderEpoch
		rp.Replicas = append([]int32(nil), pm.Replicas...)
		rp.ISR = append([]int32(nil), pm.ISR...)
		for _, r := range pm.Replicas {
			if !live[r] {
				rp.OfflineReplicas = append(rp.OfflineReplicas, r)
			}
		}
		if pm.Leader < 0 || !live[pm.Leader] {
			rp.ErrorCode = kerr.LeaderNotAvailable.Code
			rp.Leader = -1
		}
		rt.Partitions = append(rt.Partitions, rp)
	}
	return rt
}
