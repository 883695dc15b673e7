package broker

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/peer"
)

// peerPool keeps one connection per broker for the requests brokers send
// each other, follower fetches aside (replication.go has its own): admin
// requests forwarded to the controller (forward.go), WriteTxnMarkers (the
// transaction coordinator to each partition's leader) and AddPartitionsToTxn
// verify_only (a leader to a producer's coordinator, KIP-890). Each
// connection carries one request at a time (peer.Conn), as Kafka's
// inter-broker channels do; a failed request drops the connection and the
// next one dials again.
type peerPool struct {
	b *Broker

	mu struct {
		sync.Mutex
		closed bool
		conns  map[int32]*peerSlot
	}
}

// peerSlot is the connection to one broker; its mutex serialises requests.
type peerSlot struct {
	mu   sync.Mutex
	addr string
	c    *peer.Conn
}

// peerRequestTimeout bounds one inter-broker request.
const peerRequestTimeout = 30 * time.Second

func newPeerPool(b *Broker) *peerPool {
	pp := &peerPool{b: b}
	pp.mu.conns = map[int32]*peerSlot{}
	return pp
}

// do sends req (at the version set on it) to broker node and returns its
// answer, dialing the broker's registered address when needed.
func (pp *peerPool) do(ctx context.Context, node int32, req kmsg.Request) (kmsg.Response, error) {
	addr := ""
	for _, br := range pp.b.topics.liveBrokers() {
		if br.NodeID == node {
			addr = net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port)))
		}
	}
	if addr == "" {
		return nil, fmt.Errorf("broker: broker %d is not registered", node)
	}
	pp.mu.Lock()
	if pp.mu.closed {
		pp.mu.Unlock()
		return nil, peer.ErrClosed
	}
	s := pp.mu.conns[node]
	if s == nil {
		s = &peerSlot{}
		pp.mu.conns[node] = s
	}
	pp.mu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil && s.addr != addr {
		s.c.Close()
		s.c = nil
	}
	if s.c == nil {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := peer.Dial(dctx, addr, peerClientID(pp.b.opts.NodeID))
		cancel()
		if err != nil {
			return nil, err
		}
		s.c, s.addr = c, addr
	}
	rctx, cancel := context.WithTimeout(ctx, peerRequestTimeout)
	defer cancel()
	resp, err := s.c.Do(rctx, req)
	if err != nil {
		s.c.Close()
		s.c = nil
		return nil, err
	}
	return resp, nil
}

// close drops every connection; requests in flight fail.
func (pp *peerPool) close() {
	pp.mu.Lock()
	pp.mu.closed = true
	conns := pp.mu.conns
	pp.mu.conns = map[int32]*peerSlot{}
	pp.mu.Unlock()
	for _, s := range conns {
		// Closing the connection (not taking s.mu, which a request in
		// flight holds) ends that request at once.
		if c := s.conn(); c != nil {
			c.Close()
		}
	}
}

func (s *peerSlot) conn() *peer.Conn {
	if !s.mu.TryLock() {
		return nil
	}
	defer s.mu.Unlock()
	return s.c
}

// peerClientID names this broker's peer connections in other brokers' logs
// and marks them as a broker's (fromBroker).
func peerClientID(node int32) string { return fmt.Sprintf("broker-%d-peer", node) }
