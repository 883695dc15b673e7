package broker_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/clock"
	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/testenv"
)

// Raw-protocol tests of the transaction APIs: kmsg requests at chosen
// versions, one per error path, against a single in-process broker.

// rawDo sends req at version and decodes the response.
func rawDo[R kmsg.Response](t *testing.T, c *rawConn, req kmsg.Request, version int16) R {
	t.Helper()
	body := c.request(req, version)
	resp := req.ResponseKind()
	resp.SetVersion(version)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("decode %s v%d response: %v", kmsg.NameForKey(req.Key()), version, err)
	}
	return resp.(R)
}

// retriable are the codes a client retries while the coordinator gets
// ready (the topic being created, a partition loading, markers in flight).
var retriable = map[int16]bool{
	kerr.CoordinatorNotAvailable.Code:   true,
	kerr.CoordinatorLoadInProgress.Code: true,
	kerr.ConcurrentTransactions.Code:    true,
	kerr.NotCoordinator.Code:            true,
}

// untilSettled repeats f while it answers a retriable code (bounded; the
// coordinator's own work finishes in milliseconds on one node) and returns
// the first other code.
func untilSettled(t *testing.T, what string, f func() int16) int16 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code := f()
		if !retriable[code] {
			return code
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after 30s", what, kerr.ErrorForCode(code))
		}
		time.Sleep(20 * time.Millisecond) // a client's retry backoff
	}
}

// expectCode checks an error code; want nil means success. It goes on after
// a mismatch so one run reports every wrong path.
func expectCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	w := int16(0)
	if want != nil {
		w = want.Code
	}
	if got != w {
		t.Errorf("%s: got %v, want %v", what, kerr.ErrorForCode(got), kerr.ErrorForCode(w))
	}
}

// initTxnRaw runs InitProducerId v4 for id until it settles.
func initTxnRaw(t *testing.T, c *rawConn, id string) (int64, int16) {
	t.Helper()
	var resp *kmsg.InitProducerIDResponse
	code := untilSettled(t, "init "+id, func() int16 {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = strp(id), 60000
		resp = rawDo[*kmsg.InitProducerIDResponse](t, c, req, 4)
		return resp.ErrorCode
	})
	if code != 0 {
		t.Fatalf("init %s: %v", id, kerr.ErrorForCode(code))
	}
	return resp.ProducerID, resp.ProducerEpoch
}

func addPartitionsRaw(t *testing.T, c *rawConn, version int16, id string, pid int64, epoch int16, topic string, parts ...int32) map[int32]int16 {
	t.Helper()
	out := map[int32]int16{}
	untilSettled(t, "add partitions", func() int16 {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch = id, pid, epoch
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = topic, parts
		req.Topics = append(req.Topics, rt)
		resp := rawDo[*kmsg.AddPartitionsToTxnResponse](t, c, req, version)
		var first int16
		for _, st := range resp.Topics {
			for _, sp := range st.Partitions {
				out[sp.Partition] = sp.ErrorCode
				first = sp.ErrorCode
			}
		}
		return first
	})
	return out
}

func endTxnRaw(t *testing.T, c *rawConn, version int16, id string, pid int64, epoch int16, commit bool) int16 {
	t.Helper()
	return untilSettled(t, "end txn", func() int16 {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = id, pid, epoch, commit
		return rawDo[*kmsg.EndTxnResponse](t, c, req, version).ErrorCode
	})
}

// produceTxnRaw sends one batch with the given transactional id (nil for
// none) at a produce version.
func produceTxnRaw(t *testing.T, c *rawConn, version int16, txnID *string, topic string, partition int32, records []byte) int16 {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis, req.TransactionID = -1, 5000, txnID
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return rawDo[*kmsg.ProduceResponse](t, c, req, version).Topics[0].Partitions[0].ErrorCode
}

func fetchRaw(t *testing.T, c *rawConn, topic string, partition int32, isolation int8) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.MaxBytes, req.IsolationLevel = 1<<20, isolation
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.PartitionMaxBytes = partition, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return rawDo[*kmsg.FetchResponse](t, c, req, 11).Topics[0].Partitions[0]
}

func listLatestRaw(t *testing.T, c *rawConn, topic string, partition int32, isolation int8) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = partition, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	sp := rawDo[*kmsg.ListOffsetsResponse](t, c, req, 7).Topics[0].Partitions[0]
	if sp.ErrorCode != 0 {
		t.Fatalf("list offsets: %v", kerr.ErrorForCode(sp.ErrorCode))
	}
	return sp.Offset
}

