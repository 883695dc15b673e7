package broker

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/localstore"
)

// seedFrames are well-formed requests of several kinds, so the fuzzer starts
// from inputs that reach the handlers.
func seedFrames() [][]byte {
	var out [][]byte
	add := func(req kmsg.Request, version int16) {
		req.SetVersion(version)
		var b []byte
		b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
		b = binary.BigEndian.AppendUint16(b, uint16(version))
		b = binary.BigEndian.AppendUint32(b, 1)
		b = binary.BigEndian.AppendUint16(b, 1)
		b = append(b, 'f')
		if req.IsFlexible() {
			b = append(b, 0)
		}
		out = append(out, req.AppendTo(b))
	}
	add(kmsg.NewPtrApiVersionsRequest(), 3)
	add(kmsg.NewPtrApiVersionsRequest(), 0)
	md := kmsg.NewPtrMetadataRequest()
	name := "fuzz"
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: &name}}
	add(md, 12)
	add(md, 1)
	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "fuzz", NumPartitions: 1, ReplicationFactor: 1}}
	add(ct, 7)
	pr := kmsg.NewPtrProduceRequest()
	pr.Acks = 1
	rec := kmsg.NewRecord()
	rec.Value = []byte("v")
	rec.Length = int32(len(rec.AppendTo(nil)) - 1)
	rb := kmsg.NewRecordBatch()
	rb.Magic, rb.NumRecords, rb.ProducerID, rb.ProducerEpoch, rb.FirstSequence = 2, 1, -1, -1, -1
	rb.Records = rec.AppendTo(nil)
	batch := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(batch[8:], uint32(len(batch)-12))
	pr.Topics = []kmsg.ProduceRequestTopic{{Topic: "fuzz", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
	add(pr, 9)
	fr := kmsg.NewPtrFetchRequest()
	fr.MaxBytes = 1 << 20
	fr.Topics = []kmsg.FetchRequestTopic{{Topic: "fuzz", Partitions: []kmsg.FetchRequestTopicPartition{{PartitionMaxBytes: 1 << 20}}}}
	add(fr, 11)
	// KIP-227 paths: a new session, an incremental fetch with a forgotten
	// partition, by topic id.
	fs := kmsg.NewPtrFetchRequest()
	fs.SessionEpoch = 0
	fs.Topics = []kmsg.FetchRequestTopic{{TopicID: [16]byte{1}, Partitions: []kmsg.FetchRequestTopicPartition{{PartitionMaxBytes: 1 << 20}}}}
	add(fs, 13)
	fi := kmsg.NewPtrFetchRequest()
	fi.SessionID, fi.SessionEpoch = 1, 1
	fi.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{{Topic: "fuzz", Partitions: []int32{0}}}
	add(fi, 12)
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "fuzz", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Timestamp: -1}}}}
	add(lo, 7)
	add(kmsg.NewPtrInitProducerIDRequest(), 4)
	// Transactions (KIP-98): every API the coordinator and leaders serve.
	txnID := "fuzz-txn"
	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.TransactionalID, ip.TransactionTimeoutMillis = &txnID, 60000
	add(ip, 4)
	add(ip, 1)
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorType, fc.CoordinatorKey, fc.CoordinatorKeys = 1, txnID, []string{txnID}
	add(fc, 3)
	add(fc, 4)
	ap := kmsg.NewPtrAddPartitionsToTxnRequest()
	ap.TransactionalID, ap.ProducerID = txnID, 1
	ap.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "fuzz", Partitions: []int32{0}}}
	add(ap, 3)
	ap4 := kmsg.NewPtrAddPartitionsToTxnRequest()
	ap4.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{{TransactionalID: txnID, ProducerID: 1, VerifyOnly: true,
		Topics: []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "fuzz", Partitions: []int32{0}}}}}
	add(ap4, 4)
	ao := kmsg.NewPtrAddOffsetsToTxnRequest()
	ao.TransactionalID, ao.ProducerID, ao.Group = txnID, 1, "fuzz-group"
	add(ao, 3)
	et := kmsg.NewPtrEndTxnRequest()
	et.TransactionalID, et.ProducerID, et.Commit = txnID, 1, true
	add(et, 3)
	wm := kmsg.NewPtrWriteTxnMarkersRequest()
	wm.Markers = []kmsg.WriteTxnMarkersRequestMarker{{ProducerID: 1, Committed: true, CoordinatorEpoch: 0,
		Topics: []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: "fuzz", Partitions: []int32{0}}}}}
	add(wm, 1)
	add(wm, 0)
	to := kmsg.NewPtrTxnOffsetCommitRequest()
	to.TransactionalID, to.Group, to.ProducerID = txnID, "fuzz-group", 1
	to.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "fuzz", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
	add(to, 3)
	add(to, 0)
	dpr := kmsg.NewPtrDescribeProducersRequest()
	dpr.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: "fuzz", Partitions: []int32{0}}}
	add(dpr, 0)
	dtr := kmsg.NewPtrDescribeTransactionsRequest()
	dtr.TransactionalIDs = []string{txnID}
	add(dtr, 0)
	ltr := kmsg.NewPtrListTransactionsRequest()
	ltr.StateFilters, ltr.DurationFilterMillis = []string{"Ongoing"}, -1
	add(ltr, 1)
	rb.Attributes, rb.ProducerID, rb.ProducerEpoch, rb.FirstSequence = 0x10, 1, 0, 0
	tbatch := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(tbatch[8:], uint32(len(tbatch)-12))
	localstore.SetCRC(tbatch)
	tpr := kmsg.NewPtrProduceRequest()
	tpr.Acks, tpr.TransactionID = -1, &txnID
	tpr.Topics = []kmsg.ProduceRequestTopic{{Topic: "fuzz", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: tbatch}}}}
	add(tpr, 11)
	rcf := kmsg.NewPtrFetchRequest()
	rcf.MaxBytes, rcf.IsolationLevel = 1<<20, 1
	rcf.Topics = []kmsg.FetchRequestTopic{{Topic: "fuzz", Partitions: []kmsg.FetchRequestTopicPartition{{PartitionMaxBytes: 1 << 20}}}}
	add(rcf, 11)
	dc := kmsg.NewPtrDescribeConfigsRequest()
	dc.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "fuzz"}}
	add(dc, 4)
	return out
}

// FuzzRequestFrame feeds arbitrary frames through decoding and the handlers of
// a real broker (fetch waits disabled by the fuzzed values themselves being
// bounded below). It must never panic; errors just close the connection.
func FuzzRequestFrame(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 18, 0, 99, 0, 0, 0, 1, 0xff, 0xff})
	var (
		once sync.Once
		b    *Broker
	)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, frame []byte) {
		once.Do(func() {
			var err error
			b, err = New(Options{DataDir: dir, Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
		})
		hdr, req, err := decodeRequest(frame)
		if err != nil {
			return
		}
		// Long polls would make the fuzzer crawl; the waiting logic is
		// tested elsewhere.
		if fr, ok := req.(*kmsg.FetchRequest); ok {
			fr.MaxWaitMillis = 0
		}
		client, server := net.Pipe()
		go io.Copy(io.Discard, client)
		c := newConn(b, server)
		resp, err := apis[hdr.key].handle(c, &hdr, req)
		if err == nil {
			switch r := resp.(type) {
			case *fetchReply:
				r.writeTo(c, &hdr)
			case kmsg.Response:
				c.writeResponse(hdr, r)
			}
		}
		server.Close()
		client.Close()
	})
}
