package txn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestRecordLayout checks the value bytes against Kafka's
// TransactionLogValue version 0 schema, written out by hand: the layout
// kafka-dump-log and the Java coordinator read.
func TestRecordLayout(t *testing.T) {
	m := Metadata{TransactionalID: "tx", ProducerID: 42, PrevProducerID: -1, ProducerEpoch: 3, TimeoutMs: 60000,
		State: Ongoing, Partitions: []TopicPartition{tp("a", 1), tp("a", 2), tp("bb", 0)}, StartTimeMs: 1000, LastUpdateMs: 2000}
	var w []byte
	be := binary.BigEndian
	w = be.AppendUint16(w, 0)  // version
	w = be.AppendUint64(w, 42) // producer id
	w = be.AppendUint16(w, 3)  // epoch
	w = be.AppendUint32(w, 60000)
	w = append(w, 1)          // Ongoing
	w = be.AppendUint32(w, 2) // topics
	w = be.AppendUint16(w, 1)
	w = append(w, 'a')
	w = be.AppendUint32(w, 2)
	w = be.AppendUint32(w, 1)
	w = be.AppendUint32(w, 2)
	w = be.AppendUint16(w, 2)
	w = append(w, "bb"...)
	w = be.AppendUint32(w, 1)
	w = be.AppendUint32(w, 0)
	w = be.AppendUint64(w, 2000) // last update
	w = be.AppendUint64(w, 1000) // start
	if got := EncodeValue(m); !bytes.Equal(got, w) {
		t.Fatalf("value\n got %x\nwant %x", got, w)
	}
	key := append(be.AppendUint16(be.AppendUint16(nil, 0), 2), "tx"...)
	if got := EncodeKey("tx"); !bytes.Equal(got, key) {
		t.Fatalf("key %x, want %x", got, key)
	}
	// Empty writes a null partition list (-1), as Kafka does.
	e := m
	e.State, e.Partitions, e.StartTimeMs = Empty, nil, -1
	v := EncodeValue(e)
	if n := int32(be.Uint32(v[2+8+2+4+1:])); n != -1 {
		t.Fatalf("Empty's partition list length %d, want -1 (null)", n)
	}
}

// TestRecordRoundTrip: every state a coordinator writes decodes back.
func TestRecordRoundTrip(t *testing.T) {
	for _, s := range []State{Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort} {
		for _, prev := range []int64{-1, 77} {
			m := Metadata{TransactionalID: "id-" + s.String(), ProducerID: 9, PrevProducerID: prev, ProducerEpoch: 1,
				LastProducerEpoch: -1, TimeoutMs: 1000, State: s, StartTimeMs: 10, LastUpdateMs: 20}
			switch s {
			case Ongoing, PrepareCommit, PrepareAbort:
				m.Partitions = []TopicPartition{tp("x", 0), tp("y", 5)}
			case Empty:
				m.StartTimeMs = -1
			}
			id, got, err := DecodeRecord(EncodeKey(m.TransactionalID), EncodeValue(m))
			if err != nil || id != m.TransactionalID || !reflect.DeepEqual(*got, m) {
				t.Fatalf("%s prev %d: %+v %v, want %+v", s, prev, got, err, m)
			}
		}
	}
}

