package txn

import (
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker/kafkahash"
)

func TestPartitionFor(t *testing.T) {
	// Java: "hello".hashCode() == 99162322; U+1F600 is the surrogate pair
	// D83D DE00: 31*0xD83D + 0xDE00.
	if got := kafkahash.JavaStringHashCode("hello"); got != 99162322 {
		t.Fatalf("hashCode(hello) = %d", got)
	}
	if got := kafkahash.JavaStringHashCode("\U0001F600"); got != 31*0xD83D+0xDE00 {
		t.Fatalf("hashCode(U+1F600) = %d", got)
	}
	if got := partitionFor("hello", 50); got != 99162322%50 {
		t.Fatalf("partitionFor(hello) = %d", got)
	}
	// Utils.abs(Integer.MIN_VALUE) is 0: "polygenelubricants" hashes to it.
	if kafkahash.JavaStringHashCode("polygenelubricants") != math.MinInt32 || partitionFor("polygenelubricants", 50) != 0 {
		t.Fatal("Integer.MIN_VALUE hash not mapped to partition 0")
	}
	for _, id := range []string{"a", "tx-1", "zz", "ünïcode"} {
		if p := partitionFor(id, 50); p < 0 || p >= 50 {
			t.Fatalf("partitionFor(%q) = %d", id, p)
		}
	}
}

// TestInitProducerID covers the id/epoch rules of InitProducerId with a
// transactional id, KIP-360 included.
func TestInitProducerID(t *testing.T) {
	h := newHarness(t, Config{MaxTimeout: time.Minute})
	pid, epoch := h.mustInit("a")
	if pid != 1001 || epoch != 0 {
		t.Fatalf("new id: %d/%d", pid, epoch)
	}
	if m := h.wantState("a", Empty); m.TimeoutMs != 60_000 || m.StartTimeMs != -1 || len(m.Partitions) != 0 {
		t.Fatalf("new id metadata %+v", m)
	}
	// The record on the log is Kafka's: key and value decode to the same.
	last := h.log[len(h.log)-1]
	id, m, derr := DecodeRecord(last.key, last.value)
	if derr != nil || id != "a" || m.ProducerID != pid || m.ProducerEpoch != 0 || m.State != Empty || last.partition != h.c.PartitionFor("a") {
		t.Fatalf("record %q %+v %v", id, m, derr)
	}
	// A plain InitProducerId bumps the epoch (fencing older instances).
	if p, e := h.mustInit("a"); p != pid || e != 1 {
		t.Fatalf("bump: %d/%d", p, e)
	}
	// KIP-360: the current id and epoch bump too, remembering the old epoch…
	if p, e, err := h.init("a", 60_000, pid, 1); err != nil || p != pid || e != 2 {
		t.Fatalf("KIP-360 bump: %d/%d %v", p, e, err)
	}
	// …so a retry of that call gets the same answer…
	if p, e, err := h.init("a", 60_000, pid, 1); err != nil || p != pid || e != 2 {
		t.Fatalf("KIP-360 retry: %d/%d %v", p, e, err)
	}
	// …but an older epoch, or another producer id, is fenced.
	_, _, err := h.init("a", 60_000, pid, 0)
	wantErr(t, "stale epoch", err, kerr.ProducerFenced)
	_, _, err = h.init("a", 60_000, pid+77, 2)
	wantErr(t, "other producer id", err, kerr.ProducerFenced)
	// KIP-360 for an unknown id: the new metadata accepts any id.
	if p, e, err := h.init("b", 60_000, 5, 9); err != nil || p != 1002 || e != 0 {
		t.Fatalf("KIP-360 on a new id: %d/%d %v", p, e, err)
	}

	for _, c := range []struct {
		name string
		req  InitProducerIDRequest
		want *kerr.Error
	}{
		{"empty id", InitProducerIDRequest{TransactionalID: "", TimeoutMs: 1000, ProducerID: -1, ProducerEpoch: -1}, kerr.InvalidRequest},
		{"zero timeout", InitProducerIDRequest{TransactionalID: "a", TimeoutMs: 0, ProducerID: -1, ProducerEpoch: -1}, kerr.InvalidTransactionTimeout},
		{"timeout over the max", InitProducerIDRequest{TransactionalID: "a", TimeoutMs: 60_001, ProducerID: -1, ProducerEpoch: -1}, kerr.InvalidTransactionTimeout},
		{"id without epoch", InitProducerIDRequest{TransactionalID: "a", TimeoutMs: 1000, ProducerID: 7, ProducerEpoch: -1}, kerr.InvalidRequest},
		{"epoch without id", InitProducerIDRequest{TransactionalID: "a", TimeoutMs: 1000, ProducerID: -1, ProducerEpoch: 3}, kerr.InvalidRequest},
	} {
		err, tr := h.c.InitProducerID(c.req, h.now, h.newID)
		if err != c.want || tr != nil {
			t.Fatalf("%s: %v %v, want %v", c.name, err, tr, c.want)
		}
	}
	// A pending transition makes InitProducerId wait.
	err, tr := h.c.InitProducerID(InitProducerIDRequest{TransactionalID: "a", TimeoutMs: 1000, ProducerID: -1, ProducerEpoch: -1}, h.now, h.newID)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = h.init("a", 1000, -1, -1)
	wantErr(t, "while pending", err, kerr.ConcurrentTransactions)
	h.write(tr)
	// The timeout of the last InitProducerId wins.
	if m := h.describe("a"); m.TimeoutMs != 1000 {
		t.Fatalf("timeout %d", m.TimeoutMs)
	}
	// A failing allocator is COORDINATOR_NOT_AVAILABLE.
	err, _ = h.c.InitProducerID(InitProducerIDRequest{TransactionalID: "new", TimeoutMs: 1000, ProducerID: -1, ProducerEpoch: -1}, h.now,
		func() (int64, error) { return 0, kerr.UnknownServerError })
	wantErr(t, "allocator failure", err, kerr.CoordinatorNotAvailable)
}