// TestTxnRawInitProducerID covers InitProducerId's errors and the epoch
// bump that fences an older instance.
func TestTxnRawInitProducerID(t *testing.T) {
	b := startTxnBroker(t, t.TempDir(), nil, "transaction.max.timeout.ms", "60000")
	c := dialRaw(t, b.Addr)
	pid, epoch := initTxnRaw(t, c, "init")
	if pid < 0 || epoch != 0 {
		t.Fatalf("first init: pid %d epoch %d", pid, epoch)
	}
	pid2, epoch2 := initTxnRaw(t, c, "init")
	if pid2 != pid || epoch2 != 1 {
		t.Fatalf("second init: pid %d epoch %d, want %d/1", pid2, epoch2, pid)
	}
	for _, tc := range []struct {
		name    string
		version int16
		timeout int32
		pid     int64
		epoch   int16
		want    *kerr.Error
	}{
		{"timeout above transaction.max.timeout.ms", 4, 60001, -1, -1, kerr.InvalidTransactionTimeout},
		{"zero timeout", 4, 0, -1, -1, kerr.InvalidTransactionTimeout},
		{"id without epoch (KIP-360)", 3, 1000, pid, -1, kerr.InvalidRequest},
		{"stale epoch, v4", 4, 1000, pid, 0, kerr.ProducerFenced},
		{"stale epoch, v3 (before KIP-588)", 3, 1000, pid, 0, kerr.InvalidProducerEpoch},
		{"another producer id", 4, 1000, pid + 100, 0, kerr.ProducerFenced},
	} {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch = strp("init"), tc.timeout, tc.pid, tc.epoch
		resp := rawDo[*kmsg.InitProducerIDResponse](t, c, req, tc.version)
		expectCode(t, tc.name, resp.ErrorCode, tc.want)
	}
	// KIP-360: the current instance naming its id and epoch goes on.
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID, req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch = strp("init"), 1000, pid, 1
	if resp := rawDo[*kmsg.InitProducerIDResponse](t, c, req, 4); resp.ErrorCode != 0 || resp.ProducerEpoch != 2 {
		t.Fatalf("KIP-360 recovery: %v epoch %d", kerr.ErrorForCode(resp.ErrorCode), resp.ProducerEpoch)
	}
	// Without a transactional id: an idempotent producer id, no coordinator.
	idem := rawDo[*kmsg.InitProducerIDResponse](t, c, kmsg.NewPtrInitProducerIDRequest(), 4)
	if idem.ErrorCode != 0 || idem.ProducerID < 0 || idem.ProducerID == pid {
		t.Fatalf("idempotent init: %+v", idem)
	}
	// FindCoordinator for transactions.
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorType, fc.CoordinatorKeys = 1, []string{"init", ""}
	fr := rawDo[*kmsg.FindCoordinatorResponse](t, c, fc, 4)
	expectCode(t, "find coordinator", fr.Coordinators[0].ErrorCode, nil)
	expectCode(t, "find coordinator, empty id", fr.Coordinators[1].ErrorCode, kerr.InvalidRequest)
}

