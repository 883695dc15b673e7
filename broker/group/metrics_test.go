package group

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// lagFixture commits offsets with known lag: g1 at 3 and 1 of t-0 and t-1
// (high watermarks 5 and 5: lag 2 and 4), g2 at 5 of t-0 (lag 0) and at 2
// of u-0, a topic this broker does not host (no lag known).
func lagFixture(t *testing.T, mode LagMetrics) *fixture {
	h := newMemHost(1)
	h.topics["u"] = 1
	h.setHW("t", 0, 5)
	h.setHW("t", 1, 5)
	f := newFixture(t, h, func(o *Options) { o.LagMetrics = mode })
	for _, e := range append(f.commit("g1", "", -1, "t", map[int32]int64{0: 3, 1: 1}), f.commit("g2", "", -1, "t", map[int32]int64{0: 5})...) {
		wantErr(t, "commit", e, errNone)
	}
	wantErr(t, "commit", f.commit("g2", "", -1, "u", map[int32]int64{0: 2})[0], errNone)
	return f
}

// groupSeries gathers reg's strata_group_* series as "name{labels} value"
// lines, sorted (labels in the registry's order: alphabetical).
func groupSeries(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "strata_group_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			out = append(out, fmt.Sprintf("%s{%s} %v", mf.GetName(), strings.Join(ls, ","), m.GetGauge().GetValue()))
		}
	}
	sort.Strings(out)
	return out
}

func wantSeries(t *testing.T, reg *prometheus.Registry, want ...string) {
	t.Helper()
	sort.Strings(want)
	got := groupSeries(t, reg)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("series:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLagMetricsPerPartition(t *testing.T) {
	f := lagFixture(t, LagByPartition)
	wantSeries(t, f.reg,
		`strata_group_committed_offset{group="g1",partition="0",topic="t"} 3`,
		`strata_group_committed_offset{group="g1",partition="1",topic="t"} 1`,
		`strata_group_committed_offset{group="g2",partition="0",topic="t"} 5`,
		`strata_group_committed_offset{group="g2",partition="0",topic="u"} 2`,
		`strata_group_lag{group="g1",partition="0",topic="t"} 2`,
		`strata_group_lag{group="g1",partition="1",topic="t"} 4`,
		`strata_group_lag{group="g2",partition="0",topic="t"} 0`,
		`strata_group_lag_max{group="g1"} 4`,
		`strata_group_lag_max{group="g2"} 0`,
		`strata_group_lag_sum{group="g1"} 6`,
		`strata_group_lag_sum{group="g2"} 0`,
	)
	// The log grows: lag follows the high watermark at the next scrape.
	f.host.setHW("t", 1, 11)
	if got := gaugeValue(t, f.reg, "strata_group_lag_sum", "g1"); got != 12 {
		t.Fatalf("lag sum after the log grew: %v, want 12", got)
	}
	// Resigned groups are not this coordinator's to report.
	f.c.Resigned(0, 1)
	wantSeries(t, f.reg)
}

func TestLagMetricsPerGroup(t *testing.T) {
	f := lagFixture(t, LagByGroup)
	wantSeries(t, f.reg,
		`strata_group_lag_max{group="g1"} 4`,
		`strata_group_lag_max{group="g2"} 0`,
		`strata_group_lag_sum{group="g1"} 6`,
		`strata_group_lag_sum{group="g2"} 0`,
	)
}

func TestLagMetricsOff(t *testing.T) {
	f := lagFixture(t, LagOff)
	wantSeries(t, f.reg)
	opts := testOptions(newMemHost(1), nil, nil)
	opts.LagMetrics = "partitions"
	if _, err := New(opts); err == nil {
		t.Fatal("an unknown lag metrics mode was accepted")
	}
}

// gaugeValue is one group's value of a gauge, from what reg gathers.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name, groupID string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "group" && l.GetValue() == groupID {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s for group %s", name, groupID)
	return 0
}
