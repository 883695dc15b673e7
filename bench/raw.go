package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kbin"
)

// The raw reference speaks a minimal framing of its own:
//
//	request:  int32 length, then per partition: int32 partition, int32 n, n batch bytes
//	response: int64 request number
//
// The server appends each batch to its partition's file with one write and
// answers after the writes, one request at a time per connection (as a Kafka
// broker does); the client keeps up to rawInflight requests outstanding (as
// kgo does). No validation, no offsets, no indexes: it is the cost of moving
// the bytes and handing them to the kernel's page cache.
const rawInflight = 5

const batchHeaderLen = 61 // RecordBatch v2 header

// rawBatch builds one partition's batch of n records the way Kafka lays them
// out (varint-framed records after a 61-byte header), lz4-framing the records
// section when codec says so. Header fields are left zero: nobody parses them.
func rawBatch(w workload, n, first int) []byte {
	var recs []byte
	for i := 0; i < n; i++ {
		var r []byte
		r = append(r, 0)                   // attributes
		r = kbin.AppendVarlong(r, 0)       // timestamp delta
		r = kbin.AppendVarint(r, int32(i)) // offset delta
		r = kbin.AppendVarint(r, -1)       // null key
		v := value(first+i, w.size)
		r = kbin.AppendVarint(r, int32(len(v)))
		r = append(r, v...)
		r = kbin.AppendVarint(r, 0) // no headers
		recs = kbin.AppendVarint(recs, int32(len(r)))
		recs = append(recs, r...)
	}
	if w.codec == "lz4" {
		var buf bytes.Buffer
		zw := lz4.NewWriter(&buf)
		zw.Write(recs)
		zw.Close()
		recs = buf.Bytes()
	}
	return append(make([]byte, batchHeaderLen, batchHeaderLen+len(recs)), recs...)
}

// rawServer appends framed batches to <dir>/<partition>.log.
type rawServer struct {
	ln    net.Listener
	dir   string
	wg    sync.WaitGroup
	mu    sync.Mutex
	files map[int32]*os.File
	err   error
}

func startRawServer(dir string) (*rawServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &rawServer{ln: ln, dir: dir, files: map[int32]*os.File{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *rawServer) addr() string { return s.ln.Addr().String() }

func (s *rawServer) path(p int32) string { return filepath.Join(s.dir, fmt.Sprintf("%d.log", p)) }

func (s *rawServer) file(p int32) (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.files[p]; f != nil {
		return f, nil
	}
	f, err := os.OpenFile(s.path(p), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	s.files[p] = f
	return f, nil
}

func (s *rawServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			if err := s.serve(c); err != nil && !errors.Is(err, io.EOF) {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
			}
		}()
	}
}

func (s *rawServer) serve(c net.Conn) error {
	r := bufio.NewReaderSize(c, 64<<10)
	var buf []byte
	var seq int64
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		for b := buf; len(b) > 0; {
			if len(b) < 8 {
				return errors.New("raw: short partition header")
			}
			p := int32(binary.BigEndian.Uint32(b))
			m := int(binary.BigEndian.Uint32(b[4:]))
			if m > len(b)-8 {
				return errors.New("raw: short batch")
			}
			f, err := s.file(p)
			if err != nil {
				return err
			}
			if _, err := f.Write(b[8 : 8+m]); err != nil {
				return err
			}
			b = b[8+m:]
		}
		var ack [8]byte
		binary.BigEndian.PutUint64(ack[:], uint64(seq))
		seq++
		if _, err := c.Write(ack[:]); err != nil {
			return err
		}
	}
}

func (s *rawServer) close() error {
	s.ln.Close()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.files {
		f.Close()
	}
	return s.err
}

// rawProduce sends w.records records as requests holding one batch of
// perBatch records for each partition, and waits for every ack.
func rawProduce(addr string, w workload, perBatch int) (result, error) {
	perReq := perBatch * int(w.parts)
	nreq := (w.records + perReq - 1) / perReq
	// A few distinct requests, reused round robin; building them is not timed.
	const distinct = 4
	reqs := make([][]byte, distinct)
	var batchLen int64
	for i := range reqs {
		req := make([]byte, 4)
		for p := int32(0); p < w.parts; p++ {
			b := rawBatch(w, perBatch, (i*int(w.parts)+int(p))*perBatch)
			batchLen = int64(len(b))
			req = binary.BigEndian.AppendUint32(req, uint32(p))
			req = binary.BigEndian.AppendUint32(req, uint32(len(b)))
			req = append(req, b...)
		}
		binary.BigEndian.PutUint32(req, uint32(len(req)-4))
		reqs[i] = req
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	c.(*net.TCPConn).SetNoDelay(true)

	sent := make([]time.Time, nreq)
	lat := make([]time.Duration, nreq)
	window := make(chan struct{}, rawInflight)
	readErr := make(chan error, 1)
	go func() {
		r := bufio.NewReader(c)
		var ack [8]byte
		for i := 0; i < nreq; i++ {
			if _, err := io.ReadFull(r, ack[:]); err != nil {
				readErr <- err
				return
			}
			lat[i] = time.Since(sent[i])
			<-window
		}
		readErr <- nil
	}()
	start := time.Now()
	for i := 0; i < nreq; i++ {
		window <- struct{}{}
		sent[i] = time.Now()
		if _, err := c.Write(reqs[i%distinct]); err != nil {
			return result{}, err
		}
	}
	if err := <-readErr; err != nil {
		return result{}, err
	}
	elapsed := time.Since(start)
	records := int64(nreq * perReq)
	return result{
		records: records, bytes: records * int64(w.size), elapsed: elapsed,
		recLat: lat, reqLat: lat, // every record of a request waits exactly its round trip
		batches: int64(nreq) * int64(w.parts), batchLen: int64(nreq) * int64(w.parts) * batchLen,
		batchRec: records,
	}, nil
}

// rawConsume streams every partition file to a reader over loopback TCP with
// sendfile (io.Copy from *os.File to *net.TCPConn) and times until the reader
// has all the bytes. records is what those files hold, for records/s.
func rawConsume(paths []string, records, payload int64) (result, error) {
	var total int64
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return result{}, err
		}
		total += st.Size()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		for _, p := range paths {
			f, err := os.Open(p)
			if err != nil {
				srvErr <- err
				return
			}
			_, err = io.Copy(c, f)
			f.Close()
			if err != nil {
				srvErr <- err
				return
			}
		}
		srvErr <- nil
	}()
	start := time.Now()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	buf := make([]byte, 1<<20)
	var got int64
	for got < total {
		n, err := c.Read(buf)
		got += int64(n)
		if err != nil {
			return result{}, fmt.Errorf("raw consume: %d of %d bytes: %w", got, total, err)
		}
	}
	elapsed := time.Since(start)
	if err := <-srvErr; err != nil {
		return result{}, err
	}
	return result{records: records, bytes: payload, elapsed: elapsed}, nil
}
