// Package group is Strata's consumer-group coordinator: Kafka's classic
// GroupCoordinator (JoinGroup/SyncGroup/Heartbeat/LeaveGroup rebalances,
// static membership, committed offsets and their retention) with its state
// kept in __consumer_offsets in Kafka's record formats.
//
// It knows nothing of files, connections or the broker: it writes and reads
// __consumer_offsets through the Log of each partition it leads (host.go),
// and takes time and timers from an injected clock, so its tests step time
// instead of sleeping. The coordinator of a group is the leader of the
// group's __consumer_offsets partition (Kafka's partitionFor); the broker
// tells it when it gains or loses that leadership (Elected, Resigned).
//
// Files:
//
//	host.go         the Host and Log interfaces the broker implements
//	coordinator.go  Options, the Coordinator, group lookup, appends, Close
//	leadership.go   Elected / Resigned: which partitions this broker coordinates
//	load.go         replaying a partition's records into groups (Kafka's loadGroupsAndOffsets)
//	group.go        one group: members, session timers, heartbeat, leave
//	rebalance.go    the classic rebalance: join phase, protocol choice, sync phase
//	offsets.go      committed offsets: commit, fetch, delete, offsets.retention.minutes expiry
//	txn_offsets.go  TxnOffsetCommit: offsets pending until the transaction's marker (KIP-98/447)
//	metadata.go     a group's membership as a GroupMetadataValue, written and restored
//	records.go      the __consumer_offsets record formats and batch encoding (kmsg types)
//	api_members.go  JoinGroup, SyncGroup, Heartbeat, LeaveGroup requests
//	api_offsets.go  OffsetCommit, OffsetFetch, OffsetDelete requests
//	api_admin.go    FindCoordinator's group part, DescribeGroups, ListGroups, DeleteGroups
//	metrics.go      committed offset and lag series, computed at scrape time
//
// State owners and lock order: Coordinator.mu guards the group map, the
// partitions this broker coordinates (and whether each is still loading)
// and the closed flag; each group's mu guards everything in that group.
// The order is group.mu → Coordinator.mu, never the other way: a group's
// records are appended (Log.Append) with its mu held, so they reach the log
// in the order its state changed, and Coordinator.mu is never held across
// a Log or Host call or while taking a group's mu. JoinGroup and SyncGroup
// wait for their answer on a channel with no lock held.
//
// Goroutines: the coordinator starts one loader goroutine while partitions
// wait to be replayed, and its timers (sessions, rebalances, offset expiry)
// run on the clock. Nothing is started once Close has begun, and Close waits
// for the loader and for any timer function already running.
package group
