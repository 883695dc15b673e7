package main

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
)

// topicError turns a Kafka error for a topic into one readable line. The
// common cases read as sentences ("topic "x" already exists"); anything else
// keeps Kafka's error name so it can be looked up, plus the broker's own
// message when it sent one (CreateTopics, CreatePartitions and the config
// APIs carry an ErrorMessage).
func topicError(topic string, err error, brokerMsg string) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, kerr.TopicAlreadyExists):
		return fmt.Errorf("topic %q already exists", topic)
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return fmt.Errorf("topic %q does not exist", topic)
	}
	msg := err.Error()
	var ke *kerr.Error
	if errors.As(err, &ke) {
		msg = ke.Message
		if brokerMsg != "" && brokerMsg != ke.Description {
			msg += ": " + brokerMsg
		} else {
			msg += ": " + ke.Description
		}
	}
	return fmt.Errorf("topic %q: %s", topic, msg)
}

// errUnknownTopic stands in when a metadata response omits the topic asked for.
var errUnknownTopic = kerr.UnknownTopicOrPartition

func isTopicExists(err error) bool { return errors.Is(err, kerr.TopicAlreadyExists) }
