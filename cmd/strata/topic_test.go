package main

import (
	"strings"
	"testing"
)

func TestTopicLifecycle(t *testing.T) {
	c := newStrataCluster(t)

	r := c.mustRun("", "topic", "create", "orders", "--partitions", "3", "--replication-factor", "1",
		"--config", "retention.ms=3600000", "--config", "cleanup.policy=delete")
	if !strings.Contains(r.stdout, `Created topic "orders"`) {
		t.Errorf("create output %q", r.stdout)
	}

	r = c.run("", "topic", "create", "orders", "--partitions", "3")
	if r.code != 1 || r.stderr != "strata: topic \"orders\" already exists\n" {
		t.Errorf("duplicate create: exit %d, stderr %q", r.code, r.stderr)
	}
	c.mustRun("", "topic", "create", "orders", "--if-not-exists")
	c.mustRun("", "topic", "create", "audit")

	r = c.mustRun("", "topic", "list")
	if r.stdout != "audit\norders\n" {
		t.Errorf("list = %q", r.stdout)
	}

	c.mustRun("a\nb\nc\nd\n", "produce", "--topic", "orders", "--partition", "1")
	r = c.mustRun("", "topic", "describe", "orders")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 {
		t.Fatalf("describe printed %d lines:\n%s", len(lines), r.stdout)
	}
	for _, want := range []string{"Topic: orders", "PartitionCount: 3", "ReplicationFactor: 1",
		"Configs: cleanup.policy=delete,retention.ms=3600000"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("describe header %q lacks %q", lines[0], want)
		}
	}
	for _, want := range []string{"Partition: 1", "Leader: 0", "Replicas: 0", "Isr: 0", "LogStartOffset: 0", "LogEndOffset: 4"} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("describe partition line %q lacks %q", lines[2], want)
		}
	}

	c.mustRun("", "topic", "alter", "orders", "--config", "retention.ms=60000", "--delete-config", "cleanup.policy", "--partitions", "5")
	r = c.mustRun("", "topic", "describe", "orders")
	if !strings.Contains(r.stdout, "PartitionCount: 5") || !strings.Contains(r.stdout, "Configs: retention.ms=60000\n") {
		t.Errorf("after alter:\n%s", r.stdout)
	}
	r = c.run("", "topic", "alter", "orders", "--partitions", "2")
	if r.code != 1 || !strings.Contains(r.stderr, "INVALID_PARTITIONS") {
		t.Errorf("shrinking partitions: exit %d, stderr %q", r.code, r.stderr)
	}

	c.mustRun("", "topic", "delete", "audit")
	r = c.run("", "topic", "delete", "audit")
	if r.code != 1 || r.stderr != "strata: topic \"audit\" does not exist\n" {
		t.Errorf("second delete: exit %d, stderr %q", r.code, r.stderr)
	}
	r = c.run("", "topic", "describe", "audit")
	if r.code != 1 || r.stderr != "strata: topic \"audit\" does not exist\n" {
		t.Errorf("describe deleted: exit %d, stderr %q", r.code, r.stderr)
	}
}
