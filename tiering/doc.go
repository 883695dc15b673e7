// Package tiering copies sealed segments of a partition to object storage,
// keeps the partition's remote manifest, and serves reads below the local log
// start from the bucket.
//
// Bucket layout, per partition (P = <prefix>/<topic>/<partition>/):
//
//	P<20-digit base offset>-<leader epoch>-<id>.log      the segment bytes, as on disk
//	P<20-digit base offset>-<leader epoch>-<id>.indexes  one bundle: offset index, time
//	                                                     index, producer snapshot, epochs
//	P manifest/<20-digit version>.json                   the manifest head (immutable
//	                                                     versions, created if absent)
//	P manifest/part-<20-digit first offset>-<id>.json    spilled, immutable entry lists
//	<prefix>/<topic>/topic.json                          the topic's config (restore)
//
// Why versioned heads: a writer creates version N+1 only if it does not exist
// (a conditional put), so a deposed leader that still believes it owns the
// partition cannot overwrite what the new leader wrote; it gets ErrFenced.
// Why parts: a partition with 100,000 remote segments must not rewrite a
// multi-megabyte object per copy, so finished entries spill into immutable
// parts and the head stays small (as Redpanda's spillover manifests do).
//
// Tiering never decides retention (package retention does); it executes the
// deletions it is given, in the crash-safe order: advance the manifest first,
// delete objects after.
package tiering
