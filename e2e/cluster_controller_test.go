package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/testenv"
)

// TestClusterControllerKill is fault 6: the controller is killed with kill
// -9; another broker takes the role, and every admin change still works
// when sent to any broker — non-controllers forward it (KIP-590 style):
// topic creation, partition growth and a config change, each sent with a
// raw request to one chosen broker, then checked in every live broker's
// metadata and DescribeConfigs. Once the old controller is back
// (a follower now) the same goes through it. Controller failover time (kill
// -9 to the first topic created through another broker) is logged.
func TestClusterControllerKill(t *testing.T) {
	c := startFaultCluster(t, testenv.ClusterOptions{})
	pr := newProbe(t, c)
	ctx := testenv.Context(t, 5*time.Minute)
	c.CreateTopic("before", 2, 3, nil)

	old := c.WaitForController(-1)
	killed := time.Now()
	c.Broker(old).Kill()
	via := liveBroker(t, c, old).NodeID
	until(t, 2*time.Minute, "a topic created through a surviving broker", func() (bool, string) {
		// Two brokers are left: replication factor 2 (3 cannot be placed,
		// as in Kafka).
		err := createTopicVia(ctx, pr, via, "first-after-kill", 1, 2)
		return err == nil || errors.Is(err, kerr.TopicAlreadyExists), fmt.Sprint(err)
	})
	created := time.Since(killed)
	next := c.WaitForController(old)
	t.Logf("controller %d killed: broker %d is controller; first topic created through broker %d %v after the kill",
		old, next, via, created.Round(time.Millisecond))

	for _, b := range c.Brokers {
		if b.NodeID != old {
			adminThrough(t, c, pr, b.NodeID, next, 2)
		}
	}
	c.Broker(old).Restart()
	c.WaitForBrokers(3)
	if got := c.WaitForController(-1); got == old {
		t.Logf("broker %d is controller again", old)
	}
	adminThrough(t, c, pr, old, c.WaitForController(-1), 3)

	// The new topics carry data.
	cl := c.Client(t, kgo.DefaultProduceTopic("first-after-kill"), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(time.Minute))
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatalf("produce to a topic created after the failover: %v", err)
		}
	}
	if recs := testenv.ReadAll(t, liveBroker(t, c).Addr, "first-after-kill"); len(recs) != 10 {
		t.Fatalf("read %d records back, want 10", len(recs))
	}
}

// adminThrough creates a topic with replication factor rf, grows it and changes a config of it, each
// request sent to broker via, and checks the results everywhere.
func adminThrough(t *testing.T, c *testenv.Cluster, pr *probe, via, ctrl int32, rf int16) {
	t.Helper()
	ctx := testenv.Context(t, 2*time.Minute)
	topic := fmt.Sprintf("via-%d-ctrl-%d", via, ctrl)
	if err := createTopicVia(ctx, pr, via, topic, 1, rf); err != nil {
		t.Fatalf("create %s through broker %d (controller %d): %v", topic, via, ctrl, err)
	}
	c.WaitForLeader(topic, 0, -1)
	if err := growVia(ctx, pr, via, topic, 3); err != nil {
		t.Fatalf("grow %s to 3 partitions through broker %d: %v", topic, via, err)
	}
	for p := range int32(3) {
		c.WaitForLeader(topic, p, -1)
		c.WaitForISR(topic, p, int(rf))
	}
	if err := setConfigVia(ctx, pr, via, topic, "retention.ms", "4321000"); err != nil {
		t.Fatalf("alter %s's config through broker %d: %v", topic, via, err)
	}
	until(t, time.Minute, "retention.ms of "+topic+" on every broker", func() (bool, string) {
		for _, b := range c.Brokers {
			if !b.Running() {
				continue
			}
			v, err := describeConfigOn(ctx, pr, b.NodeID, topic, "retention.ms")
			if err != nil || v != "4321000" {
				return false, fmt.Sprintf("broker %d: %q %v", b.NodeID, v, err)
			}
		}
		return true, ""
	})
	t.Logf("through broker %d (controller %d): created %s, grew it to 3 partitions, set retention.ms", via, ctrl, topic)
}

// createTopicVia sends CreateTopics to broker via only.
func createTopicVia(ctx context.Context, pr *probe, via int32, topic string, partitions int32, rf int16) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, rf
	req.Topics = append(req.Topics, rt)
	rctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	resp, err := pr.broker(via).Request(rctx, req)
	if err != nil {
		return err
	}
	for _, st := range resp.(*kmsg.CreateTopicsResponse).Topics {
		if err := kerr.ErrorForCode(st.ErrorCode); err != nil {
			return fmt.Errorf("%w (%s)", err, deref(st.ErrorMessage))
		}
	}
	return nil
}

// growVia sends CreatePartitions to broker via only.
func growVia(ctx context.Context, pr *probe, via int32, topic string, total int32) error {
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.TimeoutMillis = 30000
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = topic, total
	req.Topics = append(req.Topics, rt)
	rctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	resp, err := pr.broker(via).Request(rctx, req)
	if err != nil {
		return err
	}
	for _, st := range resp.(*kmsg.CreatePartitionsResponse).Topics {
		if err := kerr.ErrorForCode(st.ErrorCode); err != nil {
			return fmt.Errorf("%w (%s)", err, deref(st.ErrorMessage))
		}
	}
	return nil
}

// setConfigVia sends IncrementalAlterConfigs (SET) to broker via only.
func setConfigVia(ctx context.Context, pr *probe, via int32, topic, name, value string) error {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	rc.Name, rc.Op, rc.Value = name, kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr(value)
	rr.Configs = append(rr.Configs, rc)
	req.Resources = append(req.Resources, rr)
	rctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	resp, err := pr.broker(via).Request(rctx, req)
	if err != nil {
		return err
	}
	for _, r := range resp.(*kmsg.IncrementalAlterConfigsResponse).Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return fmt.Errorf("%w (%s)", err, deref(r.ErrorMessage))
		}
	}
	return nil
}

// describeConfigOn asks broker id for one config of a topic.
func describeConfigOn(ctx context.Context, pr *probe, id int32, topic, name string) (string, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.ConfigNames = kmsg.ConfigResourceTypeTopic, topic, []string{name}
	req.Resources = append(req.Resources, rr)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := pr.broker(id).Request(rctx, req)
	if err != nil {
		return "", err
	}
	for _, r := range resp.(*kmsg.DescribeConfigsResponse).Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return "", err
		}
		for _, cfg := range r.Configs {
			if cfg.Name == name && cfg.Value != nil {
				return *cfg.Value, nil
			}
		}
	}
	return "", fmt.Errorf("broker %d: no %s for %s", id, name, topic)
}