// loadOne reloads the id's partition from the harness log plus a record
// for m, and returns the load's marker jobs.
func (h *harness) loadOne(m Metadata) []*MarkerJob {
	h.t.Helper()
	p := h.c.PartitionFor(m.TransactionalID)
	h.epoch++
	h.c.BeginLoad(p, h.epoch)
	for _, r := range h.log {
		if r.partition == p {
			if err := h.c.LoadRecord(p, h.epoch, r.key, r.value); err != nil {
				h.t.Fatal(err)
			}
		}
	}
	if err := h.c.LoadRecord(p, h.epoch, EncodeKey(m.TransactionalID), EncodeValue(m)); err != nil {
		h.t.Fatal(err)
	}
	jobs, err := h.c.FinishLoad(p, h.epoch, h.now)
	if err != nil {
		h.t.Fatal(err)
	}
	return jobs
}

// TestEpochExhaustion: near the top of the epoch range a new producer id
// is handed out, and KIP-360 lets a producer that missed the answer retry
// with the old id.
func TestEpochExhaustion(t *testing.T) {
	h := newHarness(t, Config{})
	h.loadOne(Metadata{TransactionalID: "x", ProducerID: 500, PrevProducerID: -1, ProducerEpoch: math.MaxInt16 - 2,
		LastProducerEpoch: -1, TimeoutMs: 1000, State: CompleteCommit, StartTimeMs: 1, LastUpdateMs: 2})
	if p, e := h.mustInit("x"); p != 500 || e != math.MaxInt16-1 {
		t.Fatalf("last bump: %d/%d", p, e)
	}
	// Exhausted: rotation, with the epoch given back by a KIP-360 caller.
	p, e, err := h.init("x", 1000, 500, math.MaxInt16-1)
	if err != nil || p != 1001 || e != 0 {
		t.Fatalf("rotation: %d/%d %v", p, e, err)
	}
	if m := h.describe("x"); m.PrevProducerID != 500 {
		t.Fatalf("previous producer id %d", m.PrevProducerID)
	}
	// The producer missed that answer and retries with its old id and
	// exhausted epoch: the same new id and epoch.
	if p, e, err := h.init("x", 1000, 500, math.MaxInt16-1); err != nil || p != 1001 || e != 0 {
		t.Fatalf("retry after rotation: %d/%d %v", p, e, err)
	}
	// The old id with a non-exhausted epoch is a zombie.
	_, _, err = h.init("x", 1000, 500, 3)
	wantErr(t, "old id, old epoch", err, kerr.ProducerFenced)
	// The previous id survives a reload (value version 1 carries it).
	last := h.log[len(h.log)-1]
	if _, m, err := DecodeRecord(last.key, last.value); err != nil || m.PrevProducerID != 500 {
		t.Fatalf("record after rotation: %+v %v", m, err)
	}
	// Without KIP-360 an exhausted epoch rotates too.
	h.loadOne(Metadata{TransactionalID: "y", ProducerID: 600, PrevProducerID: -1, ProducerEpoch: math.MaxInt16 - 1,
		LastProducerEpoch: -1, TimeoutMs: 1000, State: Empty, StartTimeMs: -1, LastUpdateMs: 2})
	if p, e := h.mustInit("y"); p == 600 || e != 0 {
		t.Fatalf("rotation without KIP-360: %d/%d", p, e)
	}
}

