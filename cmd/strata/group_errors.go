package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupError turns a Kafka error about a group into one readable line. The
// errors an operator meets with these tools read as sentences that say what
// to do; anything else keeps Kafka's error name (so it can be looked up)
// with its description, or the broker's own message when it sent one.
func groupError(group string, err error, brokerMsg string) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, kerr.GroupIDNotFound):
		return fmt.Errorf("group %q does not exist", group)
	case errors.Is(err, kerr.NonEmptyGroup):
		return fmt.Errorf("group %q has active members (NON_EMPTY_GROUP); stop its consumers first", group)
	case errors.Is(err, kerr.InvalidGroupID):
		return fmt.Errorf("group %q: invalid group id (INVALID_GROUP_ID)", group)
	}
	return fmt.Errorf("group %q: %s", group, kafkaErrorText(err, brokerMsg))
}

// partitionReason says in words why an operation on a partition of a
// group's offsets failed.
func partitionReason(topic string, err error) string {
	switch {
	case errors.Is(err, kerr.GroupSubscribedToTopic):
		return fmt.Sprintf("the group's members are subscribed to topic %q (GROUP_SUBSCRIBED_TO_TOPIC); stop its consumers first", topic)
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return "no such topic or partition (UNKNOWN_TOPIC_OR_PARTITION)"
	case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.IllegalGeneration):
		return "the group has active members again (" + kafkaErrorText(err, "") + ")"
	}
	return kafkaErrorText(err, "")
}

// partitionError is groupError for one partition of a group's offsets.
func partitionError(group, topic string, partition int32, err error) error {
	return fmt.Errorf("group %q: %s-%d: %s", group, topic, partition, partitionReason(topic, err))
}

// partitionFailures collects per-partition failures and reports them as one
// line, partitions that failed for the same reason listed together.
type partitionFailures struct {
	reasons []string            // in first-seen order
	parts   map[string][]string // reason -> "topic-partition"
}

func (f *partitionFailures) add(topic string, partition int32, err error) {
	r := partitionReason(topic, err)
	if f.parts == nil {
		f.parts = map[string][]string{}
	}
	if _, ok := f.parts[r]; !ok {
		f.reasons = append(f.reasons, r)
	}
	f.parts[r] = append(f.parts[r], fmt.Sprintf("%s-%d", topic, partition))
}

// err is nil without failures, else "group "g": <what> for t-0,t-1: reason; ...".
func (f *partitionFailures) err(group, what string) error {
	if len(f.reasons) == 0 {
		return nil
	}
	msgs := make([]string, len(f.reasons))
	for i, r := range f.reasons {
		msgs[i] = fmt.Sprintf("%s for %s: %s", what, strings.Join(f.parts[r], ","), r)
	}
	return fmt.Errorf("group %q: %s", group, strings.Join(msgs, "; "))
}

// kafkaErrorText is "NAME: description" for a Kafka error code, the
// broker's message replacing the generic description when there is one;
// other errors (network, timeouts) keep their own text.
func kafkaErrorText(err error, brokerMsg string) string {
	// kadm's ShardErrors ("request X has N separate shard errors, first:
	// ...") reads better as the first broker's failure itself.
	var se *kadm.ShardErrors
	if errors.As(err, &se) && len(se.Errs) > 0 {
		first := se.Errs[0]
		text := kafkaErrorText(first.Err, brokerMsg)
		if first.Broker.NodeID >= 0 {
			text = fmt.Sprintf("broker %d: %s", first.Broker.NodeID, text)
		}
		if n := len(se.Errs) - 1; n > 0 {
			text += fmt.Sprintf(" (and %d more failed requests)", n)
		}
		return text
	}
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return err.Error()
	}
	if brokerMsg != "" && brokerMsg != ke.Description {
		return ke.Message + ": " + brokerMsg
	}
	return ke.Message + ": " + ke.Description
}

// shardGroupErrors returns, for a sharded kadm request (one piece per
// coordinator) that failed on some brokers, the error each group of a
// failed piece got; err is returned as is when it is not a shard error.
func shardGroupErrors(err error, groupsOf func(kmsg.Request) []string) (map[string]error, error) {
	var se *kadm.ShardErrors
	if !errors.As(err, &se) {
		return nil, err
	}
	out := map[string]error{}
	for _, e := range se.Errs {
		for _, g := range groupsOf(e.Req) {
			out[g] = e.Err
			if e.Broker.NodeID >= 0 {
				out[g] = fmt.Errorf("coordinator %d: %w", e.Broker.NodeID, e.Err)
			}
		}
	}
	return out, nil
}
