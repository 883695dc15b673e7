package localstore

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Scan buffer sizes. Reads only need headers, so a small window that often
// covers several small batches is enough; recovery checks CRCs over whole
// batches and streams through a larger window.
const (
	readScanBufSize    = 8 << 10
	recoverScanBufSize = 1 << 20
)

// batchScanner walks the batches of a .log file with ReadAt (never the file's
// shared position, so it is safe beside concurrent readers and the writer),
// buffering a window so that small batches cost one syscall per window rather
// than one per header.
type batchScanner struct {
	r        io.ReaderAt
	pos      int64 // position of the next batch
	limit    int64 // end of the bytes to scan
	verify   bool  // check each batch's CRC-32C
	buf      []byte
	winStart int64
	winLen   int
}

func newBatchScanner(r io.ReaderAt, pos, limit int64, bufSize int, verify bool) *batchScanner {
	return &batchScanner{r: r, pos: pos, limit: limit, verify: verify, buf: make([]byte, bufSize), winStart: -1}
}

// next returns the next batch's header and position, io.EOF at the limit, an
// error wrapping ErrCorruption for a torn or invalid batch (the scanner does
// not advance past it), or an I/O error.
func (s *batchScanner) next() (BatchHeader, int64, error) {
	pos := s.pos
	if pos >= s.limit {
		return BatchHeader{}, pos, io.EOF
	}
	if s.limit-pos < BatchHeaderSize {
		return BatchHeader{}, pos, fmt.Errorf("%w: torn batch header at position %d (%d bytes left)", ErrCorruption, pos, s.limit-pos)
	}
	hdr, err := s.window(pos, BatchHeaderSize)
	if err != nil {
		return BatchHeader{}, pos, err
	}
	h, err := ParseBatchHeader(hdr)
	if err != nil {
		return h, pos, fmt.Errorf("batch at position %d: %w", pos, err)
	}
	end := pos + int64(h.Size())
	if end > s.limit {
		return h, pos, fmt.Errorf("%w: torn batch at position %d: needs %d bytes, %d left", ErrCorruption, pos, h.Size(), s.limit-pos)
	}
	if s.verify {
		var crc uint32
		for p := pos + offAttributes; p < end; {
			n := min(int64(len(s.buf)), end-p)
			chunk, err := s.window(p, int(n))
			if err != nil {
				return h, pos, err
			}
			crc = crc32.Update(crc, castagnoli, chunk)
			p += n
		}
		if crc != h.CRC {
			return h, pos, fmt.Errorf("%w: batch at position %d (offset %d): crc %08x, computed %08x", ErrCorruption, pos, h.BaseOffset, h.CRC, crc)
		}
	}
	s.pos = end
	return h, pos, nil
}

// window returns n bytes at pos, refilling the buffer when they are not in it.
func (s *batchScanner) window(pos int64, n int) ([]byte, error) {
	if s.winStart >= 0 && pos >= s.winStart && pos+int64(n) <= s.winStart+int64(s.winLen) {
		off := pos - s.winStart
		return s.buf[off : off+int64(n)], nil
	}
	want := min(int64(len(s.buf)), s.limit-pos)
	m, err := s.r.ReadAt(s.buf[:want], pos)
	if m < n {
		s.winStart = -1
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: file ends at position %d, expected data up to %d", ErrCorruption, pos+int64(m), s.limit)
		}
		return nil, fmt.Errorf("localstore: read at %d: %w", pos, err)
	}
	s.winStart, s.winLen = pos, m
	return s.buf[:n], nil
}

// ScanSegmentFile calls fn for each batch header of a .log file with its
// position, stopping at EOF (nil), at fn's first error, or at the first
// invalid batch (an error wrapping ErrCorruption that names the position).
// CRCs are checked. It is what `strata dump-log` builds on.
func ScanSegmentFile(path string, fn func(pos int64, h BatchHeader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("localstore: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("localstore: %w", err)
	}
	s := newBatchScanner(f, 0, st.Size(), recoverScanBufSize, true)
	for {
		h, pos, err := s.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("localstore: %s: %w", path, err)
		}
		if err := fn(pos, h); err != nil {
			return err
		}
	}
}

// File name suffixes, as in Kafka.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	snapshotSuffix  = ".snapshot"
	tmpSuffix       = ".tmp"
)

// offsetFileName is Kafka's 20-digit zero-padded base offset file name.
func offsetFileName(dir string, offset int64, suffix string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", offset, suffix))
}

// ParseSegmentBaseOffset extracts the base offset from a segment file name
// such as 00000000000000001234.log (any suffix).
func ParseSegmentBaseOffset(path string) (int64, error) {
	name := filepath.Base(path)
	digits, _, _ := strings.Cut(name, ".")
	if len(digits) != 20 || strings.Trim(digits, "0123456789") != "" {
		return 0, fmt.Errorf("localstore: %q is not a 20-digit offset file name", name)
	}
	off, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || off < 0 {
		return 0, fmt.Errorf("localstore: %q is not a 20-digit offset file name", name)
	}
	return off, nil
}