// TestTransactionLifecycle: add partitions (and offsets), commit, abort,
// with the answers Kafka gives around each step.
func TestTransactionLifecycle(t *testing.T) {
	h := newHarness(t, Config{})
	pid, epoch := h.mustInit("t")
	wantErr(t, "add", h.add("t", pid, epoch, tp("in", 0)), nil)
	m := h.wantState("t", Ongoing)
	if m.StartTimeMs != h.now.UnixMilli() || len(m.Partitions) != 1 {
		t.Fatalf("ongoing %+v", m)
	}
	// Already there: success with nothing to write.
	if err, tr := h.c.AddPartitions(AddPartitionsRequest{TransactionalID: "t", ProducerID: pid, ProducerEpoch: epoch, Partitions: []TopicPartition{tp("in", 0)}}, h.now); err != nil || tr != nil {
		t.Fatalf("re-add: %v %v", err, tr)
	}
	h.advance(time.Second)
	wantErr(t, "add more", h.add("t", pid, epoch, tp("out", 2), tp("in", 0), tp("out", 1)), nil)
	err, tr := h.c.AddOffsets("t", pid, epoch, "hello", h.now)
	if err != nil {
		t.Fatal(err)
	}
	if c := h.write(tr); c.Err != nil {
		t.Fatal(c.Err)
	}
	m = h.wantState("t", Ongoing)
	want := []TopicPartition{tp(OffsetsTopic, 99162322%50), tp("in", 0), tp("out", 1), tp("out", 2)}
	if !equalTPs(m.Partitions, want) || m.StartTimeMs != h.now.Add(-time.Second).UnixMilli() {
		t.Fatalf("partitions %+v start %d", m.Partitions, m.StartTimeMs)
	}

	// Errors about the producer.
	wantErr(t, "add with wrong epoch", h.add("t", pid, epoch+1, tp("x", 0)), kerr.ProducerFenced)
	wantErr(t, "add with wrong id", h.add("t", pid+1, epoch, tp("x", 0)), kerr.InvalidProducerIDMapping)
	wantErr(t, "add for unknown id", h.add("nobody", 1, 0, tp("x", 0)), kerr.InvalidProducerIDMapping)
	wantErr(t, "add with empty id", h.add("", 1, 0, tp("x", 0)), kerr.InvalidRequest)
	e, _ := h.end("t", pid, epoch+1, true, false)
	wantErr(t, "end with wrong epoch", e, kerr.ProducerFenced)
	e, _ = h.end("t", pid+1, epoch, true, false)
	wantErr(t, "end with wrong id", e, kerr.InvalidProducerIDMapping)

	// Commit; the markers are held to look at the state meanwhile.
	e, job := h.end("t", pid, epoch, true, true)
	wantErr(t, "end", e, nil)
	h.wantState("t", PrepareCommit)
	if !job.Commit || job.ProducerID != pid || job.ProducerEpoch != epoch || job.CoordinatorEpoch != h.epoch || !equalTPs(job.Partitions, want) {
		t.Fatalf("marker job %+v", job)
	}
	wantErr(t, "add while markers are written", h.add("t", pid, epoch, tp("in", 0)), kerr.ConcurrentTransactions)
	e, _ = h.end("t", pid, epoch, true, false)
	wantErr(t, "commit retry while markers are written", e, kerr.ConcurrentTransactions)
	e, _ = h.end("t", pid, epoch, false, false)
	wantErr(t, "abort while committing", e, kerr.ConcurrentTransactions)
	_, _, e = h.init("t", 60_000, -1, -1)
	wantErr(t, "init while committing", e, kerr.ConcurrentTransactions)
	if c := h.finish(job); c.Err != nil {
		t.Fatal(c.Err)
	}
	m = h.wantState("t", CompleteCommit)
	if len(m.Partitions) != 0 {
		t.Fatalf("complete with partitions %+v", m)
	}
	e, _ = h.end("t", pid, epoch, true, false)
	wantErr(t, "commit retry after completion", e, nil)
	e, _ = h.end("t", pid, epoch, false, false)
	wantErr(t, "abort after commit", e, kerr.InvalidTxnState)

	// The next transaction, aborted.
	h.advance(time.Second)
	wantErr(t, "add next", h.add("t", pid, epoch, tp("in", 1)), nil)
	if m := h.wantState("t", Ongoing); m.StartTimeMs != h.now.UnixMilli() {
		t.Fatalf("second transaction's start %d", m.StartTimeMs)
	}
	e, _ = h.end("t", pid, epoch, false, false)
	wantErr(t, "abort", e, nil)
	h.wantState("t", CompleteAbort)
	if j := h.markers[len(h.markers)-1]; j.Commit || !equalTPs(j.Partitions, []TopicPartition{tp("in", 1)}) {
		t.Fatalf("abort markers %+v", j)
	}
	e, _ = h.end("t", pid, epoch, false, false)
	wantErr(t, "abort retry", e, nil)
	e, _ = h.end("t", pid, epoch, true, false)
	wantErr(t, "commit after abort", e, kerr.InvalidTxnState)

	// EndTxn with no transaction.
	pid2, epoch2 := h.mustInit("u")
	e, _ = h.end("u", pid2, epoch2, true, false)
	wantErr(t, "commit of nothing", e, kerr.InvalidTxnState)
	e, _ = h.end("nobody", 1, 0, true, false)
	wantErr(t, "end for unknown id", e, kerr.InvalidProducerIDMapping)
	e, _ = h.end("", 1, 0, true, false)
	wantErr(t, "end with empty id", e, kerr.InvalidRequest)

	// The prepare-state EndTxn answers: a retry of the same outcome waits,
	// the other outcome too (the markers are pending) — checked on a
	// loaded PrepareAbort, which the load hands back as a marker job.
	jobs := h.loadOne(Metadata{TransactionalID: "p", ProducerID: 70, PrevProducerID: -1, ProducerEpoch: 4, LastProducerEpoch: -1,
		TimeoutMs: 1000, State: PrepareAbort, Partitions: []TopicPartition{tp("in", 0)}, StartTimeMs: 5, LastUpdateMs: 6})
	if len(jobs) != 1 || jobs[0].TransactionalID != "p" || jobs[0].Commit {
		t.Fatalf("jobs after load: %+v", jobs)
	}
	e, _ = h.end("p", 70, 4, true, false)
	wantErr(t, "commit while aborting (pending markers)", e, kerr.ConcurrentTransactions)
	e, _ = h.end("p", 70, 4, false, false)
	wantErr(t, "abort retry while aborting", e, kerr.ConcurrentTransactions)
	h.finish(jobs[0])
	h.wantState("p", CompleteAbort)
}

