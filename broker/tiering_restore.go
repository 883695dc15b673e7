package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/strata-broker/strata/remotestore"
)

// restoreConfig is the CreateTopics config that asks for a topic to be
// restored from the bucket instead of created empty (like Redpanda's topic
// recovery; Kafka has no equivalent). It is not stored with the topic.
const restoreConfig = "strata.remote.restore"

// errNoRemoteTopic means the bucket holds no topic of that name.
var errNoRemoteTopic = errors.New("the bucket holds no topic of that name")

// loadRemoteTopicConfig reads <topic>/topic.json from the bucket.
func (b *Broker) loadRemoteTopicConfig(ctx context.Context, name string) (remoteTopicConfig, error) {
	var doc remoteTopicConfig
	rc, err := b.tier.Store().Get(ctx, topicConfigKey(name), 0, -1)
	if errors.Is(err, remotestore.ErrNotFound) {
		return doc, errNoRemoteTopic
	}
	if err != nil {
		return doc, err
	}
	raw, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return doc, err
	}
	if err := json.Unmarshal(raw, &doc); err != nil || doc.Name != name || doc.Partitions <= 0 {
		return doc, fmt.Errorf("%s in the bucket is not a valid topic description", topicConfigKey(name))
	}
	return doc, nil
}

// restoreTopic creates a topic from what the bucket holds: its stored
// configuration and partition count, and for each partition a local log that
// starts where the remote data ends, so every tiered offset is served from
// the bucket and new records continue after it.
func (b *Broker) restoreTopic(ctx context.Context, name string) (*topic, error) {
	doc, err := b.loadRemoteTopicConfig(ctx, name)
	if err != nil {
		return nil, err
	}
	configs := map[string]string{}
	for k, v := range doc.Configs {
		configs[k] = v
	}
	configs["remote.storage.enable"] = "true"
	t, err := b.topics.create(ctx, name, int32(doc.Partitions), 1, configs)
	if err != nil {
		return nil, err
	}
	for _, p := range t.partitions {
		tp := p.tier.Load()
		if tp == nil {
			return t, fmt.Errorf("partition %d has no remote side", p.index)
		}
		if err := tp.Load(ctx); err != nil {
			return t, fmt.Errorf("load the manifest of partition %d: %w", p.index, err)
		}
		end := tp.Manifest().EndOffset()
		if end <= 0 || p.log.LogEndOffset() != 0 {
			continue
		}
		p.appendMu.Lock()
		err := p.log.StartAt(end)
		p.appendMu.Unlock()
		if err != nil {
			return t, fmt.Errorf("start partition %d at %d: %w", p.index, end, err)
		}
		b.log.Info("restored partition from the bucket", "topic", name, "partition", p.index,
			"remote_start", tp.Manifest().StartOffset(), "remote_end", end)
	}
	return t, nil
}
