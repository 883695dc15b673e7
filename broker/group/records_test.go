package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/kafkahash"
)

func TestPartitionForIsKafkas(t *testing.T) {
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
		if h := kafkahash.JavaStringHashCode(c.id); h != c.hash {
			t.Errorf("hashCode(%q) = %d, want %d", c.id, h, c.hash)
		}
		if p := partitionFor(c.id, 50); p != c.part {
			t.Errorf("partition(%q) = %d, want %d", c.id, p, c.part)
		}
	}
}

// TestRecordsRoundTrip: a batch the coordinator builds passes a log's
// framing checks (memLog.Append) and replays to the state it encodes, with
// the newest record per key winning and tombstones deleting.
func TestRecordsRoundTrip(t *testing.T) {
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
	l := &memLog{}
	if _, err := l.Append(ctx, batch); err != nil {
		t.Fatal(err)
	}
	r := newGroupReplay()
	next, err := l.Read(ctx, 0, l.EndOffset(), r.record)
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

// TestReplaySkipsUndecodableAndFutureRecords: garbage keys are counted and
// skipped; KIP-848 record types (key version ≥ 3) are skipped silently.
func TestReplaySkipsUndecodableAndFutureRecords(t *testing.T) {
	r := newGroupReplay()
	r.apply([]byte{0}, nil)                       // too short for a version
	r.apply([]byte{0xff, 0xff, 1, 2}, []byte{1})  // negative version
	r.apply([]byte{0, 1, 0, 9}, nil)              // offset key cut short
	r.apply([]byte{0, 5, 'x'}, []byte("ignored")) // a newer record type
	good := offsetCommitRecord("g", "t", 0, committedOffset{offset: 3, expireTime: -1})
	r.apply(good.key, good.value)
	if r.bad != 3 || len(r.groups) != 1 || r.groups["g"].offsets["t"][0].offset != 3 {
		t.Fatalf("bad %d, groups %+v", r.bad, r.groups)
	}
}

// FuzzGroupRecord feeds garbage keys and values to the replay: it may skip
// records, never panic.
func FuzzGroupRecord(f *testing.F) {
	md := new(kmsg.GroupMetadataValue)
	md.Default()
	md.Members = []kmsg.GroupMetadataValueMember{kmsg.NewGroupMetadataValueMember()}
	for _, r := range []groupRecord{
		offsetCommitRecord("g", "t", 0, committedOffset{offset: 1, expireTime: -1}),
		offsetCommitRecord("g", "t", 1, committedOffset{offset: 1, expireTime: 3}),
		groupMetadataRecord("g", md),
		groupTombstone("g"),
	} {
		f.Add(r.key, r.value)
	}
	f.Fuzz(func(t *testing.T, key, value []byte) {
		r := newGroupReplay()
		r.apply(key, value)
		if len(value) == 0 {
			r.apply(key, nil) // as a tombstone
		}
	})
}