// TestVerifyPartitions is the KIP-890 check a partition leader makes.
func TestVerifyPartitions(t *testing.T) {
	h := newHarness(t, Config{})
	pid, epoch := h.mustInit("v")
	wantErr(t, "add", h.add("v", pid, epoch, tp("a", 0)), nil)
	got := h.c.VerifyPartitions("v", pid, epoch, []TopicPartition{tp("a", 0), tp("a", 1)})
	if got[tp("a", 0)] != nil || got[tp("a", 1)] != kerr.TransactionAbortable {
		t.Fatalf("verify: %v", got)
	}
	for _, c := range []struct {
		name  string
		id    string
		pid   int64
		epoch int16
		want  *kerr.Error
	}{
		{"wrong epoch", "v", pid, epoch + 1, kerr.ProducerFenced},
		{"wrong id", "v", pid + 1, epoch, kerr.InvalidProducerIDMapping},
		{"unknown id", "w", pid, epoch, kerr.InvalidProducerIDMapping},
		{"empty id", "", pid, epoch, kerr.InvalidRequest},
	} {
		for tpp, err := range h.c.VerifyPartitions(c.id, c.pid, c.epoch, []TopicPartition{tp("a", 0), tp("b", 0)}) {
			if err != c.want {
				t.Fatalf("%s: %v for %v, want %v", c.name, err, tpp, c.want)
			}
		}
	}
	_, job := h.end("v", pid, epoch, true, true)
	for _, err := range h.c.VerifyPartitions("v", pid, epoch, []TopicPartition{tp("a", 0)}) {
		wantErr(t, "verify while committing", err, kerr.ConcurrentTransactions)
	}
	h.finish(job)
	if got := h.c.VerifyPartitions("v", pid, epoch, []TopicPartition{tp("a", 0)}); got[tp("a", 0)] != kerr.TransactionAbortable {
		t.Fatalf("verify after commit: %v", got)
	}
}