// TestDecodeRejects: records a coordinator never writes are errors, so a
// load cannot install a transaction nobody can finish.
func TestDecodeRejects(t *testing.T) {
	good := Metadata{TransactionalID: "r", ProducerID: 9, PrevProducerID: -1, ProducerEpoch: 1, TimeoutMs: 1000,
		State: Ongoing, Partitions: []TopicPartition{tp("x", 0)}, StartTimeMs: 10, LastUpdateMs: 20}
	mutate := func(f func(*Metadata)) []byte {
		m := good
		m.Partitions = append([]TopicPartition(nil), good.Partitions...)
		f(&m)
		return EncodeValue(m)
	}
	key := EncodeKey("r")
	for name, c := range map[string]struct {
		key, value []byte
		want       error
	}{
		"dead":               {key, mutate(func(m *Metadata) { m.State = Dead }), ErrBadRecord},
		"fence state":        {key, mutate(func(m *Metadata) { m.State = PrepareEpochFence }), ErrBadRecord},
		"unknown state":      {key, mutate(func(m *Metadata) { m.State = 42 }), ErrBadRecord},
		"negative id":        {key, mutate(func(m *Metadata) { m.ProducerID = -5 }), ErrBadRecord},
		"negative epoch":     {key, mutate(func(m *Metadata) { m.ProducerEpoch = -1 }), ErrBadRecord},
		"max epoch, ongoing": {key, mutate(func(m *Metadata) { m.ProducerEpoch = math.MaxInt16 }), ErrBadRecord},
		"zero timeout":       {key, mutate(func(m *Metadata) { m.TimeoutMs = 0 }), ErrBadRecord},
		"ongoing, no parts":  {key, mutate(func(m *Metadata) { m.Partitions = nil }), ErrBadRecord},
		"ongoing, no start":  {key, mutate(func(m *Metadata) { m.StartTimeMs = -1 }), ErrBadRecord},
		"repeated partition": {key, mutate(func(m *Metadata) { m.Partitions = append(m.Partitions, tp("x", 0)) }), ErrBadRecord},
		"negative partition": {key, mutate(func(m *Metadata) { m.Partitions[0].Partition = -1 }), ErrBadRecord},
		"empty topic":        {key, mutate(func(m *Metadata) { m.Partitions[0].Topic = "" }), ErrBadRecord},
		"truncated value":    {key, EncodeValue(good)[:20], ErrBadRecord},
		"value version 9":    {key, append([]byte{0, 9}, EncodeValue(good)[2:]...), ErrBadRecord},
		"key version 1":      {append([]byte{0, 1}, key[2:]...), EncodeValue(good), ErrUnknownKey},
		"short key":          {[]byte{0}, EncodeValue(good), ErrBadRecord},
		"empty id":           {EncodeKey(""), EncodeValue(good), ErrBadRecord},
		"truncated key":      {key[:3], EncodeValue(good), ErrBadRecord},
	} {
		if _, _, err := DecodeRecord(c.key, c.value); !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, want %v", name, err, c.want)
		}
	}
	// A fence may reach the last epoch.
	if _, _, err := DecodeRecord(key, mutate(func(m *Metadata) { m.State, m.ProducerEpoch = PrepareAbort, math.MaxInt16 })); err != nil {
		t.Fatalf("fenced abort at the last epoch: %v", err)
	}
}

