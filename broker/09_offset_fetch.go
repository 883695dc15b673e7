package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// OffsetFetch, versions 0–9 (v10 names topics by id and is not offered).
//
// Returns committed offsets; a partition with none gets offset -1 and no
// error, as does every partition of an unknown group. v2+ may ask for all
// the group's offsets (null topics) and report group-level errors
// (COORDINATOR_LOAD_IN_PROGRESS while the group's partition loads) in the
// top-level error code; v0–v1 carry them per partition. v5+ returns the
// committed leader epoch (KIP-320). v7's require_stable concerns pending
// transactional commits, which Strata does not have yet, so it changes
// nothing. v8+ asks for several groups at once (KIP-709). v9's member id and
// epoch belong to KIP-848 consumer groups; classic groups ignore them, as
// Kafka does.
func init() { register(kmsg.OffsetFetch, 0, 9, handleOffsetFetch) }

func handleOffsetFetch(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	return c.b.groups.OffsetFetch(c.b.ctx, kreq.(*kmsg.OffsetFetchRequest)), nil
}
