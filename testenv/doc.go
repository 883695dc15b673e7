// Package testenv starts real things for tests and benchmarks — Strata brokers
// as separate processes or in-process, MinIO and Consul (built by
// scripts/install-tools.sh) — and registers their cleanup with t.Cleanup.
// Only tests import it.
package testenv
