package coord

import "path/filepath"

// Hooks for the tests in package coord_test. Those import testenv (which
// imports broker, which imports coord), so they cannot live in package coord.

// EmbeddedDir is the data directory an Embedded was opened on.
func EmbeddedDir(e *Embedded) string { return filepath.Dir(e.path) }

// EmbeddedPath is its metadata document.
func EmbeddedPath(e *Embedded) string { return e.path }

// ConsulOptionsOf returns the options c was opened with, defaults filled.
func ConsulOptionsOf(c *Consul) ConsulOptions { return c.opts }

// PauseHeartbeats stops (or resumes) c's heartbeat rounds, as a SIGSTOP of
// the process would.
func PauseHeartbeats(c *Consul, paused bool) { c.pauseBeats.Store(paused) }

// PauseWatch stops (or resumes) applying watch results: c keeps believing
// what it last saw, as a process stalled in GC would.
func PauseWatch(c *Consul, paused bool) { c.pauseWatch.Store(paused) }

// Heartbeats counts c's completed heartbeat rounds.
func Heartbeats(c *Consul) int64 { return c.beats.Load() }

// SessionID is c's current Consul session ("" while it has none).
func SessionID(c *Consul) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.session
}

// CheckID is the TTL check c's session is bound to.
func CheckID(c *Consul) string { return c.checkID }
