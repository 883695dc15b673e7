// Package placement holds the controller's decisions as pure functions:
// where the replicas of new partitions go (Place, place.go and placer.go)
// and who leads a partition with which ISR (ElectLeader and its variants,
// elect.go). Nothing here does I/O or keeps state; the controller reads
// coord, calls these, and writes back (coord.UpdatePartition with
// coord.AsController, or CreateTopic / UpdateTopic) only the decisions that
// change something — every election returns a Decision whose Changed says
// so. Everything is deterministic given its arguments.
package placement