// TestFencing: a second InitProducerId while a transaction is open fences
// the first producer: its transaction is aborted with a bumped epoch, the
// new one is told to retry, then gets a higher epoch.
func TestFencing(t *testing.T) {
	h := newHarness(t, Config{})
	pid, epoch := h.mustInit("f")
	wantErr(t, "add", h.add("f", pid, epoch, tp("a", 0), tp("b", 3)), nil)

	err, tr := h.c.InitProducerID(InitProducerIDRequest{TransactionalID: "f", TimeoutMs: 60_000, ProducerID: -1, ProducerEpoch: -1}, h.now, h.newID)
	if err != nil || tr.Next.State != PrepareAbort || tr.Next.ProducerEpoch != epoch+1 {
		t.Fatalf("fence: %v %+v", err, tr)
	}
	// The zombie is fenced at once, before anything is written.
	wantErr(t, "zombie add", h.add("f", pid, epoch, tp("a", 0)), kerr.ProducerFenced)
	e, _ := h.end("f", pid, epoch, true, false)
	wantErr(t, "zombie commit", e, kerr.ProducerFenced)
	res := h.write(tr)
	wantErr(t, "fencing answer", res.Err, kerr.ConcurrentTransactions)
	if res.Markers == nil || res.Markers.Commit || res.Markers.ProducerEpoch != epoch+1 || len(res.Markers.Partitions) != 2 {
		t.Fatalf("fence markers %+v", res.Markers)
	}
	h.finish(res.Markers)
	h.wantState("f", CompleteAbort)
	// The new producer's retry gets the next epoch.
	if p, e := h.mustInit("f"); p != pid || e != epoch+2 {
		t.Fatalf("after the fence: %d/%d", p, e)
	}

	// A fence whose abort cannot be written does not bump twice.
	wantErr(t, "add", h.add("f", pid, epoch+2, tp("a", 0)), nil)
	err, tr = h.c.InitProducerID(InitProducerIDRequest{TransactionalID: "f", TimeoutMs: 60_000, ProducerID: -1, ProducerEpoch: -1}, h.now, h.newID)
	if err != nil {
		t.Fatal(err)
	}
	h.failWrite = kerr.NotEnoughReplicas
	res = h.write(tr)
	wantErr(t, "failed fence", res.Err, kerr.CoordinatorNotAvailable)
	h.failWrite = nil
	if m := h.wantState("f", Ongoing); m.ProducerEpoch != epoch+3 {
		t.Fatalf("epoch after a failed fence %d", m.ProducerEpoch)
	}
	err, tr = h.c.InitProducerID(InitProducerIDRequest{TransactionalID: "f", TimeoutMs: 60_000, ProducerID: -1, ProducerEpoch: -1}, h.now, h.newID)
	if err != nil || tr.Next.ProducerEpoch != epoch+3 {
		t.Fatalf("second fence: %v %+v", err, tr)
	}
	res = h.write(tr)
	h.finish(res.Markers)
	if p, e := h.mustInit("f"); p != pid || e != epoch+4 {
		t.Fatalf("after the second fence: %d/%d", p, e)
	}
}

