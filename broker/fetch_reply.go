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
)

// fetchReply is a Fetch response whose record bytes stay in segment files
// until they are written to the socket.
//
// How it stays inside kmsg: each partition's RecordBatches is set to a
// placeholder — a per-process random 16-byte marker plus the slice's index.
// kmsg encodes the whole response; we then find each placeholder (in order),
// replace its length prefix with the real one (int32, or uvarint(len+1) in
// flexible versions) and send the file range in its place. Everything except
// those length prefixes is encoded by kmsg.
type fetchReply struct {
	resp     *kmsg.FetchResponse
	slices   []localstore.Slice
	hasError bool
}

const placeholderLen = 20

var placeholderMarker = func() [16]byte {
	var m [16]byte
	rand.Read(m[:])
	return m
}()

func (r *fetchReply) addSlice(s localstore.Slice) []byte {
	ph := make([]byte, placeholderLen)
	copy(ph, placeholderMarker[:])
	binary.BigEndian.PutUint32(ph[16:], uint32(len(r.slices)))
	r.slices = append(r.slices, s)
	return ph
}

func (r *fetchReply) release() {
	for _, s := range r.slices {
		s.Release()
	}
	r.slices = nil
}

// writeTo encodes the response and streams it, with record bytes sent by
// sendfile straight from the page cache.
func (r *fetchReply) writeTo(c *conn, h *reqHeader) error {
	defer r.release()
	r.resp.SetVersion(h.version)
	enc := make([]byte, 0, 256+64*len(r.slices))
	enc = kbin.AppendInt32(enc, h.correlationID)
	if h.flexible {
		enc = append(enc, 0)
	}
	enc = r.resp.AppendTo(enc)

	// parts alternate: bytes, slice, bytes, slice, …, bytes.
	type cut struct{ start, end int } // placeholder span including its length prefix
	cuts := make([]cut, 0, len(r.slices))
	total := int64(len(enc))
	search := 0
	for i := range r.slices {
		ph := make([]byte, placeholderLen)
		copy(ph, placeholderMarker[:])
		binary.BigEndian.PutUint32(ph[16:], uint32(i))
		at := bytes.Index(enc[search:], ph)
		if at < 0 {
			return fmt.Errorf("fetch response placeholder %d not found", i)
		}
		at += search
		prefix := 4
		if h.flexible {
			prefix = kbin.UvarintLen(placeholderLen + 1)
		}
		cuts = append(cuts, cut{at - prefix, at + placeholderLen})
		search = at + placeholderLen
		n := r.slices[i].Size
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
		chunk := append([]byte(nil), enc[prev:ct.start]...)
		if h.flexible {
			chunk = kbin.AppendUvarint(chunk, uint32(r.slices[i].Size+1))
		} else {
			chunk = kbin.AppendInt32(chunk, int32(r.slices[i].Size))
		}
		if i == 0 {
			chunk = append(head, chunk...)
		}
		bufs = append(bufs[:0], chunk)
		if _, err := bufs.WriteTo(c.nc); err != nil {
			return err
		}
		s := r.slices[i]
		if err := sendFileRange(c.nc, s.File, s.Pos, s.Size); err != nil {
			return err
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
