//go:build !linux

package broker

import (
	"io"
	"net"
	"os"
)

// sendFileRange copies through user space where positioned sendfile is not wired up.
func sendFileRange(nc net.Conn, f *os.File, off, n int64) error {
	return copyFileRange(nc, f, off, n)
}

func copyFileRange(w io.Writer, f *os.File, off, n int64) error {
	m, err := io.Copy(w, io.NewSectionReader(f, off, n))
	if err == nil && m != n {
		err = io.ErrUnexpectedEOF
	}
	return err
}
