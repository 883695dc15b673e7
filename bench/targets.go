package bench

import (
	"fmt"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/testenv"
)

// Targets. strata-proc is a real `strata serve` child process; the others run
// inside the benchmark process, as does the kgo client in every case.
const (
	targetStrata     = "strata"
	targetStrataProc = "strata-proc"
	targetKfake      = "kfake"
	targetRaw        = "raw"
)

// targetsFor lists the targets for a case: all cases get strata, kfake and
// raw; the main case (1 KiB records, 16 partitions, no compression) also gets
// the real process, since that is what users run.
func targetsFor(w workload) []string {
	ts := []string{targetStrata}
	if w.size == 1024 && w.parts == 16 && w.codec == "none" {
		ts = append(ts, targetStrataProc)
	}
	return append(ts, targetKfake, targetRaw)
}

// startKafka starts a Kafka-speaking target with its data under tb.TempDir
// (on the real disk here: /tmp is not tmpfs) and returns its address.
func startKafka(tb testing.TB, target string) string {
	tb.Helper()
	switch target {
	case targetStrata:
		return testenv.StartBroker(tb, broker.Options{DataDir: tb.TempDir()}).Addr
	case targetStrataProc:
		return testenv.StartProcess(tb, testenv.ProcessOptions{}).Addr
	case targetKfake:
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(tb.TempDir()))
		if err != nil {
			tb.Fatalf("kfake: %v", err)
		}
		tb.Cleanup(c.Close)
		return c.ListenAddrs()[0]
	}
	tb.Fatalf("unknown target %q", target)
	return ""
}

// observed remembers how many records per batch kgo actually sent in each
// case, so the raw reference moves batches of the same size in the same run.
var observed struct {
	sync.Mutex
	perBatch map[string]int
}

func noteBatch(w workload, target string, r result) {
	if r.batches == 0 {
		return
	}
	observed.Lock()
	defer observed.Unlock()
	if observed.perBatch == nil {
		observed.perBatch = map[string]int{}
	}
	// The in-process Strata run is the reference; others fill gaps.
	if _, ok := observed.perBatch[w.key()]; ok && target != targetStrata {
		return
	}
	observed.perBatch[w.key()] = int(r.batchRec / r.batches)
}

// rawPerBatch is the records per batch the raw reference uses: what kgo sent
// in this case, or (when raw runs alone) a full 1 MiB batch.
func rawPerBatch(w workload) (n int, fromKgo bool) {
	observed.Lock()
	defer observed.Unlock()
	if n, ok := observed.perBatch[w.key()]; ok && n > 0 {
		return n, true
	}
	return max(1, (1<<20)/(w.size+12)), false
}

func topicName(i int) string { return fmt.Sprintf("bench-%d", i) }
