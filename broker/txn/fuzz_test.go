package txn

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// FuzzDecodeRecord feeds arbitrary keys and values to the record decoder:
// errors are ErrBadRecord or ErrUnknownKey, never a panic; what decodes
// encodes back to a record that decodes the same.
func FuzzDecodeRecord(f *testing.F) {
	m := Metadata{TransactionalID: "fz", ProducerID: 3, PrevProducerID: -1, ProducerEpoch: 2, TimeoutMs: 500,
		State: Ongoing, Partitions: []TopicPartition{{"t", 0}, {"u", 3}}, StartTimeMs: 1, LastUpdateMs: 2}
	f.Add(EncodeKey("fz"), EncodeValue(m))
	m.PrevProducerID = 1
	f.Add(EncodeKey("fz"), EncodeValue(m))
	m.State, m.Partitions, m.StartTimeMs = Empty, nil, -1
	f.Add(EncodeKey("fz"), EncodeValue(m))
	f.Add(EncodeKey("fz"), []byte(nil))
	f.Add([]byte{0, 1, 0, 0}, []byte{0, 0})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		id, got, err := DecodeRecord(key, value)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) && !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("error %v is neither ErrBadRecord nor ErrUnknownKey", err)
			}
			return
		}
		if got == nil {
			return
		}
		id2, again, err := DecodeRecord(EncodeKey(id), EncodeValue(*got))
		if err != nil || id2 != id || !reflect.DeepEqual(again, got) {
			t.Fatalf("re-encoded record differs: %+v → %+v (%v)", got, again, err)
		}
	})
}

// FuzzLoad loads arbitrary records into a coordinator and then drives it:
// whatever the log held, nothing panics, every loaded transaction in a
// Prepare state gets a marker job, and timeouts and expiry still work.
func FuzzLoad(f *testing.F) {
	m := Metadata{TransactionalID: "fz", ProducerID: 3, PrevProducerID: -1, ProducerEpoch: 2, TimeoutMs: 500,
		State: PrepareCommit, Partitions: []TopicPartition{{"t", 0}}, StartTimeMs: 1, LastUpdateMs: 2}
	v := EncodeValue(m)
	m.State = Ongoing
	f.Add(EncodeKey("fz"), v, EncodeValue(m), byte(0))
	f.Add(EncodeKey("fz"), v, []byte(nil), byte(1))
	f.Fuzz(func(t *testing.T, key, v1, v2 []byte, op byte) {
		c, err := New(Config{StatePartitions: 1, IDExpiration: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		c.BeginLoad(0, 1)
		_ = c.LoadRecord(0, 1, key, v1)
		_ = c.LoadRecord(0, 1, key, v2)
		jobs, err := c.FinishLoad(0, 1, time.UnixMilli(10))
		if err != nil {
			t.Fatal(err)
		}
		id, _, _ := DecodeRecord(key, nil)
		if md, kerrv := c.Describe(id); kerrv == nil {
			prepare := md.State == PrepareCommit || md.State == PrepareAbort
			if prepare != (len(jobs) == 1) {
				t.Fatalf("state %s with %d jobs", md.State, len(jobs))
			}
			if md.State == Ongoing && len(md.Partitions) == 0 {
				t.Fatal("ongoing without partitions loaded")
			}
		}
		now := time.UnixMilli(1 << 40)
		for _, x := range c.Expired(now) {
			if tr := c.AbortExpired(x, now); tr != nil {
				res := c.Complete(tr, nil, now)
				if res.Err != nil || res.Markers == nil {
					t.Fatalf("timeout abort: %+v", res)
				}
				jobs = append(jobs, res.Markers)
			}
		}
		for _, j := range jobs {
			if res := c.Complete(j.Complete, nil, now); res.Err != nil {
				t.Fatalf("completion: %+v", res)
			}
		}
		switch op % 3 {
		case 0:
			c.InitProducerID(InitProducerIDRequest{TransactionalID: id, TimeoutMs: 100, ProducerID: -1, ProducerEpoch: -1}, now, func() (int64, error) { return 77, nil })
		case 1:
			later := now.Add(2 * time.Hour) // past the expiration of the updates above
			for _, tr := range c.ExpireTransactionalIDs(later) {
				c.Complete(tr, nil, later)
			}
			if _, kerrv := c.Describe(id); kerrv == nil {
				t.Fatal("an id idle for ages survived expiry")
			}
		case 2:
			c.EndTxn(EndTxnRequest{TransactionalID: id, ProducerID: 3, ProducerEpoch: 2, Commit: true}, now)
		}
	})
}
