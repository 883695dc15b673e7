package group

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/clock"
	"github.com/strata-broker/strata/localstore"
)

// memLog is an in-memory __consumer_offsets partition. Append checks each
// batch as a real log would (length and CRC-32C, per Kafka's RecordBatch v2
// framing) and assigns offsets; Read decodes what was stored. A test can make
// appends fail and hold reads at a gate.
type memLog struct {
	mu        sync.Mutex
	batches   [][]byte
	start     int64
	end       int64
	appends   int
	reads     int
	appendErr error
	// gate, when set, holds every Read until it is closed (or ctx ends);
	// readStarted hears each Read begin.
	gate        chan struct{}
	readStarted chan struct{}
	// epochs is the newest epoch appended per producer id.
	epochs map[int64]int16
}

var _ Log = (*memLog)(nil)

func (l *memLog) Append(ctx context.Context, batch []byte) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appendLocked(batch)
}

// AppendTxn fences producer epochs older than the log has seen, as the real
// partition does; verification is not checked here (the broker's tests do).
func (l *memLog) AppendTxn(ctx context.Context, batch []byte, verification any) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(batch); err != nil {
		return -1, err
	}
	if e, ok := l.epochs[rb.ProducerID]; ok && rb.ProducerEpoch < e {
		return -1, fmt.Errorf("memLog: %w", kerr.InvalidProducerEpoch)
	}
	return l.appendLocked(batch)
}

// appendMarker writes a transaction marker for producerID.
func (l *memLog) appendMarker(producerID int64, epoch int16, commit bool) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	off, err := l.appendLocked(localstore.BuildControlBatch(producerID, epoch, 0, commit, 0))
	if err != nil {
		panic(err)
	}
	return off
}

func (l *memLog) appendLocked(batch []byte) (int64, error) {
	if l.appendErr != nil {
		return -1, l.appendErr
	}
	// Kafka's framing, checked independently of the encoder: length at
	// byte 8 counts what follows it, CRC at 17 covers bytes 21 on.
	if got, want := int(binary.BigEndian.Uint32(batch[8:])), len(batch)-12; got != want {
		return -1, fmt.Errorf("memLog: batch length field %d, want %d", got, want)
	}
	if got, want := binary.BigEndian.Uint32(batch[17:]), crc32.Checksum(batch[21:], crc32.MakeTable(crc32.Castagnoli)); got != want {
		return -1, fmt.Errorf("memLog: bad CRC %x, want %x", got, want)
	}
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(batch); err != nil {
		return -1, err
	}
	base := l.end
	b := append([]byte(nil), batch...)
	binary.BigEndian.PutUint64(b, uint64(l.end))
	l.batches = append(l.batches, b)
	l.end += int64(rb.LastOffsetDelta) + 1
	l.appends++
	if rb.ProducerID >= 0 {
		if l.epochs == nil {
			l.epochs = map[int64]int16{}
		}
		l.epochs[rb.ProducerID] = max(l.epochs[rb.ProducerID], rb.ProducerEpoch)
	}
	return base, nil
}

func (l *memLog) StartOffset() int64 { l.mu.Lock(); defer l.mu.Unlock(); return l.start }
func (l *memLog) EndOffset() int64   { l.mu.Lock(); defer l.mu.Unlock(); return l.end }

func (l *memLog) Read(ctx context.Context, from, upTo int64, fn func(Record)) (int64, error) {
	l.mu.Lock()
	l.reads++
	gate, started := l.gate, l.readStarted
	l.mu.Unlock()
	if started != nil {
		select {
		case started <- struct{}{}:
		default:
		}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return from, ctx.Err()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	next := from
	for _, b := range l.batches {
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b); err != nil {
			return next, err
		}
		if rb.FirstOffset < from || rb.FirstOffset >= upTo {
			continue
		}
		recs, err := decodeTestRecords(rb.Records, int(rb.NumRecords))
		if err != nil {
			return next, err
		}
		for i, r := range recs {
			r.Offset = rb.FirstOffset + int64(i)
			r.ProducerID = rb.ProducerID
			r.Transactional = rb.Attributes&0x10 != 0
			if rb.Attributes&0x20 != 0 {
				var k kmsg.ControlRecordKey
				if err := k.ReadFrom(r.Key); err != nil {
					return next, err
				}
				r = Record{Offset: r.Offset, ProducerID: rb.ProducerID, Control: true, Commit: k.Type == 1}
			}
			fn(r)
		}
		next = rb.FirstOffset + int64(rb.LastOffsetDelta) + 1
	}
	return next, nil
}

func (l *memLog) counts() (appends, reads int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appends, l.reads
}

func (l *memLog) setAppendErr(err error) {
	l.mu.Lock()
	l.appendErr = err
	l.mu.Unlock()
}

