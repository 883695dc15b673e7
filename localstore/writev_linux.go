//go:build linux

package localstore

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// maxIovecs is Linux's IOV_MAX.
const maxIovecs = 1024

// writeBatchesAt writes bufs back to back at off with pwritev, so appending a
// produce request's batches costs one system call and no copy into a staging
// buffer. Short writes and EINTR are retried.
func writeBatchesAt(f *os.File, bufs [][]byte, off int64) error {
	if len(bufs) == 1 {
		_, err := f.WriteAt(bufs[0], off)
		return err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	// Work on a copy: partial writes re-slice the head buffer.
	iov := append([][]byte(nil), bufs...)
	for len(iov) > 0 {
		batch := iov[:min(len(iov), maxIovecs)]
		var n int
		var werr error
		if err := rc.Write(func(fd uintptr) bool {
			n, werr = unix.Pwritev(int(fd), batch, off)
			return true
		}); err != nil {
			return err
		}
		if errors.Is(werr, unix.EINTR) {
			continue
		}
		if werr != nil {
			return &os.PathError{Op: "pwritev", Path: f.Name(), Err: werr}
		}
		if n == 0 {
			return &os.PathError{Op: "pwritev", Path: f.Name(), Err: errors.New("wrote 0 bytes")}
		}
		off += int64(n)
		for n > 0 && len(iov) > 0 {
			if n >= len(iov[0]) {
				n -= len(iov[0])
				iov = iov[1:]
				continue
			}
			iov[0] = iov[0][n:]
			n = 0
		}
		for len(iov) > 0 && len(iov[0]) == 0 {
			iov = iov[1:]
		}
	}
	return nil
}
