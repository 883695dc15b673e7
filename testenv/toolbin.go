package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// toolBinary finds a server binary that scripts/install-tools.sh builds
// (minio, consul): $envVar, else the install script's cache
// (${STRATA_TOOLS_DIR:-$HOME/.cache/strata-tools}/<name>-<version>/<name>,
// the version pinned in tools/<name>/go.mod), else $PATH. Missing, it fails
// the test under CI (CI set) and skips it elsewhere, naming the command that
// installs it.
func toolBinary(t testing.TB, name, envVar, module string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", envVar, p, err)
		}
		return p
	}
	var tried []string
	if p, err := cachedToolPath(name, module); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		tried = append(tried, p)
	} else {
		tried = append(tried, err.Error())
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	tried = append(tried, name+" on $PATH")
	msg := fmt.Sprintf("%s not found (tried $%s, %s); build it with scripts/install-tools.sh (a few minutes the first time)",
		name, envVar, strings.Join(tried, ", "))
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

var (
	toolPathsMu sync.Mutex
	toolPaths   = map[string]string{}
)

// cachedToolPath is where scripts/install-tools.sh puts name.
func cachedToolPath(name, module string) (string, error) {
	toolPathsMu.Lock()
	defer toolPathsMu.Unlock()
	if p, ok := toolPaths[name]; ok {
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	version, err := pinnedVersion(filepath.Join(root, "tools", name, "go.mod"), module)
	if err != nil {
		return "", err
	}
	dir := os.Getenv("STRATA_TOOLS_DIR")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(home, ".cache", "strata-tools")
	}
	p := filepath.Join(dir, name+"-"+version, name)
	toolPaths[name] = p
	return p, nil
}

// pinnedVersion reads module's version from a tools go.mod (the same rule
// as install-tools.sh).
func pinnedVersion(gomod, module string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[0] == "require" && fields[1] == module {
			return fields[2], nil
		}
		if len(fields) >= 2 && fields[0] == module {
			return fields[1], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s does not require %s", gomod, module)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// logBuffer collects a child process's output (bounded) for failure messages.
type logBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const maxLogBuffer = 1 << 20

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - maxLogBuffer; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
