package broker

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreateTopics, versions 0–7.
//
// Validates the name (Kafka's rules: 1–249 of [a-zA-Z0-9._-], not "." or
// ".."), partition count (-1: num.partitions), replication factor (-1:
// default.replication.factor; more than the live brokers is
// INVALID_REPLICATION_FACTOR) and every config (unknown names or bad values:
// INVALID_CONFIG). validate_only (v1+) checks without creating. v5+ returns
// the resulting configs, v7+ the topic id. Explicit replica assignments are
// accepted only if they name live brokers. Internal topics (__consumer_offsets,
// __transaction_state) are INVALID_REQUEST from clients, as Kafka prohibits;
// only a broker forwarding its own creation of one (createTopic on a
// non-controller, forward.go) may ask.
func init() { register(kmsg.CreateTopics, 0, 7, handleCreateTopics) }

var legalTopicName = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

func validateTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("topic name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is not allowed", name)
	case len(name) > 249:
		return fmt.Errorf("topic name is longer than 249 characters")
	case !legalTopicName.MatchString(name):
		return fmt.Errorf("topic name %q contains characters other than ASCII letters, digits, '.', '_' and '-'", name)
	}
	return nil
}

func handleCreateTopics(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.CreateTopicsRequest)
	if resp, handled := c.forwardAdmin(h, kreq); handled {
		return resp, nil
	}
	b := c.b
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	brokers := b.topics.liveBrokers()
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		fail := func(err *kerr.Error, format string, args ...any) {
			st.ErrorCode = err.Code
			msg := fmt.Sprintf(format, args...)
			st.ErrorMessage = &msg
			st.NumPartitions, st.ReplicationFactor = -1, -1
		}
		configs := map[string]string{}
		for _, kv := range rt.Configs {
			if kv.Value != nil {
				configs[kv.Name] = *kv.Value
			}
		}
		partitions, rf := rt.NumPartitions, rt.ReplicationFactor
		if partitions == -1 {
			partitions = b.settings.numPartitions
		}
		if rf == -1 {
			rf = b.settings.defaultReplication
		}
		if len(rt.ReplicaAssignment) > 0 {
			partitions = int32(len(rt.ReplicaAssignment))
			rf = int16(len(rt.ReplicaAssignment[0].Replicas))
		}
		switch err := validateTopicName(rt.Topic); {
		case seen[rt.Topic] > 1:
			fail(kerr.InvalidRequest, "topic %q appears more than once in the request", rt.Topic)
		case err != nil:
			fail(kerr.InvalidTopicException, "%v", err)
		case isInternalTopic(rt.Topic) && !fromBrokerForwarder(h):
			fail(kerr.InvalidRequest, "topic %q is reserved for internal use", rt.Topic)
		case b.topics.get(rt.Topic) != nil:
			fail(kerr.TopicAlreadyExists, "topic %q already exists", rt.Topic)
		case configs[restoreConfig] != "":
			// Restore from the bucket: partitions and configs come from there.
			switch {
			case configs[restoreConfig] != "true":
				fail(kerr.InvalidConfig, "%s must be true", restoreConfig)
			case b.tier == nil:
				fail(kerr.InvalidConfig, "this broker has no remote storage (--remote) to restore %q from", rt.Topic)
			case req.ValidateOnly:
				if _, err := b.tier.GetTopicConfig(b.ctx, rt.Topic); err != nil {
					fail(kerr.InvalidRequest, "cannot restore %q: %v", rt.Topic, err)
				}
			default:
				t, err := b.restoreTopic(b.ctx, rt.Topic)
				if err != nil {
					c.log.Error("restore topic failed", "topic", rt.Topic, "err", err)
					fail(kerr.InvalidRequest, "cannot restore %q: %v", rt.Topic, err)
					break
				}
				fillCreatedTopic(b, &st, t, t.count(), 1, t.meta.Configs)
			}
		case partitions <= 0:
			fail(kerr.InvalidPartitions, "number of partitions must be larger than 0, got %d", partitions)
		case rf <= 0:
			fail(kerr.InvalidReplicationFactor, "replication factor must be larger than 0, got %d", rf)
		case int(rf) > len(brokers):
			fail(kerr.InvalidReplicationFactor, "replication factor %d is larger than the %d available broker(s)", rf, len(brokers))
		default:
			if err := validateTopicConfigs(configs); err != nil {
				fail(kerr.InvalidConfig, "%v", err)
				break
			}
			warnDeprecatedConfigs(c.log, rt.Topic, configs)
			if bad := badAssignment(rt.ReplicaAssignment, brokers); bad != "" {
				fail(kerr.InvalidReplicaAssignment, "%s", bad)
				break
			}
			assignment, err := b.ctrl.placeTopic(rt.Topic, partitions, rf, nil)
			if len(rt.ReplicaAssignment) > 0 {
				assignment, err = explicitAssignment(rt.ReplicaAssignment)
			}
			if err != nil {
				fail(errorCodeOr(err, kerr.InvalidReplicaAssignment), "%v", err)
				break
			}
			if req.ValidateOnly {
				fillCreatedTopic(b, &st, nil, partitions, rf, configs)
				break
			}
			t, err := b.topics.create(b.ctx, rt.Topic, assignment, configs)
			if errors.Is(err, errTopicExists) {
				fail(kerr.TopicAlreadyExists, "topic %q already exists", rt.Topic)
				break
			}
			if err != nil {
				c.log.Error("create topic failed", "topic", rt.Topic, "err", err)
				fail(kerr.UnknownServerError, "create topic: %v", err)
				break
			}
			fillCreatedTopic(b, &st, t, partitions, rf, configs)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// explicitAssignment takes a request's replica assignment as given, checking
// that it numbers partitions 0..n-1 and names distinct brokers per
// partition, with one replication factor.
func explicitAssignment(as []kmsg.CreateTopicsRequestTopicReplicaAssignment) ([][]int32, error) {
	out := make([][]int32, len(as))
	for _, a := range as {
		if a.Partition < 0 || int(a.Partition) >= len(as) || out[a.Partition] != nil {
			return nil, fmt.Errorf("replica assignment must name partitions 0..%d once each, got %d", len(as)-1, a.Partition)
		}
		if len(a.Replicas) == 0 || len(a.Replicas) != len(as[0].Replicas) {
			return nil, fmt.Errorf("partition %d has %d replicas; every partition needs %d", a.Partition, len(a.Replicas), len(as[0].Replicas))
		}
		for i, r := range a.Replicas {
			if slices.Contains(a.Replicas[:i], r) {
				return nil, fmt.Errorf("partition %d names broker %d twice", a.Partition, r)
			}
		}
		out[a.Partition] = append([]int32(nil), a.Replicas...)
	}
	return out, nil
}

// errorCodeOr is the Kafka error an error wraps, or def.
func errorCodeOr(err error, def *kerr.Error) *kerr.Error {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke
	}
	return def
}

