// Package retention decides what old data to delete, locally and remotely,
// by time and by size. Decisions are pure functions of segment metadata, the
// configuration and a clock, so they are tested without I/O or sleeping; the
// broker executes them through localstore and tiering in a crash-safe order
// (advance the log start first, delete files and objects after).
package retention
