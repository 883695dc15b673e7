package main

import (
	"bufio"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/testenv"
)

// TestGroupDescribeFranzGoMember: a live franz-go member with known commits
// (2 of 6 and 5 of 8 records, nothing on the third partition) is described
// with its assignment and a lag of 4 + 3; after it leaves, the group is
// Empty and the committed partitions keep their lag.
func TestGroupDescribeFranzGoMember(t *testing.T) {
	c := newGroupCluster(t)
	testenv.CreateTopic(t, c.bootstrap, "orders", 3, nil)
	for p, n := range []int{6, 8, 3} {
		produceTo(t, c.bootstrap, "orders", int32(p), n, nil)
	}

	member := testenv.Client(t, c.bootstrap, append(memberOpts("billing", "orders"), kgo.ClientID("billing-worker"))...)
	seen := 0
	consumeUntil(t, member, func(*kgo.Record) bool { seen++; return seen == 17 })
	var commitErr error
	member.CommitOffsetsSync(testenv.Context(t, 30*time.Second), map[string]map[int32]kgo.EpochOffset{
		"orders": {0: {Epoch: -1, Offset: 2}, 1: {Epoch: -1, Offset: 5}},
	}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
		commitErr = err
	})
	if commitErr != nil {
		t.Fatalf("member commit: %v", commitErr)
	}

	out, r := c.describeJSON("billing")
	if r.code != 0 {
		t.Fatalf("describe: exit %d, stderr %q", r.code, r.stderr)
	}
	if len(out.Groups) != 1 {
		t.Fatalf("describe json has %d groups", len(out.Groups))
	}
	g := out.Groups[0]
	if g.Group != "billing" || g.State != "Stable" || g.ProtocolType != "consumer" || g.Protocol != "cooperative-sticky" || g.Coordinator != 0 || g.Error != "" {
		t.Errorf("group header: %+v", g)
	}
	if len(g.Members) != 1 {
		t.Fatalf("members: %+v", g.Members)
	}
	m := g.Members[0]
	if m.ClientID != "billing-worker" || m.MemberID == "" || m.Host == "" || m.InstanceID != nil ||
		len(m.Assignment) != 1 || m.Assignment[0].Topic != "orders" || !slices.Equal(m.Assignment[0].Partitions, []int32{0, 1, 2}) {
		t.Errorf("member: %+v", m)
	}
	want := []struct {
		committed, end, lag *int64
	}{{ptr(2), ptr(6), ptr(4)}, {ptr(5), ptr(8), ptr(3)}, {nil, ptr(3), nil}}
	if len(g.Offsets) != 3 {
		t.Fatalf("offsets: %+v", g.Offsets)
	}
	for i, w := range want {
		o := g.Offsets[i]
		if o.Topic != "orders" || o.Partition != int32(i) || !eqPtr(o.CommittedOffset, w.committed) ||
			!eqPtr(o.LogEndOffset, w.end) || !eqPtr(o.Lag, w.lag) || o.MemberID != m.MemberID ||
			o.ClientID != "billing-worker" || o.Host != m.Host || o.Error != "" {
			t.Errorf("offsets[%d] = %+v (committed %s, end %s, lag %s); want committed %s, end %s, lag %s",
				i, o, fmtPtr(o.CommittedOffset), fmtPtr(o.LogEndOffset), fmtPtr(o.Lag), fmtPtr(w.committed), fmtPtr(w.end), fmtPtr(w.lag))
		}
	}
	if g.TotalLag != 7 {
		t.Errorf("total_lag = %d, want 7", g.TotalLag)
	}

	text := c.mustRun("", "group", "describe", "billing")
	for key, val := range map[string]string{"GROUP": "billing", "STATE": "Stable", "PROTOCOL-TYPE": "consumer",
		"PROTOCOL": "cooperative-sticky", "MEMBERS": "1", "TOTAL-LAG": "7", "COORDINATOR": "0"} {
		if got := headerValue(text.stdout, key); got != val {
			t.Errorf("text %s = %q, want %q\n%s", key, got, val, text.stdout)
		}
	}
	if !strings.Contains(text.stdout, m.MemberID) || !strings.Contains(text.stdout, "orders:0,1,2") {
		t.Errorf("text lacks the member line:\n%s", text.stdout)
	}
	rows := textOffsetRows(t, text.stdout)
	wantRows := []offsetRow{
		{"orders", 0, "2", "6", "4", m.MemberID},
		{"orders", 1, "5", "8", "3", m.MemberID},
		{"orders", 2, "-", "3", "-", m.MemberID},
	}
	if !slices.Equal(rows, wantRows) {
		t.Errorf("text rows %+v\nwant %+v\n%s", rows, wantRows, text.stdout)
	}

	list := c.mustRun("", "group", "list")
	if !slices.Contains(strings.Split(list.stdout, "\n"), "billing  Stable  consumer") {
		t.Errorf("list:\n%s", list.stdout)
	}
	if r := c.mustRun("", "group", "list", "--state", "stable"); !strings.Contains(r.stdout, "billing") {
		t.Errorf("list --state stable:\n%s", r.stdout)
	}
	if r := c.mustRun("", "group", "list", "--state", "Empty,Dead"); strings.Contains(r.stdout, "billing") {
		t.Errorf("list --state Empty,Dead shows a Stable group:\n%s", r.stdout)
	}

	// The member leaves: the group is Empty, and only committed partitions
	// remain, with the same lag.
	member.Close()
	eventually(t, "billing becomes Empty", func() (bool, string) {
		out, _ := c.describeJSON("billing")
		return out.Groups[0].State == "Empty", out.Groups[0].State
	})
	out, _ = c.describeJSON("billing")
	g = out.Groups[0]
	if len(g.Members) != 0 || len(g.Offsets) != 2 || g.TotalLag != 7 || g.Offsets[0].MemberID != "" || !eqPtr(g.Offsets[1].Lag, ptr(3)) {
		t.Errorf("after leaving: %+v", g)
	}
	r = c.mustRun("", "group", "list", "--state", "Empty")
	if !slices.Contains(strings.Split(r.stdout, "\n"), "billing  Empty  consumer") {
		t.Errorf("list --state Empty:\n%s", r.stdout)
	}
}

