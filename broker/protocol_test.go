package broker_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/clock"
	"github.com/strata-broker/strata/testenv"
)

// rawConn speaks the Kafka framing directly, for requests no client would send.
type rawConn struct {
	t  *testing.T
	nc net.Conn
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, nc: nc}
}

func (c *rawConn) writeFrame(body []byte) {
	c.t.Helper()
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	if _, err := c.nc.Write(append(frame, body...)); err != nil {
		c.t.Fatal(err)
	}
}

// request sends a kmsg request with header v1/v2 and returns the response body
// after the correlation id (and header tags when flexible).
func (c *rawConn) request(req kmsg.Request, version int16) []byte {
	c.t.Helper()
	req.SetVersion(version)
	var body []byte
	body = binary.BigEndian.AppendUint16(body, uint16(req.Key()))
	body = binary.BigEndian.AppendUint16(body, uint16(version))
	body = binary.BigEndian.AppendUint32(body, 7)
	body = binary.BigEndian.AppendUint16(body, 4)
	body = append(body, "test"...)
	if req.IsFlexible() {
		body = append(body, 0)
	}
	body = req.AppendTo(body)
	c.writeFrame(body)
	return c.readResponse(req.IsFlexible() && req.Key() != kmsg.ApiVersions.Int16())
}

func (c *rawConn) readResponse(flexibleHeader bool) []byte {
	c.t.Helper()
	var sz [4]byte
	if _, err := io.ReadFull(c.nc, sz[:]); err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(sz[:]))
	if _, err := io.ReadFull(c.nc, b); err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	if binary.BigEndian.Uint32(b) != 7 {
		c.t.Fatalf("correlation id %d", binary.BigEndian.Uint32(b))
	}
	b = b[4:]
	if flexibleHeader {
		b = b[1:]
	}
	return b
}

// expectClosed checks the broker closed the connection.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.nc.Read(make([]byte, 1))
	if n != 0 || !(errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)) {
		c.t.Fatalf("expected the broker to close the connection, got n=%d err=%v", n, err)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

func TestBadFramesCloseTheConnection(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{Settings: map[string]string{"socket.request.max.bytes": "65536"}})
	cases := map[string][]byte{
		"size too small":      {0, 0, 0, 3, 1, 2, 3},
		"negative size":       {0xff, 0xff, 0xff, 0xf0},
		"over socket max":     {0, 0x10, 0, 0},
		"unknown api key":     frameOf(0x7f00, 0, nil),
		"unsupported version": frameOf(0, 2, nil), // Produce v2: pre-RecordBatch
		"truncated body":      frameOf(3, 9, []byte{0xff}),
		"huge array length":   frameOf(3, 1, []byte{0x7f, 0xff, 0xff, 0xff, 0, 1}),
		"huge string length":  frameOf(3, 1, []byte{0, 0, 0, 1, 0x7f, 0xff}),
	}
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, b.Addr)
			c.nc.Write(frame)
			c.expectClosed()
		})
	}
	// The broker still serves well-formed clients afterwards.
	createTopic(t, b.Addr, "still-alive", 1, nil)
}

func frameOf(key, version int16, body []byte) []byte {
	var f []byte
	f = binary.BigEndian.AppendUint16(f, uint16(key))
	f = binary.BigEndian.AppendUint16(f, uint16(version))
	f = binary.BigEndian.AppendUint32(f, 7)
	f = binary.BigEndian.AppendUint16(f, 0xffff) // null client id
	f = append(f, body...)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(f))), f...)
}

func TestApiVersionsUnsupportedVersionFallback(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{})
	c := dialRaw(t, b.Addr)
	// A client from the future asks with v99: Kafka answers in v0 with
	// UNSUPPORTED_VERSION and its ranges (KIP-511).
	c.writeFrame(frameOf(18, 99, nil)[4:])
	body := c.readResponse(false)
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("error code %d, want UNSUPPORTED_VERSION", resp.ErrorCode)
	}
	found := false
	for _, k := range resp.ApiKeys {
		if k.ApiKey == 0 && k.MinVersion == 3 {
			found = true
		}
	}
	if !found {
		t.Fatalf("produce (key 0, min v3) missing from %+v", resp.ApiKeys)
	}
	// The flexible form works on the same connection.
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName, req.ClientSoftwareVersion = "strata-test", "1.0"
	body = c.request(req, 3)
	resp = kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(3)
	if err := resp.ReadFrom(body); err != nil || resp.ErrorCode != 0 || len(resp.ApiKeys) < 10 {
		t.Fatalf("v3 ApiVersions: err=%v code=%d keys=%d", err, resp.ErrorCode, len(resp.ApiKeys))
	}
}

