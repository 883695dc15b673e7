package broker

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/tiering"
)

// conn is one client connection. Kafka handles a connection's requests one at a
// time, in order, and answers in the same order; so do we — one goroutine
// reads a request, handles it and writes its response before reading the next.
// Clients that want parallelism open more connections (franz-go and librdkafka
// keep separate connections for produce, fetch and groups).
type conn struct {
	b      *Broker
	nc     net.Conn
	r      *bufio.Reader
	log    *slog.Logger
	reuse  []byte // read buffer kept between Produce requests (which retain nothing)
	wbuf   []byte // response encoding buffer, reused
	remote string

	remoteSess *tiering.Session // remote reads (tiering.go); nil until the first
}

// reqHeader is the decoded Kafka request header (v0–v2).
type reqHeader struct {
	key           int16
	version       int16
	correlationID int32
	clientID      string
	flexible      bool
}

func newConn(b *Broker, nc net.Conn) *conn {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return &conn{
		b:      b,
		nc:     nc,
		r:      bufio.NewReaderSize(nc, 64<<10),
		log:    b.log.With("remote", nc.RemoteAddr().String()),
		remote: nc.RemoteAddr().String(),
	}
}

// errCloseConn marks failures after which Kafka closes the connection: the
// framing is broken or the request cannot be answered in any version the
// client would understand.
var errCloseConn = errors.New("closing connection")

func (c *conn) serve() {
	defer c.nc.Close()
	defer c.closeTierSession()
	c.b.metrics.connections.Inc()
	defer c.b.metrics.connections.Dec()
	for {
		frame, err := c.readFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && c.b.ctx.Err() == nil {
				c.log.Info("closing connection", "err", err)
			}
			return
		}
		if err := c.handleFrameSafely(frame); err != nil {
			if c.b.ctx.Err() == nil {
				c.log.Warn("closing connection", "err", err)
			}
			return
		}
	}
}

// handleFrameSafely turns a panic in a handler into a closed connection and a
// logged stack, so one bad request cannot take down every client's broker.
func (c *conn) handleFrameSafely(frame []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic while handling request", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: internal error", errCloseConn)
		}
	}()
	return c.handleFrame(frame)
}

