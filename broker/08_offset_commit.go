package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// OffsetCommit, versions 0–9 (v10 names topics by id and is not offered).
//
// Commits are validated against the group (broker/group, offsets.go
// validateCommit): a negative generation is a simple-consumer or admin
// commit, allowed only while the group has no members; otherwise member id,
// group.instance.id (v7+, KIP-345) and generation must be current. The
// accepted partitions are written as one batch of OffsetCommitValue records
// to the group's __consumer_offsets partition before the answer, so a
// committed offset survives a crash. Per partition: metadata longer than
// offset.metadata.max.bytes (4096) gets OFFSET_METADATA_TOO_LARGE, an unknown
// topic or partition UNKNOWN_TOPIC_OR_PARTITION.
//
// v1's per-partition commit timestamp is ignored (the broker's clock is
// used, as Kafka does since 2.1); v2–v4's retention time, when set, gives the
// offsets their own expiry (written as value v1); v6+ stores the leader epoch
// (KIP-320).
func init() { register(kmsg.OffsetCommit, 0, 9, handleOffsetCommit) }

func handleOffsetCommit(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	return c.b.groups.OffsetCommit(c.b.ctx, kreq.(*kmsg.OffsetCommitRequest)), nil
}