// produceRaw sends one batch for topic-0 with the given acks via a raw connection.
func produceRaw(t *testing.T, c *rawConn, topic string, partition int32, records []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	body := c.request(req, 9)
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(9)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0]
}

func TestProduceRejectsBadBatches(t *testing.T) {
	now := time.Now()
	b := testenv.StartBroker(t, broker.Options{Clock: clock.WithNow(func() time.Time { return now })})
	maxBytes := "2048"
	createTopic(t, b.Addr, "strict", 1, map[string]*string{"max.message.bytes": &maxBytes})
	c := dialRaw(t, b.Addr)
	good := makeBatch(batchSpec{values: [][]byte{[]byte("a"), []byte("b")}, timestamp: now.UnixMilli()})

	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-2] ^= 0x40
	wrongCount := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(wrongCount[57:], 3) // NumRecords 3 but only two records, CRC still fine? recompute below
	fixCRC(wrongCount)

	cases := []struct {
		name    string
		records []byte
		want    *kerr.Error
	}{
		{"flipped byte", flipped, kerr.CorruptMessage},
		{"truncated", good[:len(good)-5], kerr.CorruptMessage},
		{"two batches", append(append([]byte(nil), good...), good...), kerr.InvalidRecord},
		{"record count mismatch", wrongCount, kerr.InvalidRecord},
		{"too large", makeBatch(batchSpec{values: [][]byte{bytes.Repeat([]byte("x"), 4096)}, timestamp: now.UnixMilli()}), kerr.MessageTooLarge},
		{"timestamp 2h ahead", makeBatch(batchSpec{values: [][]byte{[]byte("future")}, timestamp: now.Add(2 * time.Hour).UnixMilli()}), kerr.InvalidTimestamp},
		{"not a batch", []byte("hello, this is not a record batch at all, not at all......................"), kerr.CorruptMessage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := produceRaw(t, c, "strict", 0, tc.records)
			if p.ErrorCode != tc.want.Code {
				t.Fatalf("error %v, want %v", kerr.ErrorForCode(p.ErrorCode), tc.want)
			}
			if p.ErrorMessage == nil || *p.ErrorMessage == "" {
				t.Fatalf("no error message")
			}
		})
	}
	if p := produceRaw(t, c, "nope", 0, good); p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown topic: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	if p := produceRaw(t, c, "strict", 5, good); p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown partition: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	// Nothing bad was stored: the good batch lands at offset 0.
	if p := produceRaw(t, c, "strict", 0, good); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("good batch: %v at %d", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	recs := consumeAll(t, b.Addr, "strict", 2)
	if len(recs) != 2 || string(recs[0].Value) != "a" || string(recs[1].Value) != "b" {
		t.Fatalf("stored records: %v", recs)
	}
}

func fixCRC(b []byte) {
	binary.BigEndian.PutUint32(b[17:], crcC(b[21:]))
}