// TestWriteFailures: a failed append changes nothing and maps to Kafka's
// coordinator errors; a failed completion record stays pending for retry.
func TestWriteFailures(t *testing.T) {
	h := newHarness(t, Config{})
	pid, epoch := h.mustInit("w")
	for _, c := range []struct{ append, want *kerr.Error }{
		{kerr.NotEnoughReplicas, kerr.CoordinatorNotAvailable},
		{kerr.RequestTimedOut, kerr.CoordinatorNotAvailable},
		{kerr.UnknownTopicOrPartition, kerr.CoordinatorNotAvailable},
		{kerr.NotLeaderForPartition, kerr.NotCoordinator},
		{kerr.KafkaStorageError, kerr.NotCoordinator},
		{kerr.MessageTooLarge, kerr.UnknownServerError},
		{kerr.InvalidRecord, kerr.InvalidRecord},
	} {
		h.failWrite = c.append
		wantErr(t, "add failing with "+c.append.Message, h.add("w", pid, epoch, tp("a", 0)), c.want)
		h.failWrite = nil
		h.wantState("w", Empty)
	}
	wantErr(t, "add", h.add("w", pid, epoch, tp("a", 0)), nil)
	_, job := h.end("w", pid, epoch, true, true)
	h.failWrite = kerr.NotEnoughReplicas
	res := h.finish(job)
	if !res.Retry || res.Err != kerr.CoordinatorNotAvailable {
		t.Fatalf("failed completion: %+v", res)
	}
	h.failWrite = nil
	wantErr(t, "add while the completion is retried", h.add("w", pid, epoch, tp("a", 0)), kerr.ConcurrentTransactions)
	if res := h.write(job.Complete); res.Err != nil {
		t.Fatalf("retried completion: %+v", res)
	}
	h.wantState("w", CompleteCommit)
	// A transition that is not pending any more is refused.
	if res := h.c.Complete(job.Complete, nil, h.now); res.Err != kerr.NotCoordinator {
		t.Fatalf("stale completion: %+v", res)
	}
}

