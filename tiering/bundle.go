package tiering

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
)

// The index bundle is one object per remote segment holding what a reader or
// a restore needs besides the .log: the offset index, the time index, the
// producer snapshot, the leader epochs and the transaction index. One object
// instead of five is four fewer PUTs per copy and GETs per cold read.
//
// The transaction index section (Kafka's .txnindex bytes: the aborted
// transactions whose abort marker is in the segment, KIP-98) lets a
// read_committed fetch from the bucket list the aborted transactions as a
// local one does. Bundles written before it existed have no such section:
// they were copied when the broker refused transactional batches, so their
// segments hold no transaction and HasTxnIndex false means "none".
//
//	"STIX" | version u8 | sections (type u8, length u32, bytes)… | CRC-32C u32 of all before
const (
	bundleMagic   = "STIX"
	bundleVersion = 1

	sectionOffsetIndex = 1
	sectionTimeIndex   = 2
	sectionSnapshot    = 3
	sectionEpochs      = 4
	sectionTxnIndex    = 5
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// txnIndexEntrySize is one .txnindex entry (Kafka's AbortedTxn.TOTAL_SIZE).
const txnIndexEntrySize = 34

// Bundle is a decoded index bundle.
type Bundle struct {
	OffsetIndex []byte // Kafka .index bytes: (int32 relative offset, int32 position) entries
	TimeIndex   []byte // Kafka .timeindex bytes: (int64 timestamp, int32 relative offset) entries
	Snapshot    []byte // producer-state snapshot after the segment, if one existed
	Epochs      []EpochStart
	// TxnIndex is the segment's aborted transactions in Kafka's .txnindex
	// layout (localstore.AppendTxnIndex); HasTxnIndex is false for bundles
	// written before the section existed.
	TxnIndex    []byte
	HasTxnIndex bool
}

// Encode serialises the bundle.
func (b *Bundle) Encode() []byte {
	out := []byte(bundleMagic)
	out = append(out, bundleVersion)
	add := func(typ byte, data []byte) {
		out = append(out, typ)
		out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
		out = append(out, data...)
	}
	add(sectionOffsetIndex, b.OffsetIndex)
	add(sectionTimeIndex, b.TimeIndex)
	add(sectionSnapshot, b.Snapshot)
	var ep []byte
	for _, e := range b.Epochs {
		ep = binary.BigEndian.AppendUint32(ep, uint32(e.Epoch))
		ep = binary.BigEndian.AppendUint64(ep, uint64(e.StartOffset))
	}
	add(sectionEpochs, ep)
	if b.HasTxnIndex {
		add(sectionTxnIndex, b.TxnIndex)
	}
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

// ErrCorruptObject marks a remote object that fails its checks.
var ErrCorruptObject = errors.New("tiering: corrupt remote object")

// DecodeBundle parses and verifies a bundle.
func DecodeBundle(b []byte) (*Bundle, error) {
	if len(b) < len(bundleMagic)+1+4 || string(b[:4]) != bundleMagic {
		return nil, fmt.Errorf("%w: not an index bundle", ErrCorruptObject)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: index bundle CRC mismatch", ErrCorruptObject)
	}
	if body[4] != bundleVersion {
		return nil, fmt.Errorf("%w: index bundle version %d", ErrCorruptObject, body[4])
	}
	out := &Bundle{}
	rest := body[5:]
	for len(rest) > 0 {
		if len(rest) < 5 {
			return nil, fmt.Errorf("%w: truncated index bundle section", ErrCorruptObject)
		}
		typ, n := rest[0], binary.BigEndian.Uint32(rest[1:5])
		rest = rest[5:]
		if uint64(n) > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: index bundle section longer than the object", ErrCorruptObject)
		}
		data := rest[:n]
		rest = rest[n:]
		switch typ {
		case sectionOffsetIndex:
			if len(data)%8 != 0 {
				return nil, fmt.Errorf("%w: offset index of %d bytes", ErrCorruptObject, len(data))
			}
			out.OffsetIndex = data
		case sectionTimeIndex:
			if len(data)%12 != 0 {
				return nil, fmt.Errorf("%w: time index of %d bytes", ErrCorruptObject, len(data))
			}
			out.TimeIndex = data
		case sectionSnapshot:
			out.Snapshot = data
		case sectionEpochs:
			if len(data)%12 != 0 {
				return nil, fmt.Errorf("%w: epochs of %d bytes", ErrCorruptObject, len(data))
			}
			for i := 0; i < len(data); i += 12 {
				out.Epochs = append(out.Epochs, EpochStart{
					Epoch:       int32(binary.BigEndian.Uint32(data[i:])),
					StartOffset: int64(binary.BigEndian.Uint64(data[i+4:])),
				})
			}
		case sectionTxnIndex:
			if len(data)%txnIndexEntrySize != 0 {
				return nil, fmt.Errorf("%w: transaction index of %d bytes", ErrCorruptObject, len(data))
			}
			out.TxnIndex, out.HasTxnIndex = data, true
		default:
			// Unknown sections are skipped so newer writers stay readable.
		}
	}
	return out, nil
}

// PositionFor returns the byte position in the segment of the last offset
// index entry at or below offset (0 if none): where a scan for offset starts.
func (b *Bundle) PositionFor(base, offset int64) int64 {
	n := len(b.OffsetIndex) / 8
	i := sort.Search(n, func(i int) bool {
		return base+int64(int32(binary.BigEndian.Uint32(b.OffsetIndex[i*8:]))) > offset
	})
	if i == 0 {
		return 0
	}
	return int64(binary.BigEndian.Uint32(b.OffsetIndex[(i-1)*8+4:]))
}

// OffsetForTimestamp returns the offset of the first time index entry whose
// timestamp is >= ts (the scan for the exact batch starts at the index entry
// before it), or -1 if the index has none.
func (b *Bundle) OffsetForTimestamp(base, ts int64) int64 {
	n := len(b.TimeIndex) / 12
	i := sort.Search(n, func(i int) bool {
		return int64(binary.BigEndian.Uint64(b.TimeIndex[i*12:])) >= ts
	})
	if i == 0 {
		return base
	}
	if i >= n {
		i = n - 1
	}
	return base + int64(int32(binary.BigEndian.Uint32(b.TimeIndex[(i-1)*12+8:])))
}
