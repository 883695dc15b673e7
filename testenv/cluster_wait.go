package testenv

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The waits below poll Metadata from every live broker (started, not
// exited, not paused) directly, not from whichever broker a client happens
// to pick, and are satisfied only when every one of them answers and they
// agree. A broker's view of the cluster lags Consul by a blocking query, and
// a test that acts on one broker's stale view flakes; agreement is the
// event a fault test means by "the new leader is elected".

// metadataProbeTimeout bounds one broker's answer to one poll; a broker
// that does not answer in time is retried on the next poll.
const metadataProbeTimeout = 5 * time.Second

// pollInterval separates polls. It is not a wait for state: every wait ends
// on the condition or on its deadline.
const pollInterval = 100 * time.Millisecond

// brokerView is one broker's answer to a Metadata request.
type brokerView struct {
	node int32
	resp *kmsg.MetadataResponse
	err  error
}

// views asks each live broker for metadata on topics (none when empty).
func (c *Cluster) views(live map[int32]bool, topics []string) []brokerView {
	seeds := c.probe.SeedBrokers() // in node order: seed i is node i+1
	out := make([]brokerView, 0, len(live))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, b := range c.Brokers {
		if !live[b.NodeID] || i >= len(seeds) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := kmsg.NewPtrMetadataRequest()
			req.Topics = []kmsg.MetadataRequestTopic{}
			for _, t := range topics {
				rt := kmsg.NewMetadataRequestTopic()
				rt.Topic = kmsg.StringPtr(t)
				req.Topics = append(req.Topics, rt)
			}
			ctx, cancel := context.WithTimeout(context.Background(), metadataProbeTimeout)
			defer cancel()
			v := brokerView{node: b.NodeID}
			resp, err := seeds[i].Request(ctx, req)
			if err != nil {
				v.err = err
			} else {
				v.resp = resp.(*kmsg.MetadataResponse)
			}
			mu.Lock()
			out = append(out, v)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b brokerView) int { return int(a.node - b.node) })
	return out
}

// waitFor polls until cond holds over the live brokers' views, failing the
// test with cond's last description of what it saw at the deadline.
func (c *Cluster) waitFor(what string, topics []string, cond func(views []brokerView, live map[int32]bool) (bool, string)) {
	c.t.Helper()
	deadline := time.Now().Add(c.opts.WaitTimeout)
	for {
		live := c.live()
		ok, state := cond(c.views(live, topics), live)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("testenv: %s: not within %v; last seen: %s", what, c.opts.WaitTimeout, state)
		}
		t := time.NewTimer(pollInterval)
		<-t.C
	}
}

// WaitForBrokers waits until every live broker's metadata lists exactly n
// brokers, and returns their ids in order.
func (c *Cluster) WaitForBrokers(n int) []int32 {
	c.t.Helper()
	var ids []int32
	c.waitFor(fmt.Sprintf("%d brokers in metadata", n), nil, func(views []brokerView, live map[int32]bool) (bool, string) {
		var ok bool
		var state string
		ids, ok, state = brokersAgreed(views, live, n)
		return ok, state
	})
	return ids
}

// WaitForLeader waits until every live broker names the same live leader
// for topic/partition, other than notNode (-1: any), and returns it. After
// killing or pausing a leader, pass its id to wait for the failover.
func (c *Cluster) WaitForLeader(topic string, partition, notNode int32) int32 {
	c.t.Helper()
	var leader int32
	what := fmt.Sprintf("a leader of %s-%d", topic, partition)
	if notNode >= 0 {
		what += fmt.Sprintf(" other than %d", notNode)
	}
	c.waitFor(what, []string{topic}, func(views []brokerView, live map[int32]bool) (bool, string) {
		var ok bool
		var state string
		leader, ok, state = leaderAgreed(views, live, topic, partition, notNode)
		return ok, state
	})
	return leader
}

// WaitForISR waits until every live broker reports an ISR of size members
// for topic/partition, and returns it (sorted).
func (c *Cluster) WaitForISR(topic string, partition int32, size int) []int32 {
	c.t.Helper()
	var isr []int32
	c.waitFor(fmt.Sprintf("an ISR of %d for %s-%d", size, topic, partition), []string{topic}, func(views []brokerView, live map[int32]bool) (bool, string) {
		var ok bool
		var state string
		isr, ok, state = isrAgreed(views, live, topic, partition, size)
		return ok, state
	})
	return isr
}

// WaitForController waits until every live broker names the same live
// controller other than notNode (-1: any), and returns it.
func (c *Cluster) WaitForController(notNode int32) int32 {
	c.t.Helper()
	var ctrl int32
	what := "a controller"
	if notNode >= 0 {
		what += fmt.Sprintf(" other than %d", notNode)
	}
	c.waitFor(what, nil, func(views []brokerView, live map[int32]bool) (bool, string) {
		var ok bool
		var state string
		ctrl, ok, state = controllerAgreed(views, live, notNode)
		return ok, state
	})
	return ctrl
}