// records returns every stored record in order (for checking what was written).
func (l *memLog) records(t *testing.T) []Record {
	t.Helper()
	var out []Record
	if _, err := l.Read(context.Background(), l.StartOffset(), l.EndOffset(), func(r Record) { out = append(out, r) }); err != nil {
		t.Fatal(err)
	}
	return out
}

// decodeTestRecords splits an uncompressed records section.
func decodeTestRecords(b []byte, n int) ([]Record, error) {
	var out []Record
	for i := 0; i < n; i++ {
		l, ln := kbin.Varint(b)
		if ln <= 0 || l < 0 || int(l) > len(b)-ln {
			return nil, errors.New("bad record length")
		}
		var rec kmsg.Record
		if err := rec.ReadFrom(b[:ln+int(l)]); err != nil {
			return nil, err
		}
		out = append(out, Record{Key: rec.Key, Value: rec.Value})
		b = b[ln+int(l):]
	}
	return out, nil
}

// memHost is a broker with n __consumer_offsets partitions, some topics and
// their high watermarks.
type memHost struct {
	mu     sync.Mutex
	logs   []*memLog
	topics map[string]int32
	hw     map[string]int64
}

var _ Host = (*memHost)(nil)

func newMemHost(partitions int) *memHost {
	h := &memHost{topics: map[string]int32{"t": 4}, hw: map[string]int64{}}
	for i := 0; i < partitions; i++ {
		h.logs = append(h.logs, &memLog{})
	}
	return h
}

func (h *memHost) OffsetsPartitions(context.Context) (int32, error) { return int32(len(h.logs)), nil }

func (h *memHost) OffsetsLog(p int32) Log {
	if p < 0 || int(p) >= len(h.logs) {
		return nil
	}
	return h.logs[p]
}

func (h *memHost) TopicPartitions(topic string) int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.topics[topic]
}

func (h *memHost) HighWatermark(topic string, p int32) (int64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hw, ok := h.hw[fmt.Sprintf("%s/%d", topic, p)]
	return hw, ok
}

func (h *memHost) setHW(topic string, p int32, hw int64) {
	h.mu.Lock()
	h.hw[fmt.Sprintf("%s/%d", topic, p)] = hw
	h.mu.Unlock()
}

// fixture is a coordinator on a fake clock over a memHost.
type fixture struct {
	t     *testing.T
	clock *clock.Fake
	host  *memHost
	reg   *prometheus.Registry
	c     *Coordinator
	// loads hears each finished or abandoned load.
	loads chan loadEvent
}

type loadEvent struct {
	partition int32
	installed bool
}

var epoch0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testOptions(h *memHost, clk clock.Clock, reg prometheus.Registerer) Options {
	return Options{
		Host:                   h,
		Clock:                  clk,
		Logger:                 slog.New(slog.NewTextHandler(io.Discard, nil)),
		MinSessionTimeout:      time.Second,
		MaxSessionTimeout:      time.Minute,
		OffsetsRetention:       time.Hour,
		RetentionCheckInterval: time.Minute,
		Registerer:             reg,
	}
}

// newFixture starts a coordinator elected for every partition (all empty,
// so ready at once unless the test wrote to a log first).
func newFixture(t *testing.T, h *memHost, mod func(*Options)) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: clock.NewFake(epoch0), host: h, reg: prometheus.NewRegistry(), loads: make(chan loadEvent, 64)}
	opts := testOptions(h, f.clock, f.reg)
	if mod != nil {
		mod(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	c.loadDone = func(p int32, installed bool) { f.loads <- loadEvent{p, installed} }
	f.c = c
	t.Cleanup(c.Close)
	for p := range h.logs {
		c.Elected(int32(p), 0)
	}
	return f
}

// waitLoad waits for the loader to finish or abandon partition p.
func (f *fixture) waitLoad(p int32) bool {
	f.t.Helper()
	for {
		select {
		case ev := <-f.loads:
			if ev.partition == p {
				return ev.installed
			}
		case <-time.After(10 * time.Second):
			f.t.Fatalf("partition %d never finished loading", p)
		}
	}
}

var ctx = context.Background()

// joinReq is a consumer-protocol JoinGroup v3 (no KIP-394 round trip, so a
// new member parks at once).
func joinReq(groupID, member string, session, rebalance time.Duration) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = 3
	req.Group, req.MemberID, req.ProtocolType = groupID, member, "consumer"
	req.SessionTimeoutMillis = int32(session / time.Millisecond)
	req.RebalanceTimeoutMillis = int32(rebalance / time.Millisecond)
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = []string{"t"}
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name, p.Metadata = "range", meta.AppendTo(nil)
	req.Protocols = append(req.Protocols, p)
	return req
}

