package main

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
)

// TestGroupDelete: empty groups are deleted with their offsets; a group
// with a member and an unknown group fail readably, each reported, and the
// command exits 1 while the deletable groups are still gone.
func TestGroupDelete(t *testing.T) {
	c := newGroupCluster(t)
	testenv.CreateTopic(t, c.bootstrap, "d", 1, nil)
	produceTo(t, c.bootstrap, "d", 0, 3, nil)
	adminCommit(t, c.bootstrap, "old-a", "d", map[int32]int64{0: 1})
	adminCommit(t, c.bootstrap, "old-b", "d", map[int32]int64{0: 2})
	member := testenv.Client(t, c.bootstrap, memberOpts("alive", "d")...)
	consumeUntil(t, member, func(r *kgo.Record) bool { return r.Offset == 2 })
	eventually(t, "alive is Stable", func() (bool, string) {
		out, _ := c.describeJSON("alive")
		return out.Groups[0].State == "Stable", out.Groups[0].State
	})

	r := c.run("", "group", "delete", "old-a", "alive", "old-b", "ghost")
	if r.stdout != "Deleted group \"old-a\".\nDeleted group \"old-b\".\n" {
		t.Errorf("delete stdout %q", r.stdout)
	}
	wantErr := `strata: 2 of 4 groups not deleted: group "alive" has active members (NON_EMPTY_GROUP); stop its consumers first; group "ghost" does not exist` + "\n"
	if r.code != 1 || r.stderr != wantErr {
		t.Errorf("delete: exit %d, stderr %q\nwant %q", r.code, r.stderr, wantErr)
	}
	r = c.mustRun("", "group", "list")
	if r.stdout != "GROUP  STATE   PROTOCOL-TYPE\nalive  Stable  consumer\n" {
		t.Errorf("list after delete:\n%s", r.stdout)
	}
	if got := committed(t, c.bootstrap, "old-a", "d"); len(got) != 0 {
		t.Errorf("deleted group still has offsets %v", got)
	}
	r = c.run("", "group", "describe", "old-b")
	if r.code != 1 || r.stderr != "strata: group \"old-b\" does not exist\n" {
		t.Errorf("describe deleted group: exit %d, stderr %q", r.code, r.stderr)
	}
	r = c.run("", "group", "delete", "alive")
	if r.code != 1 || r.stderr != "strata: group \"alive\" has active members (NON_EMPTY_GROUP); stop its consumers first\n" {
		t.Errorf("delete one active group: exit %d, stderr %q", r.code, r.stderr)
	}

	member.Close()
	eventually(t, "alive becomes Empty", func() (bool, string) {
		out, _ := c.describeJSON("alive")
		return out.Groups[0].State == "Empty", out.Groups[0].State
	})
	c.mustRun("", "group", "delete", "alive")
	if r := c.mustRun("", "group", "list"); r.stdout != "GROUP  STATE  PROTOCOL-TYPE\n" {
		t.Errorf("list after deleting every group:\n%s", r.stdout)
	}
}

// TestGroupDeleteOffsets: offsets of chosen partitions go, the others stay;
// while the group has a member, its subscribed topic's offsets cannot be
// deleted (GROUP_SUBSCRIBED_TO_TOPIC) but another topic's can.
func TestGroupDeleteOffsets(t *testing.T) {
	c := newGroupCluster(t)
	testenv.CreateTopic(t, c.bootstrap, "sub", 2, nil)
	testenv.CreateTopic(t, c.bootstrap, "other", 3, nil)
	produceTo(t, c.bootstrap, "sub", 0, 2, nil)

	// An empty group: delete one partition's offset, then a whole topic.
	adminCommit(t, c.bootstrap, "quiet", "other", map[int32]int64{0: 0, 1: 0, 2: 0})
	r := c.mustRun("", "group", "delete-offsets", "quiet", "--topic", "other:1")
	if r.stdout != "TOPIC  PARTITION  STATUS\nother  1          Deleted\n" {
		t.Errorf("delete-offsets other:1:\n%s", r.stdout)
	}
	if got := committed(t, c.bootstrap, "quiet", "other"); !maps.Equal(got, map[int32]int64{0: 0, 2: 0}) {
		t.Errorf("after deleting other:1: %v", got)
	}
	c.mustRun("", "group", "delete-offsets", "quiet", "--topic", "other")
	if got := committed(t, c.bootstrap, "quiet", "other"); len(got) != 0 {
		t.Errorf("after deleting other: %v", got)
	}

	// A live member subscribed to "sub" that also committed to "other".
	member := testenv.Client(t, c.bootstrap, memberOpts("busy", "sub")...)
	consumeUntil(t, member, func(r *kgo.Record) bool { return r.Offset == 1 })
	if err := member.CommitRecords(testenv.Context(t, 30*time.Second),
		&kgo.Record{Topic: "sub", Partition: 0, Offset: 1, LeaderEpoch: -1},
		&kgo.Record{Topic: "other", Partition: 2, Offset: 0, LeaderEpoch: -1}); err != nil {
		t.Fatalf("member commit: %v", err)
	}
	r = c.run("", "group", "delete-offsets", "busy", "--topic", "sub")
	wantOut := "TOPIC  PARTITION  STATUS\n" +
		"sub    0          Error: the group's members are subscribed to topic \"sub\" (GROUP_SUBSCRIBED_TO_TOPIC); stop its consumers first\n" +
		"sub    1          Error: the group's members are subscribed to topic \"sub\" (GROUP_SUBSCRIBED_TO_TOPIC); stop its consumers first\n"
	wantErr := "strata: group \"busy\": offsets not deleted for sub-0,sub-1: the group's members are subscribed to topic \"sub\" (GROUP_SUBSCRIBED_TO_TOPIC); stop its consumers first\n"
	if r.code != 1 || r.stdout != wantOut || r.stderr != wantErr {
		t.Errorf("delete-offsets of a subscribed topic: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	if got := committed(t, c.bootstrap, "busy", "sub"); !maps.Equal(got, map[int32]int64{0: 2}) {
		t.Errorf("subscribed offsets changed: %v", got)
	}
	c.mustRun("", "group", "delete-offsets", "busy", "--topic", "other:2")
	if got := committed(t, c.bootstrap, "busy", "other"); len(got) != 0 {
		t.Errorf("unsubscribed topic's offsets survived: %v", got)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"busy"}, 2, "--topic is required"},
		{[]string{"busy", "--topic", "sub:a"}, 2, `invalid --topic "sub:a"`},
		{[]string{"busy", "extra", "--topic", "sub"}, 2, `unexpected argument "extra"`},
		{[]string{"busy", "--topic", "nope"}, 1, `topic "nope" does not exist`},
		{[]string{"busy", "--topic", "sub:5"}, 1, `topic "sub" has no partition 5`},
		{[]string{"ghost", "--topic", "sub"}, 1, `group "ghost" does not exist`},
	} {
		args := append([]string{"group", "delete-offsets"}, tc.args...)
		r := c.run("", args...)
		if r.code != tc.code || !strings.HasPrefix(r.stderr, "strata: ") || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("strata %s: exit %d, stderr %q; want exit %d and %q", strings.Join(args, " "), r.code, r.stderr, tc.code, tc.want)
		}
	}
}

