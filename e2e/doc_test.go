// Package e2e holds end-to-end tests that drive a real `strata serve` process
// with real clients (franz-go and kcat), including crash tests with SIGKILL.
package e2e
