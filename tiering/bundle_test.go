package tiering

import (
	"bytes"
	"errors"
	"testing"

	"github.com/strata-broker/strata/localstore"
)

// TestBundleTxnIndex: the transaction index section round-trips, a bundle
// written without it (before transactions existed) says so, and a section
// whose size is not whole entries is corrupt.
func TestBundleTxnIndex(t *testing.T) {
	idx := localstore.AppendTxnIndex(nil, []localstore.AbortedTxn{{ProducerID: 7, FirstOffset: 10, LastOffset: 20, LastStableOffset: 21}})
	b := &Bundle{OffsetIndex: []byte{}, TimeIndex: []byte{}, TxnIndex: idx, HasTxnIndex: true, Epochs: []EpochStart{{Epoch: 1, StartOffset: 0}}}
	got, err := DecodeBundle(b.Encode())
	if err != nil || !got.HasTxnIndex || !bytes.Equal(got.TxnIndex, idx) || len(got.Epochs) != 1 {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	entries, err := localstore.DecodeTxnIndex(got.TxnIndex, 0, 100)
	if err != nil || len(entries) != 1 || entries[0].ProducerID != 7 {
		t.Fatalf("decoded entries: %+v %v", entries, err)
	}
	old, err := DecodeBundle((&Bundle{}).Encode())
	if err != nil || old.HasTxnIndex {
		t.Fatalf("bundle without the section: %+v %v", old, err)
	}
	bad := &Bundle{TxnIndex: idx[:len(idx)-1], HasTxnIndex: true}
	if _, err := DecodeBundle(bad.Encode()); !errors.Is(err, ErrCorruptObject) {
		t.Fatalf("a cut transaction index: %v", err)
	}
}

// FuzzDecodeBundle: bundles come from the bucket; anything that does not
// decode is ErrCorruptObject, never a panic.
func FuzzDecodeBundle(f *testing.F) {
	idx := localstore.AppendTxnIndex(nil, []localstore.AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: 3, LastStableOffset: 4}})
	f.Add((&Bundle{OffsetIndex: make([]byte, 8), TimeIndex: make([]byte, 12), Snapshot: []byte("s"), TxnIndex: idx, HasTxnIndex: true,
		Epochs: []EpochStart{{Epoch: 2, StartOffset: 5}}}).Encode())
	f.Add((&Bundle{}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeBundle(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptObject) {
				t.Fatalf("error not marked corrupt: %v", err)
			}
			return
		}
		if got.HasTxnIndex {
			localstore.DecodeTxnIndex(got.TxnIndex, 0, -1)
		}
	})
}