// TestTimeouts steps the clock past transaction.timeout.ms: the scan lists
// the transaction, the abort fences the hung producer.
func TestTimeouts(t *testing.T) {
	h := newHarness(t, Config{})
	pid, epoch, err := h.init("slow", 10_000, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	fast, fastEpoch := h.mustInit("fast")
	wantErr(t, "add", h.add("slow", pid, epoch, tp("a", 0)), nil)
	wantErr(t, "add", h.add("fast", fast, fastEpoch, tp("a", 1)), nil)
	h.advance(10 * time.Second)
	if got := h.c.Expired(h.now); len(got) != 0 {
		t.Fatalf("expired at exactly the timeout: %+v", got)
	}
	h.advance(time.Millisecond)
	got := h.c.Expired(h.now)
	if len(got) != 1 || got[0] != (ExpiredTxn{TransactionalID: "slow", ProducerID: pid, ProducerEpoch: epoch}) {
		t.Fatalf("expired: %+v", got)
	}
	tr := h.c.AbortExpired(got[0], h.now)
	if tr == nil || tr.Next.State != PrepareAbort || tr.Next.ProducerEpoch != epoch+1 {
		t.Fatalf("abort: %+v", tr)
	}
	if again := h.c.Expired(h.now); len(again) != 0 {
		t.Fatalf("listed again while aborting: %+v", again)
	}
	if h.c.AbortExpired(got[0], h.now) != nil {
		t.Fatal("aborted twice")
	}
	res := h.write(tr)
	if res.Err != nil || res.Markers == nil || res.Markers.Commit || res.Markers.ProducerEpoch != epoch+1 {
		t.Fatalf("abort written: %+v", res)
	}
	// The hung producer wakes up: fenced.
	e, _ := h.end("slow", pid, epoch, true, false)
	wantErr(t, "commit after timeout", e, kerr.ProducerFenced)
	h.finish(res.Markers)
	h.wantState("slow", CompleteAbort)
	// KIP-360 with its old epoch does not get it back either.
	_, _, err = h.init("slow", 10_000, pid, epoch)
	wantErr(t, "KIP-360 after timeout", err, kerr.ProducerFenced)
	// A plain InitProducerId works.
	if p, e := h.mustInit("slow"); p != pid || e != epoch+2 {
		t.Fatalf("restart after timeout: %d/%d", p, e)
	}
	// An expiry that raced with the end of the transaction does nothing.
	e, _ = h.end("fast", fast, fastEpoch, true, false)
	wantErr(t, "fast commit", e, nil)
	if h.c.AbortExpired(ExpiredTxn{TransactionalID: "fast", ProducerID: fast, ProducerEpoch: fastEpoch}, h.now) != nil {
		t.Fatal("aborted a committed transaction")
	}
}

// TestTransactionalIDExpiration: ids idle past
// transactional.id.expiration.ms are tombstoned, never while a transaction
// is in flight.
func TestTransactionalIDExpiration(t *testing.T) {
	h := newHarness(t, Config{IDExpiration: time.Hour})
	pid, epoch := h.mustInit("idle")
	p2, e2 := h.mustInit("busy")
	wantErr(t, "add", h.add("busy", p2, e2, tp("a", 0)), nil)
	h.advance(59 * time.Minute)
	if got := h.c.ExpireTransactionalIDs(h.now); len(got) != 0 {
		t.Fatalf("expired early: %+v", got)
	}
	h.advance(2 * time.Hour)
	got := h.c.ExpireTransactionalIDs(h.now)
	if len(got) != 1 || got[0].TransactionalID != "idle" || got[0].Value != nil {
		t.Fatalf("expired: %+v", got)
	}
	// While the tombstone is written the id is gone for Describe.
	if _, err := h.c.Describe("idle"); err != kerr.TransactionalIDNotFound {
		t.Fatalf("describe while expiring: %v", err)
	}
	wantErr(t, "add while expiring", h.add("idle", pid, epoch, tp("a", 0)), kerr.ConcurrentTransactions)
	if res := h.write(got[0]); res.Err != nil {
		t.Fatal(res.Err)
	}
	if _, err := h.c.Describe("idle"); err != kerr.TransactionalIDNotFound {
		t.Fatalf("describe after expiry: %v", err)
	}
	wantErr(t, "add after expiry", h.add("idle", pid, epoch, tp("a", 0)), kerr.InvalidProducerIDMapping)
	// The tombstone on the log removes the id on load too.
	last := h.log[len(h.log)-1]
	if id, m, err := DecodeRecord(last.key, last.value); err != nil || id != "idle" || m != nil {
		t.Fatalf("tombstone: %q %+v %v", id, m, err)
	}
	// A new InitProducerId starts afresh with a new producer id.
	if p, e := h.mustInit("idle"); p == pid || e != 0 {
		t.Fatalf("after expiry: %d/%d", p, e)
	}
}

// TestListAndDescribe: the operator views.
func TestListAndDescribe(t *testing.T) {
	h := newHarness(t, Config{})
	a, ae := h.mustInit("a")
	b, be := h.mustInit("b")
	h.mustInit("c")
	wantErr(t, "add", h.add("a", a, ae, tp("t", 0)), nil)
	h.advance(time.Minute)
	wantErr(t, "add", h.add("b", b, be, tp("t", 1)), nil)
	all, err := h.c.List(ListFilter{DurationMs: -1}, h.now)
	if err != nil || len(all) != 3 || all[0].TransactionalID != "a" || all[2].TransactionalID != "c" {
		t.Fatalf("list: %+v %v", all, err)
	}
	ongoing, _ := h.c.List(ListFilter{States: []State{Ongoing}, DurationMs: -1}, h.now)
	if len(ongoing) != 2 {
		t.Fatalf("ongoing: %+v", ongoing)
	}
	long, _ := h.c.List(ListFilter{States: []State{Ongoing}, DurationMs: 30_000}, h.now)
	if len(long) != 1 || long[0].TransactionalID != "a" {
		t.Fatalf("running over 30 s: %+v", long)
	}
	byPID, _ := h.c.List(ListFilter{ProducerIDs: []int64{b}, DurationMs: -1}, h.now)
	if len(byPID) != 1 || byPID[0].TransactionalID != "b" {
		t.Fatalf("by producer id: %+v", byPID)
	}
	if s, ok := ParseState("prepareCOMMIT"); !ok || s != PrepareCommit || s.String() != "PrepareCommit" {
		t.Fatalf("ParseState: %v %v", s, ok)
	}
	if _, ok := ParseState("nonsense"); ok {
		t.Fatal("ParseState accepted nonsense")
	}
	if _, err := h.c.Describe("zzz"); err != kerr.TransactionalIDNotFound {
		t.Fatalf("describe unknown: %v", err)
	}
	if _, err := h.c.Describe(""); err != kerr.InvalidRequest {
		t.Fatalf("describe empty: %v", err)
	}
	// Describe hands out a copy.
	m := h.describe("a")
	m.Partitions[0].Topic = "changed"
	if h.describe("a").Partitions[0].Topic != "t" {
		t.Fatal("Describe shares its partitions")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{MaxTimeout: -1},
		{IDExpiration: -time.Second},
		{StatePartitions: -1},
		{OffsetsPartitions: -2},
		{MaxTimeout: 1 << 62},
	} {
		if _, err := New(c); err == nil {
			t.Fatalf("accepted %+v", c)
		}
	}
	c, err := New(Config{})
	if err != nil || c.cfg.MaxTimeout != 15*time.Minute || c.cfg.IDExpiration != 7*24*time.Hour || c.cfg.StatePartitions != 50 {
		t.Fatalf("defaults: %+v %v", c, err)
	}
}
