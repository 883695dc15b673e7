package main

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
)

// TestGroupResetOffsets walks a stopped group through every --to-* option:
// the dry run changes nothing, --execute moves the commits, and each time a
// new consumer of the group starts exactly at the planned offsets.
func TestGroupResetOffsets(t *testing.T) {
	c := newGroupCluster(t)
	testenv.CreateTopic(t, c.bootstrap, "r", 2, nil)
	// Ten records per partition, one minute apart, two hours ago.
	base := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	for p := range int32(2) {
		produceTo(t, c.bootstrap, "r", p, 10, func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) })
	}

	// A real consumer reads everything, commits 6 and 4, and stops.
	member := testenv.Client(t, c.bootstrap, memberOpts("rg", "r")...)
	seen := 0
	consumeUntil(t, member, func(*kgo.Record) bool { seen++; return seen == 20 })
	if err := member.CommitRecords(testenv.Context(t, 30*time.Second),
		&kgo.Record{Topic: "r", Partition: 0, Offset: 5, LeaderEpoch: -1},
		&kgo.Record{Topic: "r", Partition: 1, Offset: 3, LeaderEpoch: -1}); err != nil {
		t.Fatalf("member commit: %v", err)
	}
	member.Close()
	eventually(t, "rg becomes Empty", func() (bool, string) {
		out, _ := c.describeJSON("rg")
		return out.Groups[0].State == "Empty", out.Groups[0].State
	})
	assertCommitted := func(step string, want map[int32]int64) {
		t.Helper()
		if got := committed(t, c.bootstrap, "rg", "r"); !maps.Equal(got, want) {
			t.Fatalf("%s: committed %v, want %v", step, got, want)
		}
	}
	assertNextConsumer := func(step string, want map[int32]int64) {
		t.Helper()
		if got := nextConsumerStarts(t, c.bootstrap, "rg", "r", 0, 1); !maps.Equal(got, want) {
			t.Fatalf("%s: next consumer started at %v, want %v", step, got, want)
		}
	}
	assertCommitted("before", map[int32]int64{0: 6, 1: 4})

	// Dry run (the default): the plan is printed, nothing changes.
	r := c.mustRun("", "group", "reset-offsets", "rg", "--topic", "r", "--to-offset", "3")
	if want := "GROUP  TOPIC  PARTITION  CURRENT-OFFSET  NEW-OFFSET\n" +
		"rg     r      0          6               3\n" +
		"rg     r      1          4               3\n"; r.stdout != want {
		t.Errorf("dry-run plan:\n%s\nwant:\n%s", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "Dry run: no offsets changed") {
		t.Errorf("dry-run stderr %q", r.stderr)
	}
	c.mustRun("", "group", "reset-offsets", "rg", "--topic", "r", "--to-earliest", "--dry-run")
	assertCommitted("after dry runs", map[int32]int64{0: 6, 1: 4})

	steps := []struct {
		name string
		args []string
		want map[int32]int64
		note string // expected on stderr
	}{
		{"to-offset one partition", []string{"--topic", "r:0", "--to-offset", "3"}, map[int32]int64{0: 3, 1: 4}, ""},
		{"shift-by forward", []string{"--topic", "r", "--shift-by", "2"}, map[int32]int64{0: 5, 1: 6}, ""},
		{"to-datetime", []string{"--topic", "r", "--to-datetime", base.Add(4*time.Minute + 30*time.Second).UTC().Format(time.RFC3339)},
			map[int32]int64{0: 5, 1: 5}, ""},
		{"to-datetime with a zone offset", []string{"--topic", "r:1", "--to-datetime",
			base.Add(7 * time.Minute).In(time.FixedZone("", 2*3600)).Format(time.RFC3339)}, map[int32]int64{0: 5, 1: 7}, ""},
		{"shift-by back past the start clamps", []string{"--topic", "r:0", "--topic", "r:1", "--shift-by", "-100"},
			map[int32]int64{0: 0, 1: 0}, "r-0: requested offset -95 is outside the log's range; using 0"},
	}
	for _, s := range steps {
		r := c.mustRun("", append([]string{"group", "reset-offsets", "rg", "--execute"}, s.args...)...)
		if !strings.Contains(r.stderr, "Reset the offsets of group \"rg\"") || !strings.Contains(r.stderr, s.note) {
			t.Errorf("%s: stderr %q", s.name, r.stderr)
		}
		assertCommitted(s.name, s.want)
		assertNextConsumer(s.name, s.want)
	}

	// The log start moves (DeleteRecords): earliest and clamping follow it.
	adm := kadm.NewClient(testenv.Client(t, c.bootstrap))
	del := kadm.Offsets{}
	del.AddOffset("r", 1, 2, -1)
	if resps, err := adm.DeleteRecords(testenv.Context(t, 30*time.Second), del); err != nil || resps.Error() != nil {
		t.Fatalf("delete records: %v %v", err, resps.Error())
	}
	r = c.mustRun("", "group", "reset-offsets", "rg", "--topic", "r", "--to-earliest", "--execute")
	if !strings.Contains(r.stdout, "rg     r      1          0               2\n") {
		t.Errorf("to-earliest plan:\n%s", r.stdout)
	}
	assertCommitted("to-earliest", map[int32]int64{0: 0, 1: 2})
	assertNextConsumer("to-earliest", map[int32]int64{0: 0, 1: 2})

	r = c.mustRun("", "group", "reset-offsets", "rg", "--topic", "r:1", "--to-offset", "999", "--execute")
	if !strings.Contains(r.stderr, "r-1: requested offset 999 is outside the log's range; using 10") {
		t.Errorf("to-offset past the end: stderr %q", r.stderr)
	}
	assertCommitted("to-offset past the end", map[int32]int64{0: 0, 1: 10})

	future := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	c.mustRun("", "group", "reset-offsets", "rg", "--topic", "r", "--to-datetime", future, "--execute")
	assertCommitted("to-datetime in the future", map[int32]int64{0: 10, 1: 10})

	c.mustRun("", "group", "reset-offsets", "rg", "--topic", "r", "--to-earliest", "--execute")
	c.mustRun("", "group", "reset-offsets", "rg", "--topic", "r", "--to-latest", "--execute")
	assertCommitted("to-latest", map[int32]int64{0: 10, 1: 10})
	for p := range int32(2) {
		produceTo(t, c.bootstrap, "r", p, 1, nil)
	}
	assertNextConsumer("to-latest", map[int32]int64{0: 10, 1: 10})

	// A group that does not exist yet (Dead) can be given offsets: it is
	// created, as with Kafka.
	c.mustRun("", "group", "reset-offsets", "fresh", "--topic", "r:0", "--to-offset", "4", "--execute")
	if got := committed(t, c.bootstrap, "fresh", "r"); !maps.Equal(got, map[int32]int64{0: 4}) {
		t.Errorf("new group committed %v", got)
	}
}

