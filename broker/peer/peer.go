// Package peer is how one Strata broker talks to another: plain Kafka
// requests over a TCP connection (replica Fetch, OffsetForLeaderEpoch,
// CreateTopics forwarded to the controller), encoded and decoded with
// franz-go's kmsg, as DESIGN.md requires — no private RPC. A Conn carries
// one request at a time, like a Kafka replica fetcher's connection.
package peer

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// MaxResponseBytes bounds what a peer may send back; a larger size closes
// the connection rather than allocating what the peer claims.
const MaxResponseBytes = 256 << 20

// ErrClosed is returned after Close.
var ErrClosed = errors.New("peer: connection closed")

// Conn is a connection to one broker.
type Conn struct {
	addr string
	fmt  *kmsg.RequestFormatter

	mu   sync.Mutex // one request at a time
	nc   net.Conn
	r    *bufio.Reader
	wbuf []byte
	rbuf []byte // response buffer reused by DoReuse
	corr int32
	dead bool
}

// Dial connects to a broker at addr; clientID names this broker in the
// peer's logs (Kafka's "broker-N-fetcher-0").
func Dial(ctx context.Context, addr, clientID string) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("peer: dial %s: %w", addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return &Conn{addr: addr, fmt: kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID)), nc: nc, r: bufio.NewReaderSize(nc, 64<<10)}, nil
}

// Addr is the peer's address.
func (c *Conn) Addr() string { return c.addr }

// Close closes the connection; a request in flight fails.
func (c *Conn) Close() error {
	c.nc.Close()
	c.mu.Lock()
	c.dead = true
	c.mu.Unlock()
	return nil
}

// Do sends req at the version already set on it (req.SetVersion) and reads
// its response, within ctx. Any error leaves the connection unusable: the
// caller closes it and dials again, as Kafka's NetworkClient does after a
// failed request.
func (c *Conn) Do(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	return c.doLocked(ctx, req, false)
}

// DoReuse is Do decoding into a buffer the connection keeps: byte fields of
// the response (a Fetch's record batches) alias it and are valid only until
// the next call on this connection. The follower fetcher uses it, so a
// replica fetch response does not allocate and zero a fresh buffer of up to
// replica.fetch.response.max.bytes each time.
func (c *Conn) DoReuse(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	return c.doLocked(ctx, req, true)
}

func (c *Conn) doLocked(ctx context.Context, req kmsg.Request, reuse bool) (kmsg.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return nil, ErrClosed
	}
	resp, err := c.do(ctx, req, reuse)
	if err != nil {
		c.dead = true
		c.nc.Close()
	}
	return resp, err
}

func (c *Conn) do(ctx context.Context, req kmsg.Request, reuse bool) (kmsg.Response, error) {
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetDeadline(dl)
	} else {
		c.nc.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.corr++
	corr := c.corr
	c.wbuf = c.fmt.AppendRequest(c.wbuf[:0], req, corr)
	if _, err := c.nc.Write(c.wbuf); err != nil {
		return nil, c.wrap(ctx, "write", err)
	}
	var sz [4]byte
	if _, err := io.ReadFull(c.r, sz[:]); err != nil {
		return nil, c.wrap(ctx, "read", err)
	}
	n := int32(binary.BigEndian.Uint32(sz[:]))
	if n < 4 || n > MaxResponseBytes {
		return nil, fmt.Errorf("peer: %s: response size %d out of range", c.addr, n)
	}
	var body []byte
	if reuse {
		if cap(c.rbuf) < int(n) {
			c.rbuf = make([]byte, n)
		}
		body = c.rbuf[:n]
	} else {
		body = make([]byte, n)
	}
	if _, err := io.ReadFull(c.r, body); err != nil {
		return nil, c.wrap(ctx, "read", err)
	}
	return decodeResponse(req, corr, body)
}

func (c *Conn) wrap(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("peer: %s %s: %w", op, c.addr, ctx.Err())
	}
	return fmt.Errorf("peer: %s %s: %w", op, c.addr, err)
}

// decodeResponse checks the correlation id, skips the response header's
// tags (flexible versions, except ApiVersions whose header never has them)
// and decodes the body.
func decodeResponse(req kmsg.Request, corr int32, body []byte) (kmsg.Response, error) {
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	r := kbin.Reader{Src: body}
	if got := r.Int32(); got != corr {
		return nil, fmt.Errorf("peer: response correlation id %d, want %d", got, corr)
	}
	if resp.IsFlexible() && req.Key() != int16(kmsg.ApiVersions) {
		kmsg.SkipTags(&r)
	}
	if !r.Ok() {
		return nil, errors.New("peer: truncated response header")
	}
	if err := resp.ReadFrom(r.Src); err != nil {
		return nil, fmt.Errorf("peer: decode %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}