// TestGroupDescribeKcatMember: a librdkafka consumer (kcat -G) is described
// with its client id and its range assignment decoded; once it has stopped
// and three more records arrive, its lag is exactly 3.
func TestGroupDescribeKcatMember(t *testing.T) {
	kcat := testenv.Kcat(t)
	c := newGroupCluster(t)
	testenv.CreateTopic(t, c.bootstrap, "clicks", 2, nil)
	produceTo(t, c.bootstrap, "clicks", 0, 4, nil)
	produceTo(t, c.bootstrap, "clicks", 1, 2, nil)

	cmd := exec.Command(kcat, "-b", c.bootstrap, "-G", "kgroup", "-q", "-u", "-f", "%p %o\n",
		"-X", "client.id=kcat-reader", "-X", "auto.offset.reset=earliest",
		"-X", "auto.commit.interval.ms=100", "clicks")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	for range 6 {
		select {
		case _, ok := <-lines:
			if !ok {
				t.Fatalf("kcat stopped early; stderr: %s", stderr.String())
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("kcat did not read 6 records; stderr: %s", stderr.String())
		}
	}

	// kcat commits every 100 ms; wait until both commits are in.
	eventually(t, "kcat's commits reach the end", func() (bool, string) {
		out, _ := c.describeJSON("kgroup")
		g := out.Groups[0]
		done := g.State == "Stable" && len(g.Offsets) == 2 && eqPtr(g.Offsets[0].CommittedOffset, ptr(4)) &&
			eqPtr(g.Offsets[1].CommittedOffset, ptr(2))
		return done, fmt.Sprintf("%+v", g)
	})
	out, _ := c.describeJSON("kgroup")
	g := out.Groups[0]
	if g.ProtocolType != "consumer" || g.Protocol != "range" || len(g.Members) != 1 || g.TotalLag != 0 {
		t.Errorf("kcat group: %+v", g)
	}
	if m := g.Members[0]; m.ClientID != "kcat-reader" || m.Host == "" || len(m.Assignment) != 1 ||
		m.Assignment[0].Topic != "clicks" || !slices.Equal(m.Assignment[0].Partitions, []int32{0, 1}) {
		t.Errorf("kcat member: %+v", m)
	}

	// SIGTERM: kcat commits and leaves the group on its way out.
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatal("kcat did not exit on SIGTERM")
	}
	eventually(t, "kgroup becomes Empty", func() (bool, string) {
		out, _ := c.describeJSON("kgroup")
		return out.Groups[0].State == "Empty", out.Groups[0].State
	})
	produceTo(t, c.bootstrap, "clicks", 0, 3, nil)

	r := c.mustRun("", "group", "describe", "kgroup")
	if headerValue(r.stdout, "TOTAL-LAG") != "3" || headerValue(r.stdout, "STATE") != "Empty" || headerValue(r.stdout, "MEMBERS") != "0" {
		t.Errorf("describe after kcat stopped:\n%s", r.stdout)
	}
	rows := textOffsetRows(t, r.stdout)
	want := []offsetRow{{"clicks", 0, "4", "7", "3", "-"}, {"clicks", 1, "2", "2", "0", "-"}}
	if !slices.Equal(rows, want) {
		t.Errorf("rows %+v, want %+v", rows, want)
	}
	if strings.Contains(r.stdout, "MEMBER-ID  CLIENT-ID  HOST  ASSIGNMENT") {
		t.Errorf("an Empty group printed a members table:\n%s", r.stdout)
	}
	list := c.mustRun("", "group", "list", "--format", "json")
	if !strings.Contains(list.stdout, `"group": "kgroup"`) || !strings.Contains(list.stdout, `"state": "Empty"`) ||
		!strings.Contains(list.stdout, `"protocol_type": "consumer"`) || !strings.Contains(list.stdout, `"coordinator": 0`) {
		t.Errorf("list json:\n%s", list.stdout)
	}
}

// TestGroupDescribeSeveralAndMissing: groups are shown in the order given;
// an unknown group is a one-line error (exit 1) without hiding the others.
func TestGroupDescribeSeveralAndMissing(t *testing.T) {
	c := newGroupCluster(t)
	testenv.CreateTopic(t, c.bootstrap, "t", 1, nil)
	produceTo(t, c.bootstrap, "t", 0, 5, nil)
	adminCommit(t, c.bootstrap, "zeta", "t", map[int32]int64{0: 1})
	adminCommit(t, c.bootstrap, "alpha", "t", map[int32]int64{0: 5})

	r := c.run("", "group", "describe", "zeta", "nope", "alpha")
	if r.code != 1 || r.stderr != "strata: group \"nope\" does not exist\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if got := headerValues(r.stdout, "GROUP"); !slices.Equal(got, []string{"zeta", "alpha"}) {
		t.Errorf("groups shown: %q\n%s", got, r.stdout)
	}
	out, r := c.describeJSON("zeta", "nope", "alpha")
	if r.code != 1 || len(out.Groups) != 3 || out.Groups[1].Error != `group "nope" does not exist` ||
		out.Groups[0].TotalLag != 4 || out.Groups[2].TotalLag != 0 || out.Groups[0].State != "Empty" {
		t.Errorf("json: exit %d, %+v", r.code, out)
	}
}