// TestGroupResetRefusedWhileActive: with a member in the group, reset is
// refused in both modes with Kafka's message, and nothing moves.
func TestGroupResetRefusedWhileActive(t *testing.T) {
	c := newGroupCluster(t)
	testenv.CreateTopic(t, c.bootstrap, "live", 1, nil)
	produceTo(t, c.bootstrap, "live", 0, 5, nil)
	member := testenv.Client(t, c.bootstrap, memberOpts("busy", "live")...)
	consumeUntil(t, member, func(r *kgo.Record) bool { return r.Offset == 4 })
	if err := member.CommitRecords(testenv.Context(t, 30*time.Second), &kgo.Record{Topic: "live", Offset: 2, LeaderEpoch: -1}); err != nil {
		t.Fatal(err)
	}
	const refusal = "strata: Assignments can only be reset if the group 'busy' is inactive, but the current state is Stable.\n"
	for _, mode := range []string{"--dry-run", "--execute"} {
		r := c.run("", "group", "reset-offsets", "busy", "--topic", "live", "--to-earliest", mode)
		if r.code != 1 || r.stderr != refusal || r.stdout != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", mode, r.code, r.stdout, r.stderr)
		}
	}
	if got := committed(t, c.bootstrap, "busy", "live"); !maps.Equal(got, map[int32]int64{0: 3}) {
		t.Errorf("committed %v after refused resets", got)
	}
}

