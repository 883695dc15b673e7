package tiering

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/strata-broker/strata/remotestore"
)

// TopicConfig is <prefix>/<topic>/topic.json: what a new cluster pointed at
// the bucket needs to restore a topic with nothing else (DESIGN.md's
// self-describing bucket layout). It is rewritten whenever the topic's
// configuration changes.
type TopicConfig struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"`
	Partitions int               `json:"partitions"`
	Configs    map[string]string `json:"configs"`
}

// ErrNoTopic means the bucket holds no topic of that name.
var ErrNoTopic = errors.New("tiering: the bucket holds no topic of that name")

// TopicConfigKey is the key of a topic's description.
func TopicConfigKey(topic string) string { return topic + "/topic.json" }

// PutTopicConfig stores a topic's description beside its data.
func (m *Manager) PutTopicConfig(ctx context.Context, tc TopicConfig) error {
	raw, err := json.MarshalIndent(tc, "", "  ")
	if err != nil {
		return fmt.Errorf("tiering: encode %s: %w", TopicConfigKey(tc.Name), err)
	}
	if err := m.opts.Store.Put(ctx, TopicConfigKey(tc.Name), bytes.NewReader(raw), int64(len(raw))); err != nil {
		return fmt.Errorf("tiering: store %s: %w", TopicConfigKey(tc.Name), err)
	}
	return nil
}

// GetTopicConfig reads a topic's description; ErrNoTopic if there is none.
// A description that does not decode, names another topic or has no
// partitions is an error, never a guess.
func (m *Manager) GetTopicConfig(ctx context.Context, name string) (TopicConfig, error) {
	var tc TopicConfig
	rc, err := m.opts.Store.Get(ctx, TopicConfigKey(name), 0, -1)
	if errors.Is(err, remotestore.ErrNotFound) {
		return tc, ErrNoTopic
	}
	if err != nil {
		return tc, fmt.Errorf("tiering: read %s: %w", TopicConfigKey(name), err)
	}
	raw, err := readAllClose(rc)
	if err != nil {
		return tc, fmt.Errorf("tiering: read %s: %w", TopicConfigKey(name), err)
	}
	if err := json.Unmarshal(raw, &tc); err != nil || tc.Name != name || tc.Partitions <= 0 {
		return TopicConfig{}, fmt.Errorf("tiering: %s in the bucket is not a valid topic description", TopicConfigKey(name))
	}
	return tc, nil
}

// DeleteTopicConfig removes a topic's description (topic deletion, or
// tiering turned off).
func (m *Manager) DeleteTopicConfig(ctx context.Context, name string) error {
	if err := m.opts.Store.Delete(ctx, TopicConfigKey(name)); err != nil {
		return fmt.Errorf("tiering: delete %s: %w", TopicConfigKey(name), err)
	}
	return nil
}