// TestTxnRawProduceAndEnd walks one transaction through its error paths:
// AddPartitionsToTxn's partition checks and fencing, the produce-side
// rules (KIP-890 verification, control batches, a missing transactional
// id, a non-transactional write inside a transaction), the LSO in Fetch,
// ListOffsets and DescribeProducers, EndTxn's state rules, and the aborted
// transaction list a read_committed fetch gets.
func TestTxnRawProduceAndEnd(t *testing.T) {
	b := startTxnBroker(t, t.TempDir(), nil)
	testenv.CreateTopic(t, b.Addr, "raw", 2, nil)
	c := dialRaw(t, b.Addr)
	id := "raw-txn"
	pid, epoch := initTxnRaw(t, c, id)

	got := addPartitionsRaw(t, c, 3, id, pid, epoch, "nosuch", 0)
	expectCode(t, "unknown topic", got[0], kerr.UnknownTopicOrPartition)
	{
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch = id, pid, epoch
		req.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "raw", Partitions: []int32{0}}, {Topic: "raw", Partitions: []int32{7}}}
		resp := rawDo[*kmsg.AddPartitionsToTxnResponse](t, c, req, 3)
		expectCode(t, "good partition beside a bad one", resp.Topics[0].Partitions[0].ErrorCode, kerr.OperationNotAttempted)
		expectCode(t, "partition out of range", resp.Topics[1].Partitions[0].ErrorCode, kerr.UnknownTopicOrPartition)
	}
	got = addPartitionsRaw(t, c, 3, id, pid, epoch, "__transaction_state", 0)
	expectCode(t, "internal topic from a client", got[0], kerr.TopicAuthorizationFailed)
	got = addPartitionsRaw(t, c, 3, "nobody", pid, epoch, "raw", 0)
	expectCode(t, "unknown transactional id", got[0], kerr.InvalidProducerIDMapping)
	got = addPartitionsRaw(t, c, 3, id, pid, epoch+5, "raw", 0)
	expectCode(t, "wrong epoch, v3", got[0], kerr.ProducerFenced)
	got = addPartitionsRaw(t, c, 1, id, pid, epoch+5, "raw", 0)
	expectCode(t, "wrong epoch, v1 (before KIP-588)", got[0], kerr.InvalidProducerEpoch)
	expectCode(t, "end without a transaction", endTxnRaw(t, c, 3, id, pid, epoch, true), kerr.InvalidTxnState)

	got = addPartitionsRaw(t, c, 3, id, pid, epoch, "raw", 0)
	expectCode(t, "add raw-0", got[0], nil)

	txnBatch := func(seq int32, vals ...string) []byte {
		var v [][]byte
		for _, s := range vals {
			v = append(v, []byte(s))
		}
		return makeBatch(batchSpec{values: v, timestamp: time.Now().UnixMilli(), producerID: pid, producerEpoch: epoch, baseSequence: seq, transactional: true})
	}
	expectCode(t, "transactional batch to a partition never added (v9)", produceTxnRaw(t, c, 9, strp(id), "raw", 1, txnBatch(0, "x")), kerr.InvalidTxnState)
	expectCode(t, "transactional batch to a partition never added (v11)", produceTxnRaw(t, c, 11, strp(id), "raw", 1, txnBatch(0, "x")), kerr.TransactionAbortable)
	expectCode(t, "transactional batch without a transactional id", produceTxnRaw(t, c, 9, nil, "raw", 0, txnBatch(0, "x")), kerr.TransactionalIDAuthorizationFailed)
	marker := localstore.BuildControlBatch(pid, epoch, 0, true, time.Now().UnixMilli())
	expectCode(t, "a client's control batch", produceTxnRaw(t, c, 9, strp(id), "raw", 0, marker), kerr.InvalidRecord)
	expectCode(t, "transactional batch", produceTxnRaw(t, c, 9, strp(id), "raw", 0, txnBatch(0, "t0", "t1")), nil)
	plain := makeBatch(batchSpec{values: [][]byte{[]byte("p")}, timestamp: time.Now().UnixMilli(), producerID: pid, producerEpoch: epoch, baseSequence: 2})
	expectCode(t, "non-transactional batch inside the transaction", produceTxnRaw(t, c, 9, nil, "raw", 0, plain), kerr.InvalidTxnState)
	expectCode(t, "second transactional batch", produceTxnRaw(t, c, 9, strp(id), "raw", 0, txnBatch(2, "t2")), nil)

	// KIP-890 verify_only, as a leader sends it, batched.
	{
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		one := kmsg.NewAddPartitionsToTxnRequestTransaction()
		one.TransactionalID, one.ProducerID, one.ProducerEpoch, one.VerifyOnly = id, pid, epoch, true
		one.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "raw", Partitions: []int32{0, 1}}}
		other := one
		other.TransactionalID = "nobody"
		req.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{one, other}
		resp := rawDo[*kmsg.AddPartitionsToTxnResponse](t, c, req, 4)
		if len(resp.Transactions) != 2 {
			t.Fatalf("verify: %d transactions answered", len(resp.Transactions))
		}
		ps := resp.Transactions[0].Topics[0].Partitions
		expectCode(t, "verify an added partition", ps[0].ErrorCode, nil)
		expectCode(t, "verify a partition not added", ps[1].ErrorCode, kerr.TransactionAbortable)
		expectCode(t, "verify an unknown id", resp.Transactions[1].Topics[0].Partitions[0].ErrorCode, kerr.InvalidProducerIDMapping)
	}

	// The open transaction holds the LSO at its first offset.
	if lso := listLatestRaw(t, c, "raw", 0, 1); lso != 0 {
		t.Errorf("read_committed latest offset %d, want 0 (the LSO)", lso)
	}
	if hw := listLatestRaw(t, c, "raw", 0, 0); hw != 3 {
		t.Errorf("read_uncommitted latest offset %d, want 3", hw)
	}
	fp := fetchRaw(t, c, "raw", 0, 1)
	if fp.ErrorCode != 0 || fp.LastStableOffset != 0 || fp.HighWatermark != 3 || len(fp.RecordBatches) != 0 {
		t.Errorf("read_committed fetch in the open transaction: code %d lso %d hw %d %d bytes", fp.ErrorCode, fp.LastStableOffset, fp.HighWatermark, len(fp.RecordBatches))
	}
	if fu := fetchRaw(t, c, "raw", 0, 0); len(fu.RecordBatches) == 0 || fu.LastStableOffset != 0 {
		t.Errorf("read_uncommitted fetch: %d bytes, lso %d", len(fu.RecordBatches), fu.LastStableOffset)
	}
	dp := kmsg.NewPtrDescribeProducersRequest()
	dp.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: "raw", Partitions: []int32{0, 9}}}
	dpr := rawDo[*kmsg.DescribeProducersResponse](t, c, dp, 0)
	if ps := dpr.Topics[0].Partitions; len(ps[0].ActiveProducers) != 1 || ps[0].ActiveProducers[0].ProducerID != pid ||
		ps[0].ActiveProducers[0].CurrentTxnStartOffset != 0 || ps[0].ActiveProducers[0].LastSequence != 2 {
		t.Errorf("describe producers: %+v", ps[0])
	}
	expectCode(t, "describe producers of a missing partition", dpr.Topics[0].Partitions[1].ErrorCode, kerr.UnknownTopicOrPartition)

	dt := kmsg.NewPtrDescribeTransactionsRequest()
	dt.TransactionalIDs = []string{id, "nobody"}
	dtr := rawDo[*kmsg.DescribeTransactionsResponse](t, c, dt, 0)
	if s := dtr.TransactionStates[0]; s.ErrorCode != 0 || s.State != "Ongoing" || s.ProducerID != pid || len(s.Topics) != 1 || s.Topics[0].Topic != "raw" {
		t.Errorf("describe transactions: %+v", s)
	}
	expectCode(t, "describe an unknown id", dtr.TransactionStates[1].ErrorCode, kerr.TransactionalIDNotFound)
	lt := kmsg.NewPtrListTransactionsRequest()
	lt.StateFilters = []string{"Ongoing", "Bogus"}
	ltr := rawDo[*kmsg.ListTransactionsResponse](t, c, lt, 1)
	if len(ltr.TransactionStates) != 1 || ltr.TransactionStates[0].TransactionalID != id || len(ltr.UnknownStateFilters) != 1 {
		t.Errorf("list transactions: %+v", ltr)
	}

	expectCode(t, "end with a stale epoch, v1", endTxnRaw(t, c, 1, id, pid, epoch+3, false), kerr.InvalidProducerEpoch)
	expectCode(t, "end with a stale epoch, v3", endTxnRaw(t, c, 3, id, pid, epoch+3, false), kerr.ProducerFenced)
	expectCode(t, "abort", endTxnRaw(t, c, 3, id, pid, epoch, false), nil)
	expectCode(t, "abort again (a retry)", endTxnRaw(t, c, 3, id, pid, epoch, false), nil)
	expectCode(t, "commit after the abort", endTxnRaw(t, c, 3, id, pid, epoch, true), kerr.InvalidTxnState)

	// The abort marker moved the LSO; read_committed lists the aborted
	// transaction so the consumer drops t0..t2.
	fp = fetchRaw(t, c, "raw", 0, 1)
	if fp.ErrorCode != 0 || fp.LastStableOffset != 4 || fp.HighWatermark != 4 {
		t.Fatalf("read_committed fetch after the abort: code %d lso %d hw %d", fp.ErrorCode, fp.LastStableOffset, fp.HighWatermark)
	}
	if len(fp.AbortedTransactions) != 1 || fp.AbortedTransactions[0].ProducerID != pid || fp.AbortedTransactions[0].FirstOffset != 0 {
		t.Errorf("aborted transactions: %+v", fp.AbortedTransactions)
	}
	if fu := fetchRaw(t, c, "raw", 0, 0); fu.AbortedTransactions != nil {
		t.Errorf("read_uncommitted got aborted transactions %+v", fu.AbortedTransactions)
	}
}