// TestGroupResetBadInput: mistakes are one clear line; usage mistakes exit
// 2 before connecting, mistakes only the broker can see exit 1.
func TestGroupResetBadInput(t *testing.T) {
	c := newGroupCluster(t)
	testenv.CreateTopic(t, c.bootstrap, "b", 2, nil)
	produceTo(t, c.bootstrap, "b", 0, 3, nil)
	adminCommit(t, c.bootstrap, "bg", "b", map[int32]int64{0: 1})
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--topic", "b"}, 2, "give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime or --shift-by (got 0)"},
		{[]string{"--topic", "b", "--to-earliest", "--to-offset", "1"}, 2, "give exactly one of"},
		{[]string{"--topic", "b", "--to-latest", "--shift-by", "1"}, 2, "(got 2)"},
		{[]string{"--to-earliest"}, 2, "--topic is required"},
		{[]string{"--topic", "b", "--to-earliest", "--dry-run", "--execute"}, 2, "--dry-run and --execute cannot be used together"},
		{[]string{"--topic", "b", "--to-offset", "-1"}, 2, "invalid --to-offset -1"},
		{[]string{"--topic", "b", "--to-offset", "x"}, 2, `invalid argument "x" for "--to-offset"`},
		{[]string{"--topic", "b", "--to-datetime", "yesterday"}, 2, `invalid --to-datetime "yesterday": want RFC 3339`},
		{[]string{"--topic", "b", "--to-datetime", "2024-05-01T12:00:00"}, 2, "invalid --to-datetime"},
		{[]string{"--topic", "b:x", "--to-earliest"}, 2, `invalid --topic "b:x": partition "x" is not a number >= 0`},
		{[]string{"--topic", "b:-1", "--to-earliest"}, 2, `invalid --topic "b:-1"`},
		{[]string{"--topic", ":0", "--to-earliest"}, 2, `invalid --topic ":0"`},
		{[]string{"--topic", "nope", "--to-earliest"}, 1, `topic "nope" does not exist`},
		{[]string{"--topic", "b:0,7", "--to-earliest", "--execute"}, 1, `topic "b" has no partition 7`},
		{[]string{"--topic", "b", "--shift-by", "1", "--execute"}, 1, "cannot shift the offset of b-1: the group has no committed offset for it"},
	} {
		args := append([]string{"group", "reset-offsets", "bg"}, tc.args...)
		r := c.run("", args...)
		lines := strings.Count(r.stderr, "\n")
		if tc.code == 2 {
			lines-- // the "Run ... --help" hint
		}
		if r.code != tc.code || !strings.HasPrefix(r.stderr, "strata: ") || !strings.Contains(r.stderr, tc.want) || lines != 1 {
			t.Errorf("strata %s: exit %d, stderr %q; want exit %d and %q", strings.Join(args, " "), r.code, r.stderr, tc.code, tc.want)
		}
	}
	if got := committed(t, c.bootstrap, "bg", "b"); !maps.Equal(got, map[int32]int64{0: 1}) {
		t.Errorf("bad input changed the commits: %v", got)
	}
}

