package main

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/strata-broker/strata/testenv"
)

// TestGroupCommandsAcrossCoordinators runs the group commands against a
// three-broker cluster (franz-go's kfake, until Strata's cluster mode lands)
// where the groups are coordinated by different brokers and the CLI knows
// only one seed broker: every request must reach each group's own
// coordinator, and list must ask every broker.
func TestGroupCommandsAcrossCoordinators(t *testing.T) {
	c := newFakeCluster(t, kfake.NumBrokers(3), kfake.SeedTopics(2, "x"))
	for p := range int32(2) {
		produceTo(t, c.bootstrap, "x", p, 5, nil)
	}

	// Pick two groups coordinated by different brokers.
	adm := kadm.NewClient(testenv.Client(t, c.bootstrap))
	var names []string
	for i := range 32 {
		names = append(names, fmt.Sprintf("spread-%d", i))
	}
	coords := adm.FindGroupCoordinators(testenv.Context(t, 30*time.Second), names...)
	coordOf := map[string]int32{}
	var ga, gb string
	for _, n := range names {
		fc := coords[n]
		if fc.Err != nil {
			t.Fatalf("find coordinator of %s: %v", n, fc.Err)
		}
		coordOf[n] = fc.NodeID
		switch {
		case ga == "":
			ga = n
		case gb == "" && fc.NodeID != coordOf[ga]:
			gb = n
		}
	}
	if gb == "" {
		t.Fatalf("all of %d groups landed on broker %d", len(names), coordOf[ga])
	}
	adminCommit(t, c.bootstrap, ga, "x", map[int32]int64{0: 1, 1: 2})
	adminCommit(t, c.bootstrap, gb, "x", map[int32]int64{0: 3})

	r := c.mustRun("", "group", "list", "--format", "json")
	for _, g := range []string{ga, gb} {
		want := fmt.Sprintf(`"group": %q,
      "state": "Empty",
      "protocol_type": "",
      "coordinator": %d`, g, coordOf[g])
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list json lacks %s on coordinator %d:\n%s", g, coordOf[g], r.stdout)
		}
	}

	out, r := c.describeJSON(ga, gb)
	if r.code != 0 || len(out.Groups) != 2 {
		t.Fatalf("describe: exit %d, stderr %q", r.code, r.stderr)
	}
	for i, want := range []struct {
		group string
		lag   int64
		rows  int
	}{{ga, 4 + 3, 2}, {gb, 2, 1}} {
		g := out.Groups[i]
		if g.Group != want.group || g.Coordinator != coordOf[want.group] || g.TotalLag != want.lag || len(g.Offsets) != want.rows || g.Error != "" {
			t.Errorf("describe %s: %+v; want coordinator %d, lag %d", want.group, g, coordOf[want.group], want.lag)
		}
	}

	c.mustRun("", "group", "reset-offsets", gb, "--topic", "x", "--to-earliest", "--execute")
	if got := committed(t, c.bootstrap, gb, "x"); !maps.Equal(got, map[int32]int64{0: 0, 1: 0}) {
		t.Errorf("%s after reset: %v", gb, got)
	}
	c.mustRun("", "group", "delete-offsets", ga, "--topic", "x:1")
	if got := committed(t, c.bootstrap, ga, "x"); !maps.Equal(got, map[int32]int64{0: 1}) {
		t.Errorf("%s after delete-offsets: %v", ga, got)
	}
	r = c.mustRun("", "group", "delete", ga, gb)
	if r.stdout != fmt.Sprintf("Deleted group %q.\nDeleted group %q.\n", ga, gb) {
		t.Errorf("delete: %q", r.stdout)
	}
	if r := c.mustRun("", "group", "list"); strings.Contains(r.stdout, ga) || strings.Contains(r.stdout, gb) {
		t.Errorf("list after delete:\n%s", r.stdout)
	}
}