// TestGroupUsageErrors: the group commands' invocation mistakes exit 2
// with one line naming the mistake, before any connection is tried.
func TestGroupUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"group", "nope"}, `unknown command "nope" for "strata group"`},
		{[]string{"group", "describe"}, "missing GROUP argument"},
		{[]string{"group", "describe", ""}, "a group id must not be empty"},
		{[]string{"group", "describe", "g", "--format", "yaml"}, `invalid --format "yaml": want text or json`},
		{[]string{"group", "list", "--state", "Sleeping"}, `invalid --state "Sleeping": want one of Empty, PreparingRebalance`},
		{[]string{"group", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"group", "delete"}, "missing GROUP argument"},
		{[]string{"group", "reset-offsets"}, "missing GROUP argument"},
		{[]string{"group", "reset-offsets", "a", "b", "--topic", "t", "--to-earliest"}, `unexpected argument "b"`},
	} {
		r := runCLI(t.Context(), map[string]string{bootstrapServerEnv: "127.0.0.1:1"}, "", tc.args...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "strata: ") || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("strata %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
}

func TestGroupHelp(t *testing.T) {
	for _, args := range [][]string{
		{"group"}, {"group", "list"}, {"group", "describe"}, {"group", "reset-offsets"}, {"group", "delete"}, {"group", "delete-offsets"},
	} {
		r := runCLI(t.Context(), nil, "", append(args, "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "--bootstrap-server") {
			t.Errorf("strata %s --help: exit %d, stdout %q", strings.Join(args, " "), r.code, r.stdout)
		}
	}
	// The JSON field names are documented where scripts' authors look.
	r := runCLI(t.Context(), nil, "", "group", "describe", "--help")
	for _, field := range []string{"committed_offset", "log_end_offset", "total_lag", "member_id", "protocol_type", "assignment"} {
		if !strings.Contains(r.stdout, `"`+field+`"`) {
			t.Errorf("describe --help does not document %q", field)
		}
	}
	r = runCLI(t.Context(), nil, "", "--help")
	if !slices.ContainsFunc(strings.Split(r.stdout, "\n"), func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), "group ") }) {
		t.Errorf("strata --help does not list group:\n%s", r.stdout)
	}
}

// TestGroupUnreachableBroker: with no broker, every group command fails
// with one line (exit 1), not a hang or kadm's shard-error wording.
func TestGroupUnreachableBroker(t *testing.T) {
	for _, args := range [][]string{
		{"list"}, {"describe", "g"}, {"delete", "g"},
		{"reset-offsets", "g", "--topic", "t", "--to-earliest"}, {"delete-offsets", "g", "--topic", "t"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		r := runCLI(ctx, nil, "", append(append([]string{"group"}, args...), "--bootstrap-server", "127.0.0.1:1")...)
		cancel()
		if r.code != 1 || !strings.HasPrefix(r.stderr, "strata: ") || strings.Count(r.stderr, "\n") != 1 ||
			!strings.Contains(r.stderr, "connection refused") || strings.Contains(r.stderr, "shard") || r.stdout != "" {
			t.Errorf("group %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
}