// agree applies pick to every view and reports the common answer. Every
// live broker must have answered (a missing view means agreement is not
// known yet); pick's error for a view makes the round fail with it.
func agree[T any](views []brokerView, live map[int32]bool, pick func(*kmsg.MetadataResponse) (T, error), equal func(a, b T) bool, show func(T) string) (T, bool, string) {
	var zero T
	var parts []string
	answered := map[int32]bool{}
	var first T
	have, same, failed := false, true, false
	for _, v := range views {
		if v.err != nil {
			parts = append(parts, fmt.Sprintf("broker %d: %v", v.node, v.err))
			failed = true
			continue
		}
		answered[v.node] = true
		got, err := pick(v.resp)
		if err != nil {
			parts = append(parts, fmt.Sprintf("broker %d: %v", v.node, err))
			failed = true
			continue
		}
		parts = append(parts, fmt.Sprintf("broker %d: %s", v.node, show(got)))
		if !have {
			first, have = got, true
		} else if !equal(first, got) {
			same = false
		}
	}
	for id := range live {
		if !answered[id] {
			failed = true
			if !slices.ContainsFunc(views, func(v brokerView) bool { return v.node == id }) {
				parts = append(parts, fmt.Sprintf("broker %d: no answer", id))
			}
		}
	}
	state := strings.Join(parts, "; ")
	if len(live) == 0 {
		return zero, false, "no live broker"
	}
	if failed || !have || !same {
		return zero, false, state
	}
	return first, true, state
}

func brokersAgreed(views []brokerView, live map[int32]bool, n int) ([]int32, bool, string) {
	ids, ok, state := agree(views, live, func(r *kmsg.MetadataResponse) ([]int32, error) {
		var ids []int32
		for _, b := range r.Brokers {
			ids = append(ids, b.NodeID)
		}
		slices.Sort(ids)
		return ids, nil
	}, slices.Equal[[]int32], func(ids []int32) string { return fmt.Sprintf("brokers %v", ids) })
	if !ok || len(ids) != n {
		return nil, false, state
	}
	return ids, true, state
}

// findPartition returns topic/partition from a metadata response, or the
// Kafka error the broker reported for it (LEADER_NOT_AVAILABLE while a
// partition has no leader, so no wait ends on a leaderless partition).
func findPartition(r *kmsg.MetadataResponse, topic string, partition int32) (*kmsg.MetadataResponseTopicPartition, error) {
	for i := range r.Topics {
		t := &r.Topics[i]
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return nil, fmt.Errorf("topic %s: %w", topic, err)
		}
		for j := range t.Partitions {
			p := &t.Partitions[j]
			if p.Partition != partition {
				continue
			}
			// REPLICA_NOT_AVAILABLE comes with the full partition state (a
			// replica is offline); any other code means no usable answer.
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil && err != kerr.ReplicaNotAvailable {
				return nil, fmt.Errorf("%s-%d: %w", topic, partition, err)
			}
			return p, nil
		}
		return nil, fmt.Errorf("no partition %d of %s", partition, topic)
	}
	return nil, fmt.Errorf("no topic %s", topic)
}

func leaderAgreed(views []brokerView, live map[int32]bool, topic string, partition, notNode int32) (int32, bool, string) {
	leader, ok, state := agree(views, live, func(r *kmsg.MetadataResponse) (int32, error) {
		p, err := findPartition(r, topic, partition)
		if err != nil {
			return -1, err
		}
		return p.Leader, nil
	}, func(a, b int32) bool { return a == b }, func(l int32) string { return fmt.Sprintf("leader %d", l) })
	if !ok || leader < 0 || leader == notNode || !live[leader] {
		return -1, false, state
	}
	return leader, true, state
}

func isrAgreed(views []brokerView, live map[int32]bool, topic string, partition int32, size int) ([]int32, bool, string) {
	isr, ok, state := agree(views, live, func(r *kmsg.MetadataResponse) ([]int32, error) {
		p, err := findPartition(r, topic, partition)
		if err != nil {
			return nil, err
		}
		isr := slices.Clone(p.ISR)
		slices.Sort(isr)
		return isr, nil
	}, slices.Equal[[]int32], func(isr []int32) string { return fmt.Sprintf("isr %v", isr) })
	if !ok || len(isr) != size {
		return nil, false, state
	}
	return isr, true, state
}

func controllerAgreed(views []brokerView, live map[int32]bool, notNode int32) (int32, bool, string) {
	ctrl, ok, state := agree(views, live, func(r *kmsg.MetadataResponse) (int32, error) {
		return r.ControllerID, nil
	}, func(a, b int32) bool { return a == b }, func(c int32) string { return fmt.Sprintf("controller %d", c) })
	if !ok || ctrl < 0 || ctrl == notNode || !live[ctrl] {
		return -1, false, state
	}
	return ctrl, true, state
}
