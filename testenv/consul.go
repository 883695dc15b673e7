package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Consul is a real single-server Consul agent on loopback ports, built by
// scripts/install-tools.sh.
//
// It runs as a one-node server (bootstrap_expect = 1) with its data in a
// temporary directory, not as `consul agent -dev`: dev mode keeps Raft in
// memory, so after Stop/Start a fault test would find an empty keyspace
// rather than the outage it meant to simulate. DNS, gRPC, HTTPS, the UI and
// the WAN gossip pool are off; everything else listens on free ports.
type Consul struct {
	Addr    string // host:port of the HTTP API
	DataDir string

	t    testing.TB
	proc *serverProc
}

// StartConsul starts a Consul server for the test, waits until it has elected
// itself leader, and kills it at cleanup. Without the binary it skips (fails
// under CI); see toolBinary.
func StartConsul(t testing.TB) *Consul {
	t.Helper()
	bin := toolBinary(t, "consul", "STRATA_CONSUL_BIN", "github.com/hashicorp/consul")
	var c *Consul
	if _, err := startOnFreePorts(t, func() *serverProc { c = newConsul(t, bin, t.TempDir()); return c.proc }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.proc.stop)
	return c
}

var shared struct {
	sync.Mutex
	c   *Consul
	dir string
}

// SharedConsul returns one Consul server for the whole test binary, started
// by the first caller: tests that each keep to their own key prefix share it
// instead of paying for an agent start each. StopSharedConsul (from
// TestMain, after m.Run) kills it and removes its data; without that, it
// dies with the test binary. A test that stops or restarts Consul starts
// its own with StartConsul.
func SharedConsul(t testing.TB) *Consul {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.c != nil {
		return shared.c
	}
	bin := toolBinary(t, "consul", "STRATA_CONSUL_BIN", "github.com/hashicorp/consul")
	dir, err := os.MkdirTemp("", "strata-consul-")
	if err != nil {
		t.Fatal(err)
	}
	var c *Consul
	_, err = startOnFreePorts(t, func() *serverProc {
		os.RemoveAll(filepath.Join(dir, "data")) // a failed start's
		c = newConsul(t, bin, dir)
		return c.proc
	})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	shared.c, shared.dir = c, dir
	return c
}

// StopSharedConsul kills the server SharedConsul started, if any.
func StopSharedConsul() {
	shared.Lock()
	defer shared.Unlock()
	if shared.c == nil {
		return
	}
	shared.c.proc.stop()
	os.RemoveAll(shared.dir)
	shared.c = nil
}

// newConsul writes the agent's configuration into dir and prepares (does
// not start) the process.
func newConsul(t testing.TB, bin, dir string) *Consul {
	t.Helper()
	httpPort := freePort(t)
	c := &Consul{
		Addr:    "127.0.0.1:" + strconv.Itoa(httpPort),
		DataDir: filepath.Join(dir, "data"),
		t:       t,
	}
	cfg := fmt.Sprintf(`
node_name            = "strata-test"
server               = true
bootstrap_expect     = 1
data_dir             = %q
bind_addr            = "127.0.0.1"
advertise_addr       = "127.0.0.1"
client_addr          = "127.0.0.1"
disable_update_check = true
log_level            = "warn"
ui_config { enabled = false }
performance { raft_multiplier = 1 }
ports {
  http     = %d
  https    = -1
  dns      = -1
  grpc     = -1
  grpc_tls = -1
  serf_lan = %d
  serf_wan = -1
  server   = %d
}
`, c.DataDir, httpPort, freePort(t), freePort(t))
	cfgFile := filepath.Join(dir, "consul.hcl")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c.proc = &serverProc{
		t:     t,
		name:  "consul",
		bin:   bin,
		args:  []string{"agent", "-config-file", cfgFile},
		ready: c.leaderElected,
	}
	return c
}

// leaderElected succeeds once the HTTP API answers and names a Raft leader.
func (c *Consul) leaderElected(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Addr+"/v1/status/leader", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status/leader: %s", resp.Status)
	}
	var leader string
	if err := json.NewDecoder(resp.Body).Decode(&leader); err != nil {
		return fmt.Errorf("status/leader: %w", err)
	}
	if leader == "" {
		return fmt.Errorf("no leader elected yet")
	}
	return nil
}

// Stop kills the agent (SIGKILL), as a crash would. Its data stays.
func (c *Consul) Stop() { c.proc.stop() }

// Start starts a stopped agent again with the same data and ports, and waits
// until it is leader again.
func (c *Consul) Start() {
	c.t.Helper()
	if err := c.proc.start(60 * time.Second); err != nil {
		c.t.Fatal(err)
	}
}

// Log is the agent's output so far (the last megabyte), for failure messages.
func (c *Consul) Log() string { return c.proc.log.String() }
