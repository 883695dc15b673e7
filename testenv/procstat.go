package testenv

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"
)

// ProcStat is what tests read from /proc/PID/stat (proc(5)): the scheduler
// state and the CPU time a process used, for "is it really stopped" checks
// and for benchmarks that count broker CPU-seconds per GB.
type ProcStat struct {
	State byte          // R running, S sleeping, D disk, T stopped (SIGSTOP), Z zombie, …
	CPU   time.Duration // user + system time so far (utime + stime)
	// MinorFaults is minflt: page faults served without I/O (first touches
	// of fresh memory, mostly), which benchmarks count per GB moved.
	MinorFaults int64
}

// userHZ is the unit of utime and stime in /proc: USER_HZ, 100 on every
// Linux ABI Go supports (sysconf(_SC_CLK_TCK) needs cgo to ask).
const userHZ = 100

const (
	tick     = time.Second / userHZ
	maxTicks = math.MaxInt64 / int64(tick) // more would overflow a Duration
)

// ReadProcStat reads /proc/pid/stat (Linux only).
func ReadProcStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, fmt.Errorf("testenv: %w", err)
	}
	return parseProcStat(b)
}

// Stat reads the process's /proc/PID/stat.
func (p *Process) Stat() (ProcStat, error) { return ReadProcStat(p.Pid()) }

// parseProcStat decodes one /proc/PID/stat line: "pid (comm) state ppid …"
// where comm may hold spaces and parentheses, so fields are counted from the
// last ')'. utime and stime are fields 14 and 15 (1-based, proc(5)).
func parseProcStat(b []byte) (ProcStat, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return ProcStat{}, fmt.Errorf("testenv: /proc stat: no ')' after the command name")
	}
	fields := bytes.Fields(b[end+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return ProcStat{}, fmt.Errorf("testenv: /proc stat: %d fields after the command name, want at least 13", len(fields))
	}
	if len(fields[0]) != 1 {
		return ProcStat{}, fmt.Errorf("testenv: /proc stat: state %q is not one letter", fields[0])
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil || n < 0 {
			return ProcStat{}, fmt.Errorf("testenv: /proc stat: CPU time %q is not a tick count", f)
		}
		if n > maxTicks-ticks {
			return ProcStat{}, fmt.Errorf("testenv: /proc stat: CPU time out of range")
		}
		ticks += n
	}
	minflt, err := strconv.ParseInt(string(fields[7]), 10, 64) // field 10
	if err != nil || minflt < 0 {
		return ProcStat{}, fmt.Errorf("testenv: /proc stat: minflt %q is not a count", fields[7])
	}
	return ProcStat{State: fields[0][0], CPU: time.Duration(ticks) * tick, MinorFaults: minflt}, nil
}
