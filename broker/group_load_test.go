package broker

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestGroupPartitionIsKafkas(t *testing.T) {
	for _, c := range []struct {
		id   string
		hash int32
		part int32
	}{
		{"", 0, 0},
		{"hello", 99162322, 22},
		// Java's "polygenelubricants".hashCode() is Integer.MIN_VALUE,
		// which Kafka's Utils.abs maps to 0.
		{"polygenelubricants", -1 << 31, 0},
		{"\U0001F600", 0xD83D*31 + 0xDE00, 49}, // a surrogate pair: hashed as two UTF-16 units
	} {
		if h := javaStringHashCode(c.id); h != c.hash {
			t.Errorf("hashCode(%q) = %d, want %d", c.id, h, c.hash)
		}
		if p := groupPartition(c.id, 50); p != c.part {
			t.Errorf("partition(%q) = %d, want %d", c.id, p, c.part)
		}
	}
}

func TestGroupRecordsRoundTrip(t *testing.T) {
	md := new(kmsg.GroupMetadataValue)
	md.Default()
	md.ProtocolType, md.Generation, md.Protocol, md.Leader = "consumer", 7, kmsg.StringPtr("range"), kmsg.StringPtr("m1")
	m := kmsg.NewGroupMetadataValueMember()
	m.MemberID, m.InstanceID, m.SessionTimeoutMillis, m.Assignment = "m1", kmsg.StringPtr("i1"), 10000, []byte{1, 2}
	md.Members = append(md.Members, m)
	batch := buildGroupBatch([]groupRecord{
		offsetCommitRecord("g", "t", 3, committedOffset{offset: 42, leaderEpoch: 5, metadata: "md", commitTime: 1000, expireTime: -1}),
		offsetCommitRecord("g", "t", 4, committedOffset{offset: 9, leaderEpoch: -1, commitTime: 1000, expireTime: 5000}),
		groupMetadataRecord("g", md),
		offsetCommitRecord("gone", "t", 0, committedOffset{offset: 1, expireTime: -1}),
		offsetTombstone("gone", "t", 0),
	}, 1000)
	r := newGroupReplay()
	next, err := r.replay(batch)
	if err != nil || next != 5 || r.bad != 0 {
		t.Fatalf("replay: next %d, bad %d, err %v", next, r.bad, err)
	}
	g := r.groups["g"]
	if o := g.offsets["t"][3]; o.offset != 42 || o.leaderEpoch != 5 || o.metadata != "md" || o.expireTime != -1 {
		t.Fatalf("offset 3: %+v", o)
	}
	if o := g.offsets["t"][4]; o.offset != 9 || o.expireTime != 5000 {
		t.Fatalf("offset 4 (value v1 with expiry): %+v", o)
	}
	if g.metadata == nil || g.metadata.Generation != 7 || *g.metadata.Members[0].InstanceID != "i1" {
		t.Fatalf("metadata: %+v", g.metadata)
	}
	if len(r.groups["gone"].offsets) != 0 {
		t.Fatalf("tombstoned offset survived: %+v", r.groups["gone"].offsets)
	}
}

// FuzzGroupRecords feeds garbage to the __consumer_offsets loader: it may
// skip records, never panic.
func FuzzGroupRecords(f *testing.F) {
	md := new(kmsg.GroupMetadataValue)
	md.Default()
	md.Members = []kmsg.GroupMetadataValueMember{kmsg.NewGroupMetadataValueMember()}
	f.Add(buildGroupBatch([]groupRecord{
		offsetCommitRecord("g", "t", 0, committedOffset{offset: 1, expireTime: -1}),
		groupMetadataRecord("g", md),
		groupTombstone("g"),
	}, 1))
	f.Add(offsetCommitRecord("g", "t", 1, committedOffset{offset: 1, expireTime: 3}).value)
	f.Fuzz(func(t *testing.T, b []byte) {
		r := newGroupReplay()
		r.replay(b)
		// The same bytes as a bare key and value, split anywhere.
		for i := 0; i <= len(b) && i < 64; i++ {
			r.apply(b[:i], b[i:])
		}
	})
}

// startTestBroker runs a broker in this package (testenv would import us).
func startTestBroker(t *testing.T, dir string, settings map[string]string) *Broker {
	t.Helper()
	b, err := New(Options{DataDir: dir, Listen: "127.0.0.1:0", Settings: settings, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { b.Serve(); close(done) }()
	t.Cleanup(func() { b.Close(); <-done })
	return b
}

func offsetFetch(t *testing.T, b *Broker, group string) kmsg.OffsetFetchResponseGroup {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	req.Groups = append(req.Groups, rg)
	resp, err := handleOffsetFetch(&conn{b: b, log: b.log}, &reqHeader{version: 8}, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*kmsg.OffsetFetchResponse).Groups[0]
}

// TestGroupLoadInProgress: after a restart, a group whose __consumer_offsets
// partition is still loading answers COORDINATOR_LOAD_IN_PROGRESS, then its
// offsets once loaded.
func TestGroupLoadInProgress(t *testing.T) {
	dir := t.TempDir()
	settings := map[string]string{"offsets.topic.num.partitions": "3"}
	b := startTestBroker(t, dir, settings)
	if _, err := handleCreateTopics(&conn{b: b, log: b.log}, &reqHeader{version: 4}, func() kmsg.Request {
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "t", 1, 1
		req.Topics = append(req.Topics, rt)
		return req
	}()); err != nil {
		t.Fatal(err)
	}
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group = "loading-group"
	ct := kmsg.NewOffsetCommitRequestTopic()
	ct.Topic = "t"
	cp := kmsg.NewOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset = 0, 17
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	resp, err := handleOffsetCommit(&conn{b: b, log: b.log}, &reqHeader{version: 8}, commit)
	if err != nil || resp.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("commit: %v %+v", err, resp)
	}
	b.Close()

	release := make(chan struct{})
	groupLoadHook = func(int32) { <-release }
	defer func() { groupLoadHook = nil }()
	b2 := startTestBroker(t, dir, settings)
	if g := offsetFetch(t, b2, "loading-group"); g.ErrorCode != kerr.CoordinatorLoadInProgress.Code {
		t.Fatalf("while loading: %v", kerr.ErrorForCode(g.ErrorCode))
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := offsetFetch(t, b2, "loading-group")
		if g.ErrorCode == 0 {
			if len(g.Topics) != 1 || g.Topics[0].Partitions[0].Offset != 17 {
				t.Fatalf("after loading: %+v", g)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %v after 10s", kerr.ErrorForCode(g.ErrorCode))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
