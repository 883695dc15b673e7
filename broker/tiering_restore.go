package broker

import (
	"context"
	"fmt"
)

// restoreConfig is the CreateTopics config that asks for a topic to be
// restored from the bucket instead of created empty (like Redpanda's topic
// recovery; Kafka has no equivalent). It is not stored with the topic.
const restoreConfig = "strata.remote.restore"

// restoreTopic creates a topic from what the bucket holds: its stored
// configuration and partition count, and for each partition a local log that
// starts where the remote data ends, so every tiered offset is served from
// the bucket and new records continue after it.
func (b *Broker) restoreTopic(ctx context.Context, name string) (*topic, error) {
	doc, err := b.tier.GetTopicConfig(ctx, name)
	if err != nil {
		return nil, err
	}
	configs := map[string]string{}
	for k, v := range doc.Configs {
		configs[k] = v
	}
	configs["remote.storage.enable"] = "true"
	rf := min(b.settings.defaultReplication, int16(max(len(b.topics.liveBrokers()), 1)))
	assignment, err := b.ctrl.placeTopic(name, int32(doc.Partitions), rf, nil)
	if err != nil {
		return nil, err
	}
	t, err := b.topics.create(ctx, name, assignment, configs)
	if err != nil {
		return nil, err
	}
	for _, p := range t.hosted() {
		tp := p.Tier()
		if tp == nil {
			return t, fmt.Errorf("partition %d has no remote side", p.Index)
		}
		if err := tp.Load(ctx); err != nil {
			return t, fmt.Errorf("load the manifest of partition %d: %w", p.Index, err)
		}
		end := tp.Manifest().EndOffset()
		if end <= 0 || p.LogEndOffset() != 0 {
			continue
		}
		if err := p.StartAt(end); err != nil {
			return t, fmt.Errorf("start partition %d at %d: %w", p.Index, end, err)
		}
		b.log.Info("restored partition from the bucket", "topic", name, "partition", p.Index,
			"remote_start", tp.Manifest().StartOffset(), "remote_end", end)
	}
	return t, nil
}
