package broker_test

import (
	"fmt"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/testenv"
)

// sessionFetcher speaks raw Fetch requests at one version on one
// connection, to drive every KIP-227 path by hand.
type sessionFetcher struct {
	t       *testing.T
	c       *rawConn
	version int16
	topic   string
	id      [16]byte
}

type fetchPart struct {
	partition int32
	offset    int64
}

func (f *sessionFetcher) fetch(sessionID, epoch int32, parts []fetchPart, forget []int32) *kmsg.FetchResponse {
	f.t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxBytes = 1 << 20
	req.SessionID, req.SessionEpoch = sessionID, epoch
	if len(parts) > 0 {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = f.topic, f.id
		for _, p := range parts {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p.partition, p.offset, 1<<20
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	if len(forget) > 0 {
		ft := kmsg.NewFetchRequestForgottenTopic()
		ft.Topic, ft.TopicID, ft.Partitions = f.topic, f.id, forget
		req.ForgottenTopics = append(req.ForgottenTopics, ft)
	}
	body := f.c.request(req, f.version)
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(f.version)
	if err := resp.ReadFrom(body); err != nil {
		f.t.Fatalf("decode fetch v%d response: %v", f.version, err)
	}
	return resp
}

// answered lists a response's partitions as "p:hw:bytes?", sorted.
func answered(resp *kmsg.FetchResponse) string {
	var out []string
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			s := fmt.Sprintf("%d:%d", p.Partition, p.HighWatermark)
			if len(p.RecordBatches) > 0 {
				s += "+data"
			}
			if p.ErrorCode != 0 {
				s += ":" + kerr.ErrorForCode(p.ErrorCode).Error()
			}
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// Every KIP-227 path over the wire, with topic names (v11) and topic ids
// (v13, v16): a session is created by (0, 0), fetched incrementally with
// only changed partitions answered, grows and shrinks, is closed by
// FINAL_EPOCH, and each session error is Kafka's code with no partitions
// and session id 0.
func TestFetchSessionProtocol(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{})
	createTopic(t, b.Addr, "fs", 3, nil)
	cl := newClient(t, b.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := testenv.Context(t, 30*time.Second)
	produce := func(partition int32, n int) {
		for range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "fs", Partition: partition, Value: []byte("x")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, 2)
	produce(1, 1)
	id := topicID(t, cl, "fs")
	for _, version := range []int16{11, 13, 16} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			f := &sessionFetcher{t: t, c: dialRaw(t, b.Addr), version: version, topic: "fs", id: id}
			if version >= 13 {
				f.topic = ""
			}
			hw := func(p int32) int64 { return endOffset(t, cl, "fs", p) }

			// (0, 0): full fetch, new session, every partition answered.
			resp := f.fetch(0, 0, []fetchPart{{0, 0}, {1, hw(1)}}, nil)
			if resp.ErrorCode != 0 || resp.SessionID <= 0 {
				t.Fatalf("new session: %v, id %d", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID)
			}
			sid := resp.SessionID
			if got, want := answered(resp), fmt.Sprintf("0:%d+data 1:%d", hw(0), hw(1)); got != want {
				t.Fatalf("full fetch answered %q, want %q", got, want)
			}

			// Epoch 1, partition 0 moved to its end: nothing changed, so
			// nothing is answered.
			resp = f.fetch(sid, 1, []fetchPart{{0, hw(0)}}, nil)
			if resp.ErrorCode != 0 || resp.SessionID != sid || answered(resp) != "" {
				t.Fatalf("quiet incremental: %v id %d answered %q", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID, answered(resp))
			}
			// New data on partition 1 (the session still fetches it at its
			// cached offset); partition 2 joins.
			produce(1, 1)
			resp = f.fetch(sid, 2, []fetchPart{{2, 0}}, nil)
			if got, want := answered(resp), fmt.Sprintf("1:%d+data 2:0", hw(1)); got != want {
				t.Fatalf("incremental with data and a new partition answered %q, want %q", got, want)
			}
			// Forget partitions 1 and 2; new data on partition 0.
			produce(0, 1)
			resp = f.fetch(sid, 3, nil, []int32{1, 2})
			if got, want := answered(resp), fmt.Sprintf("0:%d+data", hw(0)); got != want {
				t.Fatalf("after forgetting: answered %q, want %q", got, want)
			}

			// Session errors: no partitions, session id 0.
			for _, tc := range []struct {
				name      string
				id, epoch int32
				want      *kerr.Error
			}{
				{"stale epoch", sid, 3, kerr.InvalidFetchSessionEpoch},
				{"future epoch", sid, 9, kerr.InvalidFetchSessionEpoch},
				{"unknown session", sid + 1, 1, kerr.FetchSessionIDNotFound},
				{"incremental without a session", 0, 4, kerr.FetchSessionIDNotFound},
			} {
				resp := f.fetch(tc.id, tc.epoch, []fetchPart{{0, 0}}, nil)
				if resp.ErrorCode != tc.want.Code || len(resp.Topics) != 0 || resp.SessionID != 0 {
					t.Fatalf("%s: %v, %d topics, id %d; want %v", tc.name, kerr.ErrorForCode(resp.ErrorCode), len(resp.Topics), resp.SessionID, tc.want)
				}
			}
			// The errors did not hurt the session: epoch 4 still works.
			if resp := f.fetch(sid, 4, nil, nil); resp.ErrorCode != 0 || resp.SessionID != sid {
				t.Fatalf("epoch 4 after errors: %v id %d", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID)
			}

			// FINAL_EPOCH: a full sessionless fetch that closes the session.
			resp = f.fetch(sid, -1, []fetchPart{{0, 0}}, nil)
			if resp.ErrorCode != 0 || resp.SessionID != 0 || answered(resp) != fmt.Sprintf("0:%d+data", hw(0)) {
				t.Fatalf("final epoch: %v id %d answered %q", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID, answered(resp))
			}
			if resp := f.fetch(sid, 5, nil, nil); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
				t.Fatalf("closed session: %v", kerr.ErrorForCode(resp.ErrorCode))
			}
			// kafka-go's sessionless fetch: id -1, epoch -1.
			resp = f.fetch(-1, -1, []fetchPart{{1, 0}}, nil)
			if resp.ErrorCode != 0 || resp.SessionID != 0 || !strings.HasPrefix(answered(resp), "1:") {
				t.Fatalf("id -1 epoch -1: %v id %d answered %q", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID, answered(resp))
			}
			// (id, 0) closes the old session and opens a new one.
			first := f.fetch(0, 0, []fetchPart{{0, 0}}, nil).SessionID
			second := f.fetch(first, 0, []fetchPart{{0, 0}}, nil).SessionID
			if first <= 0 || second <= 0 || first == second {
				t.Fatalf("reopen: sessions %d then %d", first, second)
			}
			if resp := f.fetch(first, 1, nil, nil); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
				t.Fatalf("replaced session still answers: %v", kerr.ErrorForCode(resp.ErrorCode))
			}
			f.fetch(second, -1, nil, nil)
		})
	}

	// A session made with topic names cannot go on with topic ids, or the
	// other way round.
	byName := &sessionFetcher{t: t, c: dialRaw(t, b.Addr), version: 12, topic: "fs"}
	sid := byName.fetch(0, 0, []fetchPart{{0, 0}}, nil).SessionID
	byID := &sessionFetcher{t: t, c: byName.c, version: 13, id: id}
	if resp := byID.fetch(sid, 1, nil, nil); resp.ErrorCode != kerr.FetchSessionTopicIDError.Code || len(resp.Topics) != 0 {
		t.Fatalf("name session continued by id: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	sid = byID.fetch(0, 0, []fetchPart{{0, 0}}, nil).SessionID
	if resp := byName.fetch(sid, 1, nil, nil); resp.ErrorCode != kerr.FetchSessionTopicIDError.Code {
		t.Fatalf("id session continued by name: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	// Fetch v4–v6 predate sessions: always sessionless.
	old := &sessionFetcher{t: t, c: dialRaw(t, b.Addr), version: 6, topic: "fs"}
	if resp := old.fetch(0, 0, []fetchPart{{0, 0}}, nil); resp.ErrorCode != 0 || !strings.HasPrefix(answered(resp), "0:") {
		t.Fatalf("v6 fetch: %v %q", kerr.ErrorForCode(resp.ErrorCode), answered(resp))
	}

	m := scrapeAll(t, b)
	for _, kind := range []string{"full", "incremental", "sessionless", "error"} {
		if m[`strata_fetch_session_requests_total{kind="`+kind+`"}`] == 0 {
			t.Errorf("no %s fetches counted", kind)
		}
	}
}

// Sessions live in memory: after a restart an incremental fetch of an old
// session is FETCH_SESSION_ID_NOT_FOUND, and the client starts over.
func TestFetchSessionGoneAfterRestart(t *testing.T) {
	dir := t.TempDir()
	b := testenv.StartBroker(t, broker.Options{DataDir: dir})
	createTopic(t, b.Addr, "restart-fs", 1, nil)
	f := &sessionFetcher{t: t, c: dialRaw(t, b.Addr), version: 12, topic: "restart-fs"}
	sid := f.fetch(0, 0, []fetchPart{{0, 0}}, nil).SessionID
	if resp := f.fetch(sid, 1, nil, nil); sid <= 0 || resp.ErrorCode != 0 {
		t.Fatalf("session %d: %v", sid, kerr.ErrorForCode(resp.ErrorCode))
	}
	addr := b.Addr
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	testenv.StartBroker(t, broker.Options{DataDir: dir, Listen: addr})
	f.c = dialRaw(t, addr)
	if resp := f.fetch(sid, 2, nil, nil); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code || resp.SessionID != 0 {
		t.Fatalf("old session after restart: %v id %d", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID)
	}
	if resp := f.fetch(sid, 0, []fetchPart{{0, 0}}, nil); resp.ErrorCode != 0 || resp.SessionID <= 0 {
		t.Fatalf("starting over: %v id %d", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID)
	}
}

// With no session slots the broker never creates a session: (0, 0) is
// answered with session id 0, which tells the client to fetch sessionless.
func TestFetchSessionsDisabled(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{Settings: map[string]string{"max.incremental.fetch.session.cache.slots": "0"}})
	createTopic(t, b.Addr, "nofs", 1, nil)
	f := &sessionFetcher{t: t, c: dialRaw(t, b.Addr), version: 11, topic: "nofs"}
	if resp := f.fetch(0, 0, []fetchPart{{0, 0}}, nil); resp.ErrorCode != 0 || resp.SessionID != 0 || len(resp.Topics) != 1 {
		t.Fatalf("full fetch: %v, id %d", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID)
	}
}

// scrapeAll reads the broker's strata_* samples as name{labels} → value.
func scrapeAll(t *testing.T, b *testenv.InProcess) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	b.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := map[string]float64{}
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if !strings.HasPrefix(l, "strata_") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err == nil {
			out[l[:i]] = v
		}
	}
	return out
}
