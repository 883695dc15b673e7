package testenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// moduleRoot finds the repository root (the directory holding go.mod).
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the strata module")
	}
	return filepath.Dir(mod), nil
}

// StrataBinary builds cmd/strata once per test process and returns its path.
func StrataBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "strata-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "strata")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/strata")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/strata: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Process is a `strata serve` child process. Its methods are called from the
// test's goroutine (they may call t.Fatal).
type Process struct {
	t       testing.TB
	bin     string
	DataDir string
	Addr    string // host:port clients connect to
	Args    []string
	env     []string // kept so Restart starts the same process again
	cmd     *exec.Cmd
	done    chan struct{}
	paused  bool
	logMu   sync.Mutex
	log     strings.Builder
}

// ProcessOptions tune StartProcess.
type ProcessOptions struct {
	DataDir string   // default: a new temp dir
	Listen  string   // --listen; default 127.0.0.1:0 (a free port, kept across restarts)
	Configs []string // -c name=value
	NodeID  int
	Env     []string
	Args    []string // extra serve flags
	// Binary runs this strata binary instead of the one built from the
	// tree (benchmarks compare an older build side by side in one run).
	Binary string
}

var listenLine = regexp.MustCompile(`listening on (\S+)`)

// StartProcess starts `strata serve` on a free loopback port and waits until it
// listens. The process is killed at cleanup.
func StartProcess(t testing.TB, o ProcessOptions) *Process {
	t.Helper()
	p := newProcess(t, o)
	p.start()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("strata log:\n%s", p.Log())
		}
	})
	return p
}

// newProcess prepares a Process without starting it.
func newProcess(t testing.TB, o ProcessOptions) *Process {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	bin := o.Binary
	if bin == "" {
		bin = StrataBinary(t)
	}
	p := &Process{t: t, bin: bin, DataDir: o.DataDir, Addr: o.Listen, env: o.Env}
	p.Args = []string{"serve", "--data-dir", o.DataDir, "--node-id", fmt.Sprint(o.NodeID)}
	for _, c := range o.Configs {
		p.Args = append(p.Args, "-c", c)
	}
	p.Args = append(p.Args, o.Args...)
	return p
}

func (p *Process) start() {
	p.t.Helper()
	if err := p.tryStart(); err != nil {
		p.t.Fatal(err)
	}
}

// tryStart starts the process and waits until it reports its address; the
// error carries the process's output when it exits first.
func (p *Process) tryStart() error {
	args := append(append([]string(nil), p.Args...), "--listen", p.Addr)
	cmd := exec.Command(p.bin, args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.SysProcAttr = serverProcAttr()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = &lockedWriter{p: p}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start strata: %v", err)
	}
	p.cmd = cmd
	p.paused = false
	p.done = make(chan struct{})
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.appendLog(line + "\n")
			if m := listenLine.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	select {
	case a := <-addrc:
		p.Addr = a
		return nil
	case <-p.done:
		return &exitedError{state: cmd.ProcessState.String(), log: p.Log()}
	case <-time.After(60 * time.Second):
		p.Kill()
		return fmt.Errorf("strata did not report its address within 60s\n%s", p.Log())
	}
}

// exitedError is a strata process that exited before it listened; log is
// everything it printed (the reason is usually its last line).
type exitedError struct{ state, log string }

func (e *exitedError) Error() string {
	return fmt.Sprintf("strata exited before listening: %s\n%s", e.state, e.log)
}

// Running reports whether the process has been started and has not exited
// (a paused process is running).
func (p *Process) Running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Pid is the process id of the current incarnation, for /proc/PID/stat.
func (p *Process) Pid() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Pause stops the process with SIGSTOP: it keeps its sockets and sessions
// but answers nothing, as a long GC pause or a frozen VM would.
func (p *Process) Pause() {
	p.t.Helper()
	if !p.Running() {
		p.t.Fatalf("pause: strata is not running")
	}
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		p.t.Fatalf("pause: %v", err)
	}
	p.paused = true
}

// Resume continues a paused process with SIGCONT.
func (p *Process) Resume() {
	p.t.Helper()
	if !p.Running() {
		p.t.Fatalf("resume: strata is not running")
	}
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		p.t.Fatalf("resume: %v", err)
	}
	p.paused = false
}

// Paused reports whether Pause was called without a Resume since.
func (p *Process) Paused() bool { return p.paused && p.Running() }

// Kill sends SIGKILL and waits for the process to go: a crash, no cleanup.
func (p *Process) Kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits for a clean exit, returning its error.
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if p.paused {
		// A stopped process handles SIGTERM only once it runs again.
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.paused = false
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.Kill()
		return fmt.Errorf("strata did not stop within 60s of SIGTERM")
	}
	if !p.cmd.ProcessState.Success() {
		return fmt.Errorf("strata exited with %v", p.cmd.ProcessState)
	}
	return nil
}

// Restart starts the process again on the same address, data directory and
// environment (killing it first if it still runs).
func (p *Process) Restart() {
	p.t.Helper()
	p.Kill()
	p.appendLog("---- restart ----\n")
	p.start()
}

// WipeAndRestart kills the process, deletes everything in its data directory
// and starts it again on the same address: a broker whose disk was replaced
// (KIP-903's case: same node id, new incarnation, no log).
func (p *Process) WipeAndRestart() {
	p.t.Helper()
	p.Kill()
	if err := os.RemoveAll(p.DataDir); err != nil {
		p.t.Fatalf("wipe %s: %v", p.DataDir, err)
	}
	if err := os.MkdirAll(p.DataDir, 0o755); err != nil {
		p.t.Fatalf("wipe %s: %v", p.DataDir, err)
	}
	p.appendLog("---- data dir wiped, restart ----\n")
	p.start()
}

// Log returns everything the process printed.
func (p *Process) Log() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// LogTail returns the last n lines the process printed.
func (p *Process) LogTail(n int) string {
	lines := strings.SplitAfter(p.Log(), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

func (p *Process) appendLog(s string) {
	p.logMu.Lock()
	p.log.WriteString(s)
	p.logMu.Unlock()
}

type lockedWriter struct{ p *Process }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.appendLog(string(b))
	return len(b), nil
}

// InProcess is a broker running inside the test process.
type InProcess struct {
	*broker.Broker
	Addr    string
	DataDir string
	done    chan error
}

// StartBroker runs a broker in-process on a free loopback port.
func StartBroker(t testing.TB, opts broker.Options) *InProcess {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	b, err := broker.New(opts)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	ip := &InProcess{Broker: b, Addr: b.Addr().String(), DataDir: opts.DataDir, done: make(chan error, 1)}
	go func() { ip.done <- b.Serve() }()
	t.Cleanup(func() { ip.Stop() })
	return ip
}

// Stop closes the broker (idempotent).
func (ip *InProcess) Stop() error {
	if ip.Broker == nil {
		return nil
	}
	err := ip.Broker.Close()
	<-ip.done
	ip.Broker = nil
	return err
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// Context returns a context that ends with the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