// readFrame reads one size-prefixed request. Sizes above
// socket.request.max.bytes close the connection, as Kafka does
// (InvalidReceiveException) — we never allocate what a client claims.
func (c *conn) readFrame() ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(c.r, sz[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(sz[:]))
	if n < 8 {
		return nil, fmt.Errorf("request size %d is too small for a request header", n)
	}
	if int64(n) > int64(c.b.settings.socketRequestMaxBytes) {
		return nil, fmt.Errorf("request size %d exceeds socket.request.max.bytes %d", n, c.b.settings.socketRequestMaxBytes)
	}
	var buf []byte
	if cap(c.reuse) >= int(n) {
		buf = c.reuse[:n]
	} else {
		buf = make([]byte, n, frameCap(int(n), int(c.b.settings.socketRequestMaxBytes)))
	}
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// frameCap is the capacity of a new read buffer for an n-byte frame: a
// quarter more (in 64 KiB steps, at most limit), so the next Produce, which
// reuses it, fits even if it is a little larger. franz-go sends requests of
// up to one batch per partition that grow by a few KB at a time (15.57,
// 15.94, 15.99 MB, …); sized exactly, every one was a new 16 MB buffer —
// ~3,900 page faults of ~11 µs each on a VM.
func frameCap(n, limit int) int {
	const step = 64 << 10
	c := (n + n/4 + step - 1) / step * step
	return max(n, min(c, limit))
}

func (c *conn) handleFrame(frame []byte) error {
	start := time.Now()
	hdr, req, err := decodeRequest(frame)
	if errors.Is(err, errUnsupportedApiVersions) {
		// KIP-511: answer an ApiVersions request of a version we do not
		// know with a v0 response carrying UNSUPPORTED_VERSION and our
		// ranges, so the client can retry with a version we support.
		hdr.version, hdr.flexible = 0, false
		return c.writeResponse(hdr, unsupportedApiVersionsResponse())
	}
	if err != nil {
		return err
	}
	api := apis[hdr.key]
	resp, err := api.handle(c, &hdr, req)
	if hdr.key == kmsg.Produce.Int16() {
		c.reuse = frame[:cap(frame)] // Produce handling retained nothing from the frame
	}
	c.b.metrics.observeRequest(hdr.key, time.Since(start), err != nil)
	if err != nil {
		return err
	}
	switch r := resp.(type) {
	case nil: // acks=0 produce: no response at all
		return nil
	case *fetchReply:
		return r.writeTo(c, &hdr)
	case kmsg.Response:
		return c.writeResponse(hdr, r)
	default:
		panic(fmt.Sprintf("handler for key %d returned %T", hdr.key, resp))
	}
}

var errUnsupportedApiVersions = errors.New("unsupported ApiVersions version")

// decodeRequest turns one frame (without its size prefix) into a header and a
// kmsg request. Any error means the connection should close, except
// errUnsupportedApiVersions, which gets an answer.
func decodeRequest(frame []byte) (reqHeader, kmsg.Request, error) {
	hdr, body, err := parseHeader(frame)
	if err != nil {
		return hdr, nil, err
	}
	api, ok := apis[hdr.key]
	if !ok {
		return hdr, nil, fmt.Errorf("%w: unknown api key %d", errCloseConn, hdr.key)
	}
	if hdr.version < api.min || hdr.version > api.max {
		if hdr.key == kmsg.ApiVersions.Int16() {
			return hdr, nil, errUnsupportedApiVersions
		}
		return hdr, nil, fmt.Errorf("%w: api %s version %d not supported (%d-%d)", errCloseConn, kmsg.NameForKey(hdr.key), hdr.version, api.min, api.max)
	}
	req := kmsg.RequestForKey(hdr.key)
	req.SetVersion(hdr.version)
	hdr.flexible = req.IsFlexible()
	if hdr.flexible {
		// Header v2 ends with tagged fields; skip them.
		body, err = skipTags(body)
		if err != nil {
			return hdr, nil, err
		}
	}
	if err := req.ReadFrom(body); err != nil {
		return hdr, nil, fmt.Errorf("%w: malformed %s v%d request: %v", errCloseConn, kmsg.NameForKey(hdr.key), hdr.version, err)
	}
	return hdr, req, nil
}

// parseHeader decodes request header v1/v2's fixed part with franz-go's kbin.
func parseHeader(frame []byte) (reqHeader, []byte, error) {
	r := kbin.Reader{Src: frame}
	var h reqHeader
	h.key = r.Int16()
	h.version = r.Int16()
	h.correlationID = r.Int32()
	if cid := r.NullableString(); cid != nil {
		h.clientID = *cid
	}
	if !r.Ok() {
		return h, nil, fmt.Errorf("%w: malformed request header", errCloseConn)
	}
	return h, r.Src, nil
}

// skipTags skips a tagged-field section (KIP-482).
func skipTags(b []byte) ([]byte, error) {
	r := kbin.Reader{Src: b}
	n := r.Uvarint()
	for i := uint32(0); i < n && r.Ok(); i++ {
		r.Uvarint()
		r.Span(int(r.Uvarint()))
	}
	if !r.Ok() {
		return nil, fmt.Errorf("%w: malformed request header tags", errCloseConn)
	}
	return r.Src, nil
}

// writeResponse encodes a kmsg response after the response header. ApiVersions
// always uses response header v0 (no tags), even in its flexible versions, so a
// client that guessed a too-new version can still parse the error.
func (c *conn) writeResponse(hdr reqHeader, resp kmsg.Response) error {
	resp.SetVersion(hdr.version)
	buf := c.wbuf[:0]
	buf = append(buf, 0, 0, 0, 0)
	buf = kbin.AppendInt32(buf, hdr.correlationID)
	if hdr.flexible && hdr.key != kmsg.ApiVersions.Int16() {
		buf = append(buf, 0)
	}
	buf = resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	_, err := c.nc.Write(buf)
	if cap(buf) <= 1<<20 {
		c.wbuf = buf[:0]
	}
	return err
}