// TestGroupPlanReset checks the offset rules as a table (Kafka's
// ConsumerGroupCommand: clamping into [log start, log end], datetime
// falling back to the end, shift-by needing a commit).
func TestGroupPlanReset(t *testing.T) {
	in := func(committed, start, end, atTime int64) []resetInput {
		return []resetInput{{Topic: "t", Partition: 3, Committed: committed, LogStart: start, LogEnd: end, AtTime: atTime}}
	}
	for _, tc := range []struct {
		spec    resetSpec
		in      []resetInput
		new     int64
		clamped bool
		err     string
	}{
		{resetSpec{Kind: resetToEarliest}, in(7, 2, 9, -1), 2, false, ""},
		{resetSpec{Kind: resetToLatest}, in(-1, 2, 9, -1), 9, false, ""},
		{resetSpec{Kind: resetToOffset, Offset: 5}, in(-1, 2, 9, -1), 5, false, ""},
		{resetSpec{Kind: resetToOffset, Offset: 1}, in(7, 2, 9, -1), 2, true, ""},
		{resetSpec{Kind: resetToOffset, Offset: 10}, in(7, 2, 9, -1), 9, true, ""},
		{resetSpec{Kind: resetToOffset, Offset: 9}, in(7, 2, 9, -1), 9, false, ""},
		{resetSpec{Kind: resetShiftBy, Shift: -3}, in(7, 2, 9, -1), 4, false, ""},
		{resetSpec{Kind: resetShiftBy, Shift: -6}, in(7, 2, 9, -1), 2, true, ""},
		{resetSpec{Kind: resetShiftBy, Shift: 1 << 62}, in(1<<62, 2, 9, -1), 9, true, ""},
		{resetSpec{Kind: resetShiftBy, Shift: 1}, in(-1, 2, 9, -1), 0, false, "cannot shift the offset of t-3"},
		{resetSpec{Kind: resetToDatetime}, in(-1, 2, 9, 4), 4, false, ""},
		{resetSpec{Kind: resetToDatetime}, in(-1, 2, 9, -1), 9, false, ""},
	} {
		rows, err := planReset(tc.spec, tc.in)
		name := fmt.Sprintf("%v on %+v", tc.spec, tc.in[0])
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", name, err, tc.err)
			}
			continue
		}
		if err != nil || len(rows) != 1 || rows[0].New != tc.new || rows[0].Clamped != tc.clamped || rows[0].Current != tc.in[0].Committed {
			t.Errorf("%s: %+v, %v; want new %d clamped %v", name, rows, err, tc.new, tc.clamped)
		}
	}
}

// TestGroupToolsAcrossServeRestart: against a real `strata serve`, offsets
// set by reset-offsets survive a kill -9 and are described and listed after
// the restart, when the broker has reloaded __consumer_offsets.
func TestGroupToolsAcrossServeRestart(t *testing.T) {
	p := testenv.StartProcess(t, testenv.ProcessOptions{Configs: []string{
		"group.initial.rebalance.delay.ms=0", "offsets.topic.num.partitions=2",
	}})
	c := &cluster{t: t, bootstrap: p.Addr}
	c.mustRun("", "topic", "create", "s", "--partitions", "2")
	produceTo(t, p.Addr, "s", 0, 4, nil)
	produceTo(t, p.Addr, "s", 1, 6, nil)
	c.mustRun("", "group", "reset-offsets", "replay", "--topic", "s", "--to-offset", "3", "--execute")

	p.Restart()
	out, r := c.describeJSON("replay")
	if r.code != 0 || len(out.Groups) != 1 {
		t.Fatalf("describe after restart: exit %d, stderr %q", r.code, r.stderr)
	}
	g := out.Groups[0]
	if g.State != "Empty" || len(g.Offsets) != 2 || !eqPtr(g.Offsets[0].CommittedOffset, ptr(3)) ||
		!eqPtr(g.Offsets[1].CommittedOffset, ptr(3)) || g.TotalLag != 1+3 {
		t.Errorf("after restart: %+v", g)
	}
	if r := c.mustRun("", "group", "list"); !strings.Contains(r.stdout, "replay  Empty") {
		t.Errorf("list after restart:\n%s", r.stdout)
	}
	if got := nextConsumerStarts(t, p.Addr, "replay", "s", 0, 1); !maps.Equal(got, map[int32]int64{0: 3, 1: 3}) {
		t.Errorf("next consumer after restart started at %v", got)
	}
}
