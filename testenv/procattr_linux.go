package testenv

import "syscall"

// serverProcAttr makes a server child die with the test binary, so a test
// that panics or times out (skipping t.Cleanup) leaves no MinIO or Consul
// running on a shared machine.
func serverProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
