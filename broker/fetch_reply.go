package broker

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/tiering"
)

// fetchReply is a Fetch response whose record bytes stay where they are —
// in segment files, or in the remote chunk cache — until they are written to
// the socket.
//
// How it stays inside kmsg: each partition's RecordBatches is set to a
// placeholder — a per-process random 16-byte marker plus the part's index.
// kmsg encodes the whole response; we then find each placeholder (in order),
// replace its length prefix with the real one (int32, or uvarint(len+1) in
// flexible versions) and send the records in its place: a file range with
// sendfile, or cached chunk bytes with one writev. Everything except those
// length prefixes is encoded by kmsg.
type fetchReply struct {
	resp     *kmsg.FetchResponse
	parts    []replyPart
	hasError bool
	// hasRemote: some partition's records came from the bucket. Such a
	// fetch is answered at once, whatever min_bytes says (Kafka completes a
	// remote fetch when its read does, DelayedRemoteFetch).
	hasRemote bool
}

// replyPart is one partition's records: a file slice, or chunk views.
type replyPart struct {
	slice localstore.Slice // Size > 0: a local file range
	bufs  [][]byte         // otherwise: views of cached remote chunks
	recs  tiering.Records  // … which hold these chunk buffers until written
	size  int64
}

const placeholderLen = 20

var placeholderMarker = func() [16]byte {
	var m [16]byte
	rand.Read(m[:])
	return m
}()

func (r *fetchReply) addSlice(s localstore.Slice) []byte {
	return r.addPart(replyPart{slice: s, size: s.Size})
}

// addRecords adds remote records, written from the cached chunks they view.
func (r *fetchReply) addRecords(recs tiering.Records) []byte {
	return r.addPart(replyPart{bufs: recs.Parts, recs: recs, size: int64(recs.Size)})
}

func (r *fetchReply) addPart(p replyPart) []byte {
	ph := make([]byte, placeholderLen)
	copy(ph, placeholderMarker[:])
	binary.BigEndian.PutUint32(ph[16:], uint32(len(r.parts)))
	r.parts = append(r.parts, p)
	return ph
}

func (r *fetchReply) release() {
	for i := range r.parts {
		if p := &r.parts[i]; p.slice.Size > 0 {
			p.slice.Release()
		} else {
			p.recs.Release()
		}
	}
	r.parts = nil
}

// writeTo encodes the response and streams it, with record bytes sent by
// sendfile straight from the page cache, or by writev from cached chunks.
func (r *fetchReply) writeTo(c *conn, h *reqHeader) error {
	defer r.release()
	r.resp.SetVersion(h.version)
	enc := make([]byte, 0, 256+64*len(r.parts))
	enc = kbin.AppendInt32(enc, h.correlationID)
	if h.flexible {
		enc = append(enc, 0)
	}
	enc = r.resp.AppendTo(enc)

	// The stream alternates: bytes, records, bytes, records, …, bytes.
	// Placeholders are found in the order they were encoded, which need not
	// be the order parts were added (remote reads finish after local ones).
	type cut struct{ start, end, part int } // placeholder span including its length prefix
	cuts := make([]cut, 0, len(r.parts))
	total := int64(len(enc))
	seen := make([]bool, len(r.parts))
	for search := 0; len(cuts) < len(r.parts); {
		at := bytes.Index(enc[search:], placeholderMarker[:])
		if at < 0 {
			return fmt.Errorf("fetch response: %d of %d placeholders found", len(cuts), len(r.parts))
		}
		at += search
		if at+placeholderLen > len(enc) {
			return fmt.Errorf("fetch response: truncated placeholder")
		}
		i := int(binary.BigEndian.Uint32(enc[at+16:]))
		if i >= len(r.parts) || seen[i] {
			return fmt.Errorf("fetch response: bad placeholder %d", i)
		}
		seen[i] = true
		prefix := 4
		if h.flexible {
			prefix = kbin.UvarintLen(placeholderLen + 1)
		}
		cuts = append(cuts, cut{at - prefix, at + placeholderLen, i})
		search = at + placeholderLen
		n := r.parts[i].size
		newPrefix := 4
		if h.flexible {
			newPrefix = kbin.UvarintLen(uint32(n + 1))
		}
		total += int64(newPrefix) + n - int64(prefix+placeholderLen)
	}
	if total > 1<<31-1 {
		return fmt.Errorf("fetch response of %d bytes is too large", total)
	}

	var head []byte
	head = kbin.AppendInt32(head, int32(total))
	prev := 0
	bufs := net.Buffers{}
	for i, ct := range cuts {
		p := r.parts[ct.part]
		chunk := append([]byte(nil), enc[prev:ct.start]...)
		if h.flexible {
			chunk = kbin.AppendUvarint(chunk, uint32(p.size+1))
		} else {
			chunk = kbin.AppendInt32(chunk, int32(p.size))
		}
		if i == 0 {
			chunk = append(head, chunk...)
		}
		bufs = append(bufs[:0], chunk)
		if p.slice.Size == 0 {
			bufs = append(bufs, p.bufs...) // one writev: no copy of the chunks
		}
		if _, err := bufs.WriteTo(c.nc); err != nil {
			return err
		}
		if p.slice.Size > 0 {
			if err := sendFileRange(c.nc, p.slice.File, p.slice.Pos, p.slice.Size); err != nil {
				return err
			}
		}
		prev = ct.end
	}
	tail := enc[prev:]
	if len(cuts) == 0 {
		tail = append(head, tail...)
	}
	_, err := c.nc.Write(tail)
	return err
}
