package localstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// The one decoder of compressed record sections: the broker uses it to
// validate produced batches, the cleaner to read keys.

// MaxDecompressedRecords bounds what one compressed batch may expand to, so a
// small "zip bomb" — from a client or a corrupt file — cannot take the
// broker's memory.
const MaxDecompressedRecords = 256 << 20

// errCodec marks records that cannot be decompressed.
var errCodec = errors.New("localstore: records codec")

var (
	zstdDecoders = sync.Pool{New: func() any {
		d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxDecompressedRecords))
		return d
	}}
	lz4Readers = sync.Pool{New: func() any { return lz4.NewReader(nil) }}
)

// DecompressRecords returns the uncompressed records section of a batch
// compressed with codec (the batch attributes' low 3 bits: 0 none, 1 gzip,
// 2 snappy — raw block or snappy-java's xerial framing —, 3 lz4 frame,
// 4 zstd). It writes into dst's storage while it is large enough, so a caller
// that only walks the records can reuse one buffer. Codec 0 returns src.
func DecompressRecords(dst []byte, codec int8, src []byte) ([]byte, error) {
	switch codec {
	case codecNone:
		return src, nil
	case codecGzip:
		zr, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %w", errCodec, err)
		}
		return readLimited(dst, zr)
	case codecSnappy:
		if isXerial(src) {
			return unxerial(src[len(xerialHeader):])
		}
		return snappyBlock(src)
	case codecLz4:
		zr := lz4Readers.Get().(*lz4.Reader)
		defer lz4Readers.Put(zr)
		zr.Reset(bytes.NewReader(src))
		return readLimited(dst, zr)
	case codecZstd:
		d := zstdDecoders.Get().(*zstd.Decoder)
		defer zstdDecoders.Put(d)
		out, err := d.DecodeAll(src, dst[:0])
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %w", errCodec, err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: unknown compression codec %d", errCodec, codec)
	}
}

func isXerial(src []byte) bool {
	return len(src) >= len(xerialHeader) && bytes.HasPrefix(src, xerialMagic)
}

func snappyBlock(src []byte) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %w", errCodec, err)
	}
	if n > MaxDecompressedRecords {
		return nil, fmt.Errorf("%w: snappy block expands to %d bytes", errCodec, n)
	}
	out, err := s2.Decode(nil, src)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %w", errCodec, err)
	}
	return out, nil
}

// unxerial decodes snappy-java's framing after its header: repeated
// (big-endian int32 length, raw snappy block).
func unxerial(src []byte) ([]byte, error) {
	var out []byte
	for len(src) > 0 {
		if len(src) < 4 {
			return nil, fmt.Errorf("%w: truncated xerial snappy chunk", errCodec)
		}
		n := binary.BigEndian.Uint32(src)
		src = src[4:]
		if uint64(n) > uint64(len(src)) {
			return nil, fmt.Errorf("%w: xerial snappy chunk of %d bytes, %d left", errCodec, n, len(src))
		}
		blk, err := snappyBlock(src[:n])
		if err != nil {
			return nil, err
		}
		if len(out)+len(blk) > MaxDecompressedRecords {
			return nil, fmt.Errorf("%w: snappy data expands beyond %d bytes", errCodec, MaxDecompressedRecords)
		}
		out = append(out, blk...)
		src = src[n:]
	}
	return out, nil
}

// readLimited reads r to the end into dst's storage (growing it as needed),
// failing once the data passes MaxDecompressedRecords.
func readLimited(dst []byte, r io.Reader) ([]byte, error) {
	b := dst[:0]
	if cap(b) == 0 {
		b = make([]byte, 0, 64<<10)
	}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if len(b) > MaxDecompressedRecords {
			return nil, fmt.Errorf("%w: batch expands beyond %d bytes", errCodec, MaxDecompressedRecords)
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errCodec, err)
		}
	}
}
