package txn

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestConcurrentProducers runs producers on their own ids from many
// goroutines, with a timer goroutine scanning for timeouts and listing, as
// the broker's connections and maintenance loop will. Run with -race.
// Each producer commits 20 transactions (appends are skipped: Complete is
// called straight away) and may not start the next before its markers
// completed.
func TestConcurrentProducers(t *testing.T) {
	h := newHarness(t, Config{})
	var scanner, producers sync.WaitGroup
	done := make(chan struct{})
	scanner.Add(1)
	go func() {
		defer scanner.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			for _, x := range h.c.Expired(h.now.Add(30 * time.Second)) {
				// Timeouts are a minute away: never listed.
				t.Errorf("expired %+v", x)
			}
			if _, err := h.c.List(ListFilter{DurationMs: -1}, h.now); err != nil {
				t.Errorf("list: %v", err)
			}
		}
	}()
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		producers.Add(1)
		go func(g int) {
			defer producers.Done()
			id := fmt.Sprintf("producer-%d", g)
			err, tr := h.c.InitProducerID(InitProducerIDRequest{TransactionalID: id, TimeoutMs: 60_000, ProducerID: -1, ProducerEpoch: -1}, h.now, h.newID)
			if err != nil {
				errs <- err
				return
			}
			res := h.c.Complete(tr, nil, h.now)
			pid, epoch := res.ProducerID, res.ProducerEpoch
			for i := 0; i < 20; i++ {
				err, tr := h.c.AddPartitions(AddPartitionsRequest{TransactionalID: id, ProducerID: pid, ProducerEpoch: epoch,
					Partitions: []TopicPartition{{"out", int32(i % 3)}}}, h.now)
				if err != nil {
					errs <- fmt.Errorf("%s add %d: %v", id, i, err)
					return
				}
				if tr != nil {
					if res := h.c.Complete(tr, nil, h.now); res.Err != nil {
						errs <- res.Err
						return
					}
				}
				err, tr = h.c.EndTxn(EndTxnRequest{TransactionalID: id, ProducerID: pid, ProducerEpoch: epoch, Commit: true}, h.now)
				if err != nil {
					errs <- fmt.Errorf("%s end %d: %v", id, i, err)
					return
				}
				res := h.c.Complete(tr, nil, h.now)
				if res.Err != nil || res.Markers == nil {
					errs <- fmt.Errorf("%s end %d written: %+v", id, i, res)
					return
				}
				// The next transaction cannot start before the markers.
				if err, _ := h.c.AddPartitions(AddPartitionsRequest{TransactionalID: id, ProducerID: pid, ProducerEpoch: epoch,
					Partitions: []TopicPartition{{"out", 0}}}, h.now); err != kerr.ConcurrentTransactions {
					errs <- fmt.Errorf("%s: add during markers: %v", id, err)
					return
				}
				if res := h.c.Complete(res.Markers.Complete, nil, h.now); res.Err != nil {
					errs <- res.Err
					return
				}
			}
		}(g)
	}
	producers.Wait()
	close(done)
	scanner.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	all, err := h.c.List(ListFilter{States: []State{CompleteCommit}, DurationMs: -1}, h.now)
	if err != nil || len(all) != 8 {
		t.Fatalf("committed producers: %d %v", len(all), err)
	}
}
