package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// serverProc is a child server process (MinIO, Consul) that a fault test can
// stop and start again with the same arguments, data and ports.
type serverProc struct {
	t     testing.TB
	name  string
	bin   string
	args  []string
	env   []string
	ready func(context.Context) error // nil once the server answers
	log   logBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exits
}

// start launches the server and waits up to timeout for ready.
func (p *serverProc) start(timeout time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is already running", p.name)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout = &p.log
	cmd.Stderr = &p.log
	cmd.SysProcAttr = serverProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	p.cmd, p.done = cmd, done

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var lastErr error
	for {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		lastErr = p.ready(rctx)
		rcancel()
		if lastErr == nil {
			return nil
		}
		select {
		case <-done:
			p.cmd, p.done = nil, nil
			return fmt.Errorf("%s exited before it was ready (%v); output:\n%s", p.name, cmd.ProcessState, p.log.String())
		case <-ctx.Done():
			p.killLocked()
			return fmt.Errorf("%s not ready after %v: %v; output:\n%s", p.name, timeout, lastErr, p.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// portAttempts is how many times a test server's first start is tried with
// new ports when one it was given was taken meanwhile: freePort's port is free
// when chosen, but any process on the machine may bind it before the server
// does (CI saw Consul fail so).
const portAttempts = 3

// portTaken reports whether a failed first start was a port taken between
// choosing and binding it.
func portTaken(err error) bool {
	return err != nil && strings.Contains(err.Error(), "already in use") // Consul: "address already in use"; MinIO: "port is already in use"
}

// startOnFreePorts builds a server (build picks new ports each call) and
// starts it, again with new ports, up to portAttempts times, while the
// server says a port it was given is already in use.
func startOnFreePorts(t testing.TB, build func() *serverProc) (*serverProc, error) {
	for attempt := 1; ; attempt++ {
		p := build()
		err := p.start(60 * time.Second)
		if err == nil || !portTaken(err) || attempt == portAttempts {
			return p, err
		}
		t.Logf("%s: a port was taken between choosing and binding it; again with new ports", p.name)
	}
}

// stop kills the server (SIGKILL: fault tests want the abrupt kind) and
// waits for it to exit. Stopping a stopped server does nothing.
func (p *serverProc) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killLocked()
}

func (p *serverProc) killLocked() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
	p.cmd, p.done = nil, nil
}
