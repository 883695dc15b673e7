// Package testenv starts real things for tests and benchmarks — Strata brokers
// as separate processes or in-process, and (in later issues) MinIO and
// Consul — and registers their cleanup with t.Cleanup. Only tests import it.
package testenv