// TestTxnRawWriteTxnMarkers sends markers as a coordinator would and checks
// the leader's fencing of stale producer and coordinator epochs.
func TestTxnRawWriteTxnMarkers(t *testing.T) {
	b := startTxnBroker(t, t.TempDir(), nil)
	testenv.CreateTopic(t, b.Addr, "mk", 1, nil)
	c := dialRaw(t, b.Addr)
	send := func(topic string, epoch int16, coordEpoch int32) int16 {
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		m := kmsg.NewWriteTxnMarkersRequestMarker()
		m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch = 4242, epoch, true, coordEpoch
		m.Topics = []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: topic, Partitions: []int32{0}}}
		req.Markers = append(req.Markers, m)
		resp := rawDo[*kmsg.WriteTxnMarkersResponse](t, c, req, 1)
		return resp.Markers[0].Topics[0].Partitions[0].ErrorCode
	}
	expectCode(t, "marker", send("mk", 3, 5), nil)
	expectCode(t, "marker from an older coordinator epoch", send("mk", 3, 4), kerr.TransactionCoordinatorFenced)
	expectCode(t, "marker for an older producer epoch", send("mk", 2, 5), kerr.InvalidProducerEpoch)
	expectCode(t, "marker for an unknown partition", send("nosuch", 3, 5), kerr.UnknownTopicOrPartition)
	expectCode(t, "marker from a newer coordinator", send("mk", 3, 6), nil)
	if hw := listLatestRaw(t, c, "mk", 0, 0); hw != 2 {
		t.Errorf("two markers written, high watermark %d", hw)
	}
}

