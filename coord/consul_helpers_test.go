package coord_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/strata-broker/strata/coord"
	"github.com/strata-broker/strata/testenv"
)

// testWriter sends log lines to t.Log until the test's cleanups have run
// (the coordinators' goroutines have stopped by then: Close waits for them).
type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

// testLogger is created before the coordinators it serves, so its cleanup,
// registered first, runs after theirs.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// logBuffer captures log output for tests that assert on it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// cluster is a set of Consul coordinators on one prefix.
type cluster struct {
	t      *testing.T
	agent  *testenv.Consul
	prefix string
	api    *api.Client
}

func newCluster(t *testing.T, agent *testenv.Consul) *cluster {
	if agent == nil {
		agent = testenv.SharedConsul(t)
	}
	cl, err := api.NewClient(&api.Config{Address: agent.Addr})
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, agent: agent, prefix: testPrefix(t), api: cl}
}

func (cl *cluster) open(node int32) *coord.Consul {
	cl.t.Helper()
	return openConsul(cl.t, cl.opts(node))
}

func (cl *cluster) opts(node int32) coord.ConsulOptions {
	return coord.ConsulOptions{Address: cl.agent.Addr, Prefix: cl.prefix, NodeID: node}
}

// get reads a key under the prefix straight from Consul.
func (cl *cluster) get(rel string) *api.KVPair {
	cl.t.Helper()
	p, _, err := cl.api.KV().Get(cl.prefix+rel, nil)
	if err != nil {
		cl.t.Fatal(err)
	}
	return p
}

func (cl *cluster) keys(rel string) []string {
	cl.t.Helper()
	ks, _, err := cl.api.KV().Keys(cl.prefix+rel, "", nil)
	if err != nil {
		cl.t.Fatal(err)
	}
	return ks
}

func (cl *cluster) put(rel, value string) {
	cl.t.Helper()
	if _, err := cl.api.KV().Put(&api.KVPair{Key: cl.prefix + rel, Value: []byte(value)}, nil); err != nil {
		cl.t.Fatal(err)
	}
}

func (cl *cluster) destroySession(id string) {
	cl.t.Helper()
	if _, err := cl.api.Session().Destroy(id, nil); err != nil {
		cl.t.Fatal(err)
	}
}

func register(t *testing.T, c coord.Coordinator, node int32, incarnation string) coord.BrokerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := c.RegisterBroker(ctx, coord.BrokerInfo{NodeID: node, Host: "127.0.0.1", Port: 9092 + node, Incarnation: incarnation})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls cond until it holds or the deadline passes. The condition is
// state another goroutine or process changes; the deadline is generous
// because the machine is shared.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// watch collects c's events.
func watch(t *testing.T, c coord.Coordinator) <-chan coord.Event {
	ch := make(chan coord.Event, 1000)
	cancel := c.Watch(func(e coord.Event) { ch <- e })
	t.Cleanup(cancel)
	return ch
}

// waitEvent returns the first event satisfying match, skipping others.
func waitEvent(t *testing.T, ch <-chan coord.Event, what string, match func(coord.Event) bool) coord.Event {
	t.Helper()
	deadline := time.After(45 * time.Second)
	for {
		select {
		case e := <-ch:
			if match(e) {
				return e
			}
		case <-deadline:
			t.Fatalf("no event %s within 45s", what)
		}
	}
}

func brokerIn(bs []coord.BrokerInfo, node int32) (coord.BrokerInfo, bool) {
	for _, b := range bs {
		if b.NodeID == node {
			return b, true
		}
	}
	return coord.BrokerInfo{}, false
}

func onePartition(leader int32, replicas ...int32) []coord.PartitionMeta {
	return []coord.PartitionMeta{{Leader: leader, Replicas: replicas, ISR: append([]int32(nil), replicas...)}}
}