// join starts a JoinGroup and returns its answer channel (already answered
// when the coordinator answers at once).
func (f *fixture) join(req *kmsg.JoinGroupRequest) <-chan *kmsg.JoinGroupResponse {
	f.t.Helper()
	resp, wait := f.c.startJoin(ctx, req, "client", "/127.0.0.1")
	if resp != nil {
		ch := make(chan *kmsg.JoinGroupResponse, 1)
		ch <- resp
		return ch
	}
	return wait
}

func (f *fixture) sync(groupID, member string, gen int32, assign map[string][]byte) <-chan *kmsg.SyncGroupResponse {
	f.t.Helper()
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = 5
	req.Group, req.MemberID, req.Generation = groupID, member, gen
	for m, a := range assign {
		ga := kmsg.NewSyncGroupRequestGroupAssignment()
		ga.MemberID, ga.MemberAssignment = m, a
		req.GroupAssignment = append(req.GroupAssignment, ga)
	}
	resp, wait := f.c.startSync(ctx, req)
	if resp != nil {
		ch := make(chan *kmsg.SyncGroupResponse, 1)
		ch <- resp
		return ch
	}
	return wait
}

func (f *fixture) heartbeat(groupID, member string, gen int32) *kerr.Error {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation = groupID, member, gen
	return errFor(f.c.Heartbeat(ctx, req).ErrorCode)
}

func (f *fixture) describe(groupID string) kmsg.DescribeGroupsResponseGroup {
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Version = 5
	req.Groups = []string{groupID}
	return f.c.DescribeGroups(ctx, req).Groups[0]
}

// commit commits offsets as an admin (generation -1) or as a member.
func (f *fixture) commit(groupID, member string, gen int32, topic string, offsets map[int32]int64) []*kerr.Error {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 8
	req.Group, req.MemberID, req.Generation = groupID, member, gen
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	for p, o := range offsets {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p, o
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	var out []*kerr.Error
	for _, p := range f.c.OffsetCommit(ctx, req).Topics[0].Partitions {
		out = append(out, errFor(p.ErrorCode))
	}
	return out
}

// fetch returns a group's committed offsets for topic (v8), or its error.
func (f *fixture) fetch(groupID string) (map[string]map[int32]int64, *kerr.Error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 8
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = groupID
	req.Groups = append(req.Groups, rg)
	g := f.c.OffsetFetch(ctx, req).Groups[0]
	if g.ErrorCode != 0 {
		return nil, errFor(g.ErrorCode)
	}
	out := map[string]map[int32]int64{}
	for _, t := range g.Topics {
		out[t.Topic] = map[int32]int64{}
		for _, p := range t.Partitions {
			out[t.Topic][p.Partition] = p.Offset
		}
	}
	return out, nil
}

// errFor is kerr.ErrorForCode with errNone for 0, so results compare by ==.
func errFor(code int16) *kerr.Error {
	if code == 0 {
		return errNone
	}
	return kerr.ErrorForCode(code).(*kerr.Error)
}

// recv returns what ch holds now, or nil: after a fake-clock step every
// timer due has already run, so "nothing yet" is a definite answer.
func recv[T any](ch <-chan T) (T, bool) {
	select {
	case v := <-ch:
		return v, true
	default:
		var zero T
		return zero, false
	}
}

func mustRecv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	v, ok := recv(ch)
	if !ok {
		t.Fatalf("%s: no answer yet", what)
	}
	return v
}

func wantErr(t *testing.T, what string, got, want *kerr.Error) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

// idOnPartition finds a group id hashing to partition p.
func idOnPartition(t *testing.T, p, n int32, prefix string) string {
	t.Helper()
	for i := 0; i < 10000; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if partitionFor(id, n) == p {
			return id
		}
	}
	t.Fatalf("no group id on partition %d", p)
	return ""
}

// Request builders for tests that call the Coordinator from many goroutines.

func syncFor(groupID, member string, gen int32) *kmsg.SyncGroupRequest {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = 5
	req.Group, req.MemberID, req.Generation = groupID, member, gen
	ga := kmsg.NewSyncGroupRequestGroupAssignment()
	ga.MemberID, ga.MemberAssignment = member, []byte{1}
	req.GroupAssignment = append(req.GroupAssignment, ga)
	return req
}

func heartbeatFor(groupID, member string, gen int32) *kmsg.HeartbeatRequest {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation = groupID, member, gen
	return req
}

func commitFor(groupID, member string, gen int32, offset int64) *kmsg.OffsetCommitRequest {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 8
	req.Group, req.MemberID, req.Generation = groupID, member, gen
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 0, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func leaveFor(groupID, member string) *kmsg.LeaveGroupRequest {
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version = 5
	req.Group = groupID
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = member
	req.Members = append(req.Members, m)
	return req
}
