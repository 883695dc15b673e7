package broker_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/testenv"
)

// scrape reads the broker's metrics endpoint and returns its strata_group_*
// sample lines.
func scrape(t *testing.T, b *testenv.InProcess) map[string]bool {
	t.Helper()
	rec := httptest.NewRecorder()
	b.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("metrics: HTTP %d", rec.Code)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(l, "strata_group_") {
			lines[l] = true
		}
	}
	return lines
}

func wantLines(t *testing.T, got map[string]bool, want ...string) {
	t.Helper()
	for _, w := range want {
		if !got[w] {
			t.Errorf("metrics lack %q; have %v", w, got)
		}
	}
}

// produceTo writes n records to one partition.
func produceTo(t *testing.T, cl *kgo.Client, topic string, partition int32, n int) {
	t.Helper()
	ctx := testenv.Context(t, 30*time.Second)
	for i := 0; i < n; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: partition, Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGroupLagMetrics: a franz-go consumer group commits offsets 3 and 1 on
// partitions holding 5 records each; the scrape shows those commits, lag 2
// and 4, and the group's total and largest lag, and follows the log as it
// grows.
func TestGroupLagMetrics(t *testing.T) {
	b, _ := startGroupBroker(t, "")
	topic, group := "lagging", "g-lagging"
	testenv.CreateTopic(t, b.Addr, topic, 2, nil)
	prod := testenv.Client(t, b.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceTo(t, prod, topic, 0, 5)
	produceTo(t, prod, topic, 1, 5)

	ev := newGroupEvents()
	cl := testenv.Client(t, b.Addr, append(groupOpts(ev, group, topic, kgo.RangeBalancer()), kgo.DisableAutoCommit())...)
	pollUntilClosed(t, cl, nil)
	waitForAssignment(t, ev, kadm.NewClient(testenv.Client(t, b.Addr)), group, topic, 1, 2)
	var commitErr error
	cl.CommitOffsetsSync(testenv.Context(t, 10*time.Second), map[string]map[int32]kgo.EpochOffset{topic: {0: {Epoch: -1, Offset: 3}, 1: {Epoch: -1, Offset: 1}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
			commitErr = err
		})
	if commitErr != nil {
		t.Fatal(commitErr)
	}

	wantLines(t, scrape(t, b),
		`strata_group_committed_offset{group="g-lagging",partition="0",topic="lagging"} 3`,
		`strata_group_committed_offset{group="g-lagging",partition="1",topic="lagging"} 1`,
		`strata_group_lag{group="g-lagging",partition="0",topic="lagging"} 2`,
		`strata_group_lag{group="g-lagging",partition="1",topic="lagging"} 4`,
		`strata_group_lag_sum{group="g-lagging"} 6`,
		`strata_group_lag_max{group="g-lagging"} 4`,
	)
	produceTo(t, prod, topic, 1, 3)
	wantLines(t, scrape(t, b),
		`strata_group_lag{group="g-lagging",partition="1",topic="lagging"} 7`,
		`strata_group_lag_sum{group="g-lagging"} 9`,
	)
}

// TestGroupLagMetricsSetting: group.lag.metrics=group keeps only per-group
// totals, off drops the series, and a bad value fails at start.
func TestGroupLagMetricsSetting(t *testing.T) {
	for _, mode := range []string{"group", "off"} {
		t.Run(mode, func(t *testing.T) {
			b, _ := startGroupBroker(t, "", "group.lag.metrics", mode)
			testenv.CreateTopic(t, b.Addr, "lag-"+mode, 1, nil)
			produceTo(t, testenv.Client(t, b.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner())), "lag-"+mode, 0, 4)
			offs := kadm.Offsets{}
			offs.AddOffset("lag-"+mode, 0, 1, -1)
			if r, err := kadm.NewClient(testenv.Client(t, b.Addr)).CommitOffsets(testenv.Context(t, 10*time.Second), "simple", offs); err != nil || r.Error() != nil {
				t.Fatalf("commit: %v %v", err, r.Error())
			}
			got := scrape(t, b)
			if mode == "off" {
				if len(got) != 0 {
					t.Fatalf("series with lag metrics off: %v", got)
				}
				return
			}
			wantLines(t, got, `strata_group_lag_sum{group="simple"} 3`, `strata_group_lag_max{group="simple"} 3`)
			for l := range got {
				if strings.HasPrefix(l, "strata_group_lag{") || strings.HasPrefix(l, "strata_group_committed_offset{") {
					t.Fatalf("per-partition series in group mode: %s", l)
				}
			}
		})
	}
	_, err := broker.New(broker.Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Settings: map[string]string{"group.lag.metrics": "topic"}})
	if err == nil || !strings.Contains(err.Error(), "group.lag.metrics") {
		t.Fatalf("a bad group.lag.metrics: %v", err)
	}
}
