package testenv

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// LinkProfile shapes one proxied link like a remote object store: every
// request waits Latency ± Jitter before the server sees it (so the first byte
// of its response comes that much later), and each connection moves at most
// BytesPerSecond in each direction. The zero value is plain loopback.
type LinkProfile struct {
	Latency        time.Duration
	Jitter         time.Duration
	BytesPerSecond int64
}

// S3Like is the profile the replay benchmarks and tests use: what a GET from
// S3 in the same region looks like from an EC2 instance — 30 ms ± 10 ms to
// the first byte, ~80 MB/s per connection (throughput comes only from many
// requests in flight).
var S3Like = LinkProfile{Latency: 30 * time.Millisecond, Jitter: 10 * time.Millisecond, BytesPerSecond: 80_000_000}

func (p LinkProfile) String() string {
	if p == (LinkProfile{}) {
		return "loopback"
	}
	return fmt.Sprintf("latency %v ± %v per request, %d MB/s per connection", p.Latency, p.Jitter, p.BytesPerSecond/1_000_000)
}

// Toxiproxy is an in-process toxiproxy (github.com/Shopify/toxiproxy/v2)
// forwarding a loopback port to upstream with a LinkProfile's toxics. No
// Docker, no separate process: the proxy's goroutines run in the test.
type Toxiproxy struct {
	Addr     string // 127.0.0.1:port to connect to instead of upstream
	Endpoint string // http://Addr
	Profile  LinkProfile

	proxy *toxiproxy.Proxy
	once  sync.Once
}

var toxiproxyServer = sync.OnceValue(func() *toxiproxy.ApiServer {
	return toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
})

// StartToxiproxy proxies a new loopback port to upstream (host:port) with
// profile's toxics, and stops it at cleanup.
func StartToxiproxy(t testing.TB, upstream string, profile LinkProfile) *Toxiproxy {
	t.Helper()
	tp, err := NewToxiproxy(upstream, profile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tp.Stop)
	return tp
}

// NewToxiproxy is StartToxiproxy without a test: the caller calls Stop.
func NewToxiproxy(upstream string, profile LinkProfile) (*Toxiproxy, error) {
	srv := toxiproxyServer()
	name := fmt.Sprintf("strata-%s-%d", strings.ReplaceAll(upstream, ":", "-"), time.Now().UnixNano())
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("testenv: toxiproxy to %s: %w", upstream, err)
	}
	tp := &Toxiproxy{Addr: p.Listen, Endpoint: "http://" + p.Listen, Profile: profile, proxy: p}
	add := func(json string) error {
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(json)); err != nil {
			tp.Stop()
			return fmt.Errorf("testenv: toxiproxy toxic %s: %w", json, err)
		}
		return nil
	}
	if profile.Latency > 0 {
		// Upstream: the request is held, its response is not (see
		// requestLatency).
		if err := add(fmt.Sprintf(`{"name":"request_latency","type":%q,"stream":"upstream","attributes":{"latency_us":%d,"jitter_us":%d}}`,
			requestLatencyType, profile.Latency.Microseconds(), profile.Jitter.Microseconds())); err != nil {
			return nil, err
		}
	}
	if profile.BytesPerSecond > 0 {
		// toxiproxy's rate is in KB/s (1000 bytes), per link: per
		// connection and direction.
		for _, dir := range []string{"downstream", "upstream"} {
			if err := add(fmt.Sprintf(`{"name":"bandwidth_%s","type":"bandwidth","stream":%q,"attributes":{"rate":%d}}`,
				dir, dir, max(1, profile.BytesPerSecond/1000))); err != nil {
				return nil, err
			}
		}
	}
	return tp, nil
}

// Stop closes the proxy's listener and every connection through it.
func (tp *Toxiproxy) Stop() { tp.once.Do(tp.proxy.Stop) }

// Dial-free check that the proxy forwards: used by tests of this file.
func (tp *Toxiproxy) reachable() error {
	c, err := net.DialTimeout("tcp", tp.Addr, 5*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}
