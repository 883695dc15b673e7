//go:build linux

package broker

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// sendFileRange writes n bytes of f starting at off to the connection with
// sendfile(2), passing the offset explicitly so the file's shared position is
// never used: many fetches read one segment file at once. Go's own
// TCPConn.ReadFrom would use (and move) that shared position.
func sendFileRange(nc net.Conn, f *os.File, off, n int64) error {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return copyFileRange(nc, f, off, n)
	}
	dst, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	src, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	cerr := src.Control(func(sfd uintptr) {
		for n > 0 && werr == nil {
			err := dst.Write(func(dfd uintptr) bool {
				chunk := n
				if chunk > 1<<30 {
					chunk = 1 << 30
				}
				w, err := syscall.Sendfile(int(dfd), int(sfd), &off, int(chunk))
				if w > 0 {
					n -= int64(w)
				}
				switch {
				case errors.Is(err, syscall.EAGAIN):
					return false // wait until the socket is writable
				case errors.Is(err, syscall.EINTR):
					return true
				case err != nil:
					werr = err
				case w == 0:
					// The file is shorter than the slice promised (truncated
					// under us): the response is now unfinishable.
					werr = fmt.Errorf("sendfile: %w at offset %d", io.ErrUnexpectedEOF, off)
				}
				return true
			})
			if err != nil && werr == nil {
				werr = err
			}
		}
	})
	if cerr != nil {
		return cerr
	}
	return werr
}

func copyFileRange(w io.Writer, f *os.File, off, n int64) error {
	m, err := io.Copy(w, io.NewSectionReader(f, off, n))
	if err == nil && m != n {
		err = io.ErrUnexpectedEOF
	}
	return err
}
