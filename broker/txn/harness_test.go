package txn

import (
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// record is one appended __transaction_state record.
type record struct {
	partition  int32
	key, value []byte
}

// harness drives a Coordinator the way the broker will: it appends each
// transition's record to an in-memory log, then completes it; marker jobs
// are "written" (remembered) and completed unless held.
type harness struct {
	t     *testing.T
	c     *Coordinator
	now   time.Time
	epoch int32

	mu      sync.Mutex
	log     []record
	nextPID int64
	markers []MarkerJob // every job whose markers were written
	// failWrite, if set, fails the next appends with this error.
	failWrite *kerr.Error
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, c: c, now: time.UnixMilli(1_700_000_000_000), epoch: 3, nextPID: 1000}
	for p := int32(0); p < c.cfg.StatePartitions; p++ {
		c.BeginLoad(p, h.epoch)
		if _, err := c.FinishLoad(p, h.epoch, h.now); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func (h *harness) advance(d time.Duration) { h.now = h.now.Add(d) }

func (h *harness) newID() (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextPID++
	return h.nextPID, nil
}

// write appends t's record (or fails as told) and completes it.
func (h *harness) write(t *Transition) Completion {
	h.t.Helper()
	if t == nil {
		h.t.Fatal("no transition to write")
	}
	h.mu.Lock()
	fail := h.failWrite
	if fail == nil {
		h.log = append(h.log, record{partition: t.Partition, key: t.Key, value: t.Value})
	}
	h.mu.Unlock()
	return h.c.Complete(t, fail, h.now)
}

// finish writes a marker job's markers and its completion record.
func (h *harness) finish(job *MarkerJob) Completion {
	h.t.Helper()
	if job == nil {
		h.t.Fatal("no marker job")
	}
	h.mu.Lock()
	h.markers = append(h.markers, *job)
	h.mu.Unlock()
	return h.write(job.Complete)
}

// init runs InitProducerId to the end (a fence's markers included, so the
// answer is CONCURRENT_TRANSACTIONS) and returns the answer.
func (h *harness) init(id string, timeoutMs int32, pid int64, epoch int16) (int64, int16, *kerr.Error) {
	h.t.Helper()
	err, t := h.c.InitProducerID(InitProducerIDRequest{TransactionalID: id, TimeoutMs: timeoutMs, ProducerID: pid, ProducerEpoch: epoch}, h.now, h.newID)
	if err != nil {
		if t != nil {
			h.t.Fatalf("error %v with a transition", err)
		}
		return -1, -1, err
	}
	res := h.write(t)
	if res.Markers != nil {
		h.finish(res.Markers)
	}
	if res.Err != nil {
		return -1, -1, res.Err
	}
	return res.ProducerID, res.ProducerEpoch, nil
}

func (h *harness) mustInit(id string) (int64, int16) {
	h.t.Helper()
	pid, epoch, err := h.init(id, 60_000, -1, -1)
	if err != nil {
		h.t.Fatalf("InitProducerID(%q): %v", id, err)
	}
	return pid, epoch
}

// add runs AddPartitionsToTxn to the end.
func (h *harness) add(id string, pid int64, epoch int16, tps ...TopicPartition) *kerr.Error {
	h.t.Helper()
	err, t := h.c.AddPartitions(AddPartitionsRequest{TransactionalID: id, ProducerID: pid, ProducerEpoch: epoch, Partitions: tps}, h.now)
	if err != nil || t == nil {
		return err
	}
	return h.write(t).Err
}

// end runs EndTxn; with hold the marker job is returned unfinished.
func (h *harness) end(id string, pid int64, epoch int16, commit, hold bool) (*kerr.Error, *MarkerJob) {
	h.t.Helper()
	err, t := h.c.EndTxn(EndTxnRequest{TransactionalID: id, ProducerID: pid, ProducerEpoch: epoch, Commit: commit}, h.now)
	if err != nil || t == nil {
		return err, nil
	}
	res := h.write(t)
	if res.Err != nil {
		return res.Err, nil
	}
	if res.Markers == nil {
		h.t.Fatal("EndTxn written without a marker job")
	}
	if hold {
		return nil, res.Markers
	}
	if c := h.finish(res.Markers); c.Err != nil {
		h.t.Fatalf("completing markers: %v", c.Err)
	}
	return nil, nil
}

func (h *harness) describe(id string) Metadata {
	h.t.Helper()
	m, err := h.c.Describe(id)
	if err != nil {
		h.t.Fatalf("Describe(%q): %v", id, err)
	}
	return m
}

func (h *harness) wantState(id string, s State) Metadata {
	h.t.Helper()
	m := h.describe(id)
	if m.State != s {
		h.t.Fatalf("%q is %s, want %s (%+v)", id, m.State, s, m)
	}
	return m
}

func tp(topic string, p int32) TopicPartition { return TopicPartition{Topic: topic, Partition: p} }

func wantErr(t *testing.T, what string, got, want *kerr.Error) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
}