func badAssignment(as []kmsg.CreateTopicsRequestTopicReplicaAssignment, brokers []coordBroker) string {
	live := map[int32]bool{}
	for _, br := range brokers {
		live[br.NodeID] = true
	}
	for _, a := range as {
		for _, r := range a.Replicas {
			if !live[r] {
				return fmt.Sprintf("partition %d is assigned to unknown broker %d", a.Partition, r)
			}
		}
	}
	return ""
}

func fillCreatedTopic(b *Broker, st *kmsg.CreateTopicsResponseTopic, t *topic, partitions int32, rf int16, configs map[string]string) {
	st.NumPartitions, st.ReplicationFactor = partitions, rf
	if t != nil {
		st.TopicID = t.meta.ID
	}
	cfg := b.resolveTopicConfig(configs)
	for _, d := range topicConfigDefs {
		rc := kmsg.NewCreateTopicsResponseTopicConfig()
		rc.Name = d.name
		v := cfg.raw[d.name]
		rc.Value = &v
		rc.Source = int8(cfg.source[d.name])
		st.Configs = append(st.Configs, rc)
	}
}

// fromBrokerForwarder reports whether a request comes from another broker
// (its peer connections are named by peerClientID, "broker-N-peer"). Strata
// has no authentication, so the client id stands in for Kafka's
// inter-broker principal.
func fromBrokerForwarder(h *reqHeader) bool {
	return strings.HasPrefix(h.clientID, "broker-") && strings.HasSuffix(h.clientID, "-peer")
}