func TestIdempotentSequences(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{})
	createTopic(t, b.Addr, "idem", 1, nil)
	c := dialRaw(t, b.Addr)
	init := kmsg.NewPtrInitProducerIDRequest()
	body := c.request(init, 4)
	ir := kmsg.NewPtrInitProducerIDResponse()
	ir.SetVersion(4)
	if err := ir.ReadFrom(body); err != nil || ir.ErrorCode != 0 {
		t.Fatalf("init producer id: %v %d", err, ir.ErrorCode)
	}
	pid, epoch := ir.ProducerID, ir.ProducerEpoch
	ts := time.Now().UnixMilli()
	batch := func(seq int32, n int) []byte {
		vals := make([][]byte, n)
		for i := range vals {
			vals[i] = []byte{byte('a' + i)}
		}
		return makeBatch(batchSpec{values: vals, timestamp: ts, producerID: pid, producerEpoch: epoch, baseSequence: seq})
	}
	steps := []struct {
		name       string
		records    []byte
		wantErr    *kerr.Error
		wantOffset int64
	}{
		{"first", batch(0, 3), nil, 0},
		{"next", batch(3, 2), nil, 3},
		{"retry of first is a duplicate", batch(0, 3), nil, 0},
		{"retry of last is a duplicate", batch(3, 2), nil, 3},
		{"gap", batch(7, 1), kerr.OutOfOrderSequenceNumber, -1},
		{"in order again", batch(5, 1), nil, 5},
	}
	for _, s := range steps {
		p := produceRaw(t, c, "idem", 0, s.records)
		want := int16(0)
		if s.wantErr != nil {
			want = s.wantErr.Code
		}
		if p.ErrorCode != want {
			t.Fatalf("%s: error %v, want %v", s.name, kerr.ErrorForCode(p.ErrorCode), s.wantErr)
		}
		if s.wantErr == nil && p.BaseOffset != s.wantOffset {
			t.Fatalf("%s: base offset %d, want %d", s.name, p.BaseOffset, s.wantOffset)
		}
	}
	// A newer epoch must restart at sequence 0.
	bumped := makeBatch(batchSpec{values: [][]byte{[]byte("z")}, timestamp: ts, producerID: pid, producerEpoch: epoch + 1, baseSequence: 9})
	if p := produceRaw(t, c, "idem", 0, bumped); p.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("new epoch at sequence 9: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	bumped = makeBatch(batchSpec{values: [][]byte{[]byte("z")}, timestamp: ts, producerID: pid, producerEpoch: epoch + 1, baseSequence: 0})
	if p := produceRaw(t, c, "idem", 0, bumped); p.ErrorCode != 0 || p.BaseOffset != 6 {
		t.Fatalf("new epoch at 0: %v at %d", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	// The old epoch is now fenced.
	if p := produceRaw(t, c, "idem", 0, batch(6, 1)); p.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("old epoch: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	recs := consumeAll(t, b.Addr, "idem", 7)
	if len(recs) != 7 {
		t.Fatalf("stored %d records, want 6 (duplicates must not be stored)", len(recs))
	}
}

func TestFetchLongPollWokenByProduce(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{})
	createTopic(t, b.Addr, "poll", 1, nil)
	cl := newClient(t, b.Addr)
	ctx := testenv.Context(t, 60*time.Second)
	id := topicID(t, cl, "poll")
	done := make(chan *kmsg.FetchResponse, 1)
	go func() {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis = 45000
		req.MinBytes = 1
		req.MaxBytes = 1 << 20
		req.SessionEpoch = -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "poll", id
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	// Produce once the fetch is parked; the fetch must come back with the
	// record long before its 45 s max wait.
	time.Sleep(200 * time.Millisecond)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "poll", Value: []byte("wake up")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case resp := <-done:
		if resp == nil {
			t.Fatal("fetch failed")
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || len(p.RecordBatches) == 0 || p.HighWatermark != 1 {
			t.Fatalf("fetch: error %d, %d bytes, hw %d", p.ErrorCode, len(p.RecordBatches), p.HighWatermark)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("long-poll fetch was not woken by the produce")
	}
}

func TestFetchErrors(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{})
	createTopic(t, b.Addr, "fe", 1, nil)
	cl := newClient(t, b.Addr)
	ctx := testenv.Context(t, 30*time.Second)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "fe", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	id := topicID(t, cl, "fe")
	fetch := func(offset int64, sessionID int32) *kmsg.FetchResponse {
		req := kmsg.NewPtrFetchRequest()
		req.MaxBytes = 1 << 20
		req.SessionID = sessionID
		req.SessionEpoch = -1
		if sessionID != 0 {
			req.SessionEpoch = 1
		}
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "fe", id
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.FetchOffset = offset
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if p := fetch(5, 0).Topics[0].Partitions[0]; p.ErrorCode != kerr.OffsetOutOfRange.Code || p.HighWatermark != 1 {
		t.Fatalf("fetch past the end: %v hw %d", kerr.ErrorForCode(p.ErrorCode), p.HighWatermark)
	}
	if r := fetch(0, 12345); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("unknown session: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if p := fetch(1, 0).Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.RecordBatches) != 0 {
		t.Fatalf("fetch at the end: %v, %d bytes", kerr.ErrorForCode(p.ErrorCode), len(p.RecordBatches))
	}
}

func topicID(t *testing.T, cl *kgo.Client, name string) [16]byte {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = &name
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testenv.Context(t, 10*time.Second), cl)
	if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("metadata for %s: %v", name, err)
	}
	return resp.Topics[0].TopicID
}