func txnOffsetCommitRaw(t *testing.T, c *rawConn, version int16, id string, pid int64, epoch int16, group, member string, generation int32, offset int64) int16 {
	t.Helper()
	return untilSettled(t, "txn offset commit", func() int16 {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = id, group, pid, epoch
		req.MemberID, req.Generation = member, generation
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 0, offset
		req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "src", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{rp}}}
		return rawDo[*kmsg.TxnOffsetCommitResponse](t, c, req, version).Topics[0].Partitions[0].ErrorCode
	})
}

// offsetFetchRaw is OffsetFetch v7 of src-0 for group.
func offsetFetchRaw(t *testing.T, c *rawConn, group string, requireStable bool) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group, req.RequireStable = group, requireStable
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "src", Partitions: []int32{0}}}
	resp := rawDo[*kmsg.OffsetFetchResponse](t, c, req, 7)
	if resp.ErrorCode != 0 {
		t.Fatalf("offset fetch: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	p := resp.Topics[0].Partitions[0]
	return p.Offset, p.ErrorCode
}

func addOffsetsRaw(t *testing.T, c *rawConn, id string, pid int64, epoch int16, group string) int16 {
	t.Helper()
	return untilSettled(t, "add offsets", func() int16 {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = id, pid, epoch, group
		return rawDo[*kmsg.AddOffsetsToTxnResponse](t, c, req, 3).ErrorCode
	})
}

// TestTxnRawTxnOffsetCommit: offsets committed in a transaction need the
// group's partition added first (KIP-890 verification), stay invisible to
// OffsetFetch (UNSTABLE_OFFSET_COMMIT with require_stable, KIP-447) until
// the commit marker, and vanish with an abort.
func TestTxnRawTxnOffsetCommit(t *testing.T) {
	b := startTxnBroker(t, t.TempDir(), nil)
	testenv.CreateTopic(t, b.Addr, "src", 1, nil)
	c := dialRaw(t, b.Addr)
	id, group := "toc", "toc-group"
	pid, epoch := initTxnRaw(t, c, id)

	expectCode(t, "offsets before AddOffsetsToTxn (v3)", txnOffsetCommitRaw(t, c, 3, id, pid, epoch, group, "", -1, 5), kerr.InvalidTxnState)
	expectCode(t, "offsets before AddOffsetsToTxn (v4)", txnOffsetCommitRaw(t, c, 4, id, pid, epoch, group, "", -1, 5), kerr.TransactionAbortable)
	expectCode(t, "add offsets with no group", addOffsetsRaw(t, c, id, pid, epoch, ""), kerr.InvalidGroupID)
	expectCode(t, "add offsets for an unknown id", addOffsetsRaw(t, c, "nobody", pid, epoch, group), kerr.InvalidProducerIDMapping)
	expectCode(t, "add offsets", addOffsetsRaw(t, c, id, pid, epoch, group), nil)
	expectCode(t, "offsets from a member the group does not have", txnOffsetCommitRaw(t, c, 3, id, pid, epoch, group, "ghost", 1, 5), kerr.UnknownMemberID)
	expectCode(t, "offsets with another epoch than the coordinator's", txnOffsetCommitRaw(t, c, 3, id, pid, epoch+1, group, "", -1, 5), kerr.InvalidProducerEpoch)
	expectCode(t, "offsets in the transaction", txnOffsetCommitRaw(t, c, 3, id, pid, epoch, group, "", -1, 5), nil)

	if off, code := offsetFetchRaw(t, c, group, false); off != -1 || code != 0 {
		t.Errorf("pending offset visible without require_stable: %d %v", off, kerr.ErrorForCode(code))
	}
	if _, code := offsetFetchRaw(t, c, group, true); code != kerr.UnstableOffsetCommit.Code {
		t.Errorf("require_stable while pending: %v", kerr.ErrorForCode(code))
	}
	expectCode(t, "commit", endTxnRaw(t, c, 3, id, pid, epoch, true), nil)
	stable := func(want int64) {
		t.Helper()
		code := untilSettled(t, "stable offset", func() int16 {
			off, code := offsetFetchRaw(t, c, group, true)
			if code == kerr.UnstableOffsetCommit.Code {
				return kerr.CoordinatorLoadInProgress.Code // the marker is on its way: retry
			}
			if code == 0 && off != want {
				t.Fatalf("stable offset %d, want %d", off, want)
			}
			return code
		})
		expectCode(t, "stable offset fetch", code, nil)
	}
	stable(5)

	// Next transaction: commit 9, then abort; 5 stays.
	expectCode(t, "add offsets again", addOffsetsRaw(t, c, id, pid, epoch, group), nil)
	expectCode(t, "offsets in the second transaction", txnOffsetCommitRaw(t, c, 3, id, pid, epoch, group, "", -1, 9), nil)
	expectCode(t, "abort", endTxnRaw(t, c, 3, id, pid, epoch, false), nil)
	stable(5)
}

// TestTxnRawIDExpiry: an id idle past transactional.id.expiration.ms is
// forgotten at the next removal pass, on the broker's clock; its producer
// then gets INVALID_PRODUCER_ID_MAPPING, and InitProducerId starts over.
func TestTxnRawIDExpiry(t *testing.T) {
	fake := clock.NewFake(time.Now())
	b := startTxnBroker(t, t.TempDir(), fake, "transactional.id.expiration.ms", "60000",
		"transaction.remove.expired.transaction.cleanup.interval.ms", "30000")
	testenv.CreateTopic(t, b.Addr, "exp", 1, nil)
	c := dialRaw(t, b.Addr)
	pid, epoch := initTxnRaw(t, c, "expires")
	fake.Advance(30 * time.Second) // first pass: 30 s idle, kept
	dt := kmsg.NewPtrDescribeTransactionsRequest()
	dt.TransactionalIDs = []string{"expires"}
	expectCode(t, "after 30 s", rawDo[*kmsg.DescribeTransactionsResponse](t, c, dt, 0).TransactionStates[0].ErrorCode, nil)
	fake.Advance(60 * time.Second) // the passes at 60 s and 90 s: idle past 60 s, expired
	code := untilSettled(t, "describe after expiry", func() int16 {
		code := rawDo[*kmsg.DescribeTransactionsResponse](t, c, dt, 0).TransactionStates[0].ErrorCode
		if code == 0 {
			return kerr.CoordinatorLoadInProgress.Code // the tombstone is being written: ask again
		}
		return code
	})
	expectCode(t, "after 90 s", code, kerr.TransactionalIDNotFound)
	got := addPartitionsRaw(t, c, 3, "expires", pid, epoch, "exp", 0)
	expectCode(t, "the expired id's producer", got[0], kerr.InvalidProducerIDMapping)
	if pid2, epoch2 := initTxnRaw(t, c, "expires"); epoch2 != 0 || pid2 == pid {
		t.Errorf("init after expiry: pid %d epoch %d, want a new producer id at epoch 0", pid2, epoch2)
	}
}