// TestLoadReplay: a new coordinator replays the log of an old one and
// knows what it knew: committed state per id, tombstones applied, bad and
// unknown records skipped, and the transactions left in PrepareCommit or
// PrepareAbort handed back to finish. Requests wait while it loads.
func TestLoadReplay(t *testing.T) {
	a := newHarness(t, Config{IDExpiration: time.Hour})
	ids := []string{"done", "open", "committing", "aborting", "expired", "fresh"}
	pids := map[string]int64{}
	epochs := map[string]int16{}
	for _, id := range ids {
		pids[id], epochs[id] = a.mustInit(id)
	}
	a.advance(2 * time.Hour)
	for _, tr := range a.c.ExpireTransactionalIDs(a.now) {
		if tr.TransactionalID == "expired" {
			a.write(tr)
		} else if res := a.c.Complete(tr, kerr.NotEnoughReplicas, a.now); res.Err == nil {
			t.Fatal("failed tombstone applied")
		}
	}
	a.mustInit("fresh") // a second epoch
	for _, id := range []string{"done", "open", "committing", "aborting"} {
		wantErr(t, "add "+id, a.add(id, pids[id], epochs[id], tp("t", 1), tp("t", 0)), nil)
	}
	e, _ := a.end("done", pids["done"], epochs["done"], true, false)
	wantErr(t, "commit done", e, nil)
	e, commitJob := a.end("committing", pids["committing"], epochs["committing"], true, true)
	wantErr(t, "commit committing", e, nil)
	e, abortJob := a.end("aborting", pids["aborting"], epochs["aborting"], false, true)
	wantErr(t, "abort aborting", e, nil)
	_ = commitJob
	_ = abortJob // the crash: markers never finished

	want := map[string]Metadata{}
	for _, id := range ids {
		if m, err := a.c.Describe(id); err == nil {
			m.LastProducerEpoch = -1 // not persisted, as in Kafka
			want[id] = m
		}
	}
	if _, ok := want["expired"]; ok || len(want) != 5 {
		t.Fatalf("before the crash: %+v", want)
	}

	b := newHarness(t, Config{IDExpiration: time.Hour})
	b.now = a.now.Add(time.Second)
	epoch := int32(9)
	parts := map[int32]bool{}
	for _, r := range a.log {
		parts[r.partition] = true
	}
	for p := range parts {
		b.c.BeginLoad(p, epoch)
	}
	// Requests wait for the load.
	for _, id := range ids {
		if b.c.PartitionFor(id) == b.c.PartitionFor("open") {
			if _, err := b.c.Describe(id); err != kerr.CoordinatorLoadInProgress {
				t.Fatalf("describe while loading: %v", err)
			}
			if err, _ := b.c.EndTxn(EndTxnRequest{TransactionalID: id, ProducerID: 1}, b.now); err != kerr.CoordinatorLoadInProgress {
				t.Fatalf("EndTxn while loading: %v", err)
			}
		}
	}
	if _, err := b.c.List(ListFilter{DurationMs: -1}, b.now); err != kerr.CoordinatorLoadInProgress {
		t.Fatalf("list while loading: %v", err)
	}
	for _, r := range a.log {
		if err := b.c.LoadRecord(r.partition, epoch, r.key, r.value); err != nil {
			t.Fatalf("load: %v", err)
		}
	}
	// Garbage and unknown keys are reported and skipped.
	p := b.c.PartitionFor("open")
	if err := b.c.LoadRecord(p, epoch, []byte{0, 7, 0, 1, 'x'}, []byte{1}); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
	if err := b.c.LoadRecord(p, epoch, EncodeKey("open"), []byte{0, 0, 1}); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("garbage: %v", err)
	}
	if err := b.c.LoadRecord(p, epoch+1, EncodeKey("open"), EncodeValue(want["open"])); err == nil {
		t.Fatal("record for another epoch accepted")
	}
	var jobs []*MarkerJob
	for part := range parts {
		j, err := b.c.FinishLoad(part, epoch, b.now)
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j...)
	}
	for id, w := range want {
		got, err := b.c.Describe(id)
		if err != nil || !reflect.DeepEqual(got, w) {
			t.Fatalf("%s after load:\n got %+v %v\nwant %+v", id, got, err, w)
		}
	}
	if _, err := b.c.Describe("expired"); err != kerr.TransactionalIDNotFound {
		t.Fatalf("expired id after load: %v", err)
	}
	if len(jobs) != 2 {
		t.Fatalf("marker jobs after load: %+v", jobs)
	}
	for _, j := range jobs {
		switch j.TransactionalID {
		case "committing":
			if !j.Commit || !equalTPs(j.Partitions, []TopicPartition{tp("t", 0), tp("t", 1)}) || j.CoordinatorEpoch != epoch {
				t.Fatalf("commit job %+v", j)
			}
		case "aborting":
			if j.Commit {
				t.Fatalf("abort job %+v", j)
			}
		default:
			t.Fatalf("unexpected job %+v", j)
		}
		if res := b.finish(j); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	b.wantState("committing", CompleteCommit)
	b.wantState("aborting", CompleteAbort)
	// The open transaction resumes, and times out from its original start.
	if got := b.c.Expired(b.now.Add(time.Minute)); len(got) != 1 || got[0].TransactionalID != "open" {
		t.Fatalf("expired after load: %+v", got)
	}
	e, _ = b.end("open", pids["open"], epochs["open"], true, false)
	wantErr(t, "commit after the load", e, nil)

	// The old coordinator's in-flight completions are refused once its
	// partition moved (here: reloaded at a new epoch on the same node).
	pa := a.c.PartitionFor("committing")
	a.c.Unload(pa, -1)
	if res := a.c.Complete(commitJob.Complete, nil, a.now); res.Err != kerr.NotCoordinator {
		t.Fatalf("completion after unload: %+v", res)
	}
	if err, _ := a.c.EndTxn(EndTxnRequest{TransactionalID: "committing", ProducerID: 1}, a.now); err != kerr.NotCoordinator {
		t.Fatalf("EndTxn after unload: %v", err)
	}
}
